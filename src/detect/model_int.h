/* detect/model_int.h — internal to detect/detector.c and detect/model_parse.c:
 * the model (its parameters, read from YAML by model_parse.c) and the
 * per-series state layout (header, then per component its likelihood state
 * and its own state) that the scoring in detector.c reads and writes.
 * Include after detect/detector.h (struct model_alerting). */
#ifndef FORESHOCK_DETECT_MODEL_INT_H
#define FORESHOCK_DETECT_MODEL_INT_H

#include <stddef.h>
#include <stdint.h>

#include "detect/detectors.h"

#define MAX_COMPONENTS 6
#define LK_MAX_WINDOW 16
#define STATE_VERSION 8u
#define PF_MAX_LINES 32 /* model_prefetch's lists of lines: states up to 1,984 bytes */
#define WARM_MIN_SAMPLES 30 /* a warm-up that ends by event time lasts at least this */

enum combine_mode { COMBINE_MAX, COMBINE_NOISY_OR, COMBINE_MEAN, COMBINE_MIN };

struct comp_inst {
	const struct comp_kind *kind;
	double p[DET_MAX_PARAMS + DET_MAX_DERIVED]; /* parameters, then derived constants */
	double weight;
	double direct; /* > 0: also scored raw / (raw + direct), past the likelihood stage */
	int no_lk;     /* 1: no likelihood stage (direct score only) */
	size_t off;    /* offset of the component's own state in the block */
	size_t lk_off; /* offset of its likelihood state */
};

struct model {
	char name[64];
	struct comp_inst comp[MAX_COMPONENTS];
	int ncomp;
	enum combine_mode combine;
	/* likelihood stage */
	int lk_enabled;
	int lk_window;        /* short moving average, samples */
	double lk_halflife;   /* long-run Gaussian, samples */
	double lk_min_std;    /* floor on its standard deviation */
	int lk_instant;       /* also score the single sample (spikes) */
	int lk_exp_tail;      /* exponential instead of Gaussian tail */
	uint32_t lk_min_n;    /* samples learnt before it scores */
	double lk_decades;    /* tail probability 10^-decades scores 1 */
	double lk_qref;       /* calibration level (0: no calibration) */
	double lk_log_qref;   /* log(lk_qref) */
	double lk_z_rate;     /* below this z (> 0) the tail is surely not a tail event at
	                       * level qref (lk_rate_z; model_finish) */
	double lk_alpha;      /* det_alpha(lk_halflife, 1), computed once (model_finish) */
	uint32_t lk_halflife_n; /* ceil(lk_halflife): for a count n, n < lk_halflife is
	                         * n < lk_halflife_n (model_finish) */
	double lk_dln10;      /* lk_decades * M_LN10 (model_finish) */
	double lk_clip;       /* Huber clip of the long-run estimates, in sd (0: off) */
	uint32_t lk_single_for; /* while the series has seen at most this many samples, the
	                         * single sample is scored too (0: never) */
	double lk_single_floor; /* its z: (u - mean) / max(sd, floor) */
	size_t lk_size;       /* bytes of one component's likelihood state (model_finish) */
	size_t lk_cold_off;   /* offset of its struct lk_cold (0: none) */
	double raw_scale;     /* without likelihood: score = raw / (raw + raw_scale) */
	int fast;             /* combine max, likelihood on without the instant and
	                       * exponential-tail stages, unclipped, calibrated (model_finish):
	                       * model_update takes the path specialised for it */
	/* post-processing */
	uint32_t warmup;      /* samples scored 0 */
	int64_t warmup_ms;    /* or less: this much event time (0: off) */
	uint32_t suppress;    /* samples capped after a detection */
	int64_t suppress_ms;  /* and/or event time capped after a detection */
	double suppress_frac; /* and/or this fraction of the samples seen so far */
	double suppress_max;  /* cap of the fractional suppression, samples */
	double hold;          /* cap during suppression */
	double refire;        /* re-detect during suppression if evidence grows this much (0: never),
	                       * once the score has fallen below `hold` since the detection */
	int renew;            /* a score of 1 during suppression is a new detection if the series
	                       * has been back on its normal side of the detection's reference
	                       * for `lk_window` samples since the episode ended (fire_dip) */
	double arm;           /* a score >= arm starts a suppression (0: the alert threshold) */
	struct model_alerting alert;
	char severity[32];
	size_t state_size;
	/* model_prefetch: the byte ranges of the state a sample touches whole
	 * (the header, the likelihood states, the components without a
	 * prefetch hook and the fixed parts of those with one), adjacent ones
	 * merged, and the components with a hook (model_finish) */
	struct {
		uint32_t off, len;
	} pf[3 * MAX_COMPONENTS + 1];
	int npf;
	/* the same ranges as the cache lines they cover, for each of the 8 ways
	 * an 8-aligned state can sit in a line (j: the state starts 8 * j bytes
	 * into it): pf_line[j][k] is the offset from the state's first byte of a
	 * byte in the k-th line from the end, pf_nline[j] of them (each line
	 * once, but the first line repeated at the end of the lists shorter
	 * than the longest, so that all have one count); pf_lines 0 if a state
	 * spans more than PF_MAX_LINES lines */
	int16_t pf_line[8][PF_MAX_LINES];
	uint8_t pf_nline[8];
	int pf_lines;
	int pf_hook[MAX_COMPONENTS];
	int npf_hook;
	uint64_t fingerprint;
};

