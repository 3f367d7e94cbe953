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
 * absorbed without failed requests. API reads (queries, series, anomalies,
 * /metrics) have their own pool (max_inflight_reads, max_queued_reads), so
 * many heavy reads at once cannot take all memory and CPU; /healthz,
 * /readyz and the page's static files are never queued.
 *
 * Request-side protections, in the order on_request() applies them once a
 * request's headers are in: the Host policy (DNS rebinding), the Origin
 * policy (cross-origin browser writes), bearer tokens (401 without a valid
 * one, 403 with one of the other scope), the body cap, admission. Health
 * routes skip the first three.
 *
 * Connection bounds: MHD's connection limit and per-client-address limit
 * (beyond either, MHD accepts the connection and closes it at once), and
 * deadlines that MHD's idle timeout cannot give (a slowloris trickling a
 * byte at a time keeps resetting it): a watchdog thread shuts down the socket
 * of a connection whose request headers are not complete header_timeout
 * after accept (connection_timeout after the previous response on a
 * keep-alive connection), or whose body is not complete body_timeout after
 * its headers. The record of each connection lives from MHD's
 * NOTIFY_CONNECTION STARTED to CLOSED; MHD closes the socket only after
 * CLOSED, which takes the same mutex the watchdog holds while it calls
 * shutdown(), so the watchdog never touches a reused descriptor.
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
#include <unistd.h>

#include "http/access.h"
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

/* An admission pool: at most max_inflight at once, max_queued waiting. */
struct pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;             /* signalled when a slot frees or on stop */
	unsigned max_inflight;
	unsigned max_queued;
	unsigned inflight;             /* under mu */
	unsigned queued;               /* under mu */
	int stopping;                  /* under mu: waiters give up */
};

enum conn_phase { PH_HEADERS, PH_BODY, PH_BUSY };

/* One open connection, tracked for the header/body deadlines. */
struct conn_track {
	struct conn_track *prev, *next; /* under track_mu */
	int fd;
	enum conn_phase phase;          /* under track_mu */
	uint64_t deadline_us;           /* monotonic; 0 = none */
	int closed_by_us;
};

struct http_server {
	struct MHD_Daemon *d;
	struct MHD_Daemon *hd;          /* health listener, or NULL */
	struct api_ctx *api;
	unsigned short port, health_port;
	struct pool writes, reads;      /* admission control (see the top of this file) */
	int64_t queue_timeout_ms;
	size_t max_response;
	struct http_access acc;         /* tokens, Host names, TLS files (access.h) */
	/* connection deadlines */
	uint64_t header_timeout_us, body_timeout_us, idle_timeout_us;
	pthread_mutex_t track_mu;
	pthread_cond_t track_cv;
	struct conn_track *conns;       /* under track_mu */
	int track_stop;                 /* under track_mu */
	pthread_t watchdog;
	int watchdog_started;
};

