/* alert/notify_config.c — the `notify:` section of the configuration
 * (docs/configuration.md): Alertmanagers and webhooks, their URLs, headers,
 * credentials and TLS settings, timeouts and backoff, with the error
 * messages a bad value gets. The notifier (notify.c) starts from it. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/notify.h"
#include "alert/notify_int.h"
#include "util/httpcheck.h"
#include "util/redact.h"
#include "util/yaml_tree.h"

void notify_config_init(struct notify_config *c)
{
	memset(c, 0, sizeof *c);
	c->resend_interval_ms = 60 * 1000;
	c->resolved_resend_ms = 15 * 60 * 1000;
	c->poll_ms = 1000;
	c->max_backoff_ms = 60 * 1000;
	c->send_pending = 0;
}

static void target_free(struct notify_target *t)
{
	free(t->url);
	free(t->bearer_token_file);
	for (size_t i = 0; i < t->nheaders; i++)
		free(t->headers[i]);
	free(t->headers);
	memset(t, 0, sizeof *t);
}

void notify_config_free(struct notify_config *c)
{
	for (size_t i = 0; i < c->ntargets; i++)
		target_free(&c->targets[i]);
	free(c->targets);
	free(c->external_url);
	labels_free(&c->external_labels);
	notify_config_init(c);
}

static int parse_target(struct notify_target *t, int kind, const struct ynode *n, char *err,
                        size_t errlen)
{
	static const char *const keys[] = { "url", "timeout", "bearer_token_file", "headers", NULL };
	const char *what = kind == NOTIFY_ALERTMANAGER ? "alertmanagers" : "webhooks";
	memset(t, 0, sizeof *t);
	t->kind = kind;
	t->timeout_ms = 10000;
	if (n->type == Y_SCALAR) { /* shorthand: "- http://127.0.0.1:9093" */
		if (!http_url_valid(n->scalar)) {
			char r[256];
			yerr(err, errlen, n, "invalid url '%s' in '%s' (http:// or https:// expected)",
			     redact_url_buf(n->scalar, r, sizeof r), what);
			return -1;
		}
		return (t->url = strdup(n->scalar)) ? 0 : -1;
	}
	if (n->type != Y_MAP) {
		yerr(err, errlen, n, "items of '%s' must be mappings with a 'url'", what);
		return -1;
	}
	if (ymap_check_keys(n, keys, err, errlen) < 0)
		return -1;
	const struct ynode *u = ymap_get(n, "url");
	const char *s;
	if (!u) {
		yerr(err, errlen, n, "missing 'url' in '%s' item", what);
		return -1;
	}
	if (ynode_string(u, "url", &s, err, errlen) < 0)
		return -1;
	if (!http_url_valid(s)) {
		char r[256];
		yerr(err, errlen, u, "invalid url '%s' in '%s' (http:// or https:// expected)",
		     redact_url_buf(s, r, sizeof r), what);
		return -1;
	}
	if (!(t->url = strdup(s)))
		return -1;
	if (ymap_duration_min(n, "timeout", 1, &t->timeout_ms, err, errlen) < 0)
		return -1;
	const struct ynode *b = ymap_get(n, "bearer_token_file");
	if (b) {
		if (ynode_string(b, "bearer_token_file", &s, err, errlen) < 0)
			return -1;
		if (!*s) {
			yerr(err, errlen, b, "'bearer_token_file' must not be empty");
			return -1;
		}
		if (!(t->bearer_token_file = strdup(s)))
			return -1;
	}
	const struct ynode *h = ymap_get(n, "headers");
	if (h) {
		if (h->type != Y_MAP) {
			yerr(err, errlen, h, "'headers' must be a mapping of header names to values");
			return -1;
		}
		t->headers = calloc(h->n ? h->n : 1, sizeof *t->headers);
		if (!t->headers)
			return -1;
		for (size_t i = 0; i < h->n; i++) {
			if (ynode_string(h->items[i], h->keys[i], &s, err, errlen) < 0)
				return -1;
			if (!http_header_valid(h->keys[i], s) || !strcasecmp(h->keys[i], "content-type") ||
			    !strcasecmp(h->keys[i], "content-length")) {
				yerr(err, errlen, h->items[i],
				     "invalid header '%s' in '%s' (a name of letters, digits and "
				     "!#$%%&'*+-.^_`|~, a value without line breaks; not Content-Type or "
				     "Content-Length)", h->keys[i], what);
				return -1;
			}
			size_t len = strlen(h->keys[i]) + strlen(s) + 3;
			if (!(t->headers[i] = malloc(len)))
				return -1;
			snprintf(t->headers[i], len, "%s: %s", h->keys[i], s);
			t->nheaders++;
		}
	}
	return 0;
}

