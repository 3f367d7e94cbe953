/* detect/changept.c — "changept": Bayesian online change-point detection
 * (Adams & MacKay 2007) over a handful of run-length hypotheses.
 *
 * Each sample is standardised against a slow robust baseline (EWMA mean and
 * mean absolute deviation of Huber-clipped residuals, as in `spike`): z. A
 * hypothesis is "the current regime of z began n samples ago", with the
 * Normal-Gamma posterior of that regime's mean and variance (prior: mean 0,
 * kappa 1, alpha 1, beta 1, i.e. about the baseline's own scale). Per
 * sample every hypothesis predicts z (its Student t posterior predictive) and
 * is weighted by how well it did; each grows by one sample with probability
 * 1 - H and a new regime (n = 0) starts with probability H = 1 / `hazard`.
 * Only K = 5 hypotheses are kept: the lightest older one is dropped (never
 * the new one). The evidence of a change is the posterior odds that the
 * regime began within the last `recent` samples (n = 1 .. recent: the new
 * regime itself always holds H, whatever the data). The raw score, as in
 * `spike`, is how many times those odds exceed the largest odds of the
 * recent past (a running maximum decaying with half-life `memory` in event
 * time, floored at `floor`), less one: a series whose regime changes every
 * few hours scores little for one more change, a quiet one scores at once.
 * Meant to be scored directly (`likelihood: false`, `direct:`).
 */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "detect/detectors.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define K 5 /* run-length hypotheses kept */
/* the loops over the hypotheses unrolled (their trip count is K or less) */
#define CP_UNROLL _Pragma("GCC unroll 6")
/* the loops over the hypotheses unrolled (their trip count is K or less) */

enum { P_HALFLIFE, P_DEV_HALFLIFE, P_HAZARD, P_RECENT, P_MEMORY, P_FLOOR, P_MIN_REL };
/* derived (cp_prepare): the weights of one sampling interval */
enum { A_HALFLIFE = DET_MAX_PARAMS, A_DEV_HALFLIFE, A_HAZARD_INV };

static const struct param_def params[] = {
	{ "halflife", PARAM_NUMBER, 4000, 1, 1e7 },     /* baseline mean, samples */
	{ "dev_halflife", PARAM_NUMBER, 256, 1, 1e6 },  /* baseline deviation, samples */
	{ "hazard", PARAM_NUMBER, 250, 2, 1e7 },        /* expected run length, samples */
	{ "recent", PARAM_INT, 3, 1, 100 },             /* a regime this young is a recent change */
	{ "memory", PARAM_DURATION, 86400e3, 1e3, 3650 * 86400e3 }, /* half-life of the remembered odds */
	{ "floor", PARAM_NUMBER, 2, 0.01, 1e6 },        /* the remembered odds count as at least this */
	{ "min_rel_dev", PARAM_NUMBER, 1e-3, 0, 1 },    /* deviation floor relative to |x| */
};

/* One run-length hypothesis: its weight and the running mean and sum of
 * squared deviations of the z it has seen. */
struct cp_hyp {
	float w, n, mean, m2;
};

struct cp_state {
	double mu;                /* baseline mean */
	float dev, absmax, omax;  /* baseline deviation, scale of |x|, remembered odds */
	uint16_t n;               /* samples seen (saturating); min(n, K) hypotheses are live */
	uint16_t since_gap;       /* samples since the last gap (saturating) */
	struct cp_hyp h[K];       /* oldest first */
};

static size_t cp_size(const double *p)
{
	return sizeof(struct cp_state);
}

static void cp_init(const double *p, void *state)
{
	memset(state, 0, sizeof(struct cp_state));
}

/* log Gamma(y + 1/2) - log Gamma(y), y >= 1, without lgamma (which sets the
 * global signgam): the recurrence up to y >= 8, then the asymptotic series
 * 0.5 log y - 1/(8y) + 1/(192y^3) + 1/(640y^5) (error < 1e-9 there). */
static double log_gamma_half_ratio(double y)
{
	double prod = 1;
	while (y < 8) { /* G(y+1/2)/G(y) = G(y+3/2)/G(y+1) * y/(y+1/2) */
		prod *= y / (y + 0.5);
		y += 1;
	}
	double r = 1 / y, r2 = r * r;
	return 0.5 * log(y * prod * prod) - r / 8 + r * r2 / 192 + r * r2 * r2 / 640;
}

