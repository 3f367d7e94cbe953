/* util/timefmt.c — UTC timestamp parsing/formatting without libc time zones.
 * Calendar conversion follows Howard Hinnant's days_from_civil /
 * civil_from_days algorithms (proleptic Gregorian, exact for all int64 years
 * we can represent in milliseconds). */
#include "util/timefmt.h"

#include <stdio.h>
#include <string.h>

int64_t time_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const int64_t yoe = y - era * 400;                                  /* [0, 399] */
	const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
	const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;          /* [0, 146096] */
	return era * 146097 + doe - 719468;
}

void time_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	const int64_t doe = z - era * 146097;                                   /* [0, 146096] */
	const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
	const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);           /* [0, 365] */
	const int64_t mp = (5 * doy + 2) / 153;                                 /* [0, 11] */
	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Read exactly n digits at *p (< end); advance. Returns 0 or -1. */
static int take_digits(const char **p, const char *end, int n, int *out)
{
	int v = 0;
	if (end - *p < n)
		return -1;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (!is_digit(c))
			return -1;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

static int is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
	static const unsigned dm[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

/* Fractional part after '.', at least one digit; returns milliseconds
 * (truncated) and advances. */
static int take_fraction_ms(const char **p, const char *end, int64_t *frac_ms)
{
	const char *q = *p;
	int64_t v = 0;
	int n = 0;
	while (q < end && is_digit(*q)) {
		if (n < 3)
			v = v * 10 + (*q - '0');
		n++;
		q++;
	}
	if (n == 0)
		return -1;
	for (int i = n; i < 3; i++)
		v *= 10;
	*p = q;
	*frac_ms = v;
	return 0;
}

/*  2014-04-01[( |T)00:00:00[.fff...]][Z|+hh:mm|-hh:mm|+hhmm]
 *  ^yyyy ^mm ^dd   ^hh ^mm ^ss              */
static int parse_datetime(const char *s, const char *end, int64_t *ms)
{
	const char *p = s;
	int y, mo, d, h = 0, mi = 0, se = 0;
	int64_t frac = 0, off_min = 0;

	if (take_digits(&p, end, 4, &y) || p >= end || *p++ != '-' ||
	    take_digits(&p, end, 2, &mo) || p >= end || *p++ != '-' ||
	    take_digits(&p, end, 2, &d))
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || (unsigned)d > days_in_month(y, (unsigned)mo))
		return -1;
	if (p < end) {
		if (*p != ' ' && *p != 'T' && *p != 't')
			return -1;
		p++;
		if (take_digits(&p, end, 2, &h) || p >= end || *p++ != ':' ||
		    take_digits(&p, end, 2, &mi) || p >= end || *p++ != ':' ||
		    take_digits(&p, end, 2, &se))
			return -1;
		/* 60 is accepted as a leap second and folds into the next minute. */
		if (h > 23 || mi > 59 || se > 60)
			return -1;
		if (p < end && *p == '.') {
			p++;
			if (take_fraction_ms(&p, end, &frac))
				return -1;
		}
		if (p < end) {
			if (*p == 'Z' || *p == 'z') {
				p++;
			} else if (*p == '+' || *p == '-') {
				int sign = *p == '-' ? -1 : 1, oh, om;
				p++;
				if (take_digits(&p, end, 2, &oh))
					return -1;
				if (p < end && *p == ':')
					p++;
				if (take_digits(&p, end, 2, &om))
					return -1;
				if (oh > 23 || om > 59)
					return -1;
				off_min = sign * (oh * 60 + om);
			} else {
				return -1;
			}
		}
		if (p != end)
			return -1;
	}
	int64_t days = time_days_from_civil(y, (unsigned)mo, (unsigned)d);
	int64_t secs = days * 86400 + h * 3600 + mi * 60 + se - off_min * 60;
	*ms = secs * 1000 + frac;
	return 0;
}

/*  [-+]digits[.digits]   epoch seconds */
static int parse_epoch(const char *s, const char *end, int64_t *ms)
{
	const char *p = s;
	int neg = 0;
	if (p < end && (*p == '-' || *p == '+')) {
		neg = *p == '-';
		p++;
	}
	const char *digits = p;
	uint64_t secs = 0;
	while (p < end && is_digit(*p)) {
		/* keep secs * 1000 within int64 */
		if (secs > (uint64_t)INT64_MAX / 1000 / 10)
			return -1;
		secs = secs * 10 + (uint64_t)(*p - '0');
		p++;
	}
	int64_t frac = 0;
	int have_int = p > digits;
	if (p < end && *p == '.') {
		p++;
		if (p == end && have_int) {
			/* "123." — accept like strtod does */
		} else if (take_fraction_ms(&p, end, &frac)) {
			return -1;
		}
	} else if (!have_int) {
		return -1;
	}
	if (p != end)
		return -1;
	int64_t v = (int64_t)secs * 1000 + frac;
	*ms = neg ? -v : v;
	return 0;
}

int time_parse_ms(const char *s, size_t len, int64_t *ms)
{
	if (!s || len == 0)
		return -1;
	const char *end = s + len;
	/* A date has '-' at position 4 after four digits. */
	if (len >= 10 && is_digit(s[0]) && is_digit(s[1]) && is_digit(s[2]) && is_digit(s[3]) &&
	    s[4] == '-')
		return parse_datetime(s, end, ms);
	return parse_epoch(s, end, ms);
}

int time_parse_param_ms(const char *s, int64_t *ms)
{
	if (!s)
		return -1;
	return time_parse_ms(s, strlen(s), ms);
}

char *time_format_rfc3339(int64_t ms, char *buf, size_t len)
{
	int64_t secs = ms / 1000, frac = ms % 1000;
	if (frac < 0) {
		frac += 1000;
		secs -= 1;
	}
	int64_t days = secs / 86400, sod = secs % 86400;
	if (sod < 0) {
		sod += 86400;
		days -= 1;
	}
	int64_t y;
	unsigned m, d;
	time_civil_from_days(days, &y, &m, &d);
	if (len == 0)
		return buf;
	snprintf(buf, len, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", (long long)y, m, d,
	         (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), (int)frac);
	return buf;
}
