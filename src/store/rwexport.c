/* store/rwexport.c — the remote_write exporter (rwexport.h): a pending buffer of
 * samples filled by producers, a sender thread that encodes it into
 * snappy-compressed WriteRequests, a bounded FIFO of requests, and retries
 * with backoff.
 *
 * A pending record is, in host byte order:
 *   u32 record length | i64 ts_ms | f64 value | u16 nlabels |
 *   nlabels × (u16 name length, name, u16 value length, value)
 * the first label being __name__. Records of one series written with their
 * labels in the same order have the same label bytes, which is how one
 * request groups them into one TimeSeries.
 */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <snappy-c.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util/backoff.h"
#include "util/httpcheck.h"
#include "util/lockrank.h"
#include "util/log.h"
#include "proto/remote.pb-c.h"
#include "store/rwexport.h"
#include "util/yaml_tree.h"

#define REC_HDR (4 + 8 + 8 + 2)
#define LABEL_MAX 65535u
#define RESP_MAX 512

/* ---- configuration ------------------------------------------------------ */

void rwexport_config_init(struct rwexport_config *c)
{
	memset(c, 0, sizeof *c);
	c->timeout_ms = 10000;
	c->flush_ms = 1000;
	c->max_samples_per_send = 2000;
	c->max_queue_bytes = 1LL << 30;
	c->max_pending_bytes = 256LL << 20;
	c->min_backoff_ms = 250;
	c->max_backoff_ms = 5000;
	c->drain_ms = 5000;
}

void rwexport_config_free(struct rwexport_config *c)
{
	free(c->url);
	for (size_t i = 0; i < c->nheaders; i++)
		free(c->headers[i]);
	free(c->headers);
	for (size_t i = 0; i < c->next; i++) {
		free(c->ext_names[i]);
		free(c->ext_values[i]);
	}
	free(c->ext_names);
	free(c->ext_values);
	rwexport_config_init(c);
}

int rwexport_config_set_url(struct rwexport_config *c, const char *url, char *err, size_t errlen)
{
	if (!http_url_valid(url)) {
		snprintf(err, errlen, "invalid export url '%s' (http:// or https:// and a host)", url);
		return -1;
	}
	char *d = strdup(url);
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	free(c->url);
	c->url = d;
	return 0;
}

int rwexport_config_add_label(struct rwexport_config *c, const char *name, const char *value)
{
	for (size_t i = 0; i < c->next; i++)
		if (!strcmp(c->ext_names[i], name)) {
			char *v = strdup(value);
			if (!v)
				return -1;
			free(c->ext_values[i]);
			c->ext_values[i] = v;
			return 0;
		}
	char **n = realloc(c->ext_names, (c->next + 1) * sizeof *n);
	if (!n)
		return -1;
	c->ext_names = n;
	char **v = realloc(c->ext_values, (c->next + 1) * sizeof *v);
	if (!v)
		return -1;
	c->ext_values = v;
	char *dn = strdup(name), *dv = strdup(value);
	if (!dn || !dv) {
		free(dn);
		free(dv);
		return -1;
	}
	c->ext_names[c->next] = dn;
	c->ext_values[c->next] = dv;
	c->next++;
	return 0;
}

static int get_bytes(const struct ynode *map, const char *key, int64_t min, int64_t *out,
                     char *err, size_t errlen)
{
	const struct ynode *n = ymap_get(map, key);
	if (!n)
		return 0;
	if (ynode_bytes(n, key, out, err, errlen) < 0)
		return -1;
	if (*out < min) {
		yerr(err, errlen, n, "size '%s' for '%s' out of range (at least %lldMiB)", n->scalar, key,
		     (long long)(min >> 20));
		return -1;
	}
	return 0;
}

