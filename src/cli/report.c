/* cli/report.c — backtest report writer: SVG plots and index.html (see report.h).
 * Plots are downsampled to one min/max pair per pixel column so a 16k-row
 * series stays a small file. */
#include "cli/report.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/timefmt.h"
#include "util/buf.h"

#define SVG_W 1100
#define PLOT_X0 60
#define PLOT_X1 (SVG_W - 10)
#define VAL_Y0 24
#define VAL_Y1 210
#define SC_Y0 228
#define SC_Y1 300
#define SVG_H 326

static void xml_escape(FILE *fp, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", fp); break;
		case '>': fputs("&gt;", fp); break;
		case '&': fputs("&amp;", fp); break;
		case '"': fputs("&quot;", fp); break;
		default: fputc(*s, fp);
		}
	}
}

/* Length of name without a trailing ".csv". */
static int stem_len(const char *name)
{
	size_t n = strlen(name);
	if (n > 4 && !strcmp(name + n - 4, ".csv"))
		n -= 4;
	return (int)n;
}

static double row_x(size_t i, size_t n)
{
	if (n <= 1)
		return PLOT_X0;
	return PLOT_X0 + (double)(PLOT_X1 - PLOT_X0) * (double)i / (double)(n - 1);
}

static int col_of(size_t i, size_t n, int ncols)
{
	if (n <= 1)
		return 0;
	int c = (int)((double)i * (double)(ncols - 1) / (double)(n - 1) + 0.5);
	return c < 0 ? 0 : c >= ncols ? ncols - 1 : c;
}

/* One plot column per pixel: the value's min and max, the highest score and
 * the strongest detection kind of the rows that fall in it; lo and hi: the
 * value range of the plot. */
struct svg_cols {
	int n;
	double *vmin, *vmax, *smax;
	uint8_t *mark;
	double lo, hi;
};

static double val_y(const struct svg_cols *k, double v)
{
	return VAL_Y1 - (VAL_Y1 - VAL_Y0) * (v - k->lo) / (k->hi - k->lo);
}

static double score_y(double s)
{
	return SC_Y1 - (SC_Y1 - SC_Y0) * (s < 0 ? 0 : s > 1 ? 1 : s);
}

static void svg_cols_fill(struct svg_cols *k, const struct nab_file *f, const uint8_t *kind)
{
	k->lo = INFINITY;
	k->hi = -INFINITY;
	for (size_t i = 0; i < f->n; i++) {
		if (f->value[i] < k->lo)
			k->lo = f->value[i];
		if (f->value[i] > k->hi)
			k->hi = f->value[i];
	}
	if (!(k->hi > k->lo)) {
		k->lo -= 1;
		k->hi += 1;
	}
	for (int c = 0; c < k->n; c++) {
		k->vmin[c] = INFINITY;
		k->vmax[c] = -INFINITY;
		k->smax[c] = -1;
	}
	for (size_t i = 0; i < f->n; i++) {
		int c = col_of(i, f->n, k->n);
		if (f->value[i] < k->vmin[c])
			k->vmin[c] = f->value[i];
		if (f->value[i] > k->vmax[c])
			k->vmax[c] = f->value[i];
		if (f->score[i] > k->smax[c])
			k->smax[c] = f->score[i];
		/* per column keep the strongest kind: TP > FP > later TP */
		static const uint8_t rank[4] = { 0, 3, 1, 2 };
		if (rank[kind[i]] > rank[k->mark[c]])
			k->mark[c] = kind[i];
	}
}

