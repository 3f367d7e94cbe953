/* loadgen.c — the benchmark's HTTP load generator (bench/run.sh drives it).
 *
 *   loadgen write --port P [--path /write?precision=ms] --series S [--lines L]
 *                 [--shape single|multi|prw] [--conns C] [--duration SEC]
 *                 [--max-samples N] [--rate R] [--t0 MS] [--step MS] [--rounds K]
 *                 [--seed X]
 *   loadgen get --port P --path PATH [--path PATH ...] [--interval-ms MS]
 *               [--duration SEC] [--max-requests N]
 *
 * write: S series, one sample per series per round, ms timestamps, in one of
 * three shapes (--shape):
 *   single  InfluxDB line protocol, one field per line:
 *           bench_cpu,host=h0001234,dc=dc3,job=node value=512.345 1700000000000
 *   multi   line protocol as Telegraf sends it: per host a cpu line (10
 *           fields), a mem line (3) and a net line (8), 4 tags each, e.g.
 *           mem,dc=dc3,env=prod,host=h0001234,rack=r12 available=...,used=...,
 *           used_percent=... 1700000000000 (S counts fields, so S/21 hosts)
 *   prw     Prometheus remote_write: a snappy-compressed protobuf
 *           WriteRequest, one sample per TimeSeries, 5 labels each (__name__
 *           out of 10 node_exporter gauge names, dc, env, instance, job),
 *           sorted, as Prometheus and vmagent send them; POST it to
 *           /api/v1/write
 * The bodies are built once (L lines, or L time series for prw, each; the
 * series split into bodies, body b belonging to connection b % C, so each
 * series is only ever sent on one connection, in timestamp order). Each round
 * patches the fixed-width timestamp and value fields in place (a prw
 * timestamp is a 6-byte varint, its value a fixed 8-byte double) and, for
 * prw, compresses the body again (snappy, as a sender does per request): no
 * per-request formatting, so the generator's own CPU stays small. Counts
 * (samples_sent, samples_2xx) are samples: fields of a multi line count
 * one each. Keep-alive HTTP/1.1
 * over plain sockets, one thread per connection, closed loop (next request
 * after the answer) or paced to --rate samples/s. Every loop is bounded by
 * --duration (default 10 s), --max-samples and --rounds.
 *
 * get: one connection, the paths in turn, every --interval-ms, latency per
 * path.
 *
 * Output: one JSON object on stdout (counts, status codes, latency
 * percentiles in ms, wall time, the generator's own CPU seconds, and next_t0:
 * the first timestamp newer than everything sent, to continue the timeline).
 * 127.0.0.1 only: there is no host option on purpose.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <snappy-c.h>

#include "bodies.h"

#define MAX_PATHS 8
#define MAX_LAT 200000   /* latency samples kept per thread */

