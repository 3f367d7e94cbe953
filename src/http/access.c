/* access.c — tokens, replay token, Host and Origin policies, TLS files
 * (see access.h). */
#include "config.h" /* autoconf: _GNU_SOURCE */

#include "http/access.h"
#include "util/buf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

static void tokens_free(struct access_tokens *t)
{
	for (size_t i = 0; i < t->n; i++) {
		explicit_bzero(t->v[i], strlen(t->v[i]));
		free(t->v[i]);
	}
	free(t->v);
	memset(t, 0, sizeof *t);
}

/* Equal without an early exit on the first difference. */
static int ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	unsigned char d = alen != blen;
	size_t n = alen < blen ? alen : blen;
	for (size_t i = 0; i < n; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

static int tokens_has(const struct access_tokens *t, const char *tok, size_t len)
{
	int found = 0;
	for (size_t i = 0; i < t->n; i++)
		found |= ct_equal(t->v[i], strlen(t->v[i]), tok, len);
	return found;
}

/* The host part of a Host header value ("name", "name:port", "[v6]:port"),
 * copied into out. Returns 0 or -1. */
static int host_part(const char *h, char *out, size_t outlen)
{
	const char *e;
	if (*h == '[') {
		h++;
		e = strchr(h, ']');
		if (!e)
			return -1;
	} else {
		e = strchr(h, ':');
		if (!e)
			e = h + strlen(h);
	}
	size_t n = (size_t)(e - h);
	if (n == 0 || n >= outlen)
		return -1;
	memcpy(out, h, n);
	out[n] = 0;
	return 0;
}

/* DNS rebinding: a page on evil.example whose name resolves to us sends
 * Host: evil.example. Accept IP literals, localhost, this machine's name and
 * the configured names. */
int access_host_allowed(const struct http_access *a, const char *host_hdr)
{
	if (a->any_host || !host_hdr) /* HTTP/1.0 without Host: not a browser */
		return 1;
	char h[256];
	if (host_part(host_hdr, h, sizeof h) < 0)
		return 0;
	unsigned char ip[16];
	if (inet_pton(AF_INET, h, ip) == 1 || inet_pton(AF_INET6, h, ip) == 1)
		return 1;
	size_t n = strlen(h);
	if (n && h[n - 1] == '.') /* "localhost." */
		h[--n] = 0;
	if (!strcasecmp(h, "localhost") || (n > 10 && !strcasecmp(h + n - 10, ".localhost")))
		return 1;
	if (a->hostname[0] && !strcasecmp(h, a->hostname))
		return 1;
	if (a->allowed_hosts)
		for (char **p = a->allowed_hosts; *p; p++)
			if (!strcasecmp(h, *p))
				return 1;
	return 0;
}

/* A browser adds Origin to cross-origin (and same-origin) POSTs; senders
 * such as Prometheus, vmagent or Telegraf never do. Refuse a request that
 * changes or costs something when its Origin is not our own address: the
 * Origin's host[:port] must equal the Host header. */
int access_origin_allowed(const char *origin, const char *host_hdr)
{
	if (!origin)
		return 1;
	const char *p = strstr(origin, "://");
	if (!p || !host_hdr)
		return 0; /* "null" (sandboxed frames, file:) or no Host to compare */
	p += 3;
	size_t n = strcspn(p, "/");
	return strlen(host_hdr) == n && !strncasecmp(p, host_hdr, n);
}

/* Read a whole small file (secrets, certificates: at most 1 MiB). Returns
 * a malloc'd NUL-terminated copy, or NULL with a reason in err. */
static char *read_small_file(const char *path, const char *what, char *err, size_t errlen)
{
	char *buf = obuf_read_file(path, 1u << 20, NULL);
	if (!buf && errno == EFBIG)
		errbuf_printf(err, errlen, "%s '%s' is larger than 1 MiB", what, path);
	else if (!buf)
		errbuf_printf(err, errlen, "cannot read %s '%s': %s", what, path, strerror(errno));
	return buf;
}

/* Tokens: one a line; blank lines and lines starting with '#' skipped;
 * surrounding spaces trimmed; at least 16 characters, printable ASCII. */
static int tokens_load(struct access_tokens *t, const char *path, const char *scope, char *err,
                       size_t errlen)
{
	char *text = read_small_file(path, "token file", err, errlen);
	if (!text)
		return -1;
	int rc = 0, line = 0;
	char *save = NULL;
	for (char *l = strtok_r(text, "\n", &save); l && rc == 0; l = strtok_r(NULL, "\n", &save)) {
		line++;
		while (*l == ' ' || *l == '\t')
			l++;
		size_t n = strlen(l);
		while (n && (l[n - 1] == ' ' || l[n - 1] == '\t' || l[n - 1] == '\r'))
			l[--n] = 0;
		if (!n || *l == '#')
			continue;
		int ok = n >= 16;
		for (size_t i = 0; i < n && ok; i++)
			ok = l[i] > ' ' && l[i] < 127;
		if (!ok) {
			snprintf(err, errlen, "invalid %s token in '%s' (line %d): tokens are at least 16 "
			         "printable characters without spaces", scope, path, line);
			rc = -1;
			break;
		}
		char **v = realloc(t->v, (t->n + 1) * sizeof *v);
		char *c = v ? strdup(l) : NULL;
		if (!c) {
			if (v)
				t->v = v;
			snprintf(err, errlen, "out of memory");
			rc = -1;
			break;
		}
		t->v = v;
		t->v[t->n++] = c;
	}
	if (rc == 0 && t->n == 0) {
		snprintf(err, errlen, "token file '%s' holds no %s token", path, scope);
		rc = -1;
	}
	explicit_bzero(text, strlen(text));
	free(text);
	return rc;
}


static int copy_hosts(struct http_access *a, const char *const *hosts, char *err, size_t errlen)
{
	size_t nh = 0;
	if (hosts)
		while (hosts[nh])
			nh++;
	if (!nh)
		return 0;
	a->allowed_hosts = calloc(nh + 1, sizeof *a->allowed_hosts);
	if (!a->allowed_hosts) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < nh; i++) {
		if (!strcmp(hosts[i], "*"))
			a->any_host = 1;
		if (!(a->allowed_hosts[i] = strdup(hosts[i]))) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	return 0;
}

static int load_tls(struct http_access *a, const struct access_config *cfg, char *err,
                    size_t errlen)
{
	if ((cfg->tls_cert_file != NULL) != (cfg->tls_key_file != NULL)) {
		snprintf(err, errlen, "TLS needs both a certificate file and a key file");
		return -1;
	}
	if (!cfg->tls_cert_file)
		return 0;
	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		snprintf(err, errlen, "this libmicrohttpd has no TLS support (GnuTLS)");
		return -1;
	}
	a->tls_cert = read_small_file(cfg->tls_cert_file, "TLS certificate", err, errlen);
	a->tls_key = a->tls_cert ? read_small_file(cfg->tls_key_file, "TLS key", err, errlen) : NULL;
	return a->tls_key ? 0 : -1;
}

