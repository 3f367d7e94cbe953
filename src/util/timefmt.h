/* util/timefmt.h — timestamp parsing and formatting in UTC, independent of the C
 * library's locale and time zone (no timegm/strptime): calendar arithmetic is
 * done here with days-from-civil. All times are int64 milliseconds since the
 * Unix epoch. Pure functions, no state, thread-safe; callers own all buffers.
 */
#ifndef FORESHOCK_TIMEFMT_H
#define FORESHOCK_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* Parse s[0..len) as a UTC timestamp:
 *   "2014-04-01 00:00:00" or "2014-04-01T00:00:00", optional fractional
 *   seconds (".5", ".000000"; digits past the millisecond are truncated),
 *   optional zone "Z"/"z" or "+hh:mm"/"-hh:mm" (also "+hhmm"); without a zone
 *   the time is UTC. A bare date "2014-04-01" is midnight UTC.
 *   or an epoch number in seconds: "1396310400", "1396310400.25", "-1.5".
 * Leading/trailing spaces are not accepted. Returns 0 and sets *ms, or -1. */
int time_parse_ms(const char *s, size_t len, int64_t *ms);

/* Format as RFC 3339 UTC with milliseconds, "2014-04-01T00:00:00.000Z".
 * buf must hold at least 32 bytes (years outside 0000..9999 are printed with
 * more digits and a sign as needed). Returns buf. */
char *time_format_rfc3339(int64_t ms, char *buf, size_t len);

/* Parse a NUL-terminated query parameter the way the Prometheus HTTP API does:
 * an RFC 3339 timestamp ("2023-11-14T22:13:20Z", "2023-11-14T22:13:20.5+01:00")
 * or epoch seconds ("1700000000", "1700000000.5"). Same as time_parse_ms on
 * the whole string. Returns 0 and sets *ms, or -1. */
int time_parse_param_ms(const char *s, int64_t *ms);

/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d (m 1..12, d 1..31). */
int64_t time_days_from_civil(int64_t y, unsigned m, unsigned d);
/* Inverse of time_days_from_civil. */
void time_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);

#endif
