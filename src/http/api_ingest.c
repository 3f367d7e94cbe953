/* http/api_ingest.c — the write endpoints: InfluxDB line protocol (/write,
 * /api/v2/write), JSON import (/api/v1/import), Prometheus text import
 * (/api/v1/import/prometheus) and remote_write (/api/v1/write).
 *
 * Every endpoint decodes its body with a pure decoder (ingest_*.h) whose
 * callbacks feed one engine batch (one per request) through a common sink.
 * The sink classifies engine results: out-of-order and duplicate samples are
 * skipped and counted, other rejections (cardinality, labels, non-finite)
 * fail their line and are reported with its number. Response: 204 when
 * nothing was rejected, else 400 with the partial-write body (docs/api.md).
 */
#include "http/api.h"
#include "http/handlers.h"

#include <strings.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "engine/engine.h"
#include "ingest/json.h"
#include "ingest/line.h"
#include "ingest/prom.h"
#include "ingest/prw.h"
#include "util/log.h"
#include "store/store.h"

#define MAX_ERROR_ENTRIES 20

/* One listed error. Samples are staged while the body is decoded and run
 * through the engine afterwards (engine_batch_commit), so the engine's
 * rejections arrive after the decoder's: each error carries the position it
 * would have had if every sample had been processed as it was decoded
 * (2 x the staging index, + 1 for the engine's verdict on that sample; seq
 * breaks ties), and the response lists the first MAX_ERROR_ENTRIES in that
 * order. */
struct err_entry {
	uint64_t pos;
	size_t seq;
	char *json;               /* {"line":..,"error":..} */
};

struct sink {
	struct api_ctx *api;
	struct engine_batch batch;
	int64_t now_ms;
	size_t skipped_ooo, skipped_dup, skipped_stale;
	size_t errors_total;      /* error reports, including those not listed */
	size_t seq;
	struct err_entry errs[MAX_ERROR_ENTRIES];
	size_t nlisted;
	int oom;
	/* the staged samples (engine_batch_stage index k), in runs: a record
	 * per line (its fields are consecutive) or per sample with a path */
	size_t nstaged;
	struct srec *recs;
	size_t nrecs, caprecs;
	char *paths;
	size_t npaths, cappaths;
	size_t refused;           /* staged samples the engine refused (not skips) */
	struct label_ref *refs;   /* /write: labels of the current point */
	size_t refs_cap;
	char *scratch;            /* /write: sanitised names of the current point */
	size_t scratch_cap;
	uintptr_t body0, body16;  /* /write: the body's first byte, and the last at
	                           * which 16 bytes can be read (name_copy) */
};

/* Staged samples first..(the next record's first - 1), all from one line
 * and with one path. */
struct srec {
	size_t first;
	size_t line;
	uint32_t pathoff;         /* into paths; UINT32_MAX = none */
	uint8_t flags;            /* SF_* */
};

#define SF_LINE_COUNTED 1     /* its line was already counted as rejected */
#define SF_REFUSED 2          /* the engine refused one of its samples */

static void sink_init(struct sink *s, struct api_ctx *api, int64_t now_ms)
{
	memset(s, 0, sizeof *s);
	s->api = api;
	s->now_ms = now_ms;
}

static void sink_free(struct sink *s)
{
	for (size_t i = 0; i < s->nlisted; i++)
		free(s->errs[i].json);
	free(s->recs);
	free(s->paths);
	free(s->refs);
	free(s->scratch);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	return array_grow(p, cap, need, elem, 16);
}

static int entry_before(const struct err_entry *a, uint64_t pos, size_t seq)
{
	return a->pos < pos || (a->pos == pos && a->seq < seq);
}

/* Record one error entry at position pos (line 0 = whole body; path may be
 * NULL). Keeps the MAX_ERROR_ENTRIES first by position. */