/* Per-connection (per-request) state, freed in on_completed. */
struct conn_state {
	enum http_route route;
	uint64_t start_us;     /* monotonic */
	int64_t now_ms;        /* wall clock at arrival */
	char *body;            /* NUL-terminated when not NULL */
	size_t len, cap;
	size_t expect;         /* Content-Length (at most max_body), 0 = not sent */
	int too_large;         /* body passed max_body: stop buffering, answer 413 */
	int oom;
	int admitted;          /* holds a write slot: release in on_completed */
	int admitted_read;     /* holds a read slot: release in on_completed */
	int event_time;        /* sent with the replay token: no timestamp window */
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

static void pool_init(struct pool *p, unsigned max_inflight, unsigned max_queued)
{
	memset(p, 0, sizeof *p);
	p->max_inflight = max_inflight;
	p->max_queued = max_queued;
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
}

static void pool_destroy(struct pool *p)
{
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
}

static void pool_stop(struct pool *p)
{
	pthread_mutex_lock(&p->mu);
	p->stopping = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* Take a slot of p, waiting for one within the queue's bounds (release an
 * admitted one with pool_release). *waited_us is the time spent waiting. */
static enum admit pool_admit(struct pool *p, int64_t timeout_ms, uint64_t *waited_us)
{
	*waited_us = 0;
	pthread_mutex_lock(&p->mu);
	if (p->inflight >= p->max_inflight && !p->stopping && p->queued < p->max_queued &&
	    timeout_ms > 0) {
		uint64_t t0 = mono_us();
		struct timespec dl;
		clock_gettime(CLOCK_MONOTONIC, &dl);
		dl.tv_sec += (time_t)(timeout_ms / 1000);
		dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		p->queued++;
		while (p->inflight >= p->max_inflight && !p->stopping)
			if (pthread_cond_timedwait(&p->cv, &p->mu, &dl) == ETIMEDOUT)
				break;
		p->queued--;
		*waited_us = mono_us() - t0;
	}
	enum admit a = p->stopping ? SHED_STOPPING :
	               p->inflight < p->max_inflight ? ADMITTED :
	               *waited_us ? SHED_TIMEOUT : SHED_QUEUE_FULL;
	if (a == ADMITTED)
		p->inflight++;
	pthread_mutex_unlock(&p->mu);
	return a;
}

static void pool_release(struct pool *p)
{
	pthread_mutex_lock(&p->mu);
	p->inflight--;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

static void srv_free(struct http_server *srv)
{
	pool_destroy(&srv->writes);
	pool_destroy(&srv->reads);
	pthread_cond_destroy(&srv->track_cv);
	pthread_mutex_destroy(&srv->track_mu);
	access_free(&srv->acc);
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
		.event_time = cs->event_time,
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
	if (r.len > srv->max_response) {
		size_t n = r.len;
		if (srv->api->stats)
			atomic_fetch_add_explicit(&srv->api->stats->responses_too_large, 1,
			                          memory_order_relaxed);
		free(r.body);
		memset(&r, 0, sizeof r);
		api_error(&r, 422, "execution",
		          "response too large: %zu bytes (limit %zu bytes, http.max_response); "
		          "select fewer series, a shorter range or fewer points", n, srv->max_response);
	}
	return queue(conn, cs, &r);
}

static int is_write_route(enum http_route r)
{
	return r == ROUTE_WRITE || r == ROUTE_IMPORT || r == ROUTE_IMPORT_PROM ||
	       r == ROUTE_REMOTE_WRITE;
}

/* Reads that can cost real memory and CPU: queued in the read pool. The
 * health routes and the page (static) never are. */
static int is_heavy_read_route(enum http_route r)
{
	return r == ROUTE_ALERTS || r == ROUTE_SERIES || r == ROUTE_ANOMALIES ||
	       r == ROUTE_METRICS || r == ROUTE_QUERY || r == ROUTE_FORECAST;
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

/* Count one event in the selfstats field f (when there are selfstats). */
#define COUNT(srv, f)                                                                   \
	do {                                                                            \
		if ((srv)->api->stats)                                                  \
			atomic_fetch_add_explicit(&(srv)->api->stats->f, 1, memory_order_relaxed); \
	} while (0)

/* --- policies --- */

/* --- connection deadlines --- */

static void track_init(struct http_server *srv)
{
	pthread_mutex_init(&srv->track_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&srv->track_cv, &ca);
	pthread_condattr_destroy(&ca);
}

static struct conn_track *track_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

static void track_set(struct http_server *srv, struct MHD_Connection *conn, enum conn_phase ph,
                      uint64_t timeout_us)
{
	struct conn_track *t = track_of(conn);
	if (!t)
		return;
	pthread_mutex_lock(&srv->track_mu);
	t->phase = ph;
	t->deadline_us = timeout_us ? mono_us() + timeout_us : 0;
	pthread_mutex_unlock(&srv->track_mu);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
	struct http_server *srv = cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		struct conn_track *t = calloc(1, sizeof *t);
		if (!t)
			return;
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		t->fd = ci ? ci->connect_fd : -1;
		t->phase = PH_HEADERS;
		t->deadline_us = mono_us() + srv->header_timeout_us;
		pthread_mutex_lock(&srv->track_mu);
		t->next = srv->conns;
		if (srv->conns)
			srv->conns->prev = t;
		srv->conns = t;
		pthread_mutex_unlock(&srv->track_mu);
		*socket_context = t;
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		struct conn_track *t = *socket_context;
		if (!t)
			return;
		pthread_mutex_lock(&srv->track_mu);
		if (t->prev)
			t->prev->next = t->next;
		else
			srv->conns = t->next;
		if (t->next)
			t->next->prev = t->prev;
		pthread_mutex_unlock(&srv->track_mu);
		free(t);
		*socket_context = NULL;
	}
}

/* The watchdog: every 100 ms, shut down the sockets of connections past
 * their deadline (MHD's thread then sees the end of the stream and closes
 * the connection). A plain-HTTP client still waiting for its headers gets a
 * 408 first. */
static void *watchdog_main(void *arg)
{
	struct http_server *srv = arg;
	static const char body408[] =
		"{\"status\":\"error\",\"errorType\":\"timeout\",\"error\":\"request not received "
		"in time\"}\n";
	char r408[256];
	int n408 = snprintf(r408, sizeof r408,
	                    "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: "
	                    "application/json\r\nContent-Length: %zu\r\n\r\n%s",
	                    sizeof body408 - 1, body408);
	pthread_mutex_lock(&srv->track_mu);
	while (!srv->track_stop) {
		struct timespec dl;
		clock_gettime(CLOCK_MONOTONIC, &dl);
		dl.tv_nsec += 100 * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&srv->track_cv, &srv->track_mu, &dl);
		uint64_t now = mono_us();
		for (struct conn_track *t = srv->conns; t; t = t->next) {
			if (t->closed_by_us || !t->deadline_us || now < t->deadline_us || t->fd < 0)
				continue;
			t->closed_by_us = 1;
			if (t->phase == PH_HEADERS && !srv->acc.tls_cert)
				(void)!send(t->fd, r408, (size_t)n408, MSG_DONTWAIT | MSG_NOSIGNAL);
			shutdown(t->fd, SHUT_RDWR);
			COUNT(srv, http_timeouts);
			log_msg(LOG_WARN, "event=http_timeout phase=%s reason=\"%s not received in time\"",
			        t->phase == PH_HEADERS ? "headers" : "body",
			        t->phase == PH_HEADERS ? "request headers" : "request body");
		}
	}
	pthread_mutex_unlock(&srv->track_mu);
	return NULL;
}

/* --- the access handler --- */

static enum MHD_Result refuse(struct MHD_Connection *conn, struct conn_state *cs,
                              unsigned status, const char *type, const char *msg, int auth)
{
	struct api_response r;
	memset(&r, 0, sizeof r);
	api_error(&r, status, type, "%s", msg);
	if (auth)
		api_add_header(&r, "WWW-Authenticate", "Bearer realm=\"foreshock\"");
	/* do not read (and discard) a body we refuse */
	api_add_header(&r, "Connection", "close");
	return queue(conn, cs, &r);
}

/* Host, Origin and token checks. Returns MHD_YES with nothing queued when
 * the request may go on; otherwise the refusal was queued (cs->status set)
 * or MHD_NO. */
static enum MHD_Result check_access(struct http_server *srv, struct MHD_Connection *conn,
                                    struct conn_state *cs, const char *method)
{
	char msg[400];
	if (cs->route == ROUTE_HEALTH)
		return MHD_YES;
	const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	if (!access_host_allowed(&srv->acc, host)) {
		COUNT(srv, http_forbidden);
		snprintf(msg, sizeof msg, "forbidden host '%.100s': not an IP address, localhost or a "
		         "name in http.allowed_hosts (DNS rebinding protection)", host);
		return refuse(conn, cs, 403, "forbidden", msg, 0);
	}
	const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD) &&
	    !access_origin_allowed(origin, host)) {
		COUNT(srv, http_forbidden);
		snprintf(msg, sizeof msg, "cross-origin request from '%.100s' refused: browsers may "
		         "not send %s requests here from another site", origin, method);
		return refuse(conn, cs, 403, "forbidden", msg, 0);
	}
	if (cs->route == ROUTE_UI || cs->route == ROUTE_OTHER)
		return MHD_YES; /* the page's static HTML and 404s hold no data */
	int write = is_write_route(cs->route);
	const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	                                               MHD_HTTP_HEADER_AUTHORIZATION);
	switch (access_check_token(&srv->acc, write, auth, msg, sizeof msg)) {
	case ACCESS_EVENT_TIME:
		cs->event_time = 1; /* our own --replay sender */
		return MHD_YES;
	case ACCESS_OK:
		return MHD_YES;
	case ACCESS_WRONG_SCOPE:
		COUNT(srv, http_forbidden);
		return refuse(conn, cs, 403, "forbidden", msg, 0);
	case ACCESS_UNAUTHORIZED:
		break;
	}
	COUNT(srv, http_unauthorized);
	return refuse(conn, cs, 401, "unauthorized", msg, 1);
}

