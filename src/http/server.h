/* server.h — the HTTP server: libmicrohttpd glue, body caps.
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
	unsigned threads;               /* deprecated, ignored (one thread per connection);
	                                 * nonzero logs a warning at start */
	unsigned connection_timeout_s;  /* idle connections closed after this; 0 = none */
	size_t max_connections;         /* connections, so threads, at once; 0 = 512 */
	unsigned max_inflight_writes;   /* write requests being received or processed at once;
	                                 * beyond, they queue (0 = 8) */
	unsigned max_queued_writes;     /* write requests waiting for a slot at once; beyond,
	                                 * 503 with Retry-After (0 = none wait) */
	int64_t queue_timeout_ms;       /* longest wait for a slot, then 503 (0 = none wait) */
};

struct http_server;

/* Start serving. Returns NULL with a reason in err (bad listen address,
 * cannot bind). */
struct http_server *http_start(const struct http_config *cfg, struct api_ctx *api, char *err,
                               size_t errlen);
/* The port actually bound (useful with ":0"). */
unsigned short http_port(const struct http_server *srv);
/* Stop accepting, finish running requests, free the server. NULL is a no-op. */
void http_stop(struct http_server *srv);

#endif