static void sink_error_at(struct sink *s, uint64_t pos, size_t line, const char *path,
                          const char *reason)
{
	s->errors_total++;
	size_t seq = s->seq++;
	size_t slot = s->nlisted;
	if (s->nlisted == MAX_ERROR_ENTRIES) {
		slot = 0; /* the last in order, to be replaced if the new one is before it */
		for (size_t i = 1; i < s->nlisted; i++)
			if (entry_before(&s->errs[slot], s->errs[i].pos, s->errs[i].seq))
				slot = i;
		if (entry_before(&s->errs[slot], pos, seq))
			return;
	}
	struct obuf b;
	obuf_init(&b, 0);
	obuf_printf(&b, "{\"line\":%zu", line);
	if (path) {
		obuf_puts(&b, ",\"path\":");
		obuf_json_str(&b, path, strlen(path));
	}
	obuf_puts(&b, ",\"error\":");
	obuf_json_str(&b, reason, strlen(reason));
	obuf_add(&b, "}", 1);
	char *json = b.failed ? NULL : obuf_steal(&b, NULL);
	obuf_free(&b);
	if (!json) {
		s->oom = 1;
		return;
	}
	if (slot < s->nlisted)
		free(s->errs[slot].json);
	else
		s->nlisted++;
	s->errs[slot] = (struct err_entry){ pos, seq, json };
}

/* An error found while decoding: it comes after every sample staged so far. */
static void sink_error(struct sink *s, size_t line, const char *path, const char *reason)
{
	sink_error_at(s, 2 * (uint64_t)s->nstaged, line, path, reason);
}

/* The record of staged sample k (binary search: only refusals ask). */
static struct srec *rec_of(struct sink *s, size_t k)
{
	size_t lo = 0, hi = s->nrecs; /* recs[lo].first <= k < recs[hi].first */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->recs[mid].first <= k)
			lo = mid;
		else
			hi = mid;
	}
	return &s->recs[lo];
}

/* Stage one sample for the engine: with labels, or (labels NULL) with the
 * batch's current tag set (engine_batch_stage_tags) and the metric name
 * name[0..n). Returns 0 if staged, 1 if refused at once (non-finite value,
 * too many labels; error recorded). The engine's own verdict comes in
 * sink_commit(). */
static int sink_stage(struct sink *s, const struct label_ref *labels, size_t n,
                      const char *name, int64_t ts_ms, double value, size_t line,
                      const char *path)
{
	char err[320];
	err[0] = 0;
	size_t pl = path ? strlen(path) + 1 : 0;
	/* another field of the line of the last record: no new record */
	struct srec *r = s->nrecs ? &s->recs[s->nrecs - 1] : NULL;
	int same = r && !path && r->line == line && r->pathoff == UINT32_MAX;
	if (!same &&
	    (grow((void **)&s->recs, &s->caprecs, s->nrecs + 1, sizeof *s->recs) < 0 ||
	     (path && (s->npaths + pl > UINT32_MAX ||
	               grow((void **)&s->paths, &s->cappaths, s->npaths + pl, 1) < 0)))) {
		sink_error(s, line, path, "out of memory");
		return 1;
	}
	int rc = labels ? engine_batch_stage(&s->batch, labels, n, ts_ms, value, err, sizeof err)
	                : engine_batch_stage_named(&s->batch, name, n, ts_ms, value, err, sizeof err);
	if (rc != 0) {
		if (!err[0])
			snprintf(err, sizeof err, "sample rejected (%s)",
			         selfstats_reject_name((enum reject_reason)(rc - 1)));
		if (path) {
			char full[400];
			snprintf(full, sizeof full, "%s at %s", err, path);
			sink_error(s, line, path, full);
		} else {
			sink_error(s, line, NULL, err);
		}
		return 1;
	}
	size_t k = s->nstaged++;
	if (same)
		return 0;
	r = &s->recs[s->nrecs++];
	*r = (struct srec){ k, line, UINT32_MAX, 0 };
	if (path) {
		memcpy(s->paths + s->npaths, path, pl);
		r->pathoff = (uint32_t)s->npaths;
		s->npaths += pl;
	}
	return 0;
}

static int sink_add(struct sink *s, const struct label_ref *labels, size_t n, int64_t ts_ms,
                    double value, size_t line, const char *path)
{
	return sink_stage(s, labels, n, NULL, ts_ms, value, line, path);
}