/* The background: probation, labelled windows, frames, axis labels, title. */
static void svg_frame(FILE *fp, const struct nab_file *f, const struct svg_cols *k)
{
	fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
	        "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"11\">\n",
	        SVG_W, SVG_H, SVG_W, SVG_H);
	fprintf(fp, "<title>");
	xml_escape(fp, f->name);
	fprintf(fp, "</title>\n<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n");
	/* probation */
	if (f->probation > 0 && f->n > 0) {
		double x1 = row_x(f->probation - 1, f->n);
		fprintf(fp, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"#eee\"/>\n",
		        PLOT_X0, VAL_Y0, x1 - PLOT_X0, SC_Y1 - VAL_Y0);
		fprintf(fp, "<text x=\"%d\" y=\"%d\" fill=\"#888\">probation</text>\n", PLOT_X0 + 3,
		        VAL_Y0 + 12);
	}
	/* windows */
	for (size_t w = 0; w < f->nwindows; w++) {
		const struct nab_window *win = &f->windows[w];
		if (win->first > win->last)
			continue;
		double x0 = row_x(win->first, f->n), x1 = row_x(win->last, f->n);
		fprintf(fp, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"#fbd5d5\" "
		        "fill-opacity=\"0.7\"><title>window %zu</title></rect>\n",
		        x0, VAL_Y0, x1 - x0 < 1 ? 1 : x1 - x0, SC_Y1 - VAL_Y0, w + 1);
	}
	/* frames and axes labels */
	fprintf(fp, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#999\"/>\n",
	        PLOT_X0, VAL_Y0, PLOT_X1 - PLOT_X0, VAL_Y1 - VAL_Y0);
	fprintf(fp, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#999\"/>\n",
	        PLOT_X0, SC_Y0, PLOT_X1 - PLOT_X0, SC_Y1 - SC_Y0);
	fprintf(fp, "<text x=\"2\" y=\"%d\">%.4g</text><text x=\"2\" y=\"%d\">%.4g</text>\n",
	        VAL_Y0 + 10, k->hi, VAL_Y1, k->lo);
	fprintf(fp, "<text x=\"2\" y=\"%d\">score 1</text><text x=\"2\" y=\"%d\">0</text>\n",
	        SC_Y0 + 10, SC_Y1);
	char t0[32], t1[32];
	if (f->n > 0) {
		time_format_rfc3339(f->ts[0], t0, sizeof t0);
		time_format_rfc3339(f->ts[f->n - 1], t1, sizeof t1);
		fprintf(fp, "<text x=\"%d\" y=\"%d\">%s</text>\n", PLOT_X0, SVG_H - 8, t0);
		fprintf(fp, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", PLOT_X1,
		        SVG_H - 8, t1);
	}
	fprintf(fp, "<text x=\"%d\" y=\"14\" font-weight=\"bold\">", PLOT_X0);
	xml_escape(fp, f->name);
	fprintf(fp, "</text>\n");
}

/* The value and score lines, the threshold, the detections and the legend. */
static void svg_plot(FILE *fp, const struct svg_cols *k, double threshold)
{
	/* value */
	fprintf(fp, "<polyline fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"0.8\" points=\"");
	for (int c = 0; c < k->n; c++) {
		if (k->vmin[c] > k->vmax[c])
			continue;
		fprintf(fp, "%d,%.1f ", PLOT_X0 + c, val_y(k, k->vmin[c]));
		if (k->vmax[c] != k->vmin[c])
			fprintf(fp, "%d,%.1f ", PLOT_X0 + c, val_y(k, k->vmax[c]));
	}
	fprintf(fp, "\"/>\n");
	/* score */
	fprintf(fp, "<polyline fill=\"none\" stroke=\"#555\" stroke-width=\"0.8\" points=\"");
	for (int c = 0; c < k->n; c++)
		if (k->smax[c] >= 0)
			fprintf(fp, "%d,%.1f ", PLOT_X0 + c, score_y(k->smax[c]));
	fprintf(fp, "\"/>\n");
	if (threshold <= 1.0)
		fprintf(fp, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#d08000\" "
		        "stroke-dasharray=\"4 3\"><title>threshold %.6g</title></line>\n",
		        PLOT_X0, PLOT_X1, score_y(threshold), score_y(threshold), threshold);
	/* detections */
	for (int c = 0; c < k->n; c++) {
		const uint8_t m = k->mark[c];
		const char *col = m == NAB_ROW_TP ? "#1a9e3a"
		                  : m == NAB_ROW_TP_LATER ? "#8fd19e"
		                  : m == NAB_ROW_FP ? "#d62728" : NULL;
		if (!col)
			continue;
		int big = m != NAB_ROW_TP_LATER;
		fprintf(fp, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"%d\"/>\n",
		        PLOT_X0 + c, PLOT_X0 + c, VAL_Y0, big ? VAL_Y0 + 14 : VAL_Y0 + 7, col, big ? 2 : 1);
		if (m != NAB_ROW_TP_LATER && k->vmax[c] >= k->vmin[c])
			fprintf(fp, "<circle cx=\"%d\" cy=\"%.1f\" r=\"3\" fill=\"none\" stroke=\"%s\"/>\n",
			        PLOT_X0 + c, val_y(k, k->vmax[c]), col);
	}
	fprintf(fp, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\"><tspan fill=\"#1a9e3a\">&#9632; TP (first in window)</tspan> "
	        "<tspan fill=\"#8fd19e\">&#9632; later in window</tspan> <tspan fill=\"#d62728\">&#9632; FP</tspan> "
	        "<tspan fill=\"#e8a0a0\">&#9632; labelled window</tspan></text>\n",
	        PLOT_X1, 14);
	fprintf(fp, "</svg>\n");
}