int access_init(struct http_access *a, const struct access_config *cfg, char *err,
                size_t errlen)
{
	memset(a, 0, sizeof *a);
	pthread_rwlock_init(&a->tok_lock, NULL);
	unsigned char rnd[32];
	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
		snprintf(err, errlen, "cannot read random bytes for the replay token: %s",
		         strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < sizeof rnd; i++)
		snprintf(a->replay_token + 2 * i, 3, "%02x", rnd[i]);
	explicit_bzero(rnd, sizeof rnd);
	if (gethostname(a->hostname, sizeof a->hostname) < 0)
		a->hostname[0] = 0;
	a->hostname[sizeof a->hostname - 1] = 0;
	if (copy_hosts(a, cfg->allowed_hosts, err, errlen) < 0 ||
	    (cfg->write_token_file &&
	     tokens_load(&a->write, cfg->write_token_file, "write", err, errlen) < 0) ||
	    (cfg->read_token_file &&
	     tokens_load(&a->read, cfg->read_token_file, "read", err, errlen) < 0) ||
	    load_tls(a, cfg, err, errlen) < 0) {
		access_free(a);
		return -1;
	}
	if ((cfg->write_token_file && !(a->write_file = strdup(cfg->write_token_file))) ||
	    (cfg->read_token_file && !(a->read_file = strdup(cfg->read_token_file)))) {
		snprintf(err, errlen, "out of memory");
		access_free(a);
		return -1;
	}
	return 0;
}