/* The posterior predictive density of z under a hypothesis that has seen n
 * samples is a Student t with nu = n + 2 degrees of freedom,
 *
 *   p(z) = E(n) / sqrt(be) * (1 + d)^-((n + 3) / 2),
 *   E(n) = Gamma(al + 1/2) / Gamma(al) / sqrt(2 pi (n + 2) / (n + 1)),
 *
 * with al = 1 + n/2, be the posterior beta and d = c / be the squared,
 * scaled distance of z from the posterior mean (cp_pred). E depends on n
 * alone: below NT samples it comes from a table filled once (cp_prepare),
 * exactly as the logarithms computed it per sample before, next to the two
 * other factors of n the density needs, n / (n + 1) and (n + 1) / (2 (n + 2));
 * (1 + d) to the power is a few multiplications and one square root. A
 * hypothesis this young is the usual case (in the labelled corpora 97% of
 * the hypotheses weighed had seen fewer than 508 samples); older ones take
 * logarithms and exp, as before. */
#define NT 508
_Static_assert((NT + 2) / 2 < 256, "cp_powi8 takes k < 256");
struct cp_etab_row {
	double e;    /* E(n) */
	double kn;   /* n / (n + 1): the posterior mean is kn times the sample mean */
	double kd;   /* (n + 1) / (2 (n + 2)): c = (z - mean)^2 kd */
};
static struct cp_etab_row cp_etab[NT];
static pthread_once_t cp_etab_once = PTHREAD_ONCE_INIT;

static double cp_log_e(double n)
{
	return log_gamma_half_ratio(1 + n / 2) - 0.5 * log(2 * M_PI * (n + 2) / (n + 1));
}

static void cp_etab_fill(void)
{
	for (int n = 0; n < NT; n++) {
		cp_etab[n].e = exp(cp_log_e(n));
		cp_etab[n].kn = (double)n / (n + 1);
		cp_etab[n].kd = (n + 1.0) / (2.0 * (n + 2));
	}
}

/* sqrt(x) for x >= 1 (here): the same correctly rounded double, without
 * the call to libm GCC keeps for a negative argument (errno), which would
 * make the step save registers and spill around it */
static inline double cp_sqrt(double x)
{
#if defined(__SSE2__)
	__m128d v = _mm_set_sd(x);
	return _mm_cvtsd_f64(_mm_sqrt_sd(v, v));
#else
	return sqrt(x);
#endif
}

/* x^k for 0 <= k < 256, by squaring (relative error below 2k ulp), without
 * a branch on the bits of k (which vary from hypothesis to hypothesis and
 * would be mispredicted): the eight squarings are always done */
static inline double cp_powi8(double x, unsigned k)
{
	double r = 1;
#define CP_POW_BIT(b)                        \
	do {                                 \
		double f[2] = { 1, x };      \
		r *= f[(k >> (b)) & 1];      \
		x *= x;                      \
	} while (0)
	CP_POW_BIT(0);
	CP_POW_BIT(1);
	CP_POW_BIT(2);
	CP_POW_BIT(3);
	CP_POW_BIT(4);
	CP_POW_BIT(5);
	CP_POW_BIT(6);
	CP_POW_BIT(7);
#undef CP_POW_BIT
	return r;
}

/* The posterior predictive density of z under hypothesis h (above), with
 * two divisions: d = c / be is not formed, 1 / (1 + d) is be / (be + c),
 * and for odd n + 3 the half power of 1 / (1 + d) joins be under the root
 * (be (1 + d) is be + c). */