/* The engine's verdict on staged sample k (engine_reject_fn). */
static void sink_refused(void *ctx, size_t k, int rc, const char *err)
{
	struct sink *s = ctx;
	if (rc - 1 == REJ_OUT_OF_ORDER) {
		s->skipped_ooo++;
		return;
	}
	if (rc - 1 == REJ_DUPLICATE) {
		s->skipped_dup++;
		return;
	}
	s->refused++;
	struct srec *r = rec_of(s, k);
	r->flags |= SF_REFUSED;
	const char *path = r->pathoff != UINT32_MAX ? s->paths + r->pathoff : NULL;
	uint64_t pos = 2 * (uint64_t)k + 1;
	if (path) {
		char full[400];
		snprintf(full, sizeof full, "%s at %s", err, path);
		sink_error_at(s, pos, r->line, path, full);
	} else {
		sink_error_at(s, pos, r->line, NULL, err);
	}
}

/* Ends the engine batch (its alert transitions are written to the store).
 * If they could not be made durable (the store is failing), the request is
 * answered 503 with the store's fault and 1 is returned: the sender retries,
 * and the samples already folded in are then skipped as duplicates, while
 * the transitions stay queued and are written once the store recovers. */
static int sink_end(struct sink *s, struct api_response *resp)
{
	if (engine_batch_end(&s->batch) == 0)
		return 0;
	char why[256] = "";
	if (s->api->store)
		store_healthy(s->api->store, why, sizeof why);
	api_error(resp, 503, "unavailable",
	          "alert transitions could not be made durable (%s); retry later",
	          why[0] ? why : "store error");
	api_add_header(resp, "Retry-After", "1");
	return 1;
}

/* Runs the staged samples through the engine. Returns the number refused
 * (out-of-order and duplicate samples are skips, not refusals). */
static size_t sink_commit(struct sink *s)
{
	engine_batch_commit(&s->batch, sink_refused, s);
	return s->refused;
}

/* Lines with a sample the engine refused that the decoder had counted as
 * accepted (line protocol: a line is rejected if any of its fields is). */
static size_t refused_lines(const struct sink *s)
{
	size_t n = 0;
	for (size_t i = 0; i < s->nrecs;) {
		size_t e = i;
		int refused = 0, counted = 0;
		while (e < s->nrecs && s->recs[e].line == s->recs[i].line) {
			refused |= s->recs[e].flags & SF_REFUSED;
			counted |= s->recs[e].flags & SF_LINE_COUNTED;
			e++;
		}
		if (refused && !counted)
			n++;
		i = e;
	}
	return n;
}

static void count_parse_rejects(struct sink *s, size_t n)
{
	if (s->api->stats && n)
		atomic_fetch_add_explicit(&s->api->stats->samples_rejected[REJ_PARSE], n,
		                          memory_order_relaxed);
}

/* Answer: 204 (nothing rejected) or 400 with the partial-write body. unit is
 * "lines" or "samples". */
static void sink_respond(struct sink *s, struct api_response *resp, size_t accepted,
                         size_t rejected, const char *unit)
{
	if (s->oom) {
		api_error(resp, 500, "internal", "out of memory");
		return;
	}
	if (rejected == 0 && s->errors_total == 0) {
		resp->status = 204;
		api_add_header(resp, "X-Foreshock-Samples-Accepted", "%zu", s->batch.res.accepted);
		api_add_header(resp, "X-Foreshock-Skipped-Out-Of-Order", "%zu", s->skipped_ooo);
		api_add_header(resp, "X-Foreshock-Skipped-Duplicate", "%zu", s->skipped_dup);
		if (s->skipped_stale)
			api_add_header(resp, "X-Foreshock-Skipped-Stale", "%zu", s->skipped_stale);
		return;
	}
	if (rejected == 0) /* errors without a counted rejection: count them */
		rejected = s->errors_total;
	struct obuf b;
	obuf_init(&b, 0);
	obuf_printf(&b,
	            "{\"status\":\"error\",\"errorType\":\"bad_data\","
	            "\"error\":\"partial write: %zu %s rejected\",\"accepted\":%zu,\"rejected\":%zu,"
	            "\"samples_accepted\":%zu,\"skipped_out_of_order\":%zu,\"skipped_duplicate\":%zu,",
	            rejected, rejected == 1 ? (strcmp(unit, "lines") ? "sample" : "line") : unit,
	            accepted, rejected, s->batch.res.accepted, s->skipped_ooo, s->skipped_dup);
	if (s->skipped_stale)
		obuf_printf(&b, "\"skipped_stale\":%zu,", s->skipped_stale);
	obuf_printf(&b, "\"errors_total\":%zu,\"errors\":[", s->errors_total);
	/* listed in position order (insertion sort: at most MAX_ERROR_ENTRIES) */
	for (size_t i = 1; i < s->nlisted; i++) {
		struct err_entry x = s->errs[i];
		size_t j = i;
		while (j > 0 && !entry_before(&s->errs[j - 1], x.pos, x.seq)) {
			s->errs[j] = s->errs[j - 1];
			j--;
		}
		s->errs[j] = x;
	}
	for (size_t i = 0; i < s->nlisted; i++) {
		if (i)
			obuf_add(&b, ",", 1);
		obuf_puts(&b, s->errs[i].json);
	}
	obuf_puts(&b, "]}\n");
	api_send(resp, 400, "application/json", &b);
}