int access_reload_tokens(struct http_access *a, size_t *nwrite, size_t *nread, char *err,
                         size_t errlen)
{
	struct access_tokens w = { 0 }, r = { 0 };
	if ((a->write_file && tokens_load(&w, a->write_file, "write", err, errlen) < 0) ||
	    (a->read_file && tokens_load(&r, a->read_file, "read", err, errlen) < 0)) {
		tokens_free(&w);
		tokens_free(&r);
		return -1;
	}
	pthread_rwlock_wrlock(&a->tok_lock);
	struct access_tokens ow = a->write, orr = a->read;
	a->write = w;
	a->read = r;
	*nwrite = w.n;
	*nread = r.n;
	pthread_rwlock_unlock(&a->tok_lock);
	tokens_free(&ow);
	tokens_free(&orr);
	return 0;
}

void access_free(struct http_access *a)
{
	tokens_free(&a->write);
	tokens_free(&a->read);
	if (a->allowed_hosts)
		for (char **h = a->allowed_hosts; *h; h++)
			free(*h);
	free(a->allowed_hosts);
	explicit_bzero(a->replay_token, sizeof a->replay_token);
	if (a->tls_key)
		explicit_bzero(a->tls_key, strlen(a->tls_key));
	free(a->tls_key);
	free(a->tls_cert);
	free(a->write_file);
	free(a->read_file);
	pthread_rwlock_destroy(&a->tok_lock);
	memset(a, 0, sizeof *a);
}

/* access_check_token with tok_lock held for reading. */
static enum access_verdict check_token_locked(const struct http_access *a, int write,
                                              const char *auth, char *msg, size_t msglen)
{
	const struct access_tokens *need = write ? &a->write : &a->read;
	const struct access_tokens *other = write ? &a->read : &a->write;
	const char *tok = NULL;
	/* Bearer, or InfluxDB's Token scheme (Telegraf's outputs.influxdb_v2) */
	if (auth && !strncasecmp(auth, "Bearer ", 7))
		tok = auth + 7;
	else if (auth && !strncasecmp(auth, "Token ", 6))
		tok = auth + 6;
	while (tok && *tok == ' ')
		tok++;
	size_t tlen = tok ? strlen(tok) : 0;
	while (tlen && tok[tlen - 1] == ' ')
		tlen--;
	if (write && tok && ct_equal(tok, tlen, a->replay_token, strlen(a->replay_token)))
		return ACCESS_EVENT_TIME;
	if (!need->n || (tok && tokens_has(need, tok, tlen)))
		return ACCESS_OK;
	if (tok && tokens_has(other, tok, tlen)) {
		snprintf(msg, msglen, "forbidden: the token has the %s scope, this request needs "
		         "the %s scope", write ? "read" : "write", write ? "write" : "read");
		return ACCESS_WRONG_SCOPE;
	}
	snprintf(msg, msglen, "unauthorized: %s (send 'Authorization: Bearer TOKEN' with a "
	         "token of the %s scope)", !auth ? "no Authorization header" :
	         !tok ? "not a bearer token" : "unknown token", write ? "write" : "read");
	return ACCESS_UNAUTHORIZED;
}

enum access_verdict access_check_token(const struct http_access *a, int write,
                                       const char *auth, char *msg, size_t msglen)
{
	pthread_rwlock_t *l = (pthread_rwlock_t *)&a->tok_lock; /* the lock is not the state */
	pthread_rwlock_rdlock(l);
	enum access_verdict v = check_token_locked(a, write, auth, msg, msglen);
	pthread_rwlock_unlock(l);
	return v;
}