/* Per-series header; component and likelihood blocks follow, 8-aligned. */
struct model_hdr {
	int64_t last_ts;
	float interval;      /* typical sampling interval, ms */
	uint32_t n;          /* samples seen */
	uint32_t since_fire; /* samples since the last detection (UINT32_MAX: none) */
	float fire_z;        /* evidence (likelihood z) of the last detection */
	int64_t fire_ts;     /* event time of the last detection */
	int16_t fire_dir;    /* direction of the last detection (+1/-1, 0 unknown) */
	uint16_t fire_dip;   /* FIRE_DIP once the score fell below `hold` after the last
	                      * detection: the episode it started is over, a refire may
	                      * follow; FIRE_STIR if a later sample was beyond fire_ref
	                      * again; the samples counted since the dip, in units of
	                      * FIRE_CALM1 (saturating) */
	float fire_ref;      /* halfway between the expected value and the band edge that
	                      * was crossed, at the last detection (NAN if unknown) */
};

/* struct model_hdr.fire_dip (a state of an older version holds 0 or FIRE_DIP) */
#define FIRE_DIP 1u
#define FIRE_STIR 2u
#define FIRE_CALM1 4u
#define FIRE_CALM_MAX 16000u /* in units of FIRE_CALM1: 64000 fits 16 bits */

/* Likelihood state of one component. The fields read and written on every
 * sample come first and are followed by the moving-average ring, sized by
 * the model's window (lk_window floats), so with the default window the
 * whole per-sample part is 44 bytes. The fields of the optional stages
 * (instant scoring, exponential tail) follow the ring, only when the model
 * uses them (struct lk_cold, at model->lk_cold_off). Each component's
 * likelihood state sits right before the component's own state, so the two
 * share cache lines (packing all of them behind the header measured 10%
 * slower at 100k series). */
struct lk_state {
	double mean, var;       /* long-run Gaussian of the moving average */
	float sum;              /* of the ring */
	float rate;             /* observed rate of tail probabilities below lk_qref */
	uint16_t pos, len;
	uint32_t n;
	float ring[];           /* lk_window entries */
};

struct lk_cold {
	double mean1, var1;     /* long-run Gaussian of single samples */
	float ex, px;           /* exponential tail: mean excess over the mean, P(above) */
};

/* detector.c: a z below which log_tail(z) > log_qref with a margin (1/64
 * of z below the crossing, found by bisection on log_tail itself); 0 if
 * there is none (qref 1/2) */
double lk_rate_z(double log_qref);

#endif