/* ------------------------------------------------------------------------ */
/* bodies */

static int ieq(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

/* Inflate a gzip or zlib body into a buffer of at most max bytes. Returns 0,
 * -1 (corrupt, reason in err) or -2 (too large). */
static int inflate_body(const char *in, size_t inlen, size_t max, char **out, size_t *outlen,
                        char *err, size_t errlen)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	if (inflateInit2(&z, 15 + 32) != Z_OK) { /* auto-detect gzip/zlib header */
		snprintf(err, errlen, "cannot initialise zlib");
		return -1;
	}
	size_t cap = inlen * 4 + 1024;
	if (cap > max + 1)
		cap = max + 1;
	char *buf = malloc(cap + 1);
	if (!buf) {
		inflateEnd(&z);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)inlen; /* bodies are capped well below 4 GiB */
	size_t len = 0;
	int rc;
	for (;;) {
		if (len == cap) {
			if (cap > max) {
				free(buf);
				inflateEnd(&z);
				return -2;
			}
			size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			char *nb = realloc(buf, ncap + 1);
			if (!nb) {
				free(buf);
				inflateEnd(&z);
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			buf = nb;
			cap = ncap;
		}
		z.next_out = (Bytef *)buf + len;
		z.avail_out = (uInt)(cap - len);
		rc = inflate(&z, Z_NO_FLUSH);
		len = cap - z.avail_out;
		if (rc == Z_STREAM_END) {
			/* concatenated gzip members: continue with the next one */
			if (z.avail_in > 0 && inflateReset(&z) == Z_OK)
				continue;
			break;
		}
		if (rc == Z_BUF_ERROR && z.avail_in == 0) {
			free(buf);
			inflateEnd(&z);
			snprintf(err, errlen, "truncated compressed body");
			return -1;
		}
		if (rc != Z_OK && rc != Z_BUF_ERROR) {
			snprintf(err, errlen, "%s", z.msg ? z.msg : "corrupt compressed body");
			free(buf);
			inflateEnd(&z);
			return -1;
		}
	}
	inflateEnd(&z);
	if (len > max) {
		free(buf);
		return -2;
	}
	buf[len] = 0;
	*out = buf;
	*outlen = len;
	return 0;
}

/* The request body after Content-Encoding. Sets *owned when a buffer was
 * allocated (caller frees). Returns 0, or -1 with resp set. */
static int request_body(struct api_ctx *api, const struct api_request *req,
                        struct api_response *resp, const char **body, size_t *len,
                        char **owned)
{
	const char *enc = req->content_encoding;
	*owned = NULL;
	*body = req->body ? req->body : "";
	*len = req->body_len;
	if (!enc || !*enc || ieq(enc, "identity"))
		return 0;
	if (!ieq(enc, "gzip") && !ieq(enc, "x-gzip") && !ieq(enc, "deflate")) {
		api_error(resp, 415, "unsupported_media_type",
		          "unsupported content encoding '%.32s' (use gzip or identity)", enc);
		return -1;
	}
	char err[160];
	size_t max = api->max_body ? api->max_body : (size_t)32 << 20;
	int rc = inflate_body(*body, *len, max, owned, len, err, sizeof err);
	if (rc == -2) {
		if (api->stats)
			atomic_fetch_add_explicit(&api->stats->bodies_too_large, 1,
			                          memory_order_relaxed);
		api_error(resp, 413, "too_large",
		          "request body too large: more than %zu bytes after decompression", max);
		return -1;
	}
	if (rc < 0) {
		api_error(resp, 400, "bad_data", "invalid %s body: %s", enc, err);
		return -1;
	}
	*body = *owned;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* line protocol */

/* Prometheus names: [a-zA-Z_:][a-zA-Z0-9_:]* for metrics (no ':' in label
 * names); anything else becomes '_', a leading digit gets a '_' prefix. */
static const uint8_t name_ok[256] = {
	['a' ... 'z'] = 3, ['A' ... 'Z'] = 3, ['0' ... '9'] = 3, ['_'] = 3, [':'] = 1,
}; /* bit 0: in a metric name, bit 1: in a label name too */

static size_t sanitize(char *dst, const char *src, size_t n, int allow_colon)
{
	size_t k = 0;
	unsigned bit = allow_colon ? 1 : 2;
	if (n == 0 || (src[0] >= '0' && src[0] <= '9'))
		dst[k++] = '_';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[k++] = (name_ok[c] & bit) ? (char)c : '_';
	}
	return k;
}

#ifdef __SSE2__
#include <emmintrin.h>
/* Bit i set when byte i of the 16 at p belongs in a name: [a-zA-Z0-9_], and
 * ':' too when allow_colon (name_ok[]). Bytes >= 0x80 compare negative. */
static inline unsigned name_ok16(const char *p, int allow_colon)
{
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
	__m128i lo = _mm_or_si128(v, _mm_set1_epi8(0x20));
	__m128i m = _mm_and_si128(_mm_cmpgt_epi8(lo, _mm_set1_epi8('a' - 1)),
	                          _mm_cmplt_epi8(lo, _mm_set1_epi8('z' + 1)));
	m = _mm_or_si128(m, _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
	                                  _mm_cmplt_epi8(v, _mm_set1_epi8(allow_colon ? ':' + 1
	                                                                             : '9' + 1))));
	m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8('_')));
	return (unsigned)_mm_movemask_epi8(m);
}
#endif