static inline __attribute__((always_inline)) double cp_pred(const struct cp_hyp *h, double z,
                                                             const int young)
{
	double n = h->n, hm = h->mean;
	if (young || n < NT) { /* young: the caller knows n < NT */
		const struct cp_etab_row *t = &cp_etab[(int)n];
		double mean = t->kn * hm;
		double be = 1 + (double)h->m2 / 2 + hm * mean / 2;
		double c = (z - mean) * (z - mean) * t->kd;
		unsigned k = (unsigned)n + 3;
		double bc = be + c, root = k & 1 ? bc : be;
		return t->e * cp_powi8(be / bc, k >> 1) / cp_sqrt(root);
	}
	double kap = 1 + n, mean = n * hm / kap;
	double be = 1 + (double)h->m2 / 2 + n * hm * hm / (2 * kap);
	double d = (z - mean) * (z - mean) * kap / (2 * be * (kap + 1));
	return exp(cp_log_e(n) - (n + 3) / 2 * log1p(d)) / sqrt(be);
}

static void cp_prepare(double *p)
{
	p[A_HALFLIFE] = det_alpha(p[P_HALFLIFE], 1);
	p[A_DEV_HALFLIFE] = det_alpha(p[P_DEV_HALFLIFE], 1);
	p[A_HAZARD_INV] = 1 / p[P_HAZARD];
	pthread_once(&cp_etab_once, cp_etab_fill);
}

/* x rounded to float, as a double. The empty asm keeps the rounding in
 * the generated code: with the step's loops unrolled, GCC 12's basic-block
 * vectorizer was seen to drop it between two of them (a weight went on
 * unrounded, so the state differed from the one the same C computes at -O0
 * or without the unrolling). It costs no instruction on x86. */
static inline double cp_f(double x)
{
	float f = (float)x;
#if defined(__x86_64__) || defined(__i386__)
	__asm__("" : "+x"(f)); /* f stays in an SSE register */
#else
	__asm__("" : "+m"(f)); /* elsewhere through memory */
#endif
	return (double)f;
}

/* Weigh the live hypotheses by how well they predicted z, grow them by z,
 * add the new regime, keep K; returns the posterior mass of the regimes that
 * began within the last `recent` samples. The weights are kept as floats
 * (rounded by cp_f) and computed in double. */
static inline __attribute__((always_inline)) double cp_step_n(struct cp_state *s, const double *p,
                                                              double z, int live, const int young)
{
	/* the densities relative to the largest. The newest hypothesis, last,
	 * has seen nothing (n = 0, be = 1, c = z^2 / 4): cp_pred's arithmetic
	 * without the terms that are exactly 1 or 0. It is always live after
	 * the first sample, with a weight of at least H, and predicts any
	 * finite z with a density of at least 1e-18, so the largest never
	 * underflows. */
	double pr[K];
	double q0 = 1 + z * z / 4;
	double mx = pr[live - 1] = cp_etab[0].e / (q0 * cp_sqrt(q0));
	CP_UNROLL
	for (int i = 0; i < live - 1; i++) {
		pr[i] = cp_pred(&s->h[i], z, young);
		mx = pr[i] > mx ? pr[i] : mx;
	}
	double H = p[A_HAZARD_INV], tot = 0, rmx = 1 / mx;
	double w[K + 1] = { 0 }; /* the weights, in the hypotheses' order, the new regime last */
	CP_UNROLL
	for (int i = 0; i < live; i++) {
		double wi = (double)s->h[i].w * (pr[i] * rmx);
		tot += wi;
		w[i] = cp_f(wi);
	}
	double f = (1 - H) / tot;
	CP_UNROLL
	for (int i = 0; i < live; i++)
		w[i] = cp_f(f * w[i]);
	w[live] = cp_f(H);
	int drop = -1; /* live < K: none (the new regime is never dropped) */
	if (live == K) { /* K + 1 hypotheses: drop the lightest older one */
		drop = 0;
		CP_UNROLL
		for (int i = 1; i < K; i++)
			drop = w[i] < w[drop] ? i : drop;
	}
	double sum = 0;
	CP_UNROLL
	for (int i = 0; i <= live; i++)
		sum += i != drop ? w[i] : 0;
	double rsum = 1 / sum, recent = 0, rn = p[P_RECENT];
	/* grow the kept hypotheses by z and write them back in order: the
	 * hypothesis written at j was read at i >= j; the dropped one is
	 * written and overwritten by the next */
	int j = 0;
	CP_UNROLL
	for (int i = 0; i < live; i++) {
		struct cp_hyp h = s->h[i];
		double d = z - (double)h.mean;
		double n1 = (double)h.n + 1, mean = cp_f((double)h.mean + d / n1);
		double wn = cp_f(w[i] * rsum);
		h.n = (float)n1;
		h.mean = (float)mean;
		h.m2 = (float)((double)h.m2 + d * (z - mean));
		h.w = (float)wn;
		int keep = i != drop;
		recent += keep && n1 <= rn ? wn : 0;
		s->h[j] = h;
		j += keep;
	}
	s->h[j] = (struct cp_hyp){ (float)(w[live] * rsum), 0, 0, 0 };
	return recent;
}

