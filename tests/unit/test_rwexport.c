/* test_rwexport.c — the remote_write exporter: encoding (decoded back with
 * foreshock's own remote_write decoder), external labels, backoff, the
 * `export:` section, and the sender against a fake endpoint on loopback
 * (libmicrohttpd) that fails, refuses and recovers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>

#include <cmocka.h>
#include <microhttpd.h>

#include "ingest/prw.h"
#include "store/rwexport.h"
#include "util/yaml_tree.h"

#define MAXGOT 40000

struct got {
	size_t n;
	char key[MAXGOT][96];
	int64_t ts[MAXGOT];
	double v[MAXGOT];
};

static int on_sample(void *ctx, const struct label_ref *l, size_t n, double value, int64_t ts,
                     int has_ts, size_t lineno)
{
	struct got *g = ctx;
	if (g->n >= MAXGOT)
		return 1;
	char *k = g->key[g->n];
	size_t off = 0;
	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(k + off, off < 96 ? 96 - off : 0, "%s%.*s=%.*s", i ? "," : "",
		                        (int)l[i].name_len, l[i].name, (int)l[i].value_len, l[i].value);
	g->ts[g->n] = ts;
	g->v[g->n] = value;
	g->n++;
	return 0;
}

static void decode(const char *body, size_t len, struct got *g)
{
	struct prom_limits lim = PROM_LIMITS_DEFAULT;
	char err[256] = "";
	int rc = prw_decode(body, len, &lim, on_sample, NULL, g, err, sizeof err);
	if (rc < 0)
		fail_msg("decode: %s", err);
}

#define REF(n, v) { n, sizeof n - 1, v, sizeof v - 1 }

static void test_encode_roundtrip(void **state)
{
	(void)state;
	struct rwexport_config c;
	rwexport_config_init(&c);
	assert_int_equal(rwexport_config_add_label(&c, "shard", "1"), 0);
	assert_int_equal(rwexport_config_add_label(&c, "zone", "z"), 0);
	struct rwexport_buf b = { 0 };
	struct label_ref a[] = { REF("series_name", "cpu"), REF("host", "a"), REF("zone", "own") };
	struct label_ref d[] = { REF("series_name", "mem"), REF("empty", "") };
	for (int i = 0; i < 3; i++) {
		rwexport_buf_add(&b, "foreshock_anomaly_score", a, 3, 1000 * i, 0.1 * i);
		rwexport_buf_add(&b, "foreshock_anomaly_score", d, 2, 1000 * i, 0.5);
	}
	assert_int_equal(b.n, 6);
	size_t used, ns, olen;
	char *body = rwexport_encode(&c, b.p, b.len, 100, &used, &ns, &olen);
	assert_non_null(body);
	assert_int_equal(used, b.len);
	assert_int_equal(ns, 6);
	static struct got g;
	memset(&g, 0, sizeof g);
	decode(body, olen, &g);
	free(body);
	assert_int_equal(g.n, 6);
	/* grouped by series, in order, labels sorted, the series' own zone kept */
	assert_string_equal(g.key[0], "__name__=foreshock_anomaly_score,host=a,series_name=cpu,shard=1,zone=own");
	assert_string_equal(g.key[2], g.key[0]);
	assert_int_equal(g.ts[1], 1000);
	assert_true(g.v[2] > 0.19 && g.v[2] < 0.21);
	assert_string_equal(g.key[3], "__name__=foreshock_anomaly_score,series_name=mem,shard=1,zone=z");
	/* at most max samples per request */
	body = rwexport_encode(&c, b.p, b.len, 4, &used, &ns, &olen);
	assert_non_null(body);
	assert_int_equal(ns, 4);
	assert_true(used < b.len);
	free(body);
	/* a truncated buffer is refused, not read past its end */
	assert_null(rwexport_encode(&c, b.p, 10, 4, &used, &ns, &olen));
	rwexport_buf_free(&b);
	rwexport_config_free(&c);
}

static void test_backoff(void **state)
{
	(void)state;
	for (uint64_t r = 0; r < 50; r++) {
		int64_t d1 = rwexport_backoff_ms(1, 250, 5000, r * 7919);
		assert_true(d1 >= 125 && d1 <= 250);
		int64_t d5 = rwexport_backoff_ms(5, 250, 5000, r * 7919);
		assert_true(d5 >= 2000 && d5 <= 4000);
		int64_t d30 = rwexport_backoff_ms(30, 250, 5000, r * 7919);
		assert_true(d30 >= 2500 && d30 <= 5000);
	}
}

static int parse(const char *yaml, struct rwexport_config *c, char *err, size_t errlen)
{
	struct ynode *t = ytree_load_string(yaml, strlen(yaml), "f.yml", err, errlen);
	if (!t)
		return -1;
	int rc = rwexport_config_parse(c, ymap_get(t, "export"), err, errlen);
	ytree_free(t);
	return rc;
}