/* sanitize() (prefix 0: no '_' before a leading digit, as after the '_' of
 * a field key), for a name of the body: when it is at most 16 bytes, 16
 * bytes can be read at src within the body, and every byte is already
 * allowed, 16 bytes are copied at once (dst has room for 16). */
static inline size_t name_copy(const struct sink *s, char *dst, const char *src, size_t n,
                               int allow_colon, int prefix)
{
#ifdef __SSE2__
	uintptr_t a = (uintptr_t)src;
	if (n <= 16 && a >= s->body0 && a <= s->body16 &&
	    !(prefix && (n == 0 || (src[0] >= '0' && src[0] <= '9')))) {
		unsigned want = (1u << n) - 1;
		if ((name_ok16(src, allow_colon) & want) == want) {
			_mm_storeu_si128((__m128i *)(void *)dst,
			                 _mm_loadu_si128((const __m128i *)(const void *)src));
			return n;
		}
	}
#endif
	if (prefix)
		return sanitize(dst, src, n, allow_colon);
	unsigned bit = allow_colon ? 1 : 2;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = (name_ok[c] & bit) ? (char)c : '_';
	}
	return n;
}

static int floor_div(int64_t a, int64_t b, int64_t *q)
{
	int64_t r = a / b;
	if ((a % b != 0) && ((a < 0) != (b < 0)))
		r--;
	*q = r;
	return 0;
}

/* Stage field value v of a line whose tag set is staged
 * (engine_batch_stage_tags), named name[0..len): sink_stage() for a line
 * protocol field, whose record the caller made room for. */
