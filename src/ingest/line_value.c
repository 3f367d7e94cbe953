/* ingest/line_value.c — line-protocol field values and timestamps: the
 * numbers (integers, unsigned, floats, with Go's strconv rules, which
 * InfluxDB follows: underscores, hex floats, range errors) and the booleans.
 * The tokenizer (ingest/line.c) hands each value over as a span of bytes;
 * ingest/line_int.h declares what it calls. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/line_int.h"

/* Decimal digits only, no sign, at least one digit (Go strconv.ParseUint base 10). */
int lp_value_u64(const char *s, size_t n, uint64_t *out)
{
	if (n == 0)
		return NUM_SYNTAX;
	uint64_t v = 0;
	if (n <= 19) { /* at most 10^19 - 1: no overflow */
		size_t i = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		/* eight digits at a time (a ms timestamp has 13) */
		const uint64_t ones = UINT64_C(0x0101010101010101), highs = ones * 0x80;
		for (; n - i >= 8; i += 8) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			/* the high bit of the lowest byte outside '0'..'9' is set */
			if (((w + ones * 0x46) | (w - ones * 0x30) | w) & highs)
				return NUM_SYNTAX;
			w -= ones * '0';
			w = (w * 10 + (w >> 8)) & UINT64_C(0x00ff00ff00ff00ff);
			w = (w * 100 + (w >> 16)) & UINT64_C(0x0000ffff0000ffff);
			w = (w * 10000 + (w >> 32)) & UINT64_C(0xffffffff);
			v = v * 100000000 + w;
		}
#endif
		for (; i < n; i++) {
			unsigned d = (unsigned char)s[i] - '0';
			if (d > 9)
				return NUM_SYNTAX;
			v = v * 10 + d;
		}
		*out = v;
		return NUM_OK;
	}
	int range = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned char)s[i] - '0';
		if (d > 9)
			return NUM_SYNTAX;
		if (v > (UINT64_MAX - d) / 10)
			range = 1;
		else
			v = v * 10 + d;
	}
	if (range)
		return NUM_RANGE;
	*out = v;
	return NUM_OK;
}

/* Optional '-', then decimal digits (Go strconv.ParseInt base 10). */
int lp_value_i64(const char *s, size_t n, int64_t *out)
{
	int neg = n > 0 && s[0] == '-';
	uint64_t u;
	int r = lp_value_u64(s + neg, n - neg, &u);
	if (r != NUM_OK)
		return r;
	if (neg) {
		if (u > (uint64_t)INT64_MAX + 1)
			return NUM_RANGE;
		*out = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
	} else {
		if (u > (uint64_t)INT64_MAX)
			return NUM_RANGE;
		*out = (int64_t)u;
	}
	return NUM_OK;
}

/* Go's rule for '_' in number literals: only between digits (a 0x prefix
 * counts as a digit). */
static int underscores_ok(const char *s, size_t n)
{
	size_t i = 0;
	char saw = '^';
	int hex = 0;
	if (n && (s[0] == '-' || s[0] == '+'))
		i = 1;
	if (n - i >= 2 && s[i] == '0' && (s[i + 1] | 0x20) == 'x') {
		i += 2;
		saw = '0';
		hex = 1;
	}
	for (; i < n; i++) {
		char c = s[i];
		if ((c >= '0' && c <= '9') || (hex && (c | 0x20) >= 'a' && (c | 0x20) <= 'f')) {
			saw = '0';
			continue;
		}
		if (c == '_') {
			if (saw != '0')
				return 0;
			saw = '_';
			continue;
		}
		if (saw == '_')
			return 0;
		saw = '!';
	}
	return saw != '_';
}