int report_write_svg(FILE *fp, const struct nab_file *f, double threshold)
{
	struct svg_cols k = { .n = PLOT_X1 - PLOT_X0 + 1 };
	k.vmin = malloc(k.n * sizeof *k.vmin);
	k.vmax = malloc(k.n * sizeof *k.vmax);
	k.smax = malloc(k.n * sizeof *k.smax);
	k.mark = calloc((size_t)k.n, 1);
	uint8_t *kind = malloc(f->n ? f->n : 1);
	int rc = -1;
	if (!k.vmin || !k.vmax || !k.smax || !kind || !k.mark)
		goto out;
	nab_file_kinds(f, threshold, kind);
	svg_cols_fill(&k, f, kind);
	svg_frame(fp, f, &k);
	svg_plot(fp, &k, threshold);
	rc = ferror(fp) ? -1 : 0;
out:
	free(k.vmin);
	free(k.vmax);
	free(k.smax);
	free(kind);
	free(k.mark);
	return rc;
}

static json_t *counts_json(const struct nab_counts *k)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "tp", (json_int_t)k->tp, "fp",
	                 (json_int_t)k->fp, "fn", (json_int_t)k->fn, "tn", (json_int_t)k->tn,
	                 "windows", (json_int_t)k->windows, "windows_hit", (json_int_t)k->windows_hit,
	                 "detections", (json_int_t)k->detections);
}

/* OUT_DIR/summary.json: the scores for scripts (one object per profile). */
static int write_summary(const char *out_dir, const struct nab_corpus *c,
                         const struct report_info *info, char *err, size_t errlen)
{
	json_t *root = json_object(), *profiles = json_object();
	json_object_set_new(root, "model", json_string(info->model ? info->model : ""));
	json_object_set_new(root, "corpus", json_string(info->corpus ? info->corpus : ""));
	json_object_set_new(root, "files", json_integer((json_int_t)c->nfiles));
	if (info->cpu_seconds >= 0)
		json_object_set_new(root, "detector_cpu_seconds", json_real(info->cpu_seconds));
	for (size_t k = 0; k < info->nresults; k++) {
		const struct nab_result *r = &info->results[k];
		json_t *files = json_object();
		for (size_t fi = 0; fi < r->nfiles && fi < c->nfiles; fi++) {
			json_t *fo = counts_json(&r->files[fi].counts);
			json_object_set_new(fo, "raw", json_real(r->files[fi].raw));
			json_object_set_new(files, c->files[fi].name, fo);
		}
		json_t *po = json_pack("{s:f,s:f,s:f,s:f,s:f,s:o,s:o}", "score", r->normalized,
		                       "threshold", r->threshold, "raw", r->raw, "null", r->null_raw,
		                       "perfect", r->perfect, "counts", counts_json(&r->counts),
		                       "files", files);
		json_object_set_new(profiles, r->profile->name, po);
	}
	json_object_set_new(root, "profiles", profiles);
	char path[4096];
	snprintf(path, sizeof path, "%s/summary.json", out_dir);
	int rc = json_dump_file(root, path, JSON_INDENT(1) | JSON_REAL_PRECISION(17));
	json_decref(root);
	if (rc) {
		errbuf_printf(err, errlen, "cannot write '%s'", path);
		return -1;
	}
	return 0;
}