static void test_config(void **state)
{
	(void)state;
	struct rwexport_config c;
	char err[256];
	rwexport_config_init(&c);
	assert_int_equal(parse("export:\n  url: http://127.0.0.1:8428/api/v1/write\n"
	                       "  max_queue_bytes: 32MiB\n  max_backoff: 10s\n"
	                       "  max_samples_per_send: 500\n  headers:\n    X-Scope-OrgID: a\n",
	                       &c, err, sizeof err),
	                 0);
	assert_string_equal(c.url, "http://127.0.0.1:8428/api/v1/write");
	assert_int_equal(c.max_queue_bytes, 32 << 20);
	assert_int_equal(c.max_backoff_ms, 10000);
	assert_int_equal(c.max_samples_per_send, 500);
	assert_int_equal(c.nheaders, 1);
	assert_string_equal(c.headers[0], "X-Scope-OrgID: a");
	rwexport_config_free(&c);
	assert_int_equal(parse("export:\n  url: http://x\n  retries: 3\n", &c, err, sizeof err), -1);
	assert_non_null(strstr(err, "f.yml:3: unknown key 'retries'"));
	rwexport_config_free(&c);
	assert_int_equal(parse("export:\n  url: ftp://x/\n", &c, err, sizeof err), -1);
	assert_non_null(strstr(err, "invalid export url 'ftp://x/'"));
	rwexport_config_free(&c);
	/* each rejected value with the exact message: what, where, the value and the allowed range */
	static const struct {
		const char *yaml, *msg;
	} bad[] = {
		{ "export:\n  url: http://x\n  min_backoff: 2s\n  max_backoff: 1500ms\n",
		  "f.yml:4: duration '1500ms' for 'max_backoff' out of range (at least 'min_backoff', 2s)" },
		{ "export:\n  url: http://x\n  min_backoff: 2m\n",
		  "f.yml:3: duration '2m' for 'min_backoff' out of range (at most 'max_backoff', 5s)" },
		{ "export:\n  url: http://x\n  timeout: 50ms\n",
		  "f.yml:3: duration '50ms' for 'timeout' out of range (at least 100ms)" },
		{ "export:\n  url: http://x\n  max_queue_bytes: 64KiB\n",
		  "f.yml:3: size '64KiB' for 'max_queue_bytes' out of range (at least 1MiB)" },
		{ "export:\n  url: http://x\n  max_samples_per_send: 0\n",
		  "f.yml:3: value '0' for 'max_samples_per_send' out of range [1, 100000]" },
		{ "export: [1]\n", "f.yml:1: 'export' must be a mapping" },
		{ "export:\n  url: http://x\n  headers: [a]\n",
		  "f.yml:3: 'headers' must be a mapping of header names to values" },
		{ "export:\n  url: http://x\n  headers:\n    Content-Type: text/plain\n",
		  "f.yml:4: invalid export header 'Content-Type' (a name of letters, digits and "
		  "!#$%&'*+-.^_`|~, a value without line breaks; not Content-Type or Content-Encoding)" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		rwexport_config_init(&c);
		err[0] = '\0';
		if (parse(bad[i].yaml, &c, err, sizeof err) != -1)
			fail_msg("accepted: %s", bad[i].yaml);
		if (strcmp(err, bad[i].msg))
			fail_msg("for %s\n got '%s'\nwant '%s'", bad[i].yaml, err, bad[i].msg);
		rwexport_config_free(&c);
	}
}

/* ---- a fake endpoint ---------------------------------------------------- */

struct fake {
	pthread_mutex_t mu;
	int fail_next;     /* answer this many requests with 503 */
	int refuse_next;   /* then this many with 400 */
	size_t requests;
	struct got g;
};

struct upload {
	char *p;
	size_t len;
};

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *data,
                               size_t *size, void **con_cls)
{
	struct fake *f = cls;
	struct upload *u = *con_cls;
	if (!u) {
		*con_cls = calloc(1, sizeof *u);
		return MHD_YES;
	}
	if (*size) {
		u->p = realloc(u->p, u->len + *size);
		memcpy(u->p + u->len, data, *size);
		u->len += *size;
		*size = 0;
		return MHD_YES;
	}
	unsigned status = 204;
	pthread_mutex_lock(&f->mu);
	f->requests++;
	if (f->fail_next > 0) {
		f->fail_next--;
		status = 503;
	} else if (f->refuse_next > 0) {
		f->refuse_next--;
		status = 400;
	} else {
		decode(u->p, u->len, &f->g);
	}
	pthread_mutex_unlock(&f->mu);
	free(u->p);
	free(u);
	*con_cls = NULL;
	struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static struct MHD_Daemon *fake_start(struct fake *f, unsigned *port)
{
	pthread_mutex_init(&f->mu, NULL);
	struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
	                                        handler, f, MHD_OPTION_END);
	assert_non_null(d);
	const union MHD_DaemonInfo *i = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	*port = i->port;
	return d;
}

static void wait_sent(struct rwexport *x, uint64_t want_done)
{
	struct rwexport_stats st;
	for (int i = 0; i < 2000; i++) { /* at most 20 s */
		rwexport_get_stats(x, &st);
		if (st.samples_sent + st.samples_dropped >= want_done && st.queue_samples == 0)
			return;
		usleep(10000);
	}
	fail_msg("exporter did not finish: sent %llu dropped %llu queued %llu",
	         (unsigned long long)st.samples_sent, (unsigned long long)st.samples_dropped,
	         (unsigned long long)st.queue_samples);
}