static enum MHD_Result shed(struct http_server *srv, struct MHD_Connection *conn,
                            struct conn_state *cs, enum admit a, uint64_t waited_us,
                            const struct pool *p, const char *what)
{
	struct api_response r;
	memset(&r, 0, sizeof r);
	if (a == SHED_STOPPING)
		api_error(&r, 503, "unavailable", "shutting down; retry later");
	else if (a == SHED_TIMEOUT)
		api_error(&r, 503, "overloaded",
		          "overloaded: no %s slot free within %.1f s (%u %s requests at once); retry "
		          "later", what, (double)waited_us / 1e6, p->max_inflight, what);
	else if (p->max_queued && srv->queue_timeout_ms)
		api_error(&r, 503, "overloaded",
		          "overloaded: %u %s requests in flight and the %s queue is full (%u "
		          "waiting); retry later", p->max_inflight, what, what, p->max_queued);
	else
		api_error(&r, 503, "overloaded", "overloaded: %u %s requests in flight; retry later",
		          p->max_inflight, what);
	api_add_header(&r, "Retry-After", "1");
	/* and close: otherwise MHD would still read (and we discard) the whole
	 * body, which under overload costs more CPU than the client's reconnect */
	api_add_header(&r, "Connection", "close");
	return queue(conn, cs, &r);
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
		/* the headers are in: no deadline while we decide and wait */
		track_set(srv, conn, PH_BUSY, 0);
		enum MHD_Result ar = check_access(srv, conn, cs, method);
		if (ar != MHD_YES || cs->status)
			return ar;
		int body = has_body(method);
		const char *cl = body ? MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                                    MHD_HTTP_HEADER_CONTENT_LENGTH) :
		                        NULL;
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
			if (errno == 0 && *end == 0)
				cs->expect = (size_t)n;
		}
		/* Past capacity, queue (bounded) and then shed load before
		 * buffering the body: senders (remote_write, Telegraf, vmagent)
		 * retry on 503. */
		if (is_write_route(cs->route) && body) {
			uint64_t waited_us;
			enum admit a = pool_admit(&srv->writes, srv->queue_timeout_ms, &waited_us);
			if (srv->api->stats && waited_us) {
				atomic_fetch_add_explicit(&srv->api->stats->writes_queued, 1,
				                          memory_order_relaxed);
				atomic_fetch_add_explicit(&srv->api->stats->write_queue_us, waited_us,
				                          memory_order_relaxed);
			}
			if (a != ADMITTED) {
				COUNT(srv, writes_shed);
				return shed(srv, conn, cs, a, waited_us, &srv->writes, "write");
			}
			cs->admitted = 1;
		} else if (is_heavy_read_route(cs->route)) {
			uint64_t waited_us;
			enum admit a = pool_admit(&srv->reads, srv->queue_timeout_ms, &waited_us);
			if (a != ADMITTED) {
				COUNT(srv, reads_shed);
				return shed(srv, conn, cs, a, waited_us, &srv->reads, "read");
			}
			cs->admitted_read = 1;
		}
		if (body)
			track_set(srv, conn, PH_BODY, srv->body_timeout_us);
		/* Answer on a later call (once MHD has read the request), so that
		 * the connection can be kept alive. */
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
			/* the announced length at once (it is within max_body):
			 * a 1 MB body grown from 16 KB took 7 reallocations */
			size_t cap = cs->cap ? cs->cap : cs->expect >= 16384 ? cs->expect + 1 : 16384;
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
	track_set(srv, conn, PH_BUSY, 0);
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
	/* keep-alive: the next request's headers within the idle timeout */
	track_set(srv, conn, PH_HEADERS, srv->idle_timeout_us);
	if (!cs)
		return;
	if (cs->status && srv->api->stats)
		selfstats_observe_request(srv->api->stats, cs->route, cs->status,
		                          mono_us() - cs->start_us);
	if (cs->admitted)
		pool_release(&srv->writes);
	if (cs->admitted_read)
		pool_release(&srv->reads);
	free(cs->body);
	free(cs);
	*con_cls = NULL;
}

