/* ingest/prom.c — Prometheus text exposition / OpenMetrics text decoder.
 *
 * Two users share one line lexer:
 *   prom_parse()       lenient ingest: blanks between tokens, trailing comma in
 *                      label sets, comments; a bad line is counted and skipped.
 *   prom_om_validate() strict OpenMetrics 1.0: exact single spaces, "# EOF",
 *                      metadata placement, family/type rules, ordering.
 *
 * A sample line, as the lexer sees it:
 *
 *   http_requests_total{code="200",path="/a\"b"} 1027 1395066363000 # {id="x"} 1
 *   ^name               ^labels: name="value",...  ^value ^timestamp   ^exemplar (ignored
 *                                                                       by ingest)
 *
 * label_refs point into the body, except values containing a backslash, which
 *
 * The lexer is in prom_lex.c, the strict validator in prom_om.c.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/prom.h"
#include "ingest/prom_int.h"

/* ---- lenient ingest ---------------------------------------------------- */

struct pstate {
	enum prom_format fmt;
	prom_sample_fn on_sample;
	prom_meta_fn on_meta;
	prom_error_fn on_error;
	void *ctx;
	struct prom_stats st;
	const char *fam;  /* last # TYPE family (OpenMetrics _created skipping) */
	size_t fam_len;
	enum prom_type fam_type;
	int eof;
};

static void reject(struct pstate *ps, size_t lineno, const char *reason)
{
	ps->st.rejected++;
	if (ps->on_error)
		ps->on_error(ps->ctx, lineno, reason);
}

/* "# HELP ...", "# TYPE name type", "# EOF", or any other comment. */
static void comment_line(struct pstate *ps, struct lexer *lx, const char *p, const char *e, size_t lineno)
{
	p++; /* '#' */
	while (p < e && is_blank(*p))
		p++;
	const char *w = p;
	while (p < e && !is_blank(*p))
		p++;
	size_t wl = (size_t)(p - w);
	if (ps->fmt == PROM_FORMAT_OPENMETRICS && bytes_eq(w, wl, "EOF")) {
		while (p < e && is_blank(*p))
			p++;
		if (p == e)
			ps->eof = 1;
		return;
	}
	if (!bytes_eq(w, wl, "TYPE"))
		return; /* HELP, UNIT and free comments carry nothing we use */
	while (p < e && is_blank(*p))
		p++;
	const char *n = p;
	while (p < e && !is_blank(*p))
		p++;
	size_t nl = (size_t)(p - n);
	while (p < e && is_blank(*p))
		p++;
	const char *t = p;
	while (p < e && !is_blank(*p))
		p++;
	size_t tl = (size_t)(p - t);
	while (p < e && is_blank(*p))
		p++;
	enum prom_type type;
	int name_ok = nl > 0 && nl <= lx->max_name_len && is_metric_start(n[0]);
	for (size_t i = 1; name_ok && i < nl; i++)
		name_ok = is_metric_char(n[i]);
	if (!name_ok) {
		snprintf(lx->reason, sizeof lx->reason, "invalid metric name '%.*s' in TYPE line",
		         (int)(nl > 40 ? 40 : nl), n);
		reject(ps, lineno, lx->reason);
		return;
	}
	if (prom_type_parse(t, tl, &type) != 0 || p != e) {
		snprintf(lx->reason, sizeof lx->reason, "invalid metric type '%.*s' for '%.*s'",
		         (int)(tl > 40 ? 40 : tl), t, (int)(nl > 40 ? 40 : nl), n);
		reject(ps, lineno, lx->reason);
		return;
	}
	ps->fam = n;
	ps->fam_len = nl;
	ps->fam_type = type;
	if (ps->on_meta)
		ps->on_meta(ps->ctx, n, nl, type);
}

static int is_created_of_family(const struct pstate *ps, const struct label_ref *name)
{
	if (!ps->fam || name->value_len != ps->fam_len + 8 ||
	    memcmp(name->value, ps->fam, ps->fam_len) != 0 ||
	    memcmp(name->value + ps->fam_len, "_created", 8) != 0)
		return 0;
	return ps->fam_type == PROM_COUNTER || ps->fam_type == PROM_HISTOGRAM ||
	       ps->fam_type == PROM_SUMMARY || ps->fam_type == PROM_GAUGE_HISTOGRAM;
}