#if defined(__SSE2__)
/* The plain step (cp_step_n with K hypotheses live and the older four all
 * younger than NT) two hypotheses at a time in SSE2's double lanes: lanes
 * (0, 1) and (2, 3), the newest (4) alone. Every lane does the scalar
 * step's IEEE operations on its hypothesis in the same order (x / 2 is
 * x * 0.5, the same double; a multiplication by a selected 1 is exact), so
 * the doubles, and the state written, are the same (test_changept's
 * test_changept_paths compares the two paths' states after every sample of
 * series of several shapes). The largest
 * density is a maximum (no density is NaN), the sums are formed in the
 * scalar order. */

/* (m ? x : y) per lane (m all ones or zero) */
static inline __m128d cp_sel2(__m128d m, __m128d x, __m128d y)
{
	return _mm_or_pd(_mm_and_pd(m, x), _mm_andnot_pd(m, y));
}

/* bit b of k as a mask of the lane, kk holding [k0, k0, k1, k1] */
#define CP_BIT2(kk, b) _mm_castsi128_pd(_mm_srai_epi32(_mm_slli_epi32((kk), 31 - (b)), 31))

/* x^(2^b) or 1 as bit b + 1 of k in kk is set or not, for 0 <= x <= 1:
 * the larger of x and (the bit ? 0 : 1), x when they are equal (maxpd
 * returns its second operand unless the first is larger, so a +0 stays +0) */
static inline __m128d cp_powf2(__m128i kk, int b, __m128d x, __m128d one)
{
	return _mm_max_pd(_mm_andnot_pd(CP_BIT2(kk, b + 1), one), x);
}

/* cp_powi8 in each lane: x^(k >> 1) with bit b + 1 of k in kk selecting
 * x^(2^b); the same products in the same order (r = 1 times the first
 * factor is the factor). x = be / bc is in [0, 1] (bc = be + c, c >= 0,
 * be > 0), so are its squares. */
static inline __m128d cp_powi8_2(__m128d x, __m128i kk)
{
	const __m128d one = _mm_set1_pd(1);
	__m128d r = cp_powf2(kk, 0, x, one);
#define CP_POW_BIT2(b)                                           \
	do {                                                     \
		x = _mm_mul_pd(x, x);                            \
		r = _mm_mul_pd(r, cp_powf2(kk, (b), x, one));    \
	} while (0)
	CP_POW_BIT2(1);
	CP_POW_BIT2(2);
	CP_POW_BIT2(3);
	CP_POW_BIT2(4);
	CP_POW_BIT2(5);
	CP_POW_BIT2(6);
	CP_POW_BIT2(7);
#undef CP_POW_BIT2
	return r;
}

/* x rounded to float in each lane, as doubles (cp_f) */
static inline __m128d cp_f2(__m128d x)
{
	__m128 f = _mm_cvtpd_ps(x);
	__asm__("" : "+x"(f));
	return _mm_cvtps_pd(f);
}

/* hypotheses h[0] and h[1] as lanes: w, n, mean and m2 */
struct cp_lanes {
	__m128d w, n, mean, m2;
};

static inline struct cp_lanes cp_load2(const struct cp_hyp *h)
{
	__m128 a = _mm_loadu_ps(&h[0].w), b = _mm_loadu_ps(&h[1].w);
	__m128 lo = _mm_unpacklo_ps(a, b), hi = _mm_unpackhi_ps(a, b); /* w w n n, mean mean m2 m2 */
	return (struct cp_lanes){ _mm_cvtps_pd(lo), _mm_cvtps_pd(_mm_movehl_ps(lo, lo)),
		                  _mm_cvtps_pd(hi), _mm_cvtps_pd(_mm_movehl_ps(hi, hi)) };
}

