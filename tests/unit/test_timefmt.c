/* test_timefmt.c — unit tests for src/util/timefmt.c: accepted and rejected
 * timestamps, round trips, and the calendar arithmetic over a wide range. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "util/timefmt.h"

struct ok_case {
	const char *in;
	int64_t ms;
};

static const struct ok_case must_parse[] = {
	{ "1970-01-01 00:00:00", 0 },
	{ "2014-04-01 00:00:00", 1396310400000LL },
	{ "2014-04-01T00:00:00", 1396310400000LL },
	{ "2014-04-01t00:00:00z", 1396310400000LL },
	{ "2014-04-01T00:00:00Z", 1396310400000LL },
	{ "2014-04-01 00:00:00.000000", 1396310400000LL }, /* NAB windows.json style */
	{ "2014-04-10 07:15:00.000000", 1397114100000LL },
	{ "2014-04-01T00:00:00.5Z", 1396310400500LL },
	{ "2014-04-01T00:00:00.123456789Z", 1396310400123LL }, /* truncated to ms */
	{ "2014-04-01T02:00:00+02:00", 1396310400000LL },
	{ "2014-03-31T22:30:00-01:30", 1396310400000LL },
	{ "2014-04-01T02:00:00+0200", 1396310400000LL },
	{ "2014-04-01", 1396310400000LL },
	{ "2023-11-14T22:13:20Z", 1700000000000LL },
	{ "2000-02-29T12:00:00Z", 951825600000LL },  /* leap day, divisible by 400 */
	{ "1969-12-31T23:59:59.999Z", -1 },
	{ "1900-03-01T00:00:00Z", -2203891200000LL },
	{ "9999-12-31T23:59:59Z", 253402300799000LL },
	{ "1700000000", 1700000000000LL },
	{ "1700000000.5", 1700000000500LL },
	{ "1700000000.", 1700000000000LL },
	{ ".25", 250 },
	{ "-1.5", -1500 },
	{ "+2", 2000 },
	{ "0", 0 },
};

static const char *const must_not_parse[] = {
	"",
	" 2014-04-01 00:00:00",
	"2014-04-01 00:00:00 ",
	"2014-04-01 00:00",
	"2014-4-01 00:00:00",
	"2014-13-01 00:00:00",
	"2014-00-01 00:00:00",
	"2014-02-29 00:00:00", /* not a leap year */
	"1900-02-29 00:00:00", /* not a leap year (century) */
	"2014-04-31 00:00:00",
	"2014-04-01 24:00:00",
	"2014-04-01 00:60:00",
	"2014-04-01 00:00:61",
	"2014-04-01X00:00:00",
	"2014-04-01T00:00:00.",
	"2014-04-01T00:00:00.Z",
	"2014-04-01T00:00:00+2",
	"2014-04-01T00:00:00+24:00",
	"2014-04-01T00:00:00UTC",
	"2014-04-01T00:00:00ZZ",
	"abc",
	"12a",
	"1e9",
	"-",
	".",
	"1.2.3",
	"99999999999999999999",
	"NaN",
};

static void test_must_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof must_parse / sizeof must_parse[0]; i++) {
		int64_t ms = 12345;
		const char *s = must_parse[i].in;
		int rc = time_parse_ms(s, strlen(s), &ms);
		if (rc != 0 || ms != must_parse[i].ms)
			print_error("case '%s': rc=%d ms=%lld want %lld\n", s, rc, (long long)ms,
			            (long long)must_parse[i].ms);
		assert_int_equal(rc, 0);
		assert_int_equal(ms, must_parse[i].ms);
		assert_int_equal(time_parse_param_ms(s, &ms), 0);
		assert_int_equal(ms, must_parse[i].ms);
	}
}

static void test_must_not_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof must_not_parse / sizeof must_not_parse[0]; i++) {
		int64_t ms = 0;
		const char *s = must_not_parse[i];
		int rc = time_parse_ms(s, strlen(s), &ms);
		if (rc != -1)
			print_error("case '%s' parsed as %lld\n", s, (long long)ms);
		assert_int_equal(rc, -1);
	}
	int64_t ms;
	assert_int_equal(time_parse_param_ms(NULL, &ms), -1);
	assert_int_equal(time_parse_ms(NULL, 0, &ms), -1);
}

static void test_length_is_respected(void **state)
{
	(void)state;
	/* Only the first len bytes are read: a CSV field inside a longer line. */
	const char *line = "2014-04-01 00:00:00,42.5\n";
	int64_t ms = 0;
	assert_int_equal(time_parse_ms(line, 19, &ms), 0);
	assert_int_equal(ms, 1396310400000LL);
	assert_int_equal(time_parse_ms(line, 20, &ms), -1);
	assert_int_equal(time_parse_ms("17000000009", 10, &ms), 0);
	assert_int_equal(ms, 1700000000000LL);
}

static void test_format(void **state)
{
	(void)state;
	char buf[32];
	assert_string_equal(time_format_rfc3339(0, buf, sizeof buf), "1970-01-01T00:00:00.000Z");
	assert_string_equal(time_format_rfc3339(1396310400000LL, buf, sizeof buf),
	                    "2014-04-01T00:00:00.000Z");
	assert_string_equal(time_format_rfc3339(1700000000500LL, buf, sizeof buf),
	                    "2023-11-14T22:13:20.500Z");
	assert_string_equal(time_format_rfc3339(-1, buf, sizeof buf), "1969-12-31T23:59:59.999Z");
	assert_string_equal(time_format_rfc3339(951825600000LL, buf, sizeof buf),
	                    "2000-02-29T12:00:00.000Z");
	assert_string_equal(time_format_rfc3339(253402300799999LL, buf, sizeof buf),
	                    "9999-12-31T23:59:59.999Z");
}

static void test_round_trip(void **state)
{
	(void)state;
	char buf[32];
	/* Every 7919 seconds plus odd milliseconds over ~1900..2100. */
	for (int64_t ms = -2208988800000LL; ms < 4102444800000LL; ms += 7919337LL) {
		int64_t back = 0;
		time_format_rfc3339(ms, buf, sizeof buf);
		assert_int_equal(time_parse_param_ms(buf, &back), 0);
		assert_int_equal(back, ms);
	}
}

static void test_civil(void **state)
{
	(void)state;
	/* days_from_civil and civil_from_days are inverses over +-1e6 days. */
	for (int64_t z = -1000000; z <= 1000000; z += 37) {
		int64_t y;
		unsigned m, d;
		time_civil_from_days(z, &y, &m, &d);
		assert_true(m >= 1 && m <= 12 && d >= 1 && d <= 31);
		assert_int_equal(time_days_from_civil(y, m, d), z);
	}
	assert_int_equal(time_days_from_civil(1970, 1, 1), 0);
	assert_int_equal(time_days_from_civil(2000, 3, 1), 11017);
	assert_int_equal(time_days_from_civil(1969, 12, 31), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_must_parse),
		cmocka_unit_test(test_must_not_parse),
		cmocka_unit_test(test_length_is_respected),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_civil),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
