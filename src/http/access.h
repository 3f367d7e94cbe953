/* access.h — who may use the HTTP server (server.c asks, per request):
 * bearer tokens of the write and read scopes, the daemon's own replay token,
 * the Host policy (DNS rebinding) and the Origin policy (cross-origin browser
 * writes), and the TLS certificate and key read at start.
 *
 * Memory: struct http_access owns every string in it; access_free() scrubs
 * the secrets. Read-only after access_init(), so any thread may ask, except
 * the tokens, which access_reload_tokens() replaces under tok_lock (a
 * read-write lock that access_check_token() takes for reading).
 */
#ifndef FORESHOCK_HTTP_ACCESS_H
#define FORESHOCK_HTTP_ACCESS_H

#include <pthread.h>
#include <stddef.h>

struct access_tokens {          /* one scope: read from a file, one token a line */
	char **v;
	size_t n;
};

struct http_access {
	struct access_tokens write, read; /* guarded by tok_lock */
	pthread_rwlock_t tok_lock;
	char *write_file, *read_file; /* the token files, for access_reload_tokens() */
	char **allowed_hosts;       /* owned copies, NULL-terminated (may be NULL) */
	int any_host;               /* allowed_hosts has "*" */
	char hostname[256];         /* gethostname(): accepted as a Host */
	char replay_token[65];      /* random per start, never logged: our --replay sender */
	char *tls_cert, *tls_key;   /* PEM contents, or NULL without TLS */
};

/* What access_init() reads (struct http_config's fields of the same names;
 * any may be NULL). */
struct access_config {
	const char *write_token_file, *read_token_file;
	const char *tls_cert_file, *tls_key_file;
	const char *const *allowed_hosts;
};
/* Read the token files, the TLS files, copy the Host names, make the replay
 * token. Returns 0, or -1 with the reason in err (file named). */
int access_init(struct http_access *a, const struct access_config *cfg, char *err,
                size_t errlen);
void access_free(struct http_access *a);
/* SIGHUP: read the token files named at access_init() again. When both read
 * cleanly, the new tokens replace the old ones at once (requests already
 * checked are not affected) and *nwrite, *nread get their counts; else the
 * old tokens stay and err says why (file and line). A scope without a file
 * stays open. Returns 0 or -1. */
int access_reload_tokens(struct http_access *a, size_t *nwrite, size_t *nread, char *err,
                         size_t errlen);

/* Host header value acceptable? (IP literal, localhost, *.localhost, this
 * machine's name, a configured name; NULL = no Host: yes). */
int access_host_allowed(const struct http_access *a, const char *host_hdr);
/* Origin acceptable for a request that is not GET/HEAD? (absent, or the
 * same host[:port] as Host; "null" never). */
int access_origin_allowed(const char *origin, const char *host_hdr);

enum access_verdict {
	ACCESS_OK,           /* no token needed, or a valid one of the scope */
	ACCESS_EVENT_TIME,   /* the replay token on a write: OK, samples keep event time */
	ACCESS_WRONG_SCOPE,  /* a valid token of the other scope: 403 */
	ACCESS_UNAUTHORIZED, /* none, not Bearer, or unknown: 401 */
};
/* The Authorization header (may be NULL: "Bearer TOKEN", or "Token TOKEN" as
 * InfluxDB clients send it) of a write (write != 0) or read request. On a refusal, msg says why. Tokens compare in constant time. */
enum access_verdict access_check_token(const struct http_access *a, int write,
                                       const char *authorization, char *msg, size_t msglen);

#endif
