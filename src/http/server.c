/* http/server.c — libmicrohttpd glue: listen address parsing, the access handler
 * (per-connection body buffering with the max_body cap), turning an MHD
 * request into a struct api_request for api_handle(), sending the response,
 * and counting every request in selfstats with its route and latency.
 *
 * Threading: libmicrohttpd runs one listen thread and one thread per
 * connection (MHD_USE_THREAD_PER_CONNECTION). A request's handler, including
 * the CPU work of an ingest body (decode and detectors), runs on its
 * connection's own thread, so concurrent connections use every core and a
 * read never waits for another connection's request (only for the engine
 * locks they share). The connection limit bounds the number of threads.
 *
 * Admission of write requests: at most max_inflight_writes bodies are
 * received and processed at once. A write request past that waits, before
 * its body is read, for up to queue_timeout_ms, with at most
 * max_queued_writes waiting; past either bound it is answered 503 with
 * Retry-After and the connection is closed. Waiting costs its connection's
 * thread, the socket's kernel buffer and MHD's per-connection pool (32 KiB by
 * default), never a body buffer, so memory stays bounded while a burst is
 * absorbed without failed requests.
 */
#include "http/server.h"

#include <errno.h>
#include <stdatomic.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "http/api.h"
#include "http/route.h"
#include "http/router.h"
#include "util/log.h"
#include "util/selfstats.h"

#define DEFAULT_MAX_BODY ((size_t)32 << 20)
#define MAX_ARGS 256
/* Connections (so threads) at once when the caller sets no limit. */
#define DEFAULT_MAX_CONNECTIONS 512
/* Stack of every MHD thread. The request paths (decode, detectors, engine
 * batch, SQLite, snprintf) need a few tens of KiB: gcc -fstack-usage puts
 * the largest frame on a request path at ~7 KiB, the recursive parsers are
 * depth-limited (64), and the whole integration suite (imports, gzip,
 * remote_write, query API) passed with 64 KiB stacks. 512 KiB keeps a wide
 * margin, and 1024 connections reserve (not touch) 512 MiB of address space
 * instead of 8 GiB with the usual 8 MiB default. */
#define THREAD_STACK_SIZE ((size_t)512 << 10)

struct http_server {
	struct MHD_Daemon *d;
	struct api_ctx *api;
	unsigned short port;
	/* admission control of write requests (see the top of this file) */
	pthread_mutex_t adm_mu;
	pthread_cond_t adm_cv;         /* signalled when a slot frees or on stop */
	unsigned max_inflight_writes;
	unsigned max_queued_writes;
	int64_t queue_timeout_ms;
	unsigned inflight_writes;      /* under adm_mu */
	unsigned queued_writes;        /* under adm_mu */
	int stopping;                  /* under adm_mu: waiters give up */
};

/* Per-connection (per-request) state, freed in on_completed. */
struct conn_state {
	enum http_route route;
	uint64_t start_us;     /* monotonic */
	int64_t now_ms;        /* wall clock at arrival */
	char *body;            /* NUL-terminated when not NULL */
	size_t len, cap;
	int too_large;         /* body passed max_body: stop buffering, answer 413 */
	int oom;
	int admitted;          /* counted in inflight_writes: release in on_completed */
	unsigned status;       /* status of the queued response (0 = none) */
};

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum admit { ADMITTED, SHED_QUEUE_FULL, SHED_TIMEOUT, SHED_STOPPING };

/* Take a write slot, waiting for one within the queue's bounds (release an
 * admitted one with release_write). *waited_us is the time spent waiting. */