static void test_sender_retries_in_order(void **state)
{
	(void)state;
	static struct fake f;
	memset(&f, 0, sizeof f);
	f.fail_next = 3;
	unsigned port;
	struct MHD_Daemon *d = fake_start(&f, &port);
	struct rwexport_config c;
	rwexport_config_init(&c);
	char url[64], err[256];
	snprintf(url, sizeof url, "http://127.0.0.1:%u/api/v1/write", port);
	assert_int_equal(rwexport_config_set_url(&c, url, err, sizeof err), 0);
	c.min_backoff_ms = 20;
	c.max_backoff_ms = 80;
	c.flush_ms = 50;
	c.max_samples_per_send = 700;
	struct rwexport *x = rwexport_start(&c, err, sizeof err);
	assert_non_null(x);
	struct label_ref l[] = { REF("series_name", "cpu"), REF("host", "a") };
	struct label_ref m[] = { REF("series_name", "cpu"), REF("host", "b") };
	for (int i = 0; i < 10000; i++) {
		assert_int_equal(rwexport_add(x, "foreshock_anomaly_score", i % 2 ? m : l, 2, i, i), 0);
	}
	rwexport_flush(x);
	wait_sent(x, 10000);
	struct rwexport_stats st;
	rwexport_get_stats(x, &st);
	assert_int_equal(st.samples_in, 10000);
	assert_int_equal(st.samples_sent, 10000);
	assert_int_equal(st.samples_dropped, 0);
	assert_true(st.requests_failed >= 3);
	pthread_mutex_lock(&f.mu);
	assert_int_equal(f.g.n, 10000);
	/* every sample once, and each series' samples in time order */
	int64_t last_a = -1, last_b = -1;
	for (size_t i = 0; i < f.g.n; i++) {
		int64_t *last = strstr(f.g.key[i], "host=a") ? &last_a : &last_b;
		assert_true(f.g.ts[i] > *last);
		assert_int_equal((int64_t)f.g.v[i], f.g.ts[i]);
		*last = f.g.ts[i];
	}
	assert_int_equal(last_a, 9998);
	assert_int_equal(last_b, 9999);
	/* a 400 drops that request (counted), the next ones go through */
	f.refuse_next = 1;
	f.g.n = 0;
	pthread_mutex_unlock(&f.mu);
	for (int i = 0; i < 1000; i++)
		rwexport_add(x, "foreshock_anomaly_score", l, 2, 20000 + i, i);
	rwexport_flush(x);
	wait_sent(x, 11000);
	rwexport_get_stats(x, &st);
	assert_true(st.samples_rejected > 0);
	assert_int_equal(st.samples_dropped, st.samples_rejected);
	assert_int_equal(st.samples_sent + st.samples_rejected, 11000);
	assert_int_equal(f.g.n, 1000 - st.samples_rejected);
	rwexport_stop(x);
	MHD_stop_daemon(d);
	rwexport_config_free(&c);
}

static void test_queue_bound(void **state)
{
	(void)state;
	static struct fake f;
	memset(&f, 0, sizeof f);
	f.fail_next = 1 << 30; /* the endpoint is down */
	unsigned port;
	struct MHD_Daemon *d = fake_start(&f, &port);
	struct rwexport_config c;
	rwexport_config_init(&c);
	char url[64], err[256];
	snprintf(url, sizeof url, "http://127.0.0.1:%u/api/v1/write", port);
	assert_int_equal(rwexport_config_set_url(&c, url, err, sizeof err), 0);
	c.min_backoff_ms = c.max_backoff_ms = 20;
	c.flush_ms = 20;
	c.max_samples_per_send = 100;
	c.max_queue_bytes = 4096;
	c.drain_ms = 100;
	struct rwexport *x = rwexport_start(&c, err, sizeof err);
	assert_non_null(x);
	for (int i = 0; i < 20000; i++) {
		char v[16];
		int n = snprintf(v, sizeof v, "s%d", i % 500);
		struct label_ref l[] = { { "series_name", 11, v, (size_t)n } };
		rwexport_add(x, "foreshock_expected_value", l, 1, i, i);
	}
	rwexport_flush(x);
	struct rwexport_stats st;
	for (int i = 0; i < 1000; i++) {
		rwexport_get_stats(x, &st);
		/* the bound holds once the pending samples are encoded into requests */
		if (st.samples_dropped > 0 && st.queue_samples + st.samples_dropped == 20000 &&
		    st.queue_bytes <= 4096 + 8192)
			break;
		usleep(10000);
	}
	assert_true(st.samples_dropped > 0);
	assert_true(st.queue_bytes <= 4096 + 8192); /* the bound, plus the one request kept */
	assert_int_equal(st.queue_samples + st.samples_dropped, 20000);
	assert_int_equal(st.samples_sent, 0);
	rwexport_stop(x);
	MHD_stop_daemon(d);
	rwexport_config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_roundtrip),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_sender_retries_in_order),
		cmocka_unit_test(test_queue_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