/* The health listener: /healthz and /readyz only, no token, no queue. */
static enum MHD_Result on_health_request(void *cls, struct MHD_Connection *conn, const char *url,
                                         const char *method, const char *version,
                                         const char *upload_data, size_t *upload_data_size,
                                         void **con_cls)
{
	struct http_server *srv = cls;
	if (!*con_cls) {
		*con_cls = (void *)1;
		return MHD_YES;
	}
	*upload_data_size = 0;
	struct api_response r;
	memset(&r, 0, sizeof r);
	if (api_route(url) != ROUTE_HEALTH) {
		api_error(&r, 404, "not_found", "the health listener serves /healthz and /readyz only");
	} else {
		struct api_request req = { .method = method, .path = url, .now_ms = wall_ms() };
		api_handle(srv->api, &req, &r);
	}
	struct conn_state cs = { 0 };
	return queue(conn, &cs, &r);
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

static int resolve(const char *host, unsigned port, struct sockaddr_storage *ss, int *v6,
                   char *err, size_t errlen)
{
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
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*v6 = res->ai_family == AF_INET6;
	freeaddrinfo(res);
	return 0;
}

/* The health listener: one internal poll thread, a few connections, short
 * timeout; shares nothing with the main listener's limits. */
static int start_health(struct http_server *srv, const char *listen, char *err, size_t errlen)
{
	char host[256];
	unsigned port;
	if (split_listen(listen, host, sizeof host, &port)) {
		snprintf(err, errlen, "invalid health_listen address '%s' (use host:port, "
		         "[v6addr]:port or :port)", listen);
		return -1;
	}
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
	struct sockaddr_storage ss;
	int v6 = 0;
	if (*host) {
		if (resolve(host, port, &ss, &v6, err, errlen) < 0)
			return -1;
		if (v6)
			flags |= MHD_USE_IPv6;
	}
	struct MHD_OptionItem opts[5];
	size_t no = 0;
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT, 5, NULL };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT, 64, NULL };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_PER_IP_CONNECTION_LIMIT, 16, NULL };
	if (*host)
		opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, &ss };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	errno = 0;
	srv->hd = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_health_request, srv,
	                           MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
	                           MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (!srv->hd) {
		snprintf(err, errlen, "cannot listen on health_listen '%s': %s", listen,
		         errno ? strerror(errno) : "libmicrohttpd failed to start");
		return -1;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->hd, MHD_DAEMON_INFO_BIND_PORT);
	srv->health_port = info ? info->port : (unsigned short)port;
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
	pool_init(&srv->writes, cfg->max_inflight_writes ? cfg->max_inflight_writes : 8,
	          cfg->max_queued_writes);
	pool_init(&srv->reads, cfg->max_inflight_reads ? cfg->max_inflight_reads : 8,
	          cfg->max_queued_reads);
	srv->queue_timeout_ms = cfg->queue_timeout_ms;
	srv->max_response = cfg->max_response ? cfg->max_response : (size_t)64 << 20;
	srv->header_timeout_us = (uint64_t)(cfg->header_timeout_ms > 0 ? cfg->header_timeout_ms :
	                                                                 10000) * 1000u;
	srv->body_timeout_us = (uint64_t)(cfg->body_timeout_ms > 0 ? cfg->body_timeout_ms :
	                                                             60000) * 1000u;
	srv->idle_timeout_us = (uint64_t)cfg->connection_timeout_s * 1000000u;
	track_init(srv);
	struct access_config ac = { cfg->write_token_file, cfg->read_token_file, cfg->tls_cert_file,
		                    cfg->tls_key_file, cfg->allowed_hosts };
	if (access_init(&srv->acc, &ac, err, errlen) < 0) {
		srv_free(srv);
		return NULL;
	}
	/* One thread per connection: poll() (MHD_USE_AUTO picks it) in a listen
	 * thread, and each accepted connection gets its own thread. Not
	 * combinable with MHD_OPTION_THREAD_POOL_SIZE (or epoll). */
	unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION |
	                     MHD_USE_ERROR_LOG;
	if (srv->acc.tls_cert)
		flags |= MHD_USE_TLS;
	if (cfg->threads)
		log_msg(LOG_WARN, "event=config_deprecated key=http.threads value=%u "
		                  "reason=\"ignored: every connection has its own thread\"",
		        cfg->threads);
	size_t max_conn = cfg->max_connections ? cfg->max_connections : DEFAULT_MAX_CONNECTIONS;
	size_t per_client = cfg->max_connections_per_client ? cfg->max_connections_per_client :
	                                                      (max_conn + 1) / 2;
	struct sockaddr_storage ss;
	int use_addr = 0;
	if (*host) {
		int v6 = 0;
		if (resolve(host, port, &ss, &v6, err, errlen) < 0) {
			srv_free(srv);
			return NULL;
		}
		if (v6)
			flags |= MHD_USE_IPv6;
		use_addr = 1;
	}
	struct MHD_OptionItem opts[12];
	size_t no = 0;
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_STACK_SIZE,
		                                  (intptr_t)THREAD_STACK_SIZE, NULL };
	if (cfg->connection_timeout_s)
		opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT,
			                                  cfg->connection_timeout_s, NULL };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT, (intptr_t)max_conn, NULL };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		                                  (intptr_t)per_client, NULL };
	if (use_addr)
		opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, &ss };
	if (srv->acc.tls_cert) {
		opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, srv->acc.tls_cert };
		opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, srv->acc.tls_key };
	}
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };

	/* the watchdog first: connections may arrive as soon as MHD starts */
	if (pthread_create(&srv->watchdog, NULL, watchdog_main, srv) != 0) {
		snprintf(err, errlen, "cannot start the connection watchdog thread");
		srv_free(srv);
		return NULL;
	}
	srv->watchdog_started = 1;
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
		                          MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
		                          MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	}
	if (!srv->d) {
		snprintf(err, errlen, "cannot listen on '%s': %s", listen,
		         errno ? strerror(errno) : "libmicrohttpd failed to start");
		http_stop(srv);
		return NULL;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = info ? info->port : (unsigned short)port;
	if (cfg->health_listen && *cfg->health_listen &&
	    start_health(srv, cfg->health_listen, err, errlen) < 0) {
		http_stop(srv);
		return NULL;
	}
	log_msg(LOG_INFO, "event=http_started model=thread_per_connection max_connections=%zu "
	                  "per_client=%zu idle_timeout_s=%u header_timeout_ms=%llu "
	                  "body_timeout_ms=%llu thread_stack_kib=%zu tls=%s write_tokens=%zu "
	                  "read_tokens=%zu health_port=%u",
	        max_conn, per_client, cfg->connection_timeout_s,
	        (unsigned long long)(srv->header_timeout_us / 1000),
	        (unsigned long long)(srv->body_timeout_us / 1000), THREAD_STACK_SIZE >> 10,
	        srv->acc.tls_cert ? "on" : "off", srv->acc.write.n, srv->acc.read.n,
	        srv->health_port);
	return srv;
}

