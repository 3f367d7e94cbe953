/* ingest/line_int.h — internal to ingest/line.c and ingest/line_value.c:
 * converting a field value or a timestamp (a span of the body, already
 * delimited by the tokenizer) to its type. */
#ifndef FORESHOCK_INGEST_LINE_INT_H
#define FORESHOCK_INGEST_LINE_INT_H

#include <stddef.h>
#include <stdint.h>

/* what the converters return */
enum { NUM_OK = 0, NUM_SYNTAX = -1, NUM_RANGE = -2 };

/* Decimal digits only, no sign, at least one digit (Go strconv.ParseUint base 10). */
int lp_value_u64(const char *s, size_t n, uint64_t *out);
/* Optional '-', then decimal digits (Go strconv.ParseInt base 10). */
int lp_value_i64(const char *s, size_t n, int64_t *out);
/* A float as Go's strconv.ParseFloat reads it; tmp has room for n + 1 bytes. */
int lp_value_float(const char *s, size_t n, char *tmp, double *out);
/* The usual float, [-+]digits[.digits] with at most 8 characters after the
 * sign, read 8 bytes at a time: NUM_OK with the value lp_value_float()
 * gives, or NUM_SYNTAX for anything else (the caller then asks
 * lp_value_float()). 9 bytes must be readable at s, whatever n. */
int lp_value_float8(const char *s, size_t n, double *out);
/* t, T, true, True, TRUE, f, F, false, False, FALSE: 0; anything else: -1. */
int lp_value_bool(const char *s, size_t n, int *out);

#endif