static int is_hex(char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

static const double pow10_exact[] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

int lp_value_float8(const char *s, size_t n, double *out)
{
	const uint64_t ones = UINT64_C(0x0101010101010101), highs = ones * 0x80;
	int neg = 0;
	if (n && (s[0] == '-' || s[0] == '+')) {
		neg = s[0] == '-';
		s++;
		n--;
	}
	if (n == 0 || n > 8)
		return NUM_SYNTAX;
	uint64_t w;
	memcpy(&w, s, 8); /* byte i = character i: little-endian */
	uint64_t keep = n == 8 ? ~UINT64_C(0) : (UINT64_C(1) << (8 * n)) - 1;
	/* the first '.': the lowest zero byte of w ^ '.' (the exact one; a byte
	 * above it may be flagged too, and is then no digit: refused below) */
	uint64_t x = w ^ (ones * '.');
	uint64_t dots = (x - ones) & ~x & highs & keep;
	size_t frac = 0;
	if (dots) {
		size_t d = (size_t)__builtin_ctzll(dots) / 8;
		uint64_t low = (UINT64_C(1) << (8 * d)) - 1; /* d < 8 */
		w = (w & low) | ((w >> 8) & ~low);            /* the '.' taken out */
		n--;
		frac = n - d;
		if (n == 0)
			return NUM_SYNTAX;
		keep >>= 8;
	}
	/* the bytes past the digits read as '0', then every byte a digit */
	w = (w & keep) | (ones * '0' & ~keep);
	if (((w + ones * 0x46) | (w - ones * 0x30) | w) & highs)
		return NUM_SYNTAX;
	/* digit values, right-aligned (the first digit is the most significant) */
	w = (w - ones * '0') << (8 * (8 - n));
	w = (w * 10 + (w >> 8)) & UINT64_C(0x00ff00ff00ff00ff);
	w = (w * 100 + (w >> 16)) & UINT64_C(0x0000ffff0000ffff);
	w = (w * 10000 + (w >> 32)) & UINT64_C(0xffffffff);
	double v = frac ? (double)w / pow10_exact[frac] : (double)w;
	*out = neg ? -v : v;
	return NUM_OK;
}

/* A float as Go's strconv.ParseFloat reads it (decimal or 0x hex with a p
 * exponent, '_' between digits), minus the non-numbers: NaN and Inf are
 * syntax errors, overflow is a range error, underflow rounds to 0.
 * tmp must have room for n + 1 bytes. */
int lp_value_float(const char *s, size_t n, char *tmp, double *out)
{
	/* The usual value, [-+]digits[.digits] with at most 15 digits: the
	 * mantissa and the power of ten are exact doubles, one rounding (what
	 * the general path below computes for it). */
	{
		const char *p = s + (n && (s[0] == '-' || s[0] == '+')), *e = s + n, *d0 = p;
		uint64_t m = 0; /* wraps past 19 digits: only used up to 15 */
		unsigned d;
		while (p < e && (d = (unsigned char)*p - '0') <= 9) {
			m = m * 10 + d;
			p++;
		}
		size_t nd = (size_t)(p - d0), frac = 0;
		if (p < e && *p == '.') {
			const char *f0 = ++p;
			while (p < e && (d = (unsigned char)*p - '0') <= 9) {
				m = m * 10 + d;
				p++;
			}
			frac = (size_t)(p - f0);
			nd += frac;
		}
		if (p == e && nd && nd <= 15) {
			double v = frac ? (double)m / pow10_exact[frac] : (double)m;
			*out = s[0] == '-' ? -v : v;
			return NUM_OK;
		}
	}
	size_t i = 0;
	int hex = 0, unders = 0, digits = 0, dot = 0;
	if (i < n && (s[i] == '-' || s[i] == '+'))
		i++;
	if (n - i >= 2 && s[i] == '0' && (s[i + 1] | 0x20) == 'x') {
		hex = 1;
		i += 2;
	}
	/* fast path bookkeeping (decimal only) */
	uint64_t mant = 0;
	int mdigits = 0, frac = 0;
	for (; i < n; i++) {
		char c = s[i];
		if (c == '_') {
			unders = 1;
		} else if (c == '.') {
			if (dot)
				return NUM_SYNTAX;
			dot = 1;
		} else if (hex ? is_hex(c) : (c >= '0' && c <= '9')) {
			digits++;
			if (!hex) {
				if (mant || c != '0')
					mdigits++;
				if (mdigits <= 19)
					mant = mant * 10 + (uint64_t)(c - '0');
				if (dot)
					frac++;
			}
		} else {
			break;
		}
	}
	if (!digits)
		return NUM_SYNTAX;
	int exp = 0;
	if (i < n && (s[i] | 0x20) == (hex ? 'p' : 'e')) {
		i++;
		int eneg = 0;
		if (i < n && (s[i] == '-' || s[i] == '+'))
			eneg = s[i++] == '-';
		if (i >= n || s[i] < '0' || s[i] > '9')
			return NUM_SYNTAX;
		for (; i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '_'); i++) {
			if (s[i] == '_') {
				unders = 1;
				continue;
			}
			if (exp < 100000)
				exp = exp * 10 + (s[i] - '0');
		}
		if (eneg)
			exp = -exp;
	} else if (hex) {
		return NUM_SYNTAX;
	}
	if (i != n)
		return NUM_SYNTAX;
	if (unders && !underscores_ok(s, n))
		return NUM_SYNTAX;

	/* Exact fast path: mantissa and 10^k both exact doubles, one rounding. */
	if (!hex && !unders && mdigits <= 15) {
		int e10 = exp - frac;
		if (e10 >= -22 && e10 <= 22) {
			double v = (double)mant;
			v = e10 < 0 ? v / pow10_exact[-e10] : v * pow10_exact[e10];
			*out = s[0] == '-' ? -v : v;
			return NUM_OK;
		}
	}
	size_t o = 0;
	for (size_t k = 0; k < n; k++)
		if (s[k] != '_')
			tmp[o++] = s[k];
	tmp[o] = '\0';
	char *endp;
	double v = strtod(tmp, &endp);
	if (endp != tmp + o)
		return NUM_SYNTAX;
	if (isinf(v))
		return NUM_RANGE;
	if (isnan(v))
		return NUM_SYNTAX;
	*out = v;
	return NUM_OK;
}

int lp_value_bool(const char *s, size_t n, int *out)
{
	switch (n) {
	case 1:
		if (s[0] == 't' || s[0] == 'T')
			return *out = 1, 0;
		if (s[0] == 'f' || s[0] == 'F')
			return *out = 0, 0;
		return -1;
	case 4:
		if (!memcmp(s, "true", 4) || !memcmp(s, "True", 4) || !memcmp(s, "TRUE", 4))
			return *out = 1, 0;
		return -1;
	case 5:
		if (!memcmp(s, "false", 5) || !memcmp(s, "False", 5) || !memcmp(s, "FALSE", 5))
			return *out = 0, 0;
		return -1;
	default:
		return -1;
	}
}