int report_write(const char *out_dir, const struct nab_corpus *c, const struct report_info *info,
                 char *err, size_t errlen)
{
	char path[4096];
	const struct nab_result *pr = &info->results[info->primary];
	for (size_t fi = 0; fi < c->nfiles; fi++) {
		const struct nab_file *f = &c->files[fi];
		snprintf(path, sizeof path, "%s/%.*s.svg", out_dir, stem_len(f->name), f->name);
		FILE *fp = fopen(path, "w");
		if (!fp) {
			errbuf_printf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
			return -1;
		}
		int wrc = report_write_svg(fp, f, pr->threshold);
		if (fclose(fp) || wrc) {
			errbuf_printf(err, errlen, "cannot write '%s'", path);
			return -1;
		}
	}
	if (write_summary(out_dir, c, info, err, errlen))
		return -1;
	snprintf(path, sizeof path, "%s/index.html", out_dir);
	FILE *fp = fopen(path, "w");
	if (!fp) {
		errbuf_printf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
		return -1;
	}
	fprintf(fp, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>foreshock backtest</title>\n"
	        "<style>body{font-family:sans-serif;margin:1em 2em}table{border-collapse:collapse}"
	        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
	        ".bad{color:#b00}.good{color:#070}img{max-width:100%%;border:1px solid #ddd;margin:4px 0 16px}</style>"
	        "</head><body>\n<h1>foreshock backtest</h1>\n<p>model: <b>");
	xml_escape(fp, info->model ? info->model : "?");
	fprintf(fp, "</b>; corpus: ");
	xml_escape(fp, info->corpus ? info->corpus : "?");
	fprintf(fp, " (%zu files)", c->nfiles);
	if (info->cpu_seconds >= 0)
		fprintf(fp, "; detector CPU time %.2f s", info->cpu_seconds);
	fprintf(fp, "</p>\n<h2>NAB scores</h2>\n<table><tr><th>profile</th><th>score</th><th>threshold</th>"
	        "<th>raw</th><th>null</th><th>perfect</th><th>windows hit</th><th>FP rows</th><th>detections</th></tr>\n");
	for (size_t k = 0; k < info->nresults; k++) {
		const struct nab_result *r = &info->results[k];
		fprintf(fp, "<tr><td>");
		xml_escape(fp, r->profile->name);
		fprintf(fp, "</td><td><b>%.2f</b></td><td>%.6g</td><td>%.3f</td><td>%.1f</td><td>%.1f</td>"
		        "<td>%zu/%zu</td><td>%zu</td><td>%zu</td></tr>\n",
		        r->normalized, r->threshold, r->raw, r->null_raw, r->perfect, r->counts.windows_hit,
		        r->counts.windows, r->counts.fp, r->counts.detections);
	}
	fprintf(fp, "</table>\n<p>Score = 100 &times; (raw &minus; null) / (perfect &minus; null); the first 15%% "
	        "of each file (at most 750 rows) is probation and not scored. Plots mark detections at the ");
	xml_escape(fp, pr->profile->name);
	fprintf(fp, " threshold %.6g.</p>\n<h2>Files</h2>\n<table><tr><th>file</th><th>rows</th><th>windows</th>"
	        "<th>hit</th><th>missed</th><th>FP rows</th><th>detections</th><th>raw (", pr->threshold);
	xml_escape(fp, pr->profile->name);
	fprintf(fp, ")</th></tr>\n");
	for (size_t fi = 0; fi < c->nfiles; fi++) {
		const struct nab_file *f = &c->files[fi];
		const struct nab_counts *k = &pr->files[fi].counts;
		fprintf(fp, "<tr><td><a href=\"#f%zu\">", fi);
		xml_escape(fp, f->name);
		fprintf(fp, "</a></td><td>%zu</td><td>%zu</td><td class=\"good\">%zu</td><td%s>%zu</td>"
		        "<td%s>%zu</td><td>%zu</td><td>%.3f</td></tr>\n",
		        f->n, k->windows, k->windows_hit, k->windows > k->windows_hit ? " class=\"bad\"" : "",
		        k->windows - k->windows_hit, k->fp ? " class=\"bad\"" : "", k->fp, k->detections,
		        pr->files[fi].raw);
	}
	fprintf(fp, "</table>\n");
	for (size_t fi = 0; fi < c->nfiles; fi++) {
		const struct nab_file *f = &c->files[fi];
		fprintf(fp, "<h3 id=\"f%zu\">", fi);
		xml_escape(fp, f->name);
		fprintf(fp, "</h3>\n<img loading=\"lazy\" src=\"");
		char rel[4096];
		snprintf(rel, sizeof rel, "%.*s.svg", stem_len(f->name), f->name);
		xml_escape(fp, rel);
		fprintf(fp, "\" alt=\"");
		xml_escape(fp, f->name);
		fprintf(fp, "\">\n");
	}
	fprintf(fp, "</body></html>\n");
	if (fclose(fp)) {
		errbuf_printf(err, errlen, "cannot write '%s'", path);
		return -1;
	}
	return 0;
}
