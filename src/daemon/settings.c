/* daemon/settings.c — defaults and the YAML configuration file (see settings.h). */
#include "daemon/settings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/server.h"
#include "util/log.h"
#include "util/yaml_tree.h"

int config_set_str(char **field, const char *value)
{
	char *v = value ? strdup(value) : NULL;
	if (value && !v)
		return -1;
	free(*field);
	*field = v;
	return 0;
}

void config_defaults(struct fs_config *c)
{
	memset(c, 0, sizeof *c);
	config_set_str(&c->listen, "127.0.0.1:9790");
	config_set_str(&c->data_dir, "./var");
	config_set_str(&c->log_level, "info");
	config_set_str(&c->replay_precision, "ns");
	c->http_threads = 0; /* http.threads is deprecated: 0 = not set */
	c->max_inflight_writes = 8;
	c->max_queued_writes = 1024;
	c->queue_timeout_ms = 2000;
	c->max_body = 16LL << 20;
	c->max_connections = 1024;
	c->max_inflight_reads = 8;
	c->max_queued_reads = 64;
	c->idle_timeout_ms = 60000;
	c->header_timeout_ms = 10000;
	c->body_timeout_ms = 60000;
	c->max_response = 64LL << 20;
	c->checkpoint_interval_ms = 30000;
	c->checkpoint_max_series = 50000;
	c->metrics_series_limit = 10000;
	c->replay_speed = 360;
	engine_config_default(&c->engine);
	/* per-series alerts page on sustained, large anomalies: the detector's
	 * hold (a detection that persists), 2x off the expected value, for 10 min
	 * (docs/detectors.md#alerting-parameters) */
	c->engine.series_threshold = -1;
	c->engine.series_min_factor = 2;
	c->engine.series_for_ms = 10 * 60 * 1000;
	/* ... except an obvious break: a latency or error signal 5x beyond
	 * anything it showed in a day or more, for a minute */
	c->engine.series_break_factor = 5;
	c->engine.series_break_ms = 60 * 1000;
	notify_config_init(&c->notify);
	rwexport_config_init(&c->export);
	config_set_str(&c->alertname, c->engine.alertname);
	c->engine.alertname = c->alertname;
}

void config_free(struct fs_config *c)
{
	free(c->listen);
	free(c->data_dir);
	free(c->log_level);
	free(c->model_file);
	free(c->models_dir);
	free(c->external_url);
	free(c->alertname);
	free(c->replay_file);
	free(c->replay_precision);
	free(c->health_listen);
	free(c->write_token_file);
	free(c->read_token_file);
	free(c->tls_cert_file);
	free(c->tls_key_file);
	if (c->allowed_hosts)
		for (char **h = c->allowed_hosts; *h; h++)
			free(*h);
	free(c->allowed_hosts);
	notify_config_free(&c->notify);
	rwexport_config_free(&c->export);
	labels_free(&c->external_labels);
	memset(c, 0, sizeof *c);
}

int config_set_external_label(struct fs_config *c, const char *name, const char *value, char *err,
                              size_t errlen)
{
	size_t nl = strlen(name), vl = strlen(value);
	if (!label_name_valid(name, nl) || (nl >= 2 && name[0] == '_' && name[1] == '_')) {
		snprintf(err, errlen, "invalid external label name '%.64s' ([a-zA-Z_][a-zA-Z0-9_]*, "
		                      "not starting with __)", name);
		return -1;
	}
	if (vl == 0 || vl > 1024) {
		snprintf(err, errlen, "value of external label '%s' must be 1 to 1024 bytes", name);
		return -1;
	}
	const struct labels *old = &c->external_labels;
	struct label_ref refs[CONFIG_MAX_EXTERNAL_LABELS + 1];
	size_t n = 0;
	for (size_t i = 0; i < old->n && n < CONFIG_MAX_EXTERNAL_LABELS; i++) {
		if (!strcmp(old->names[i], name))
			continue;
		refs[n++] = (struct label_ref){ old->names[i], strlen(old->names[i]), old->values[i],
			                        strlen(old->values[i]) };
	}
	if (n == CONFIG_MAX_EXTERNAL_LABELS) {
		snprintf(err, errlen, "too many external labels (at most %d)",
		         CONFIG_MAX_EXTERNAL_LABELS);
		return -1;
	}
	refs[n++] = (struct label_ref){ name, nl, value, vl };
	struct labels nw;
	if (labels_from_refs(&nw, refs, n, NULL, err, errlen) < 0)
		return -1;
	labels_free(&c->external_labels);
	c->external_labels = nw;
	return 0;
}