static int stage_field(struct sink *s, const char *name, size_t len, int64_t ts_ms, double v,
                       size_t line)
{
	char err[320];
	err[0] = 0;
	int rc = engine_batch_stage_named(&s->batch, name, len, ts_ms, v, err, sizeof err);
	if (rc != 0) {
		if (!err[0])
			snprintf(err, sizeof err, "sample rejected (%s)",
			         selfstats_reject_name((enum reject_reason)(rc - 1)));
		sink_error(s, line, NULL, err);
		return 1;
	}
	size_t k = s->nstaged++;
	struct srec *r = s->nrecs ? &s->recs[s->nrecs - 1] : NULL;
	if (!r || r->line != line || r->pathoff != UINT32_MAX)
		s->recs[s->nrecs++] = (struct srec){ k, line, UINT32_MAX, 0 };
	return 0;
}

static int lp_on_point(void *vctx, const struct lp_point *pt, size_t lineno)
{
	struct sink *s = vctx;
	size_t maxf = 0, tagk = 0;
	for (size_t i = 0; i < pt->nfields; i++)
		if (pt->fields[i].key.len > maxf)
			maxf = pt->fields[i].key.len;
	for (size_t i = 0; i < pt->ntags; i++)
		tagk += pt->tags[i].key.len + 1;
	/* + 16: name_copy() writes 16 bytes for a name of up to 16 */
	size_t need = pt->name.len + maxf + 4 + tagk + 16;
	if (grow((void **)&s->scratch, &s->scratch_cap, need, 1) ||
	    grow((void **)&s->refs, &s->refs_cap, pt->ntags + 1, sizeof *s->refs) ||
	    grow((void **)&s->recs, &s->caprecs, s->nrecs + 1, sizeof *s->recs)) {
		sink_error(s, lineno, NULL, "out of memory");
		return 1;
	}
	/* scratch: [tag keys...][metric name] — the name is rebuilt per field */
	char *w = s->scratch;
	for (size_t i = 0; i < pt->ntags; i++) {
		size_t l = name_copy(s, w, pt->tags[i].key.p, pt->tags[i].key.len, 0, 1);
		s->refs[i + 1] = (struct label_ref){ w, l, pt->tags[i].value.p, pt->tags[i].value.len };
		w += l;
	}
	size_t base = name_copy(s, w, pt->name.p, pt->name.len, 1, 1);
	int64_t ts_ms;
	floor_div(pt->time_ns, 1000000, &ts_ms);
	/* several fields: the tags are hashed and staged once for the line, each
	 * field only adds its name (the same samples as staging each field with
	 * every label); if the engine refuses the tag set (too many labels), each
	 * field is staged whole and refused as such */
	char terr[320];
	int shared = pt->nfields > 1 &&
	             engine_batch_stage_tags(&s->batch, s->refs + 1, pt->ntags, terr, sizeof terr) == 0;
	int rejected = 0;
	size_t ignored = 0, first = s->nstaged;
	for (size_t i = 0; i < pt->nfields; i++) {
		const struct lp_field *f = &pt->fields[i];
		double v;
		switch (f->type) {
		case LP_FLOAT:
			v = f->v.f;
			break;
		case LP_INT:
			v = (double)f->v.i;
			break;
		case LP_UINT:
			v = (double)f->v.u;
			break;
		default:
			ignored++;
			continue;
		}
		size_t l = base;
		if (!(f->key.len == 5 && !memcmp(f->key.p, "value", 5))) {
			w[l++] = '_';
			/* field keys may start with a digit: no '_' prefix after '_' */
			l += name_copy(s, w + l, f->key.p, f->key.len, 1, 0);
		}
		if (shared) {
			rejected |= stage_field(s, w, l, ts_ms, v, lineno);
		} else {
			s->refs[0] = (struct label_ref){ "__name__", 8, w, l };
			rejected |= sink_add(s, s->refs, pt->ntags + 1, ts_ms, v, lineno, NULL);
		}
	}
	if (ignored && s->api->stats)
		atomic_fetch_add_explicit(&s->api->stats->fields_ignored, ignored,
		                          memory_order_relaxed);
	if (rejected && s->nstaged > first) /* lp_parse counts this line as rejected */
		s->recs[s->nrecs - 1].flags |= SF_LINE_COUNTED; /* its staged fields' record */
	return rejected;
}