unsigned short http_port(const struct http_server *srv)
{
	return srv ? srv->port : 0;
}

unsigned short http_health_port(const struct http_server *srv)
{
	return srv ? srv->health_port : 0;
}

const char *http_replay_token(const struct http_server *srv)
{
	return srv ? srv->acc.replay_token : NULL;
}

int http_tls(const struct http_server *srv)
{
	return srv && srv->acc.tls_cert;
}

int http_reload_tokens(struct http_server *srv, size_t *nwrite, size_t *nread, char *err,
                       size_t errlen)
{
	return access_reload_tokens(&srv->acc, nwrite, nread, err, errlen);
}

void http_stop(struct http_server *srv)
{
	if (!srv)
		return;
	/* Closes the listen socket, shuts down every connection's socket (idle
	 * keep-alive threads wake up and exit), waits for running handlers and
	 * joins all threads. Requests waiting for a slot give up first (503),
	 * so none of them holds the stop for its queue timeout. */
	pool_stop(&srv->writes);
	pool_stop(&srv->reads);
	if (srv->hd)
		MHD_stop_daemon(srv->hd);
	if (srv->d)
		MHD_stop_daemon(srv->d);
	if (srv->watchdog_started) {
		pthread_mutex_lock(&srv->track_mu);
		srv->track_stop = 1;
		pthread_cond_signal(&srv->track_cv);
		pthread_mutex_unlock(&srv->track_mu);
		pthread_join(srv->watchdog, NULL);
	}
	srv_free(srv);
}