/* cp_pred (young) of the two hypotheses in l, read from h */
static inline __m128d cp_pred2(const struct cp_hyp *h, const struct cp_lanes *l, __m128d z)
{
	const struct cp_etab_row *t0 = &cp_etab[(int)h[0].n], *t1 = &cp_etab[(int)h[1].n];
	__m128d e = _mm_loadh_pd(_mm_load_sd(&t0->e), &t1->e);
	__m128d kn = _mm_loadh_pd(_mm_load_sd(&t0->kn), &t1->kn);
	__m128d kd = _mm_loadh_pd(_mm_load_sd(&t0->kd), &t1->kd);
	const __m128d half = _mm_set1_pd(0.5), one = _mm_set1_pd(1);
	__m128d mean = _mm_mul_pd(kn, l->mean);
	__m128d be = _mm_add_pd(_mm_add_pd(one, _mm_mul_pd(l->m2, half)),
	                        _mm_mul_pd(_mm_mul_pd(l->mean, mean), half));
	__m128d dz = _mm_sub_pd(z, mean);
	__m128d c = _mm_mul_pd(_mm_mul_pd(dz, dz), kd);
	__m128i k = _mm_add_epi32(_mm_cvttpd_epi32(l->n), _mm_set1_epi32(3));
	__m128i kk = _mm_unpacklo_epi32(k, k);
	__m128d bc = _mm_add_pd(be, c);
	__m128d root = cp_sel2(CP_BIT2(kk, 0), bc, be);
	__m128d pw = cp_powi8_2(_mm_div_pd(be, bc), kk);
	return _mm_div_pd(_mm_mul_pd(e, pw), _mm_sqrt_pd(root));
}

/* grow the two hypotheses in l by z with their new weights w (times rsum),
 * as the scalar step's last loop: the new hypotheses as floats in h0, h1
 * and each one's n + 1 <= rn ? its weight : 0 in ra */
static inline void cp_grow2(const struct cp_lanes *l, __m128d w, __m128d z, __m128d rsum,
                            __m128d rn, __m128 *h0, __m128 *h1, __m128d *ra)
{
	__m128d d = _mm_sub_pd(z, l->mean);
	__m128d n1 = _mm_add_pd(l->n, _mm_set1_pd(1));
	__m128d mean = cp_f2(_mm_add_pd(l->mean, _mm_div_pd(d, n1)));
	__m128d wn = cp_f2(_mm_mul_pd(w, rsum));
	__m128d m2 = _mm_add_pd(l->m2, _mm_mul_pd(d, _mm_sub_pd(z, mean)));
	*ra = _mm_and_pd(_mm_cmple_pd(n1, rn), wn);
	__m128 a = _mm_unpacklo_ps(_mm_cvtpd_ps(wn), _mm_cvtpd_ps(n1));   /* w0 n0 w1 n1 */
	__m128 b = _mm_unpacklo_ps(_mm_cvtpd_ps(mean), _mm_cvtpd_ps(m2)); /* mean0 m2_0 mean1 m2_1 */
	*h0 = _mm_movelh_ps(a, b);
	*h1 = _mm_movehl_ps(b, a);
}

static inline double cp_lo(__m128d v)
{
	return _mm_cvtsd_f64(v);
}

static inline double cp_hi(__m128d v)
{
	return _mm_cvtsd_f64(_mm_unpackhi_pd(v, v));
}