int rwexport_config_parse(struct rwexport_config *c, const struct ynode *sec, char *err,
                          size_t errlen)
{
	static const char *const allowed[] = { "url", "timeout", "flush_interval",
		                               "max_samples_per_send", "max_queue_bytes",
		                               "max_pending_bytes", "min_backoff", "max_backoff",
		                               "drain_timeout", "headers", NULL };
	if (!sec || sec->type != Y_MAP) {
		yerr(err, errlen, sec, "'export' must be a mapping");
		return -1;
	}
	if (ymap_check_keys(sec, allowed, err, errlen) < 0)
		return -1;
	const struct ynode *u = ymap_get(sec, "url");
	if (u) {
		const char *s;
		if (ynode_string(u, "url", &s, err, errlen) < 0)
			return -1;
		if (!http_url_valid(s)) {
			yerr(err, errlen, u, "invalid export url '%s' (http:// or https:// and a host)", s);
			return -1;
		}
		char *d = strdup(s);
		if (!d)
			return yerr(err, errlen, u, "out of memory"), -1;
		free(c->url);
		c->url = d;
	}
	if (ymap_duration_min(sec, "timeout", 100, &c->timeout_ms, err, errlen) < 0 ||
	    ymap_duration_min(sec, "flush_interval", 10, &c->flush_ms, err, errlen) < 0 ||
	    ymap_duration_min(sec, "min_backoff", 10, &c->min_backoff_ms, err, errlen) < 0 ||
	    ymap_duration_min(sec, "max_backoff", 10, &c->max_backoff_ms, err, errlen) < 0 ||
	    ymap_duration_min(sec, "drain_timeout", 0, &c->drain_ms, err, errlen) < 0 ||
	    get_bytes(sec, "max_queue_bytes", 1 << 20, &c->max_queue_bytes, err, errlen) < 0 ||
	    get_bytes(sec, "max_pending_bytes", 1 << 20, &c->max_pending_bytes, err, errlen) < 0)
		return -1;
	if (c->max_backoff_ms < c->min_backoff_ms) {
		const struct ynode *mb = ymap_get(sec, "max_backoff"), *lb = ymap_get(sec, "min_backoff");
		char d[32];
		if (mb)
			yerr(err, errlen, mb, "duration '%s' for 'max_backoff' out of range (at least "
			     "'min_backoff', %s)", mb->scalar, format_duration_ms(c->min_backoff_ms, d, sizeof d));
		else
			yerr(err, errlen, lb, "duration '%s' for 'min_backoff' out of range (at most "
			     "'max_backoff', %s)", lb ? lb->scalar : "",
			     format_duration_ms(c->max_backoff_ms, d, sizeof d));
		return -1;
	}
	const struct ynode *m = ymap_get(sec, "max_samples_per_send");
	if (m) {
		int64_t v;
		if (ynode_int(m, "max_samples_per_send", &v, err, errlen) < 0)
			return -1;
		if (v < 1 || v > 100000) {
			yerr(err, errlen, m, "value '%s' for 'max_samples_per_send' out of range [1, 100000]",
			     m->scalar);
			return -1;
		}
		c->max_samples_per_send = (size_t)v;
	}
	const struct ynode *h = ymap_get(sec, "headers");
	if (h) {
		if (h->type != Y_MAP) {
			yerr(err, errlen, h, "'headers' must be a mapping of header names to values");
			return -1;
		}
		for (size_t i = 0; i < h->n; i++) {
			const char *v;
			if (ynode_string(h->items[i], h->keys[i], &v, err, errlen) < 0)
				return -1;
			if (!http_header_valid(h->keys[i], v) || !strcasecmp(h->keys[i], "content-type") ||
			    !strcasecmp(h->keys[i], "content-encoding")) {
				yerr(err, errlen, h->items[i],
				     "invalid export header '%s' (a name of letters, digits and !#$%%&'*+-.^_`|~, "
				     "a value without line breaks; not Content-Type or Content-Encoding)",
				     h->keys[i]);
				return -1;
			}
			char **nh = realloc(c->headers, (c->nheaders + 1) * sizeof *nh);
			if (!nh)
				return yerr(err, errlen, h, "out of memory"), -1;
			c->headers = nh;
			size_t len = strlen(h->keys[i]) + strlen(v) + 3;
			if (!(nh[c->nheaders] = malloc(len)))
				return yerr(err, errlen, h, "out of memory"), -1;
			snprintf(nh[c->nheaders++], len, "%s: %s", h->keys[i], v);
		}
	}
	return 0;
}