/* ---- small helpers -------------------------------------------------------- */

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	if (s <= 0)
		return;
	struct timespec t = { .tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9) };
	nanosleep(&t, NULL);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
	if (n == 0)
		return NAN;
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* A number for JSON: "null" when not finite. Uses one of 8 rotating buffers. */
static const char *jnum(double v)
{
	static __thread char buf[8][32];
	static __thread int k;
	char *b = buf[k++ & 7];
	if (!isfinite(v))
		return "null";
	snprintf(b, sizeof buf[0], "%.3f", v);
	return b;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* ---- one keep-alive HTTP/1.1 connection ------------------------------------ */

struct conn {
	int fd;
	int port;
	char buf[65536];
	size_t len, pos;   /* unread bytes are buf[pos..len) */
};

static int conn_open(struct conn *c)
{
	c->len = c->pos = 0;
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0)
		return -1;
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct timeval tv = { .tv_sec = 30 };
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)c->port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0) {
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static int conn_fill(struct conn *c)
{
	if (c->pos == c->len)
		c->pos = c->len = 0;
	if (c->len == sizeof c->buf) {
		memmove(c->buf, c->buf + c->pos, c->len - c->pos);
		c->len -= c->pos;
		c->pos = 0;
	}
	ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
	if (n <= 0)
		return -1;
	c->len += (size_t)n;
	return 0;
}

/* Reads one CRLF-terminated line (without CRLF) into out. */
static int conn_line(struct conn *c, char *out, size_t cap)
{
	for (;;) {
		char *p = memchr(c->buf + c->pos, '\n', c->len - c->pos);
		if (p) {
			size_t n = (size_t)(p - (c->buf + c->pos));
			size_t k = n < cap - 1 ? n : cap - 1;
			memcpy(out, c->buf + c->pos, k);
			if (k && out[k - 1] == '\r')
				k--;
			out[k] = 0;
			c->pos += n + 1;
			return 0;
		}
		if (c->pos > 0 && c->len == sizeof c->buf) {
			memmove(c->buf, c->buf + c->pos, c->len - c->pos);
			c->len -= c->pos;
			c->pos = 0;
		}
		if (c->len == sizeof c->buf)
			return -1; /* line longer than the buffer */
		if (conn_fill(c) < 0)
			return -1;
	}
}

static int conn_skip(struct conn *c, size_t n, size_t *got)
{
	while (n > 0) {
		if (c->pos == c->len && conn_fill(c) < 0)
			return -1;
		size_t k = c->len - c->pos < n ? c->len - c->pos : n;
		c->pos += k;
		n -= k;
		if (got)
			*got += k;
	}
	return 0;
}

/* Reads one response; returns the status code, or -1. *keep is cleared when
 * the server closes the connection after it. */
static int conn_response(struct conn *c, int *keep, size_t *body_bytes)
{
	char line[1024];
	if (conn_line(c, line, sizeof line) < 0)
		return -1;
	int status = 0;
	if (sscanf(line, "HTTP/1.%*d %d", &status) != 1)
		return -1;
	long long clen = -1;
	int chunked = 0;
	*keep = 1;
	for (;;) {
		if (conn_line(c, line, sizeof line) < 0)
			return -1;
		if (!line[0])
			break;
		if (!strncasecmp(line, "content-length:", 15))
			clen = atoll(line + 15);
		else if (!strncasecmp(line, "transfer-encoding:", 18) && strcasestr(line, "chunked"))
			chunked = 1;
		else if (!strncasecmp(line, "connection:", 11) && strcasestr(line, "close"))
			*keep = 0;
	}
	*body_bytes = 0;
	if (status == 204 || status == 304 || (status >= 100 && status < 200))
		return status;
	if (chunked) {
		for (;;) {
			if (conn_line(c, line, sizeof line) < 0)
				return -1;
			size_t n = (size_t)strtoull(line, NULL, 16);
			if (n == 0) {
				do { /* trailers */
					if (conn_line(c, line, sizeof line) < 0)
						return -1;
				} while (line[0]);
				break;
			}
			if (conn_skip(c, n + 2, NULL) < 0)
				return -1;
			*body_bytes += n;
		}
	} else if (clen >= 0) {
		if (conn_skip(c, (size_t)clen, body_bytes) < 0)
			return -1;
	} else {
		*keep = 0; /* body until close */
		while (conn_fill(c) == 0)
			c->pos = c->len;
	}
	return status;
}

static int send_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		size_t left = (size_t)w;
		while (n > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return 0;
}

/* ---- per-thread statistics --------------------------------------------------- */

struct stats {
	uint64_t requests, lines_2xx, lines_sent, bytes_sent, errors, reconnects;
	uint64_t st2xx, st4xx, st5xx, st_other;
	uint64_t st429, st413, st503;
	double *lat;          /* ms */
	size_t nlat;
	uint64_t seen_lat;    /* for reservoir sampling beyond MAX_LAT */
	uint64_t rng;
};

static void stats_lat(struct stats *s, double ms)
{
	s->seen_lat++;
	if (s->nlat < MAX_LAT) {
		s->lat[s->nlat++] = ms;
		return;
	}
	uint64_t j = xorshift(&s->rng) % s->seen_lat;
	if (j < MAX_LAT)
		s->lat[j] = ms;
}

static void stats_status(struct stats *s, int st)
{
	if (st >= 200 && st < 300)
		s->st2xx++;
	else if (st >= 400 && st < 500)
		s->st4xx++;
	else if (st >= 500 && st < 600)
		s->st5xx++;
	else
		s->st_other++;
	if (st == 429)
		s->st429++;
	if (st == 413)
		s->st413++;
	if (st == 503)
		s->st503++;
}

/* ---- write mode ------------------------------------------------------------ */

static const char *const shape_names[] = { "single", "multi", "prw" };

/* A body and, for prw, its compressed copy. */
struct body {
	struct bench_body b;
	char *z;                     /* prw: the compressed body */
	size_t zcap, zlen;
};

struct wopts {
	int port;
	const char *path;
	size_t series, lines, conns;
	double duration, rate;        /* rate: samples/s over all connections, 0 = closed loop */
	uint64_t max_samples, rounds;
	int64_t t0, step;
	uint64_t seed;
	enum bench_shape shape;
};

struct wthread {
	pthread_t tid;
	const struct wopts *o;
	size_t idx;                  /* its connection's number */
	struct body *bodies;         /* this connection's bodies */
	size_t nbodies;
	struct stats st;
	double stop_at;
	uint64_t rounds_done;
	uint64_t rounds_started;     /* rounds of which at least one body was sent */
};

/* A deterministic series value in [100.000, 999.999]: a daily-ish sine with
 * a per-series phase plus noise. */
static uint64_t value_milli(uint32_t series, uint64_t round, uint64_t *rng)
{
	double ph = (double)(series % 360) * (M_PI / 180.0);
	double v = 500.0 + 150.0 * sin(ph + (double)round * (2 * M_PI / 360.0)) +
	           (double)(xorshift(rng) % 100000) / 1000.0 - 50.0;
	uint64_t m = (uint64_t)(v * 1000.0);
	if (m < 100000)
		m = 100000;
	if (m > 999999)
		m = 999999;
	return m;
}

/* The body of lines (time series for prw) [first_line, first_line + n)
 * (the caller keeps them within the shape's bench_shape_lines). */
static void build_body(struct body *b, const struct wopts *o, size_t first_line, size_t n)
{
	if (bench_body_build(&b->b, o->shape, o->series, first_line, n)) {
		fprintf(stderr, "loadgen: out of memory building bodies\n");
		exit(1);
	}
	if (o->shape == BENCH_PRW) {
		b->zcap = snappy_max_compressed_length(b->b.len);
		b->z = malloc(b->zcap);
		if (!b->z) {
			fprintf(stderr, "loadgen: out of memory building bodies\n");
			exit(1);
		}
	}
}

static void *write_main(void *arg)
{
	struct wthread *t = arg;
	const struct wopts *o = t->o;
	struct conn c = { .fd = -1, .port = o->port };
	char hdr[512];
	uint64_t budget = o->max_samples ? o->max_samples / o->conns : UINT64_MAX;
	double my_rate = o->rate > 0 ? o->rate / (double)o->conns : 0;
	double start = now_s();
	uint64_t rng = o->seed * 2654435761u + (uint64_t)t->idx + 1;
	rng = rng ? rng : 1;
	int prw = o->shape == BENCH_PRW;

	for (uint64_t r = 0; r < o->rounds; r++) {
		int64_t tsv = o->t0 + (int64_t)r * o->step;
		for (size_t bi = 0; bi < t->nbodies; bi++) {
			if (now_s() >= t->stop_at || t->st.lines_sent >= budget)
				goto done;
			struct body *tb = &t->bodies[bi];
			struct bench_body *b = &tb->b;
			if (bench_body_set_ts(b, tsv) < 0) {
				fprintf(stderr, "loadgen: timestamp %lld out of the prw range\n",
				        (long long)tsv);
				exit(1);
			}
			for (size_t i = 0; i < b->nsamples; i++) {
				uint64_t m = value_milli(b->first_series + (uint32_t)i, r, &rng);
				bench_body_set_value(b, i, m, (double)m / 1000.0);
			}
			const char *payload = b->text;
			size_t plen = b->len;
			if (prw) {
				tb->zlen = tb->zcap;
				if (snappy_compress(b->text, b->len, tb->z, &tb->zlen) != SNAPPY_OK) {
					fprintf(stderr, "loadgen: snappy_compress failed\n");
					exit(1);
				}
				payload = tb->z;
				plen = tb->zlen;
			}
			t->rounds_started = r + 1;
			if (my_rate > 0) {
				double due = start + (double)t->st.lines_sent / my_rate;
				double w = due - now_s();
				if (w > 0)
					sleep_s(w < t->stop_at - now_s() ? w : t->stop_at - now_s());
				if (now_s() >= t->stop_at)
					goto done;
			}
			int hl = snprintf(hdr, sizeof hdr,
			                  "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s"
			                  "Content-Length: %zu\r\n\r\n",
			                  o->path, o->port,
			                  prw ? "Content-Type: application/x-protobuf\r\n"
			                        "Content-Encoding: snappy\r\n"
			                        "X-Prometheus-Remote-Write-Version: 0.1.0\r\n"
			                      : "Content-Type: text/plain; charset=utf-8\r\n",
			                  plen);
			for (int attempt = 0; attempt < 2; attempt++) {
				if (c.fd < 0) {
					if (conn_open(&c) < 0) {
						t->st.errors++;
						sleep_s(0.05);
						continue;
					}
					t->st.reconnects++;
				}
				double t0 = now_s();
				struct iovec iov[2] = { { hdr, (size_t)hl }, { (void *)payload, plen } };
				int keep = 0;
				size_t bb = 0;
				/* a server may answer early (413) and close while we still
				 * send: read what it said before counting an error */
				int sent_ok = send_all(c.fd, iov, 2) == 0;
				if (!sent_ok)
					shutdown(c.fd, SHUT_WR);
				int st = conn_response(&c, &keep, &bb);
				if (!sent_ok)
					keep = 0;
				if (st < 0) {
					t->st.errors++;
					conn_close(&c);
					continue; /* retry once on a fresh connection */
				}
				stats_lat(&t->st, (now_s() - t0) * 1e3);
				stats_status(&t->st, st);
				t->st.requests++;
				t->st.bytes_sent += plen;
				if (st >= 200 && st < 300)
					t->st.lines_2xx += b->nsamples;
				if (!keep)
					conn_close(&c);
				break;
			}
			t->st.lines_sent += b->nsamples;
		}
		t->rounds_done = r + 1;
	}
done:
	conn_close(&c);
	return NULL;
}

static void print_stats(const char *mode, struct stats *all, size_t n, double wall, const char *extra)
{
	struct stats s = { 0 };
	size_t nl = 0;
	for (size_t i = 0; i < n; i++)
		nl += all[i].nlat;
	double *lat = malloc((nl ? nl : 1) * sizeof *lat);
	for (size_t i = 0; i < n; i++) {
		s.requests += all[i].requests;
		s.lines_2xx += all[i].lines_2xx;
		s.lines_sent += all[i].lines_sent;
		s.bytes_sent += all[i].bytes_sent;
		s.errors += all[i].errors;
		s.reconnects += all[i].reconnects;
		s.st2xx += all[i].st2xx;
		s.st4xx += all[i].st4xx;
		s.st5xx += all[i].st5xx;
		s.st_other += all[i].st_other;
		s.st429 += all[i].st429;
		s.st413 += all[i].st413;
		s.st503 += all[i].st503;
		memcpy(lat + s.nlat, all[i].lat, all[i].nlat * sizeof *lat);
		s.nlat += all[i].nlat;
	}
	qsort(lat, s.nlat, sizeof *lat, cmp_double);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	             (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	printf("{\"mode\":\"%s\",\"wall_s\":%.3f,\"requests\":%llu,\"samples_sent\":%llu,"
	       "\"samples_2xx\":%llu,\"bytes_sent\":%llu,\"errors\":%llu,\"connects\":%llu,"
	       "\"status\":{\"2xx\":%llu,\"4xx\":%llu,\"5xx\":%llu,\"other\":%llu,\"413\":%llu,"
	       "\"429\":%llu,\"503\":%llu},"
	       "\"lat_ms\":{\"p50\":%s,\"p90\":%s,\"p99\":%s,\"max\":%s},"
	       "\"cpu_s\":%.3f,\"cpu_cores\":%.3f%s}\n",
	       mode, wall, (unsigned long long)s.requests, (unsigned long long)s.lines_sent,
	       (unsigned long long)s.lines_2xx, (unsigned long long)s.bytes_sent,
	       (unsigned long long)s.errors, (unsigned long long)s.reconnects,
	       (unsigned long long)s.st2xx, (unsigned long long)s.st4xx,
	       (unsigned long long)s.st5xx, (unsigned long long)s.st_other,
	       (unsigned long long)s.st413, (unsigned long long)s.st429,
	       (unsigned long long)s.st503, jnum(pct(lat, s.nlat, 0.5)), jnum(pct(lat, s.nlat, 0.9)),
	       jnum(pct(lat, s.nlat, 0.99)), jnum(s.nlat ? lat[s.nlat - 1] : NAN), cpu,
	       wall > 0 ? cpu / wall : 0, extra ? extra : "");
	free(lat);
}

static int run_write(const struct wopts *o)
{
	size_t L = o->lines;
	size_t nlines = bench_shape_lines(o->shape, o->series);
	size_t per_conn = (nlines + o->conns - 1) / o->conns;
	if (L > per_conn)
		L = per_conn;
	if (L == 0)
		L = 1;
	size_t nb = (nlines + L - 1) / L;
	struct wthread *th = calloc(o->conns, sizeof *th);
	struct body **mine = calloc(o->conns, sizeof *mine);
	if (!th || !mine)
		return 1;
	for (size_t c = 0; c < o->conns; c++)
		mine[c] = calloc(nb / o->conns + 1, sizeof **mine);
	for (size_t b = 0; b < nb; b++) {
		size_t first = b * L;
		size_t n = first + L <= nlines ? L : nlines - first;
		struct wthread *t = &th[b % o->conns];
		build_body(&mine[b % o->conns][t->nbodies++], o, first, n);
	}
	double t0 = now_s();
	for (size_t c = 0; c < o->conns; c++) {
		th[c].o = o;
		th[c].idx = c;
		th[c].bodies = mine[c];
		th[c].stop_at = t0 + o->duration;
		th[c].st.lat = malloc(MAX_LAT * sizeof(double));
		th[c].st.rng = c + 7;
		pthread_create(&th[c].tid, NULL, write_main, &th[c]);
	}
	uint64_t rounds_min = UINT64_MAX, started_max = 0;
	for (size_t c = 0; c < o->conns; c++) {
		pthread_join(th[c].tid, NULL);
		if (th[c].nbodies && th[c].rounds_done < rounds_min)
			rounds_min = th[c].rounds_done;
		if (th[c].rounds_started > started_max)
			started_max = th[c].rounds_started;
	}
	double wall = now_s() - t0;
	struct stats *all = calloc(o->conns, sizeof *all);
	for (size_t c = 0; c < o->conns; c++)
		all[c] = th[c].st;
	char extra[384];
	uint64_t sent = 0, ok = 0;
	for (size_t c = 0; c < o->conns; c++) {
		sent += all[c].lines_sent;
		ok += all[c].lines_2xx;
	}
	snprintf(extra, sizeof extra,
	         ",\"series\":%zu,\"shape\":\"%s\",\"lines_per_body\":%zu,\"conns\":%zu,"
	         "\"rounds_complete\":%llu,"
	         "\"next_t0\":%lld,\"samples_per_s_sent\":%.1f,\"samples_per_s_2xx\":%.1f",
	         o->series, shape_names[o->shape], L, o->conns,
	         (unsigned long long)(rounds_min == UINT64_MAX ? 0 : rounds_min),
	         (long long)(o->t0 + (int64_t)started_max * o->step),
	         wall > 0 ? (double)sent / wall : 0, wall > 0 ? (double)ok / wall : 0);
	print_stats("write", all, o->conns, wall, extra);
	for (size_t c = 0; c < o->conns; c++) {
		for (size_t i = 0; i < th[c].nbodies; i++) {
			bench_body_free(&mine[c][i].b);
			free(mine[c][i].z);
		}
		free(mine[c]);
		free(th[c].st.lat);
	}
	free(mine);
	free(th);
	free(all);
	return 0;
}

/* ---- get mode ---------------------------------------------------------------- */

static int run_get(int port, const char **paths, int npaths, double interval_ms, double duration,
                   uint64_t max_requests)
{
	struct stats st[MAX_PATHS];
	memset(st, 0, sizeof st);
	for (int i = 0; i < npaths; i++) {
		st[i].lat = malloc(MAX_LAT * sizeof(double));
		st[i].rng = (uint64_t)i + 3;
	}
	struct conn *c = malloc(sizeof *c);
	c->fd = -1;
	c->port = port;
	double t0 = now_s(), stop = t0 + duration;
	uint64_t nreq = 0;
	size_t body_max = 0;
	while (now_s() < stop && nreq < max_requests) {
		for (int i = 0; i < npaths && now_s() < stop; i++) {
			char hdr[1024];
			int hl = snprintf(hdr, sizeof hdr, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
			                  paths[i], port);
			if (c->fd < 0 && conn_open(c) < 0) {
				st[i].errors++;
				sleep_s(0.05);
				continue;
			}
			double a = now_s();
			struct iovec iov[1] = { { hdr, (size_t)hl } };
			int keep = 0;
			size_t bb = 0;
			int s = send_all(c->fd, iov, 1) < 0 ? -1 : conn_response(c, &keep, &bb);
			nreq++;
			if (s < 0) {
				st[i].errors++;
				conn_close(c);
				continue;
			}
			stats_lat(&st[i], (now_s() - a) * 1e3);
			stats_status(&st[i], s);
			st[i].requests++;
			if (bb > body_max)
				body_max = bb;
			if (!keep)
				conn_close(c);
		}
		sleep_s(interval_ms / 1e3);
	}
	double wall = now_s() - t0;
	conn_close(c);
	free(c);
	printf("{\"mode\":\"get\",\"wall_s\":%.3f,\"max_body_bytes\":%zu,\"paths\":[", wall, body_max);
	for (int i = 0; i < npaths; i++) {
		struct stats *s = &st[i];
		qsort(s->lat, s->nlat, sizeof(double), cmp_double);
		printf("%s{\"path\":\"", i ? "," : "");
		for (const char *p = paths[i]; *p; p++)
			if (*p == '"' || *p == '\\')
				printf("\\%c", *p);
			else
				putchar(*p);
		printf("\",\"requests\":%llu,\"errors\":%llu,\"2xx\":%llu,\"non2xx\":%llu,"
		       "\"p50\":%s,\"p90\":%s,\"p99\":%s,\"max\":%s}",
		       (unsigned long long)s->requests, (unsigned long long)s->errors,
		       (unsigned long long)s->st2xx,
		       (unsigned long long)(s->st4xx + s->st5xx + s->st_other),
		       jnum(pct(s->lat, s->nlat, 0.5)), jnum(pct(s->lat, s->nlat, 0.9)),
		       jnum(pct(s->lat, s->nlat, 0.99)), jnum(s->nlat ? s->lat[s->nlat - 1] : NAN));
		free(s->lat);
	}
	printf("]}\n");
	return 0;
}

/* ---- main -------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
	        "usage: loadgen write --port P [--path P] --series S [--lines L] [--conns C]\n"
	        "                     [--shape single|multi|prw]\n"
	        "                     [--duration SEC] [--max-samples N] [--rate R] [--t0 MS]\n"
	        "                     [--step MS] [--rounds K] [--seed X]\n"
	        "       loadgen get --port P --path PATH [--path PATH ...] [--interval-ms MS]\n"
	        "                   [--duration SEC] [--max-requests N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	const char *mode = argv[1];
	struct wopts o = { .path = "/write?precision=ms", .series = 1000, .lines = 5000, .conns = 2,
		           .duration = 10, .rounds = 1000000, .step = 10000, .seed = 1 };
	o.t0 = ((int64_t)time(NULL) - 2 * 86400) * 1000;
	const char *paths[MAX_PATHS];
	int npaths = 0;
	double interval_ms = 50;
	uint64_t max_requests = 100000;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--port"))
			o.port = atoi(v);
		else if (!strcmp(a, "--path")) {
			o.path = v;
			if (npaths < MAX_PATHS)
				paths[npaths++] = v;
		} else if (!strcmp(a, "--series"))
			o.series = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--lines"))
			o.lines = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--conns"))
			o.conns = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--duration"))
			o.duration = atof(v);
		else if (!strcmp(a, "--max-samples"))
			o.max_samples = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--rate"))
			o.rate = atof(v);
		else if (!strcmp(a, "--t0"))
			o.t0 = strtoll(v, NULL, 10);
		else if (!strcmp(a, "--step"))
			o.step = strtoll(v, NULL, 10);
		else if (!strcmp(a, "--rounds"))
			o.rounds = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--shape")) {
			if (!strcmp(v, "single"))
				o.shape = BENCH_SINGLE;
			else if (!strcmp(v, "multi"))
				o.shape = BENCH_MULTI;
			else if (!strcmp(v, "prw"))
				o.shape = BENCH_PRW;
			else
				usage();
		} else if (!strcmp(a, "--seed"))
			o.seed = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--interval-ms"))
			interval_ms = atof(v);
		else if (!strcmp(a, "--max-requests"))
			max_requests = strtoull(v, NULL, 10);
		else
			usage();
	}
	if (o.port <= 0 || o.port > 65535 || o.conns == 0 || o.conns > 256 || o.series == 0 ||
	    o.series > 100000000 || o.duration <= 0 || o.duration > 3600)
		usage();
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(mode, "write"))
		return run_write(&o);
	if (!strcmp(mode, "get")) {
		if (npaths == 0)
			usage();
		return run_get(o.port, paths, npaths, interval_ms, o.duration, max_requests);
	}
	usage();
	return 2;
}
