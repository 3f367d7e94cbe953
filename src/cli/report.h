/* cli/report.h — human-readable backtest report: one SVG per corpus file (series,
 * anomaly score, labelled windows shaded, detections marked TP/FP at a
 * threshold) and an index.html tying them together with the NAB scores.
 * Reads a scored corpus (nab.h); writes files only; no state. */
#ifndef FORESHOCK_REPORT_H
#define FORESHOCK_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "cli/nab.h"

/* Write the SVG of one file to fp; detections are rows with
 * score >= threshold. Returns 0 or -1 (write error / out of memory). */
int report_write_svg(FILE *fp, const struct nab_file *f, double threshold);

struct report_info {
	const char *model;            /* model name or "scores from DIR" */
	const char *corpus;           /* corpus directory */
	double cpu_seconds;           /* detector CPU time (clock()), < 0 if not measured */
	const struct nab_result *results; /* [nresults], one per profile, same corpus */
	size_t nresults;
	size_t primary;               /* index into results used for the marks (standard) */
};

/* Write OUT_DIR/index.html, OUT_DIR/summary.json (scores, thresholds, counts
 * per profile and per file) and OUT_DIR/<category>/<name>.svg for every file
 * (directories must exist). Returns 0, or -1 with a message in err. */
int report_write(const char *out_dir, const struct nab_corpus *c, const struct report_info *info,
                 char *err, size_t errlen);

#endif