static inline __attribute__((always_inline)) double cp_step_plain(struct cp_state *s,
                                                                  const double *p, double z)
{
	struct cp_hyp *h = s->h;
	__m128d zz = _mm_set1_pd(z);
	double q0 = 1 + z * z / 4;
	double pr4 = cp_etab[0].e / (q0 * cp_sqrt(q0));
	struct cp_lanes l01 = cp_load2(&h[0]), l23 = cp_load2(&h[2]);
	double w4 = (double)h[4].w, m4 = (double)h[4].mean, m24 = (double)h[4].m2, n4 = (double)h[4].n;
	__m128d p01 = cp_pred2(&h[0], &l01, zz), p23 = cp_pred2(&h[2], &l23, zz);
	__m128d mx2 = _mm_max_pd(p01, p23);
	mx2 = _mm_max_sd(mx2, _mm_unpackhi_pd(mx2, mx2));
	double mx = cp_lo(_mm_max_sd(mx2, _mm_set_sd(pr4)));
	double H = p[A_HAZARD_INV], rmx = 1 / mx;
	__m128d rmx2 = _mm_set1_pd(rmx);
	__m128d wi01 = _mm_mul_pd(l01.w, _mm_mul_pd(p01, rmx2));
	__m128d wi23 = _mm_mul_pd(l23.w, _mm_mul_pd(p23, rmx2));
	double wi4 = w4 * (pr4 * rmx);
	double tot = cp_lo(wi01) + cp_hi(wi01) + cp_lo(wi23) + cp_hi(wi23) + wi4;
	double f = (1 - H) / tot;
	__m128d f2 = _mm_set1_pd(f);
	__m128d w01 = cp_f2(_mm_mul_pd(f2, cp_f2(wi01)));
	__m128d w23 = cp_f2(_mm_mul_pd(f2, cp_f2(wi23)));
	double w[K + 1] = { cp_lo(w01), cp_hi(w01), cp_lo(w23), cp_hi(w23), cp_f(f * cp_f(wi4)),
		            cp_f(H) };
	int drop = 0; /* K + 1 hypotheses: drop the lightest older one */
	CP_UNROLL
	for (int i = 1; i < K; i++)
		drop = w[i] < w[drop] ? i : drop;
	double sum = 0;
	CP_UNROLL
	for (int i = 0; i <= K; i++)
		sum += i != drop ? w[i] : 0;
	double rsum = 1 / sum, rn = p[P_RECENT];
	__m128d rsum2 = _mm_set1_pd(rsum), rn2 = _mm_set1_pd(rn);
	__m128 g[K];
	__m128d ra01, ra23;
	cp_grow2(&l01, w01, zz, rsum2, rn2, &g[0], &g[1], &ra01);
	cp_grow2(&l23, w23, zz, rsum2, rn2, &g[2], &g[3], &ra23);
	/* the newest older hypothesis (4) as in the scalar step */
	double d = z - m4;
	double n1 = n4 + 1, mean = cp_f(m4 + d / n1);
	double wn = cp_f(w[4] * rsum);
	g[4] = _mm_setr_ps((float)wn, (float)n1, (float)mean, (float)(m24 + d * (z - mean)));
	double ra[K] = { cp_lo(ra01), cp_hi(ra01), cp_lo(ra23), cp_hi(ra23), n1 <= rn ? wn : 0 };
	double recent = 0;
	CP_UNROLL
	for (int i = 0; i < K; i++)
		recent += i != drop ? ra[i] : 0;
	/* written back in order, the dropped one overwritten by the next */
	int j = 0;
	CP_UNROLL
	for (int i = 0; i < K; i++) {
		_mm_storeu_ps(&h[j].w, g[i]);
		j += i != drop;
	}
	h[j] = (struct cp_hyp){ (float)(w[K] * rsum), 0, 0, 0 };
	return recent;
}
#endif

/* the step with live = K (every sample after the first K - 1) spelt out
 * with a constant trip count, so the compiler can unroll its loops */
static double cp_step(struct cp_state *s, const double *p, double z)
{
	return s->n >= K ? cp_step_n(s, p, z, K, 0) : cp_step_n(s, p, z, (int)s->n, 0);
}

/* the remembered odds' weight, per thread (det_alpha_at) */
static __thread struct det_alpha_memo cp_memo = DET_ALPHA_MEMO_INIT;

/* the remembered odds decay by event time: `memory` in intervals */
static inline double cp_hl(const double *p, const struct comp_ctx *c)
{
	return c->interval_ms > 0 ? p[P_MEMORY] / c->interval_ms : 1;
}

/* plain (a constant where it is inlined): K hypotheses live, all the
 * older ones younger than NT samples (the table's densities), one sampling
 * interval since the last sample (c->steps 1: the prepared weights) and
 * the memory's weight am from the memo (a hit): no call is left on the
 * path, so the step's values stay in registers. */
