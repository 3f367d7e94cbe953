/* server.h — the HTTP server: libmicrohttpd glue, body caps, and the
 * request-side protections: bearer tokens (read and write scopes), TLS, the
 * Host/Origin policy, per-client connection limits, header/body deadlines,
 * read and write admission, response size cap, a separate health listener.
 *
 * http_start() runs MHD with one thread per connection (bounded by
 * max_connections); each request goes to api_handle() (router.h), which
 * never sees MHD and runs on its connection's thread. POST bodies are
 * buffered per connection up to api->max_body (413 beyond, decided from
 * Content-Length when the client sends one, else as soon as the buffer would
 * overflow).
 * Every response is counted with selfstats_observe_request().
 *
 * Memory: the server borrows `api` and everything it points to; they must
 * outlive http_stop(). cfg is copied.
 */
#ifndef FORESHOCK_HTTP_SERVER_H
#define FORESHOCK_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

struct api_ctx;

struct http_config {
	const char *listen;             /* "127.0.0.1:9790", "[::1]:9790", ":9790" (all
	                                 * interfaces); port 0 picks a free port */
	const char *health_listen;      /* NULL, or a second address serving only /healthz
	                                 * and /readyz (plain HTTP, its own small poll thread) */
	unsigned threads;               /* deprecated, ignored (one thread per connection);
	                                 * nonzero logs a warning at start */
	unsigned connection_timeout_s;  /* keep-alive: the next request's headers must be
	                                 * complete within this; 0 = none */
	int64_t header_timeout_ms;      /* a new connection's first request headers must be
	                                 * complete within this (slowloris); 0 = 10 s */
	int64_t body_timeout_ms;        /* a request body must be complete within this once its
	                                 * headers are in; 0 = 60 s */
	size_t max_connections;         /* connections, so threads, at once; 0 = 512 */
	size_t max_connections_per_client; /* per client address; 0 = max_connections / 2 */
	unsigned max_inflight_writes;   /* write requests being received or processed at once;
	                                 * beyond, they queue (0 = 8) */
	unsigned max_queued_writes;     /* write requests waiting for a slot at once; beyond,
	                                 * 503 with Retry-After (0 = none wait) */
	unsigned max_inflight_reads;    /* API reads (queries, series, /metrics) at once; 0 = 8 */
	unsigned max_queued_reads;      /* reads waiting for a slot; beyond, 503 (0 = none wait) */
	int64_t queue_timeout_ms;       /* longest wait for a slot, then 503 (0 = none wait) */
	size_t max_response;            /* bytes of one response body; beyond, 422 (0 = 64 MiB) */
	const char *write_token_file;   /* bearer tokens of the write scope (one a line); NULL =
	                                 * writes need no token */
	const char *read_token_file;    /* the same for reads */
	const char *tls_cert_file;      /* PEM; with tls_key_file, serve HTTPS (GnuTLS) */
	const char *tls_key_file;
	const char *const *allowed_hosts; /* extra Host names accepted (DNS rebinding check);
	                                 * "*" accepts any; NULL-terminated, may be NULL */
};
struct http_server;

/* Start serving. Returns NULL with a reason in err (bad listen address,
 * cannot bind). */
struct http_server *http_start(const struct http_config *cfg, struct api_ctx *api, char *err,
                               size_t errlen);
/* The port actually bound (useful with ":0"); the health listener's, 0 if none. */
unsigned short http_port(const struct http_server *srv);
unsigned short http_health_port(const struct http_server *srv);
/* The token of the daemon's own --replay sender: random per start, never
 * logged, valid only on the write endpoints, where it also marks the samples
 * as event time (no window around the clock: old demo data replays). */
const char *http_replay_token(const struct http_server *srv);
/* 1 when serving HTTPS. */
int http_tls(const struct http_server *srv);
/* SIGHUP: read the bearer token files again (access.h
 * access_reload_tokens): 0 with the new counts, or -1 with err and the old
 * tokens kept. Any thread; requests keep being served. */
int http_reload_tokens(struct http_server *srv, size_t *nwrite, size_t *nread, char *err,
                       size_t errlen);
/* Stop accepting, finish running requests, free the server. NULL is a no-op. */
void http_stop(struct http_server *srv);

#endif