/* external_labels: a map of label name to string value. */
static int get_external_labels(struct fs_config *c, const struct ynode *root, char *err,
                               size_t errlen)
{
	const struct ynode *m = ymap_get(root, "external_labels");
	if (!m)
		return 0;
	if (m->type != Y_MAP) {
		yerr(err, errlen, m, "'external_labels' must be a mapping of label names to values");
		return -1;
	}
	for (size_t i = 0; i < m->n; i++) {
		const char *v;
		char why[256];
		if (ynode_string(m->items[i], m->keys[i], &v, err, errlen) < 0)
			return -1;
		if (config_set_external_label(c, m->keys[i], v, why, sizeof why) < 0) {
			yerr(err, errlen, m->items[i], "%s", why);
			return -1;
		}
	}
	return 0;
}

static int get_str(const struct ynode *map, const char *key, char **field, char *err, size_t errlen)
{
	const struct ynode *n = ymap_get(map, key);
	if (!n)
		return 0;
	const char *s;
	if (ynode_string(n, key, &s, err, errlen) < 0)
		return -1;
	return config_set_str(field, s);
}

void config_http(const struct fs_config *c, struct http_config *hc)
{
	memset(hc, 0, sizeof *hc);
	hc->listen = c->listen;
	hc->health_listen = c->health_listen;
	hc->threads = c->http_threads;
	hc->connection_timeout_s = (unsigned)((c->idle_timeout_ms + 999) / 1000);
	hc->header_timeout_ms = c->header_timeout_ms;
	hc->body_timeout_ms = c->body_timeout_ms;
	hc->max_connections = c->max_connections;
	hc->max_connections_per_client = c->max_connections_per_client;
	hc->max_inflight_writes = c->max_inflight_writes;
	hc->max_queued_writes = c->max_queued_writes;
	hc->max_inflight_reads = c->max_inflight_reads;
	hc->max_queued_reads = c->max_queued_reads;
	hc->queue_timeout_ms = c->queue_timeout_ms;
	hc->max_response = (size_t)c->max_response;
	hc->write_token_file = c->write_token_file;
	hc->read_token_file = c->read_token_file;
	hc->tls_cert_file = c->tls_cert_file;
	hc->tls_key_file = c->tls_key_file;
	hc->allowed_hosts = (const char *const *)c->allowed_hosts;
}

/* A timeout key between lo and hi milliseconds (range: "[lo, hi]" as written). */
static int get_timeout(const struct ynode *map, const char *key, int64_t *out, int64_t lo,
                       int64_t hi, const char *range, char *err, size_t errlen)
{
	const struct ynode *n = ymap_get(map, key);
	if (!n)
		return 0;
	int64_t v;
	if (ynode_duration_ms(n, key, &v, err, errlen) < 0)
		return -1;
	if (v < lo || v > hi) {
		yerr(err, errlen, n, "duration '%s' for '%s' out of range %s", n->scalar, key, range);
		return -1;
	}
	*out = v;
	return 0;
}