static inline __attribute__((always_inline)) void
cp_update_k(const double *p, void *state, const struct comp_ctx *c, struct comp_out *o,
            const int plain, double am)
{
	struct cp_state *s = state;
	double x = c->value > 1e30 ? 1e30 : c->value < -1e30 ? -1e30 : c->value;
	/* no band: expected, lower and upper stay NAN, direction 0 (as given) */
	o->raw = 0;
	if (!plain && s->n == 0) { /* plain: s->n >= K */
		s->mu = x;
		s->absmax = (float)fabs(x);
		s->h[0] = (struct cp_hyp){ 1, 0, 0, 0 };
		s->n = 1;
		s->since_gap = UINT16_MAX;
		return;
	}
	double floor = p[P_MIN_REL] * (double)s->absmax + 1e-12;
	double sigma = 1.2533 * (double)s->dev;
	if (sigma < floor)
		sigma = floor;
	double r = x - s->mu;
	double z = r / sigma;
	if (!(fabs(z) < 1e6))
		z = z < 0 ? -1e6 : 1e6; /* kept finite in the float statistics */
#if defined(__SSE2__)
	double recent = plain ? cp_step_plain(s, p, z) : cp_step(s, p, z);
#else
	double recent = plain ? cp_step_n(s, p, z, K, 1) : cp_step(s, p, z);
#endif
	double odds = recent < 1 - 1e-9 ? recent / (1 - recent) : 1e9;
	/* a change cannot be dated across a gap (a sample or more missing): the
	 * odds do not count until `recent` samples have followed it */
	const double steps = plain ? 1 : c->steps;
	if (steps >= 2)
		s->since_gap = 0;
	else if (s->since_gap < UINT16_MAX)
		s->since_gap++;
	if (s->since_gap < p[P_RECENT])
		odds = 0;
	/* the remembered odds decay by event time (am: plain's caller took
	 * it from the memo) */
	if (!plain)
		am = det_alpha_at(&cp_memo, cp_hl(p, c), steps);
	double om = (double)s->omax * (1 - am);
	double ref = om > p[P_FLOOR] ? om : p[P_FLOOR];
	o->raw = odds > ref ? odds / ref - 1 : 0;
	o->direction = o->raw > 0 ? (r > 0 ? 1 : -1) : 0;
	s->omax = (float)(odds > om ? odds : om);

	double a = det_warm_alpha1(p[A_HALFLIFE], p[P_HALFLIFE], steps, s->n);
	double ad = det_warm_alpha1(p[A_DEV_HALFLIFE], p[P_DEV_HALFLIFE], steps, s->n);
	double lim = 3 * sigma;
	double rc = s->n > 8 ? (r > lim ? lim : r < -lim ? -lim : r) : r;
	s->mu += a * rc;
	s->dev += (float)(ad * (fabs(rc) - (double)s->dev));
	float ax = (float)fabs(x);
	s->absmax = ax > s->absmax ? ax : s->absmax + (float)ad * (ax - s->absmax);
	if (s->n < UINT16_MAX)
		s->n++;
}

static __attribute__((noinline)) void cp_update_any(const double *p, void *state,
                                                    const struct comp_ctx *c, struct comp_out *o)
{
	cp_update_k(p, state, c, o, 0, 0);
}

static void cp_update(const double *p, void *state, const struct comp_ctx *c, struct comp_out *o)
{
	const struct cp_state *s = state;
	const struct det_alpha_memo *m = &cp_memo;
	int young = 1; /* the older hypotheses' densities all from the table */
	CP_UNROLL
	for (int i = 0; i < K - 1; i++)
		young &= s->h[i].n < NT;
	if (c->steps == 1 && s->n >= K && young && m->steps == 1 && m->halflife == cp_hl(p, c))
		cp_update_k(p, state, c, o, 1, m->a);
	else
		cp_update_any(p, state, c, o);
}

const struct comp_kind comp_changept = {
	.name = "changept",
	.params = params,
	.nparams = sizeof params / sizeof params[0],
	.state_size = cp_size,
	.init = cp_init,
	.update = cp_update,
	.prepare = cp_prepare,
};