static int config_copy(struct rwexport_config *d, const struct rwexport_config *s)
{
	*d = *s;
	d->url = NULL;
	d->headers = NULL;
	d->nheaders = 0;
	d->ext_names = d->ext_values = NULL;
	d->next = 0;
	if (s->url && !(d->url = strdup(s->url)))
		return -1;
	if (s->nheaders) {
		if (!(d->headers = calloc(s->nheaders, sizeof *d->headers)))
			return -1;
		for (; d->nheaders < s->nheaders; d->nheaders++)
			if (!(d->headers[d->nheaders] = strdup(s->headers[d->nheaders])))
				return -1;
	}
	for (size_t i = 0; i < s->next; i++)
		if (rwexport_config_add_label(d, s->ext_names[i], s->ext_values[i]) < 0)
			return -1;
	return 0;
}

/* ---- records ------------------------------------------------------------- */

static int buf_reserve(struct rwexport_buf *b, size_t more)
{
	if (b->len + more <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

static void put16(char *p, size_t v)
{
	uint16_t x = (uint16_t)v;
	memcpy(p, &x, 2);
}

void rwexport_buf_add(struct rwexport_buf *b, const char *name, const struct label_ref *labels,
                      size_t n, int64_t ts_ms, double value)
{
	if (b->failed)
		return;
	size_t nname = strlen(name);
	if (nname > LABEL_MAX)
		nname = LABEL_MAX;
	size_t need = REC_HDR + 4 + 8 + nname;
	size_t nl = 1;
	for (size_t i = 0; i < n; i++) {
		if (!labels[i].value_len || labels[i].name_len > LABEL_MAX ||
		    labels[i].value_len > LABEL_MAX)
			continue;
		need += 4 + labels[i].name_len + labels[i].value_len;
		nl++;
	}
	if (buf_reserve(b, need) < 0) {
		b->failed = 1;
		return;
	}
	char *start = b->p + b->len, *p = start + 4;
	memcpy(p, &ts_ms, 8);
	memcpy(p + 8, &value, 8);
	put16(p + 16, nl);
	p += 18;
	put16(p, 8);
	memcpy(p + 2, "__name__", 8);
	put16(p + 10, nname);
	memcpy(p + 12, name, nname);
	p += 12 + nname;
	for (size_t i = 0; i < n; i++) {
		const struct label_ref *l = &labels[i];
		if (!l->value_len || l->name_len > LABEL_MAX || l->value_len > LABEL_MAX)
			continue;
		put16(p, l->name_len);
		memcpy(p + 2, l->name, l->name_len);
		p += 2 + l->name_len;
		put16(p, l->value_len);
		memcpy(p + 2, l->value, l->value_len);
		p += 2 + l->value_len;
	}
	uint32_t rl = (uint32_t)(p - start);
	memcpy(start, &rl, 4);
	b->len += rl;
	b->n++;
}

void rwexport_buf_free(struct rwexport_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

/* ---- encoding ------------------------------------------------------------- */

static uint16_t get16(const char *p)
{
	uint16_t x;
	memcpy(&x, p, 2);
	return x;
}

static uint64_t fnv(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
	return h;
}

struct enc_series {
	size_t rec;       /* offset of its first record */
	size_t nsamples, first;
};

static int cmp_label(const void *a, const void *b)
{
	const Prometheus__Label *x = *(Prometheus__Label *const *)a, *y = *(Prometheus__Label *const *)b;
	size_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
	int c = memcmp(x->name.data, y->name.data, n);
	if (c)
		return c;
	return x->name.len < y->name.len ? -1 : x->name.len > y->name.len;
}

/* Pass 1: how many records (at most max) and labels, and are they well
 * formed. Returns the record count, 0 on a malformed buffer. */
static size_t count_records(const char *p, size_t len, size_t max, size_t *nlabels)
{
	size_t k = 0, off = 0;
	*nlabels = 0;
	while (off < len && k < max) {
		uint32_t rl;
		if (len - off < REC_HDR)
			return 0;
		memcpy(&rl, p + off, 4);
		if (rl < REC_HDR || rl > len - off)
			return 0;
		*nlabels += get16(p + off + 20);
		off += rl;
		k++;
	}
	return k;
}

/* Pass 2: the k records' offsets (recs), their series (sidx) and the series
 * (ser: first record, samples; samples laid out by series from `first`), by
 * their label bytes. Returns the number of series; *used = bytes read. */
static size_t group_records(const char *p, size_t k, size_t *recs, size_t *sidx,
                            struct enc_series *ser, size_t *table, size_t tsize, size_t *used)
{
	size_t nser = 0, off = 0;
	memset(table, 0, tsize * sizeof *table);
	for (size_t i = 0; i < k; i++) {
		uint32_t rl;
		memcpy(&rl, p + off, 4);
		recs[i] = off;
		const char *lab = p + off + REC_HDR - 2;
		size_t llen = rl - (REC_HDR - 2);
		size_t slot = (size_t)fnv(lab, llen) & (tsize - 1);
		for (;; slot = (slot + 1) & (tsize - 1)) {
			size_t e = table[slot];
			if (!e) {
				ser[nser] = (struct enc_series){ .rec = off };
				table[slot] = ++nser;
				sidx[i] = nser - 1;
				break;
			}
			const char *o = p + ser[e - 1].rec;
			uint32_t orl;
			memcpy(&orl, o, 4);
			if (orl == rl && !memcmp(o + REC_HDR - 2, lab, llen)) {
				sidx[i] = e - 1;
				break;
			}
		}
		ser[sidx[i]].nsamples++;
		off += rl;
	}
	for (size_t s = 0, acc = 0; s < nser; s++) {
		ser[s].first = acc;
		acc += ser[s].nsamples;
		ser[s].nsamples = 0;
	}
	*used = off;
	return nser;
}

/* The labels of the series whose first record is at q, plus the external
 * labels it does not have, sorted by name, into lb/lbp. Returns how many. */
static size_t series_labels(const struct rwexport_config *c, const char *q, Prometheus__Label *lb,
                            Prometheus__Label **lbp)
{
	size_t nl = get16(q + 20), n = 0;
	q += REC_HDR;
	for (size_t j = 0; j < nl; j++, n++) {
		Prometheus__Label *l = &lb[n];
		prometheus__label__init(l);
		l->name.len = get16(q);
		l->name.data = (uint8_t *)(q + 2);
		q += 2 + l->name.len;
		l->value.len = get16(q);
		l->value.data = (uint8_t *)(q + 2);
		q += 2 + l->value.len;
		lbp[n] = l;
	}
	for (size_t j = 0; j < c->next; j++) {
		size_t nn = strlen(c->ext_names[j]);
		int present = 0;
		for (size_t m = 0; m < nl && !present; m++)
			present = lb[m].name.len == nn && !memcmp(lb[m].name.data, c->ext_names[j], nn);
		if (present || !*c->ext_values[j])
			continue; /* the series' own label wins, as in Prometheus */
		Prometheus__Label *l = &lb[n];
		prometheus__label__init(l);
		l->name.len = nn;
		l->name.data = (uint8_t *)c->ext_names[j];
		l->value.len = strlen(c->ext_values[j]);
		l->value.data = (uint8_t *)c->ext_values[j];
		lbp[n++] = l;
	}
	qsort(lbp, n, sizeof *lbp, cmp_label);
	return n;
}

/* Pack and snappy-compress a WriteRequest of nser series. */
static char *pack_request(Prometheus__TimeSeries **tsp, size_t nser, size_t *outlen)
{
	Prometheus__WriteRequest wr = PROMETHEUS__WRITE_REQUEST__INIT;
	wr.timeseries = tsp;
	wr.n_timeseries = nser;
	size_t rawlen = prometheus__write_request__get_packed_size(&wr);
	uint8_t *raw = malloc(rawlen ? rawlen : 1);
	if (!raw)
		return NULL;
	prometheus__write_request__pack(&wr, raw);
	size_t clen = snappy_max_compressed_length(rawlen);
	char *out = malloc(clen);
	if (out && snappy_compress((const char *)raw, rawlen, out, &clen) != SNAPPY_OK) {
		free(out);
		out = NULL;
	}
	free(raw);
	*outlen = clen;
	return out;
}

char *rwexport_encode(const struct rwexport_config *c, const char *p, size_t len, size_t max,
                      size_t *used, size_t *nsamples, size_t *outlen)
{
	*used = *nsamples = *outlen = 0;
	size_t nlabels_total;
	size_t k = count_records(p, len, max, &nlabels_total);
	if (k == 0)
		return NULL;
	size_t tsize = 16;
	while (tsize < 2 * k)
		tsize *= 2;
	size_t *table = malloc(tsize * sizeof *table); /* series index + 1, 0 = empty */
	size_t *recs = malloc(k * sizeof *recs), *sidx = malloc(k * sizeof *sidx);
	struct enc_series *ser = malloc(k * sizeof *ser);
	size_t lcap = nlabels_total + k * c->next + 1;
	Prometheus__TimeSeries *ts = calloc(k, sizeof *ts), **tsp = malloc(k * sizeof *tsp);
	Prometheus__Sample *sm = calloc(k, sizeof *sm), **smp = malloc(k * sizeof *smp);
	Prometheus__Label *lb = calloc(lcap, sizeof *lb), **lbp = malloc(lcap * sizeof *lbp);
	char *out = NULL;
	if (!table || !recs || !sidx || !ser || !ts || !tsp || !sm || !smp || !lb || !lbp)
		goto done;
	size_t off;
	size_t nser = group_records(p, k, recs, sidx, ser, table, tsize, &off);
	for (size_t i = 0; i < k; i++) {
		struct enc_series *s = &ser[sidx[i]];
		size_t at = s->first + s->nsamples++;
		prometheus__sample__init(&sm[at]);
		memcpy(&sm[at].timestamp, p + recs[i] + 4, 8);
		memcpy(&sm[at].value, p + recs[i] + 12, 8);
		smp[at] = &sm[at];
	}
	for (size_t s = 0, li = 0; s < nser; s++) {
		prometheus__time_series__init(&ts[s]);
		ts[s].samples = &smp[ser[s].first];
		ts[s].n_samples = ser[s].nsamples;
		ts[s].labels = &lbp[li];
		ts[s].n_labels = series_labels(c, p + ser[s].rec, &lb[li], &lbp[li]);
		li += ts[s].n_labels;
		tsp[s] = &ts[s];
	}
	out = pack_request(tsp, nser, outlen);
	if (out) {
		*used = off;
		*nsamples = k;
	}
done:
	free(table);
	free(recs);
	free(sidx);
	free(ser);
	free(ts);
	free(tsp);
	free(sm);
	free(smp);
	free(lb);
	free(lbp);
	return out;
}

int64_t rwexport_backoff_ms(unsigned failures, int64_t min_ms, int64_t max_ms, uint64_t rnd)
{
	if (min_ms < 1)
		min_ms = 1;
	if (max_ms < min_ms)
		max_ms = min_ms;
	return backoff_jitter_ms(failures, min_ms, max_ms, rnd);
}

/* ---- the sender ---------------------------------------------------------- */

struct request {
	char *body;
	size_t len, nsamples;
	struct request *next;
};

struct rwexport {
	struct rwexport_config cfg;
	pthread_t tid;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* under mu */
	struct rwexport_buf pending;
	struct request *head, *tail;  /* FIFO of encoded requests */
	size_t queued_bytes, queued_samples;
	/* taken from pending and being encoded (mu released): still waiting,
	 * so still counted in the queue gauges */
	size_t encoding_bytes, encoding_samples;
	int stop, kick;
	struct rwexport_stats st;
	int64_t drop_logged_ms;
	uint64_t drops_since_log;
	/* sender thread only */
	CURL *curl;
	struct curl_slist *hdr;
	char errbuf[CURL_ERROR_SIZE];
	char resp[RESP_MAX];
	size_t resp_len;
	uint64_t rng;
	_Atomic int64_t deadline_ms;  /* stopping: give up sending at this time (monotonic) */
};

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Count dropped samples and log at most once every 10 s. Under mu. */
static void note_drop(struct rwexport *x, uint64_t n, const char *reason)
{
	x->st.samples_dropped += n;
	x->drops_since_log += n;
	int64_t now = mono_ms();
	if (now - x->drop_logged_ms >= 10000) {
		log_msg(LOG_WARN, "event=export_dropped samples=%" PRIu64 " reason=%s url=%s",
		        x->drops_since_log, reason, x->cfg.url);
		x->drops_since_log = 0;
		x->drop_logged_ms = now;
	}
}

size_t rwexport_submit(struct rwexport *x, struct rwexport_buf *b)
{
	size_t n = b->n, dropped = 0;
	if (!x || !n) {
		b->len = b->n = 0;
		b->failed = 0;
		return 0;
	}
	lockrank_lock(&x->mu, LOCK_RANK_RWEXPORT);
	x->st.samples_in += n;
	if (b->failed) {
		note_drop(x, n, "out_of_memory");
		dropped = n;
	} else if ((int64_t)(x->pending.len + b->len) > x->cfg.max_pending_bytes ||
	           buf_reserve(&x->pending, b->len) < 0) {
		note_drop(x, n, "pending_full");
		dropped = n;
	} else {
		memcpy(x->pending.p + x->pending.len, b->p, b->len);
		x->pending.len += b->len;
		x->pending.n += n;
		if (x->pending.n >= x->cfg.max_samples_per_send)
			pthread_cond_signal(&x->cv);
	}
	lockrank_unlock(&x->mu);
	b->len = b->n = 0;
	b->failed = 0;
	return dropped;
}

int rwexport_add(struct rwexport *x, const char *name, const struct label_ref *labels, size_t n,
                 int64_t ts_ms, double value)
{
	struct rwexport_buf b = { 0 };
	rwexport_buf_add(&b, name, labels, n, ts_ms, value);
	size_t d = rwexport_submit(x, &b);
	rwexport_buf_free(&b);
	return d ? -1 : 0;
}

void rwexport_flush(struct rwexport *x)
{
	if (!x)
		return;
	lockrank_lock(&x->mu, LOCK_RANK_RWEXPORT);
	x->kick = 1;
	pthread_cond_signal(&x->cv);
	lockrank_unlock(&x->mu);
}

void rwexport_get_stats(struct rwexport *x, struct rwexport_stats *st)
{
	memset(st, 0, sizeof *st);
	if (!x)
		return;
	lockrank_lock(&x->mu, LOCK_RANK_RWEXPORT);
	*st = x->st;
	st->queue_bytes = x->queued_bytes + x->encoding_bytes + x->pending.len;
	st->queue_samples = x->queued_samples + x->encoding_samples + x->pending.n;
	lockrank_unlock(&x->mu);
}

/* Encode the pending buffer into requests appended to the queue, dropping the
 * oldest requests past max_queue_bytes. Called with mu held; releases it
 * while encoding. */
static void encode_pending(struct rwexport *x)
{
	while (x->pending.n > 0) {
		struct rwexport_buf work = x->pending;
		memset(&x->pending, 0, sizeof x->pending);
		x->encoding_bytes = work.len;
		x->encoding_samples = work.n;
		lockrank_unlock(&x->mu);
		size_t off = 0;
		struct request *first = NULL, *last = NULL;
		size_t bytes = 0, samples = 0, lost = 0;
		while (off < work.len) {
			size_t used, ns, olen;
			char *body = rwexport_encode(&x->cfg, work.p + off, work.len - off,
			                             x->cfg.max_samples_per_send, &used, &ns, &olen);
			struct request *r = body ? malloc(sizeof *r) : NULL;
			if (!r) {
				free(body);
				/* count what is left as lost: out of memory or a corrupt buffer */
				lost = work.n - samples;
				break;
			}
			*r = (struct request){ .body = body, .len = olen, .nsamples = ns };
			if (last)
				last->next = r;
			else
				first = r;
			last = r;
			bytes += olen;
			samples += ns;
			off += used;
		}
		rwexport_buf_free(&work);
		lockrank_lock(&x->mu, LOCK_RANK_RWEXPORT);
		x->encoding_bytes = x->encoding_samples = 0;
		if (lost)
			note_drop(x, lost, "encode_failed");
		if (first) {
			if (x->tail)
				x->tail->next = first;
			else
				x->head = first;
			x->tail = last;
			x->queued_bytes += bytes;
			x->queued_samples += samples;
		}
		/* the bound: drop the oldest requests (never the last one) */
		while ((int64_t)x->queued_bytes > x->cfg.max_queue_bytes && x->head &&
		       x->head != x->tail) {
			struct request *r = x->head;
			x->head = r->next;
			x->queued_bytes -= r->len;
			x->queued_samples -= r->nsamples;
			note_drop(x, r->nsamples, "queue_full");
			free(r->body);
			free(r);
		}
	}
}

static size_t write_cb(char *p, size_t sz, size_t nm, void *ud)
{
	struct rwexport *x = ud;
	size_t len = sz * nm, room = sizeof x->resp - 1 - x->resp_len;
	size_t take = len < room ? len : room;
	memcpy(x->resp + x->resp_len, p, take);
	x->resp_len += take;
	x->resp[x->resp_len] = '\0';
	return len;
}

static int progress_cb(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct rwexport *x = ud;
	/* abort an in-flight request only once the drain time is over */
	return x->deadline_ms && mono_ms() > x->deadline_ms;
}

enum post_result { POST_OK, POST_RETRY, POST_REJECTED };

static enum post_result post(struct rwexport *x, const struct request *r, long *status)
{
	x->resp_len = 0;
	x->resp[0] = '\0';
	x->errbuf[0] = '\0';
	curl_easy_setopt(x->curl, CURLOPT_POSTFIELDS, r->body);
	curl_easy_setopt(x->curl, CURLOPT_POSTFIELDSIZE, (long)r->len);
	CURLcode rc = curl_easy_perform(x->curl);
	long code = 0;
	curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &code);
	*status = code;
	if (rc == CURLE_OK && code >= 200 && code < 300)
		return POST_OK;
	for (char *s = x->resp; *s; s++)
		if (*s == '"' || (unsigned char)*s < ' ')
			*s = ' ';
	const char *e = rc != CURLE_OK ? (x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc)) : x->resp;
	if (rc == CURLE_OK && code >= 400 && code < 500 && code != 408 && code != 429) {
		log_msg(LOG_ERROR,
		        "event=export_rejected url=%s status=%ld samples=%zu error=\"%.300s\" retry=no",
		        x->cfg.url, code, r->nsamples, e);
		return POST_REJECTED;
	}
	log_msg(LOG_WARN, "event=export_failed url=%s status=%ld samples=%zu error=\"%.300s\"",
	        x->cfg.url, code, r->nsamples, e);
	return POST_RETRY;
}

/* Wait on the condition variable until ms (monotonic) or a kick. Under mu. */
static void wait_until(struct rwexport *x, int64_t until_ms)
{
	struct timespec ts = { .tv_sec = until_ms / 1000, .tv_nsec = (until_ms % 1000) * 1000000 };
	pthread_cond_timedwait(&x->cv, &x->mu, &ts);
}

static void *sender_main(void *arg)
{
	struct rwexport *x = arg;
	unsigned failures = 0;
	int64_t retry_at = 0, last_flush = mono_ms();
	lockrank_lock(&x->mu, LOCK_RANK_RWEXPORT);
	for (;;) {
		int64_t mnow = mono_ms();
		/* encode when a request's worth is pending, when the flush interval
		 * passed, when kicked, or when stopping */
		if (x->pending.n >= x->cfg.max_samples_per_send || x->kick || x->stop ||
		    mnow - last_flush >= x->cfg.flush_ms) {
			x->kick = 0;
			last_flush = mnow;
			encode_pending(x);
		}
		if (x->stop && (!x->head || mono_ms() > x->deadline_ms))
			break;
		if (x->head && mono_ms() >= retry_at) {
			struct request *r = x->head;
			lockrank_unlock(&x->mu);
			long status = 0;
			enum post_result res = post(x, r, &status);
			lockrank_lock(&x->mu, LOCK_RANK_RWEXPORT);
			if (res == POST_RETRY) {
				x->st.requests_failed++;
				failures++;
				x->rng = x->rng * 6364136223846793005ULL + 1442695040888963407ULL;
				retry_at = mono_ms() + rwexport_backoff_ms(failures, x->cfg.min_backoff_ms,
				                                         x->cfg.max_backoff_ms, x->rng >> 33);
				continue;
			}
			if (failures)
				log_msg(LOG_INFO, "event=export_recovered url=%s failures=%u queued_samples=%zu",
				        x->cfg.url, failures, x->queued_samples);
			failures = 0;
			retry_at = 0;
			x->head = r->next;
			if (!x->head)
				x->tail = NULL;
			x->queued_bytes -= r->len;
			x->queued_samples -= r->nsamples;
			if (res == POST_OK) {
				x->st.requests_sent++;
				x->st.samples_sent += r->nsamples;
				x->st.last_success_ms = now_ms();
			} else {
				x->st.requests_failed++;
				x->st.samples_rejected += r->nsamples;
				note_drop(x, r->nsamples, "rejected");
			}
			free(r->body);
			free(r);
			continue;
		}
		int64_t until = last_flush + x->cfg.flush_ms;
		if (x->head && retry_at < until)
			until = retry_at;
		if (x->stop && x->deadline_ms < until)
			until = x->deadline_ms;
		if (until > mono_ms())
			wait_until(x, until);
	}
	/* stopped: whatever is left is lost */
	size_t left = x->queued_samples + x->pending.n;
	while (x->head) {
		struct request *r = x->head;
		x->head = r->next;
		free(r->body);
		free(r);
	}
	x->tail = NULL;
	x->queued_bytes = x->queued_samples = 0;
	x->st.samples_dropped += left;
	rwexport_buf_free(&x->pending);
	log_msg(left ? LOG_WARN : LOG_INFO,
	        "event=export_stopped url=%s sent=%" PRIu64 " dropped=%" PRIu64 " unsent=%zu",
	        x->cfg.url, x->st.samples_sent, x->st.samples_dropped, left);
	lockrank_unlock(&x->mu);
	return NULL;
}

static void free_all(struct rwexport *x)
{
	if (x->curl)
		curl_easy_cleanup(x->curl);
	curl_slist_free_all(x->hdr);
	rwexport_buf_free(&x->pending);
	while (x->head) {
		struct request *r = x->head;
		x->head = r->next;
		free(r->body);
		free(r);
	}
	pthread_mutex_destroy(&x->mu);
	pthread_cond_destroy(&x->cv);
	rwexport_config_free(&x->cfg);
	free(x);
}

struct rwexport *rwexport_start(const struct rwexport_config *c, char *err, size_t errlen)
{
	if (!c->url) {
		snprintf(err, errlen, "export: no url configured");
		return NULL;
	}
	struct rwexport *x = calloc(1, sizeof *x);
	if (!x) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&x->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&x->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (config_copy(&x->cfg, c) < 0) {
		snprintf(err, errlen, "out of memory");
		free_all(x);
		return NULL;
	}
	x->rng = (uint64_t)now_ms() ^ (uint64_t)(uintptr_t)x;
	x->hdr = curl_slist_append(NULL, "Content-Type: application/x-protobuf");
	x->hdr = curl_slist_append(x->hdr, "Content-Encoding: snappy");
	x->hdr = curl_slist_append(x->hdr, "X-Prometheus-Remote-Write-Version: 0.1.0");
	x->hdr = curl_slist_append(x->hdr, "User-Agent: foreshock/" PACKAGE_VERSION);
	x->hdr = curl_slist_append(x->hdr, "Expect:");
	for (size_t i = 0; i < x->cfg.nheaders; i++)
		x->hdr = curl_slist_append(x->hdr, x->cfg.headers[i]);
	x->curl = curl_easy_init();
	if (!x->curl || !x->hdr) {
		snprintf(err, errlen, "export: cannot initialise libcurl");
		free_all(x);
		return NULL;
	}
	CURL *h = x->curl;
	curl_easy_setopt(h, CURLOPT_URL, x->cfg.url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hdr);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)x->cfg.timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)x->cfg.timeout_ms);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress_cb);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
	if (pthread_create(&x->tid, NULL, sender_main, x) != 0) {
		snprintf(err, errlen, "export: cannot start the sender thread: %s", strerror(errno));
		free_all(x);
		return NULL;
	}
	x->started = 1;
	log_msg(LOG_INFO,
	        "event=export_start url=%s max_queue_bytes=%lld max_samples_per_send=%zu "
	        "external_labels=%zu",
	        x->cfg.url, (long long)x->cfg.max_queue_bytes, x->cfg.max_samples_per_send,
	        x->cfg.next);
	return x;
}

void rwexport_stop(struct rwexport *x)
{
	if (!x)
		return;
	lockrank_lock(&x->mu, LOCK_RANK_RWEXPORT);
	x->stop = 1;
	x->deadline_ms = mono_ms() + x->cfg.drain_ms;
	if (!x->deadline_ms)
		x->deadline_ms = 1;
	pthread_cond_signal(&x->cv);
	lockrank_unlock(&x->mu);
	if (x->started)
		pthread_join(x->tid, NULL);
	free_all(x);
}