static enum admit admit_write(struct http_server *srv, uint64_t *waited_us)
{
	*waited_us = 0;
	pthread_mutex_lock(&srv->adm_mu);
	if (srv->inflight_writes >= srv->max_inflight_writes && !srv->stopping &&
	    srv->queued_writes < srv->max_queued_writes && srv->queue_timeout_ms > 0) {
		uint64_t t0 = mono_us();
		struct timespec dl;
		clock_gettime(CLOCK_MONOTONIC, &dl);
		dl.tv_sec += (time_t)(srv->queue_timeout_ms / 1000);
		dl.tv_nsec += (long)(srv->queue_timeout_ms % 1000) * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		srv->queued_writes++;
		while (srv->inflight_writes >= srv->max_inflight_writes && !srv->stopping)
			if (pthread_cond_timedwait(&srv->adm_cv, &srv->adm_mu, &dl) == ETIMEDOUT)
				break;
		srv->queued_writes--;
		*waited_us = mono_us() - t0;
	}
	enum admit a = srv->stopping ? SHED_STOPPING :
	               srv->inflight_writes < srv->max_inflight_writes ? ADMITTED :
	               *waited_us ? SHED_TIMEOUT : SHED_QUEUE_FULL;
	if (a == ADMITTED)
		srv->inflight_writes++;
	pthread_mutex_unlock(&srv->adm_mu);
	return a;
}

static void release_write(struct http_server *srv)
{
	pthread_mutex_lock(&srv->adm_mu);
	srv->inflight_writes--;
	pthread_cond_signal(&srv->adm_cv);
	pthread_mutex_unlock(&srv->adm_mu);
}

static void srv_free(struct http_server *srv)
{
	pthread_cond_destroy(&srv->adm_cv);
	pthread_mutex_destroy(&srv->adm_mu);
	free(srv);
}

static size_t max_body(const struct http_server *srv)
{
	return srv->api->max_body ? srv->api->max_body : DEFAULT_MAX_BODY;
}

static enum MHD_Result queue(struct MHD_Connection *conn, struct conn_state *cs,
                             struct api_response *r)
{
	struct MHD_Response *resp;
	if (r->body && r->len)
		resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
	else {
		free(r->body);
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	}
	r->body = NULL;
	if (!resp)
		return MHD_NO;
	if (r->content_type && r->status != 204)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
	for (size_t i = 0; i < r->nheaders; i++)
		MHD_add_response_header(resp, r->headers[i].name, r->headers[i].value);
	enum MHD_Result ret = MHD_queue_response(conn, r->status, resp);
	MHD_destroy_response(resp);
	if (ret == MHD_YES)
		cs->status = r->status;
	return ret;
}

static enum MHD_Result respond_error(struct MHD_Connection *conn, struct conn_state *cs,
                                     unsigned status, const char *type, const char *msg)
{
	struct api_response r;
	memset(&r, 0, sizeof r);
	api_error(&r, status, type, "%s", msg);
	return queue(conn, cs, &r);
}

struct argv {
	struct api_arg a[MAX_ARGS];
	size_t n;
};

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
	struct argv *v = cls;
	if (v->n < MAX_ARGS && key) {
		v->a[v->n].key = key;
		v->a[v->n].value = value ? value : "";
		v->n++;
	}
	return MHD_YES;
}

/* Decode an application/x-www-form-urlencoded body in place into args. */
static void form_args(char *body, struct argv *v)
{
	char *save = NULL;
	for (char *tok = strtok_r(body, "&", &save); tok && v->n < MAX_ARGS;
	     tok = strtok_r(NULL, "&", &save)) {
		for (char *p = tok; *p; p++)
			if (*p == '+')
				*p = ' ';
		char *eq = strchr(tok, '=');
		char *val = (char *)"";
		if (eq) {
			*eq = 0;
			val = eq + 1;
		}
		MHD_http_unescape(tok);
		MHD_http_unescape(val);
		v->a[v->n].key = tok;
		v->a[v->n].value = val;
		v->n++;
	}
}