/* A list of host names (strings). */
static int get_hosts(const struct ynode *map, const char *key, char ***out, char *err,
                     size_t errlen)
{
	const struct ynode *n = ymap_get(map, key);
	if (!n)
		return 0;
	if (n->type != Y_SEQ) {
		yerr(err, errlen, n, "'%s' must be a list of host names", key);
		return -1;
	}
	char **v = calloc(n->n + 1, sizeof *v);
	if (!v) {
		yerr(err, errlen, n, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n->n; i++) {
		const char *s;
		if (ynode_string(n->items[i], key, &s, err, errlen) < 0 || !(v[i] = strdup(s))) {
			for (size_t k = 0; k < i; k++)
				free(v[k]);
			free(v);
			return -1;
		}
	}
	if (*out)
		for (char **h = *out; *h; h++)
			free(*h);
	free(*out);
	*out = v;
	return 0;
}

static int get_size(const struct ynode *map, const char *key, size_t *out, int64_t min, int64_t max,
                    char *err, size_t errlen)
{
	const struct ynode *n = ymap_get(map, key);
	if (!n)
		return 0;
	int64_t v;
	if (ynode_int(n, key, &v, err, errlen) < 0)
		return -1;
	if (v < min || v > max) {
		yerr(err, errlen, n, "value '%s' for '%s' out of range [%lld, %lld]", n->scalar, key,
		     (long long)min, (long long)max);
		return -1;
	}
	*out = (size_t)v;
	return 0;
}

static int get_duration(const struct ynode *map, const char *key, int64_t *out, char *err,
                        size_t errlen)
{
	const struct ynode *n = ymap_get(map, key);
	if (!n)
		return 0;
	return ynode_duration_ms(n, key, out, err, errlen);
}

static int section(const struct ynode *root, const char *name, const char *const *keys,
                   const struct ynode **out, char *err, size_t errlen)
{
	*out = ymap_get(root, name);
	if (!*out)
		return 0;
	if ((*out)->type != Y_MAP) {
		yerr(err, errlen, *out, "'%s' must be a mapping", name);
		return -1;
	}
	return ymap_check_keys(*out, keys, err, errlen);
}

/* forecast: series: requested | all | none (enum engine_forecast). */
static int get_forecast(struct fs_config *c, const struct ynode *root, char *err, size_t errlen)
{
	static const char *const keys[] = { "series", NULL };
	static const char *const names[] = { "none", "requested", "all" };
	_Static_assert(ENGINE_FORECAST_OFF == 0 && ENGINE_FORECAST_REQUESTED == 1 &&
	               ENGINE_FORECAST_ALL == 2, "names[] follows enum engine_forecast");
	const struct ynode *sec, *n;
	if (section(root, "forecast", keys, &sec, err, errlen) < 0)
		return -1;
	if (!sec || !(n = ymap_get(sec, "series")))
		return 0;
	const char *v;
	if (ynode_string(n, "series", &v, err, errlen) < 0)
		return -1;
	for (int k = 0; k < 3; k++) {
		if (!strcmp(v, names[k])) {
			c->engine.forecast = k;
			return 0;
		}
	}
	yerr(err, errlen, n, "invalid forecast series '%s' (requested, all, none)", v);
	return -1;
}

int config_load_file(struct fs_config *c, const char *path, char *err, size_t errlen)
{
	struct ynode *root = ytree_load_file(path, err, errlen);
	if (!root)
		return -1;
	int rc = -1;
	if (root->type != Y_MAP) {
		yerr(err, errlen, root, "the configuration must be a mapping");
		goto out;
	}
	static const char *const top[] = { "listen", "data_dir", "log_level", "model", "models_dir",
		                            "external_url", "http", "limits", "history", "forecast",
		                            "alerts", "checkpoint", "replay", "derived", "notify",
		                            "metrics", "external_labels", "auth", "tls", "export", NULL };
	if (ymap_check_keys(root, top, err, errlen) < 0)
		goto out;
	if (get_str(root, "listen", &c->listen, err, errlen) < 0 ||
	    get_str(root, "data_dir", &c->data_dir, err, errlen) < 0 ||
	    get_str(root, "log_level", &c->log_level, err, errlen) < 0 ||
	    get_str(root, "model", &c->model_file, err, errlen) < 0 ||
	    get_str(root, "models_dir", &c->models_dir, err, errlen) < 0 ||
	    get_str(root, "external_url", &c->external_url, err, errlen) < 0 ||
	    get_external_labels(c, root, err, errlen) < 0)
		goto out;
	enum log_level lv;
	if (log_level_parse(c->log_level, &lv) < 0) {
		yerr(err, errlen, ymap_get(root, "log_level"),
		     "invalid log_level '%s' (debug, info, warn, error)", c->log_level);
		goto out;
	}

	const struct ynode *s;
	static const char *const http_keys[] = { "threads", "max_body", "max_inflight_writes",
		                                  "max_queued_writes", "queue_timeout",
		                                  "health_listen", "max_connections",
		                                  "max_connections_per_client",
		                                  "max_inflight_reads", "max_queued_reads",
		                                  "idle_timeout", "header_timeout", "body_timeout",
		                                  "max_response", "allowed_hosts", NULL };
	if (section(root, "http", http_keys, &s, err, errlen) < 0)
		goto out;
	if (s) {
		/* deprecated and ignored (one thread per connection); still accepted so
		 * old files load, and http_start() logs a warning when it is set */
		size_t threads = c->http_threads;
		if (get_size(s, "threads", &threads, 1, 64, err, errlen) < 0)
			goto out;
		c->http_threads = (unsigned)threads;
		size_t inflight = c->max_inflight_writes;
		if (get_size(s, "max_inflight_writes", &inflight, 1, 4096, err, errlen) < 0)
			goto out;
		c->max_inflight_writes = (unsigned)inflight;
		size_t queued = c->max_queued_writes;
		if (get_size(s, "max_queued_writes", &queued, 0, 65536, err, errlen) < 0)
			goto out;
		c->max_queued_writes = (unsigned)queued;
		const struct ynode *qt = ymap_get(s, "queue_timeout");
		if (qt && get_duration(s, "queue_timeout", &c->queue_timeout_ms, err, errlen) < 0)
			goto out;
		if (qt && (c->queue_timeout_ms < 0 || c->queue_timeout_ms > 300000)) {
			yerr(err, errlen, qt, "duration '%s' for 'queue_timeout' out of range [0s, 5m]",
			     qt->scalar);
			goto out;
		}
		size_t v;
		if (get_str(s, "health_listen", &c->health_listen, err, errlen) < 0 ||
		    get_hosts(s, "allowed_hosts", &c->allowed_hosts, err, errlen) < 0 ||
		    get_timeout(s, "idle_timeout", &c->idle_timeout_ms, 1000, 3600000, "[1s, 1h]",
		                err, errlen) < 0 ||
		    get_timeout(s, "header_timeout", &c->header_timeout_ms, 100, 600000,
		                "[100ms, 10m]", err, errlen) < 0 ||
		    get_timeout(s, "body_timeout", &c->body_timeout_ms, 100, 3600000, "[100ms, 1h]",
		                err, errlen) < 0)
			goto out;
		v = c->max_connections;
		if (get_size(s, "max_connections", &v, 1, 65536, err, errlen) < 0)
			goto out;
		c->max_connections = (unsigned)v;
		v = c->max_connections_per_client;
		if (get_size(s, "max_connections_per_client", &v, 1, 65536, err, errlen) < 0)
			goto out;
		c->max_connections_per_client = (unsigned)v;
		v = c->max_inflight_reads;
		if (get_size(s, "max_inflight_reads", &v, 1, 4096, err, errlen) < 0)
			goto out;
		c->max_inflight_reads = (unsigned)v;
		v = c->max_queued_reads;
		if (get_size(s, "max_queued_reads", &v, 0, 65536, err, errlen) < 0)
			goto out;
		c->max_queued_reads = (unsigned)v;
		const struct ynode *mr = ymap_get(s, "max_response");
		if (mr && ynode_bytes(mr, "max_response", &c->max_response, err, errlen) < 0)
			goto out;
		if (mr && (c->max_response < 4096 || c->max_response > (4LL << 30))) {
			yerr(err, errlen, mr, "size '%s' for 'max_response' out of range [4KiB, 4GiB]",
			     mr->scalar);
			goto out;
		}
		const struct ynode *mb = ymap_get(s, "max_body");
		if (mb && ynode_bytes(mb, "max_body", &c->max_body, err, errlen) < 0)
			goto out;
		if (mb && (c->max_body < 1024 || c->max_body > (1LL << 30))) {
			yerr(err, errlen, mb, "size '%s' for 'max_body' out of range [1KiB, 1GiB]", mb->scalar);
			goto out;
		}
	}
	static const char *const auth_keys[] = { "write_token_file", "read_token_file", NULL };
	if (section(root, "auth", auth_keys, &s, err, errlen) < 0)
		goto out;
	if (s && (get_str(s, "write_token_file", &c->write_token_file, err, errlen) < 0 ||
	          get_str(s, "read_token_file", &c->read_token_file, err, errlen) < 0))
		goto out;
	static const char *const tls_keys[] = { "cert_file", "key_file", NULL };
	if (section(root, "tls", tls_keys, &s, err, errlen) < 0)
		goto out;
	if (s && (get_str(s, "cert_file", &c->tls_cert_file, err, errlen) < 0 ||
	          get_str(s, "key_file", &c->tls_key_file, err, errlen) < 0))
		goto out;
	if (s && (!c->tls_cert_file != !c->tls_key_file)) {
		yerr(err, errlen, s, "'tls' needs both 'cert_file' and 'key_file'");
		goto out;
	}
	static const char *const lim_keys[] = { "max_series", "max_memory", "max_labels",
		                                 "max_label_name_length", "max_label_value_length",
		                                 "max_label_bytes", "max_sample_age",
		                                 "max_sample_future", NULL };
	if (section(root, "limits", lim_keys, &s, err, errlen) < 0)
		goto out;
	if (s) {
		if (get_size(s, "max_series", &c->engine.max_series, 1, 100000000, err, errlen) < 0 ||
		    get_size(s, "max_labels", &c->engine.label_limits.max_labels, 1, 1000, err,
		             errlen) < 0 ||
		    get_size(s, "max_label_name_length", &c->engine.label_limits.max_name_len, 1, 65536,
		             err, errlen) < 0 ||
		    get_size(s, "max_label_value_length", &c->engine.label_limits.max_value_len, 1,
		             1 << 20, err, errlen) < 0 ||
		    get_size(s, "max_label_bytes", &c->engine.label_limits.max_bytes, 0, 1 << 24, err,
		             errlen) < 0 ||
		    get_timeout(s, "max_sample_age", &c->engine.max_sample_age_ms, 0,
		                100LL * 365 * 86400 * 1000, "0s and 100 years (0: no limit)", err,
		                errlen) < 0 ||
		    get_timeout(s, "max_sample_future", &c->engine.max_sample_future_ms, 0,
		                365LL * 86400 * 1000, "0s and 1 year (0: no limit)", err, errlen) < 0)
			goto out;
		const struct ynode *mm = ymap_get(s, "max_memory");
		int64_t mmv;
		if (mm) {
			if (ynode_bytes(mm, "max_memory", &mmv, err, errlen) < 0)
				goto out;
			c->engine.max_memory = (size_t)mmv; /* 0: no limit */
		}
	}
	static const char *const hist_keys[] = { "points", NULL };
	if (section(root, "history", hist_keys, &s, err, errlen) < 0)
		goto out;
	if (s && get_size(s, "points", &c->engine.history_points, 0, 100000, err, errlen) < 0)
		goto out;
	if (get_forecast(c, root, err, errlen) < 0)
		goto out;
	static const char *const alert_keys[] = { "retention", "alertname", "threshold", "for",
		                                   "min_factor", "break_factor", "break_for", NULL };
	if (section(root, "alerts", alert_keys, &s, err, errlen) < 0)
		goto out;
	if (s) {
		if (get_duration(s, "retention", &c->engine.alert_retention_ms, err, errlen) < 0 ||
		    get_str(s, "alertname", &c->alertname, err, errlen) < 0 ||
		    get_timeout(s, "for", &c->engine.series_for_ms, 0, 86400000, "0s and 1d", err,
		                errlen) < 0 ||
		    ymap_double_range(s, "threshold", 0.01, 1, &c->engine.series_threshold, err,
		                      errlen) < 0 ||
		    ymap_double_range(s, "min_factor", 1, 1000, &c->engine.series_min_factor, err,
		                      errlen) < 0 ||
		    ymap_double_range(s, "break_factor", 0, 1e6, &c->engine.series_break_factor, err,
		                      errlen) < 0 ||
		    get_timeout(s, "break_for", &c->engine.series_break_ms, 0, 86400000, "0s and 1d",
		                err, errlen) < 0)
			goto out;
		c->engine.alertname = c->alertname;
	}
	static const char *const der_keys[] = { "quantiles", NULL };
	if (section(root, "derived", der_keys, &s, err, errlen) < 0)
		goto out;
	const struct ynode *qs = s ? ymap_get(s, "quantiles") : NULL;
	if (qs) {
		if (qs->type != Y_SEQ || qs->n == 0 || qs->n > ENGINE_MAX_QUANTILES) {
			yerr(err, errlen, qs, "'quantiles' must be a list of 1 to %d numbers in (0, 1)",
			     ENGINE_MAX_QUANTILES);
			goto out;
		}
		for (size_t i = 0; i < qs->n; i++) {
			double q;
			if (ynode_double(qs->items[i], "quantiles", &q, err, errlen) < 0)
				goto out;
			if (!(q > 0 && q < 1)) {
				yerr(err, errlen, qs->items[i], "value '%s' for 'quantiles' out of range (0, 1)",
				     qs->items[i]->scalar);
				goto out;
			}
			c->engine.quantiles[i] = q;
		}
		c->engine.nquantiles = qs->n;
	}
	static const char *const mt_keys[] = { "series_limit", NULL };
	if (section(root, "metrics", mt_keys, &s, err, errlen) < 0)
		goto out;
	if (s && get_size(s, "series_limit", &c->metrics_series_limit, 0, 10000000, err, errlen) < 0)
		goto out;
	static const char *const ck_keys[] = { "interval", "max_series", NULL };
	if (section(root, "checkpoint", ck_keys, &s, err, errlen) < 0)
		goto out;
	if (s && (get_duration(s, "interval", &c->checkpoint_interval_ms, err, errlen) < 0 ||
	          get_size(s, "max_series", &c->checkpoint_max_series, 1, 100000000, err,
	                   errlen) < 0))
		goto out;
	static const char *const rp_keys[] = { "file", "speed", "precision", "now", NULL };
	if (section(root, "replay", rp_keys, &s, err, errlen) < 0)
		goto out;
	if (s) {
		if (get_str(s, "file", &c->replay_file, err, errlen) < 0 ||
		    get_str(s, "precision", &c->replay_precision, err, errlen) < 0)
			goto out;
		const struct ynode *sp = ymap_get(s, "speed");
		if (sp && ynode_double(sp, "speed", &c->replay_speed, err, errlen) < 0)
			goto out;
		if (c->replay_speed < 0) {
			yerr(err, errlen, sp, "'speed' must be >= 0");
			goto out;
		}
		const struct ynode *nw = ymap_get(s, "now");
		if (nw && ynode_bool(nw, "now", &c->replay_now, err, errlen) < 0)
			goto out;
	}
	if (ymap_get(root, "export") &&
	    rwexport_config_parse(&c->export, ymap_get(root, "export"), err, errlen) < 0)
		goto out;
	if (notify_config_parse(&c->notify, ymap_get(root, "notify"), err, errlen) < 0)
		goto out;
	rc = 0;
out:
	ytree_free(root);
	return rc;
}