static void lp_on_error(void *vctx, size_t lineno, const char *reason)
{
	struct sink *s = vctx;
	count_parse_rejects(s, 1);
	sink_error(s, lineno, NULL, reason);
}

void api_write_lp(struct api_ctx *api, const struct api_request *req, struct api_response *resp)
{
	enum lp_precision prec = LP_NS;
	const char *ps = api_arg(req, "precision");
	if (ps && *ps && lp_precision_parse(ps, &prec)) {
		api_error(resp, 400, "bad_data", "invalid parameter 'precision': '%.16s' (use ns, us, ms or s)",
		          ps);
		return;
	}
	const char *body;
	size_t len;
	char *owned;
	if (request_body(api, req, resp, &body, &len, &owned))
		return;
	struct lp_parser p;
	if (lp_parser_init(&p, &api->lp_limits)) {
		lp_parser_free(&p);
		free(owned);
		api_error(resp, 500, "internal", "out of memory");
		return;
	}
	struct sink s;
	sink_init(&s, api, req->now_ms);
	s.body0 = (uintptr_t)body;
	s.body16 = len >= 16 ? (uintptr_t)body + len - 16 : 0;
	engine_batch_begin(api->engine, &s.batch);
	if (!req->event_time) /* live ingest: the window around our clock applies */
		engine_batch_set_clock(&s.batch, req->now_ms);
	size_t rejected = lp_parse(&p, body, len, prec, req->now_ms * 1000000, lp_on_point,
	                           lp_on_error, &s);
	size_t accepted = p.npoints;
	if (sink_commit(&s) > 0) {
		size_t lines = refused_lines(&s);
		rejected += lines;
		accepted -= lines;
	}
	if (!sink_end(&s, resp))
		sink_respond(&s, resp, accepted, rejected, "lines");
	sink_free(&s);
	lp_parser_free(&p);
	free(owned);
}

/* ------------------------------------------------------------------------ */
/* JSON import */

static int json_on_sample(void *vctx, const struct json_sample *js)
{
	return sink_add(vctx, js->labels, js->nlabels, js->ts_ms, js->value, js->line, js->path);
}

static void json_on_error(void *vctx, size_t line, const char *reason, size_t nsamples)
{
	struct sink *s = vctx;
	count_parse_rejects(s, nsamples);
	/* the reason already names the path */
	sink_error(s, line, NULL, reason);
}

void api_import_json(struct api_ctx *api, const struct api_request *req,
                     struct api_response *resp)
{
	const char *body;
	size_t len;
	char *owned;
	if (request_body(api, req, resp, &body, &len, &owned))
		return;
	struct sink s;
	sink_init(&s, api, req->now_ms);
	struct json_import_limits lim = { 0, 0 };
	struct json_import_stats st;
	engine_batch_begin(api->engine, &s.batch);
	if (!req->event_time) /* live ingest: the window around our clock applies */
		engine_batch_set_clock(&s.batch, req->now_ms);
	size_t rejected = json_import_parse(body, len, &lim, json_on_sample, json_on_error, &s, &st);
	size_t refused = sink_commit(&s);
	rejected += refused;
	st.samples -= refused;
	if (!sink_end(&s, resp))
		sink_respond(&s, resp, st.samples, rejected, "samples");
	sink_free(&s);
	free(owned);
}

/* ------------------------------------------------------------------------ */
/* Prometheus text import and remote_write */

static int prom_on_sample(void *vctx, const struct label_ref *labels, size_t nlabels,
                          double value, int64_t ts_ms, int has_ts, size_t lineno)
{
	struct sink *s = vctx;
	if (isnan(value) && prom_is_stale(value)) {
		s->skipped_stale++;
		return 0;
	}
	return sink_add(s, labels, nlabels, has_ts ? ts_ms : s->now_ms, value, lineno, NULL);
}

/* # TYPE lines and remote_write metadata: the engine decides from the type
 * whether a family is a counter (rate), a histogram (quantiles) or a gauge. */