static enum MHD_Result dispatch(struct http_server *srv, struct MHD_Connection *conn,
                                struct conn_state *cs, const char *url, const char *method)
{
	struct argv *args = malloc(sizeof *args);
	if (!args)
		return MHD_NO;
	args->n = 0;
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, args);
	const char *ctype =
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (cs->body && cs->route == ROUTE_SERIES && ctype &&
	    !strncasecmp(ctype, "application/x-www-form-urlencoded", 33))
		form_args(cs->body, args);
	struct api_request req = {
		.method = method,
		.path = url,
		.args = args->a,
		.nargs = args->n,
		.content_type = ctype,
		.content_encoding = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                                MHD_HTTP_HEADER_CONTENT_ENCODING),
		.body = cs->body,
		.body_len = cs->len,
		.now_ms = cs->now_ms,
	};
	struct api_response r;
	memset(&r, 0, sizeof r);
	api_handle(srv->api, &req, &r);
	free(args);
	if (!r.status) {
		free(r.body);
		memset(&r, 0, sizeof r);
		api_error(&r, 500, "internal", "no response");
	}
	return queue(conn, cs, &r);
}

static int is_write_route(enum http_route r)
{
	return r == ROUTE_WRITE || r == ROUTE_IMPORT || r == ROUTE_IMPORT_PROM ||
	       r == ROUTE_REMOTE_WRITE;
}

static int has_body(const char *method)
{
	return !strcmp(method, MHD_HTTP_METHOD_POST) || !strcmp(method, MHD_HTTP_METHOD_PUT) ||
	       !strcmp(method, MHD_HTTP_METHOD_PATCH);
}

static void note_too_large(struct http_server *srv)
{
	if (srv->api->stats)
		atomic_fetch_add_explicit(&srv->api->stats->bodies_too_large, 1, memory_order_relaxed);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
	struct http_server *srv = cls;
	struct conn_state *cs = *con_cls;
	char msg[160];

	if (!cs) {
		cs = calloc(1, sizeof *cs);
		if (!cs)
			return MHD_NO;
		cs->start_us = mono_us();
		cs->now_ms = wall_ms();
		cs->route = api_route(url);
		*con_cls = cs;
		/* Answer on a later call (once MHD has read the request), so that
		 * the connection can be kept alive. */
		if (!has_body(method))
			return MHD_YES;
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                             MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl) {
			char *end;
			errno = 0;
			unsigned long long n = strtoull(cl, &end, 10);
			if (errno == 0 && *end == 0 && n > max_body(srv)) {
				note_too_large(srv);
				snprintf(msg, sizeof msg,
				         "request body too large: %llu bytes (limit %zu bytes)", n,
				         max_body(srv));
				return respond_error(conn, cs, 413, "too_large", msg);
			}
		}
		if (is_write_route(cs->route)) {
			/* Past capacity, queue (bounded) and then shed load before
			 * buffering the body: senders (remote_write, Telegraf,
			 * vmagent) retry on 503. */
			uint64_t waited_us;
			enum admit a = admit_write(srv, &waited_us);
			if (srv->api->stats && waited_us) {
				atomic_fetch_add_explicit(&srv->api->stats->writes_queued, 1,
				                          memory_order_relaxed);
				atomic_fetch_add_explicit(&srv->api->stats->write_queue_us, waited_us,
				                          memory_order_relaxed);
			}
			if (a != ADMITTED) {
				if (srv->api->stats)
					atomic_fetch_add_explicit(&srv->api->stats->writes_shed, 1,
					                          memory_order_relaxed);
				struct api_response r;
				memset(&r, 0, sizeof r);
				if (a == SHED_STOPPING)
					api_error(&r, 503, "unavailable", "shutting down; retry later");
				else if (a == SHED_TIMEOUT)
					api_error(&r, 503, "overloaded",
					          "overloaded: no write slot free within %.1f s (%u write "
					          "requests at once); retry later",
					          (double)waited_us / 1e6, srv->max_inflight_writes);
				else if (srv->max_queued_writes && srv->queue_timeout_ms)
					api_error(&r, 503, "overloaded",
					          "overloaded: %u write requests in flight and the write "
					          "queue is full (%u waiting); retry later",
					          srv->max_inflight_writes, srv->max_queued_writes);
				else
					api_error(&r, 503, "overloaded",
					          "overloaded: %u write requests in flight; retry later",
					          srv->max_inflight_writes);
				api_add_header(&r, "Retry-After", "1");
				/* and close: otherwise MHD would still read (and we discard)
				 * the whole body, which under overload costs more CPU than
				 * the client's reconnect */
				api_add_header(&r, "Connection", "close");
				return queue(conn, cs, &r);
			}
			cs->admitted = 1;
		}
		return MHD_YES;
	}
	if (cs->status) { /* answered early (413): discard the rest */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (cs->too_large || cs->oom)
			return MHD_YES;
		if (n > max_body(srv) - cs->len) {
			cs->too_large = 1; /* stop buffering now; answer 413 at the end */
			free(cs->body);
			cs->body = NULL;
			cs->len = cs->cap = 0;
			return MHD_YES;
		}
		if (cs->len + n + 1 > cs->cap) {
			size_t cap = cs->cap ? cs->cap : 16384;
			while (cap < cs->len + n + 1)
				cap *= 2;
			char *nb = realloc(cs->body, cap);
			if (!nb) {
				cs->oom = 1;
				free(cs->body);
				cs->body = NULL;
				cs->len = cs->cap = 0;
				return MHD_YES;
			}
			cs->body = nb;
			cs->cap = cap;
		}
		memcpy(cs->body + cs->len, upload_data, n);
		cs->len += n;
		cs->body[cs->len] = 0;
		return MHD_YES;
	}
	/* the whole body is here */
	if (cs->too_large) {
		note_too_large(srv);
		snprintf(msg, sizeof msg, "request body too large: more than %zu bytes", max_body(srv));
		return respond_error(conn, cs, 413, "too_large", msg);
	}
	if (cs->oom)
		return respond_error(conn, cs, 500, "internal", "out of memory buffering the body");
	return dispatch(srv, conn, cs, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct http_server *srv = cls;
	struct conn_state *cs = *con_cls;
	if (!cs)
		return;
	if (cs->status && srv->api->stats)
		selfstats_observe_request(srv->api->stats, cs->route, cs->status,
		                          mono_us() - cs->start_us);
	if (cs->admitted)
		release_write(srv);
	free(cs->body);
	free(cs);
	*con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = 0;
	for (char *p = msg; *p; p++)
		if (*p == '"')
			*p = '\'';
	log_msg(LOG_WARN, "event=http_error msg=\"%s\"", msg);
}