static void sample_line(struct pstate *ps, struct lexer *lx, const char *p, const char *e, size_t lineno)
{
	struct pline pl;
	double v;
	int64_t ts = 0;
	if (prom_lex_sample(lx, p, e, &pl) != 0) {
		reject(ps, lineno, lx->reason);
		return;
	}
	if (prom_num_parse(pl.val, pl.val_len, 1, &v) != 0) {
		snprintf(lx->reason, sizeof lx->reason, "invalid value '%.*s'",
		         (int)(pl.val_len > 40 ? 40 : pl.val_len), pl.val);
		reject(ps, lineno, lx->reason);
		return;
	}
	if (pl.has_ts) {
		int rc = ps->fmt == PROM_FORMAT_OPENMETRICS ? prom_ts_parse_s_float(pl.ts, pl.ts_len, &ts)
		                                            : prom_ts_parse_ms_int(pl.ts, pl.ts_len, &ts);
		if (rc != 0) {
			snprintf(lx->reason, sizeof lx->reason, "invalid timestamp '%.*s'",
			         (int)(pl.ts_len > 40 ? 40 : pl.ts_len), pl.ts);
			reject(ps, lineno, lx->reason);
			return;
		}
	}
	if (ps->fmt == PROM_FORMAT_OPENMETRICS && is_created_of_family(ps, &lx->refs[0])) {
		ps->st.skipped++;
		return;
	}
	if (ps->on_sample(ps->ctx, lx->refs, pl.nlabels, v, ts, pl.has_ts, lineno) != 0)
		ps->st.refused++;
	else
		ps->st.samples++;
}

static void limits_resolve(const struct prom_limits *in, struct prom_limits *out)
{
	const struct prom_limits d = PROM_LIMITS_DEFAULT;
	*out = in ? *in : d;
	if (!out->max_labels)
		out->max_labels = d.max_labels;
	if (!out->max_name_len)
		out->max_name_len = d.max_name_len;
	if (!out->max_value_len)
		out->max_value_len = d.max_value_len;
	if (!out->max_line_len)
		out->max_line_len = d.max_line_len;
}

size_t prom_parse(const char *body, size_t len, enum prom_format fmt,
                  const struct prom_limits *lim, prom_sample_fn on_sample,
                  prom_meta_fn on_meta, prom_error_fn on_error, void *ctx,
                  struct prom_stats *stats)
{
	struct prom_limits L;
	struct pstate ps = { .fmt = fmt, .on_sample = on_sample, .on_meta = on_meta,
	                     .on_error = on_error, .ctx = ctx };
	struct lexer lx = { .strict = 0 };
	const char *p = body, *end = body + len;
	size_t lineno = 0;

	limits_resolve(lim, &L);
	size_t maxline = L.max_line_len < len ? L.max_line_len : len;
	/* A label costs at least 4 bytes (a=""), so a line never holds more
	 * than maxline/4 + 1 refs: no need to allocate max_labels if huge. */
	lx.cap = L.max_labels < maxline / 4 + 2 ? L.max_labels : maxline / 4 + 2;
	lx.max_labels = L.max_labels;
	lx.max_name_len = L.max_name_len;
	lx.max_value_len = L.max_value_len;
	lx.refs = malloc(lx.cap * sizeof *lx.refs);
	lx.scratch = malloc(maxline + 1);
	if (!lx.refs || !lx.scratch) {
		free(lx.refs);
		free(lx.scratch);
		if (on_error)
			on_error(ctx, 0, "out of memory");
		return SIZE_MAX;
	}

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		const char *line = p;
		p = nl ? nl + 1 : end;
		lineno++;
		ps.st.lines++;
		if (ps.eof) {
			const char *q = line;
			while (q < le && (is_blank(*q) || *q == '\r'))
				q++;
			if (q < le) {
				reject(&ps, lineno, "unexpected content after '# EOF'");
				break;
			}
			continue;
		}
		if ((size_t)(le - line) > L.max_line_len) {
			snprintf(lx.reason, sizeof lx.reason, "line too long (%zu bytes, limit %zu)",
			         (size_t)(le - line), L.max_line_len);
			reject(&ps, lineno, lx.reason);
			continue;
		}
		if (le > line && le[-1] == '\r')
			le--;
		while (line < le && is_blank(*line))
			line++;
		if (line == le)
			continue;
		if (*line == '#')
			comment_line(&ps, &lx, line, le, lineno);
		else
			sample_line(&ps, &lx, line, le, lineno);
	}
	free(lx.refs);
	free(lx.scratch);
	if (stats)
		*stats = ps.st;
	return ps.st.rejected + ps.st.refused;
}