static void prom_on_meta(void *vctx, const char *family, size_t len, enum prom_type type)
{
	struct sink *s = vctx;
	enum metric_type t;
	switch (type) {
	case PROM_COUNTER: t = METRIC_COUNTER; break;
	case PROM_HISTOGRAM: t = METRIC_HISTOGRAM; break;
	case PROM_SUMMARY: t = METRIC_SUMMARY; break;
	case PROM_GAUGE:
	case PROM_GAUGE_HISTOGRAM: /* buckets go up and down: not counters */
	case PROM_INFO:
	case PROM_STATESET: t = METRIC_GAUGE; break;
	default: return;
	}
	engine_batch_set_type(&s->batch, family, len, t);
}

static void prom_on_error(void *vctx, size_t lineno, const char *reason)
{
	struct sink *s = vctx;
	count_parse_rejects(s, 1);
	sink_error(s, lineno, NULL, reason);
}

void api_import_prom(struct api_ctx *api, const struct api_request *req,
                     struct api_response *resp)
{
	const char *body;
	size_t len;
	char *owned;
	if (request_body(api, req, resp, &body, &len, &owned))
		return;
	enum prom_format fmt = PROM_FORMAT_TEXT;
	if (req->content_type && strstr(req->content_type, "openmetrics"))
		fmt = PROM_FORMAT_OPENMETRICS;
	struct sink s;
	sink_init(&s, api, req->now_ms);
	struct prom_stats st;
	memset(&st, 0, sizeof st);
	engine_batch_begin(api->engine, &s.batch);
	if (!req->event_time) /* live ingest: the window around our clock applies */
		engine_batch_set_clock(&s.batch, req->now_ms);
	size_t rejected = prom_parse(body, len, fmt, NULL, prom_on_sample, prom_on_meta, prom_on_error,
	                             &s, &st);
	size_t refused = sink_commit(&s);
	if (rejected != SIZE_MAX) {
		rejected += refused;
		st.samples -= refused;
	}
	if (sink_end(&s, resp))
		; /* 503 */
	else if (rejected == SIZE_MAX)
		api_error(resp, 500, "internal", "out of memory");
	else
		sink_respond(&s, resp, st.samples, rejected, "samples");
	sink_free(&s);
	free(owned);
}

void api_remote_write(struct api_ctx *api, const struct api_request *req,
                      struct api_response *resp)
{
	const char *enc = req->content_encoding;
	if (enc && *enc && !ieq(enc, "snappy")) {
		api_error(resp, 415, "unsupported_media_type",
		          "unsupported content encoding '%.32s' (remote_write bodies are snappy)", enc);
		return;
	}
	struct sink s;
	sink_init(&s, api, req->now_ms);
	struct prw_limits plim = PRW_LIMITS_DEFAULT;
	if (api->max_body) {
		plim.max_uncompressed = api->max_body;
		/* decoded requests measure 3.2-4.3x their uncompressed size */
		if (plim.max_decoded > api->max_body * 8)
			plim.max_decoded = api->max_body * 8;
	}
	struct prw_stats st;
	memset(&st, 0, sizeof st);
	char err[256] = "";
	engine_batch_begin(api->engine, &s.batch);
	if (!req->event_time) /* live ingest: the window around our clock applies */
		engine_batch_set_clock(&s.batch, req->now_ms);
	int rc = prw_decode_ex(req->body ? req->body : "", req->body_len, NULL, &plim,
	                       prom_on_sample, prom_on_meta, &s, &st, err, sizeof err);
	size_t refused = sink_commit(&s);
	st.refused += refused;
	st.samples -= refused;
	if (sink_end(&s, resp))
		; /* 503 */
	else if (rc < 0 && strstr(err, "too large")) {
		if (api->stats)
			atomic_fetch_add_explicit(&api->stats->bodies_too_large, 1,
			                          memory_order_relaxed);
		api_error(resp, 413, "too_large", "remote_write payload too large: %s", err);
	} else if (rc < 0) {
		count_parse_rejects(&s, 1);
		api_error(resp, 400, "bad_data", "invalid remote_write payload: %s", err);
	} else {
		s.skipped_stale += st.stale;
		sink_respond(&s, resp, st.samples, st.refused, "samples");
	}
	sink_free(&s);
}