/* Split "host:port", "[v6]:port" or ":port". host is empty for "all
 * interfaces". Returns 0 or -1. */
static int split_listen(const char *listen, char *host, size_t hostlen, unsigned *port)
{
	const char *ps;
	if (listen[0] == '[') {
		const char *rb = strchr(listen, ']');
		if (!rb || rb[1] != ':' || (size_t)(rb - listen - 1) >= hostlen)
			return -1;
		memcpy(host, listen + 1, (size_t)(rb - listen - 1));
		host[rb - listen - 1] = 0;
		ps = rb + 2;
	} else {
		const char *colon = strrchr(listen, ':');
		if (!colon || (size_t)(colon - listen) >= hostlen)
			return -1;
		memcpy(host, listen, (size_t)(colon - listen));
		host[colon - listen] = 0;
		if (strchr(host, ':')) /* bare IPv6 without brackets */
			return -1;
		ps = colon + 1;
	}
	char *end;
	errno = 0;
	unsigned long p = strtoul(ps, &end, 10);
	if (!*ps || *end || errno || p > 65535)
		return -1;
	*port = (unsigned)p;
	return 0;
}

struct http_server *http_start(const struct http_config *cfg, struct api_ctx *api, char *err,
                               size_t errlen)
{
	const char *listen = cfg->listen && *cfg->listen ? cfg->listen : "127.0.0.1:9790";
	char host[256];
	unsigned port;
	if (split_listen(listen, host, sizeof host, &port)) {
		snprintf(err, errlen,
		         "invalid listen address '%s' (use host:port, [v6addr]:port or :port)", listen);
		return NULL;
	}
	struct http_server *srv = calloc(1, sizeof *srv);
	if (!srv) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	srv->api = api;
	srv->max_inflight_writes = cfg->max_inflight_writes ? cfg->max_inflight_writes : 8;
	srv->max_queued_writes = cfg->max_queued_writes;
	srv->queue_timeout_ms = cfg->queue_timeout_ms;
	pthread_mutex_init(&srv->adm_mu, NULL);
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&srv->adm_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	/* One thread per connection: poll() (MHD_USE_AUTO picks it) in a listen
	 * thread, and each accepted connection gets its own thread. Not
	 * combinable with MHD_OPTION_THREAD_POOL_SIZE (or epoll). */
	unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION |
	                     MHD_USE_ERROR_LOG;
	if (cfg->threads)
		log_msg(LOG_WARN, "event=config_deprecated key=http.threads value=%u "
		                  "reason=\"ignored: every connection has its own thread\"",
		        cfg->threads);
	size_t max_conn = cfg->max_connections ? cfg->max_connections : DEFAULT_MAX_CONNECTIONS;
	struct sockaddr_storage ss;
	int use_addr = 0;
	if (*host) {
		struct addrinfo hints, *res = NULL;
		memset(&hints, 0, sizeof hints);
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
		char portstr[8];
		snprintf(portstr, sizeof portstr, "%u", port);
		int rc = getaddrinfo(host, portstr, &hints, &res);
		if (rc || !res) {
			snprintf(err, errlen, "cannot resolve listen host '%s': %s", host, gai_strerror(rc));
			srv_free(srv);
			return NULL;
		}
		memcpy(&ss, res->ai_addr, res->ai_addrlen);
		if (res->ai_family == AF_INET6)
			flags |= MHD_USE_IPv6;
		freeaddrinfo(res);
		use_addr = 1;
	}
	struct MHD_OptionItem opts[8];
	size_t no = 0;
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_STACK_SIZE,
		                                  (intptr_t)THREAD_STACK_SIZE, NULL };
	if (cfg->connection_timeout_s)
		opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT,
			                                  cfg->connection_timeout_s, NULL };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT, (intptr_t)max_conn, NULL };
	if (use_addr)
		opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, &ss };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };

	/* No MHD_OPTION_LISTENING_ADDRESS_REUSE: on Linux it means SO_REUSEPORT,
	 * which would let a second daemon share the port. MHD's default
	 * SO_REUSEADDR already allows a quick restart. */
	errno = 0;
	for (int attempt = 0; attempt < 2 && !srv->d; attempt++) {
		unsigned int f = flags;
		if (!use_addr && attempt == 0)
			f |= MHD_USE_DUAL_STACK; /* ":port": IPv6 and IPv4 */
		else if (!use_addr && attempt == 1)
			f &= ~(unsigned int)MHD_USE_IPv6; /* no IPv6 here: IPv4 only */
		else if (attempt == 1)
			break;
		srv->d = MHD_start_daemon(f, (uint16_t)port, NULL, NULL, on_request, srv,
		                          MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
		                          MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
		                          MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	}
	if (!srv->d) {
		snprintf(err, errlen, "cannot listen on '%s': %s", listen,
		         errno ? strerror(errno) : "libmicrohttpd failed to start");
		srv_free(srv);
		return NULL;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = info ? info->port : (unsigned short)port;
	log_msg(LOG_INFO, "event=http_started model=thread_per_connection max_connections=%zu "
	                  "idle_timeout_s=%u thread_stack_kib=%zu",
	        max_conn, cfg->connection_timeout_s, THREAD_STACK_SIZE >> 10);
	return srv;
}

unsigned short http_port(const struct http_server *srv)
{
	return srv ? srv->port : 0;
}

void http_stop(struct http_server *srv)
{
	if (!srv)
		return;
	/* Closes the listen socket, shuts down every connection's socket (idle
	 * keep-alive threads wake up and exit), waits for running handlers and
	 * joins all threads. Requests waiting for a write slot give up first
	 * (503), so none of them holds the stop for its queue timeout. */
	pthread_mutex_lock(&srv->adm_mu);
	srv->stopping = 1;
	pthread_cond_broadcast(&srv->adm_cv);
	pthread_mutex_unlock(&srv->adm_mu);
	MHD_stop_daemon(srv->d);
	srv_free(srv);
}