static int parse_targets(struct notify_config *c, const struct ynode *sec, const char *key,
                         int kind, char *err, size_t errlen)
{
	const struct ynode *l = ymap_get(sec, key);
	if (!l)
		return 0;
	if (l->type != Y_SEQ) {
		yerr(err, errlen, l, "'%s' must be a list", key);
		return -1;
	}
	if (!l->n)
		return 0;
	struct notify_target *nt = realloc(c->targets, (c->ntargets + l->n) * sizeof *nt);
	if (!nt) {
		yerr(err, errlen, l, "out of memory");
		return -1;
	}
	c->targets = nt;
	for (size_t i = 0; i < l->n; i++) {
		struct notify_target *t = &c->targets[c->ntargets];
		int rc = parse_target(t, kind, l->items[i], err, errlen);
		c->ntargets++; /* counted even on failure so that notify_config_free frees it */
		if (rc < 0) {
			if (!err[0])
				yerr(err, errlen, l->items[i], "out of memory");
			return -1;
		}
	}
	return 0;
}

int notify_config_parse(struct notify_config *c, const struct ynode *sec, char *err, size_t errlen)
{
	static const char *const keys[] = { "alertmanagers", "webhooks", "resend_interval",
		                            "resolved_resend", "poll_interval", "max_backoff",
		                            "send_pending", "external_url", NULL };
	if (errlen)
		err[0] = '\0';
	if (!sec)
		return 0;
	if (sec->type != Y_MAP) {
		yerr(err, errlen, sec, "'notify' must be a mapping");
		return -1;
	}
	if (ymap_check_keys(sec, keys, err, errlen) < 0)
		return -1;
	if (ymap_duration_min(sec, "resend_interval", 1000, &c->resend_interval_ms, err, errlen) < 0 ||
	    ymap_duration_min(sec, "resolved_resend", 0, &c->resolved_resend_ms, err, errlen) < 0 ||
	    ymap_duration_min(sec, "poll_interval", 10, &c->poll_ms, err, errlen) < 0 ||
	    ymap_duration_min(sec, "max_backoff", NOTIFY_BACKOFF_BASE_MS, &c->max_backoff_ms, err, errlen) < 0)
		return -1;
	const struct ynode *n = ymap_get(sec, "send_pending");
	if (n && ynode_bool(n, "send_pending", &c->send_pending, err, errlen) < 0)
		return -1;
	n = ymap_get(sec, "external_url");
	if (n) {
		const char *s;
		if (ynode_string(n, "external_url", &s, err, errlen) < 0)
			return -1;
		if (!http_url_valid(s)) {
			yerr(err, errlen, n, "invalid external_url '%s' (http:// or https:// expected)", s);
			return -1;
		}
		free(c->external_url);
		if (!(c->external_url = strdup(s)))
			return -1;
		size_t l = strlen(c->external_url);
		while (l > 0 && c->external_url[l - 1] == '/')
			c->external_url[--l] = '\0';
	}
	if (parse_targets(c, sec, "alertmanagers", NOTIFY_ALERTMANAGER, err, errlen) < 0 ||
	    parse_targets(c, sec, "webhooks", NOTIFY_WEBHOOK, err, errlen) < 0)
		return -1;
	return 0;
}
