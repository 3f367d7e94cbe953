/* ingest/line.h — InfluxDB line-protocol parser: bytes in, points out.
 *
 * lp_parse() walks a whole request body held by the caller and calls
 * on_point() once per accepted line and on_error() once per rejected line.
 * It never allocates per line or per field: names, tags and fields point into
 * the caller's buffer, or into one scratch buffer owned by the parser when a
 * token had to be unescaped.
 *
 * Memory: every struct lp_str handed to a callback (and the tag/field arrays
 * behind struct lp_point) is owned by the parser and valid only until the
 * callback returns; copy what you keep. The caller owns `buf`, which must stay
 * alive and unchanged during lp_parse().
 *
 * Semantics follow influxdata/line-protocol v2 (the reference decoder behind
 * the line-protocol corpus); docs/line-protocol.md lists them with the error
 * messages. In short: tags are reported sorted by key (bytewise) and a
 * duplicate tag key rejects the line; duplicate field keys are passed through
 * in input order; NaN/Inf and out-of-range numbers are rejected.
 *
 * Depends on libc only. Not thread-safe per parser: use one parser per thread.
 */
#ifndef FORESHOCK_INGEST_LINE_H
#define FORESHOCK_INGEST_LINE_H

#include <stddef.h>
#include <stdint.h>

enum lp_precision { LP_NS, LP_US, LP_MS, LP_S };

/* Parse a precision name: "ns", "us", "µs", "ms", "s", the corpus forms "1ns",
 * "1us", "1µs", "1ms", "1s", and the InfluxDB v1 short forms "n", "u", "ms", "s".
 * Returns 0 and sets *out, or -1 on an unknown name. */
int lp_precision_parse(const char *s, enum lp_precision *out);
/* "ns", "us", "ms" or "s". */
const char *lp_precision_name(enum lp_precision prec);

enum lp_vtype { LP_FLOAT, LP_INT, LP_UINT, LP_STRING, LP_BOOL };

/* Unescaped bytes; NOT NUL-terminated; valid during the callback only. */
struct lp_str {
	const char *p;
	size_t len;
};

struct lp_tag {
	struct lp_str key, value;
};

struct lp_field {
	struct lp_str key;
	enum lp_vtype type;
	union {
		double f;         /* LP_FLOAT: finite */
		int64_t i;        /* LP_INT */
		uint64_t u;       /* LP_UINT */
		int b;            /* LP_BOOL: 0 or 1 */
		struct lp_str s;  /* LP_STRING: unescaped, valid UTF-8 */
	} v;
};

struct lp_point {
	struct lp_str name;
	size_t ntags;
	const struct lp_tag *tags;     /* sorted by key, keys unique */
	size_t nfields;                /* >= 1, input order */
	const struct lp_field *fields;
	int64_t time_ns;               /* the line's timestamp, or the default time */
	int has_time;                  /* 1 if the line carried a timestamp */
};

/* 0 = unlimited. Lengths are measured on the bytes as sent (before unescaping).
 * max_key_len applies to the measurement, tag keys and field keys;
 * max_value_len to tag values and string field values. */
struct lp_limits {
	size_t max_line_len, max_tags, max_fields, max_key_len, max_value_len;
};

#define LP_LIMITS_DEFAULT                                                          \
	((struct lp_limits){ .max_line_len = 64 * 1024, .max_tags = 64, .max_fields = 256, \
	                     .max_key_len = 256, .max_value_len = 64 * 1024 })

/* Hard ceiling on the scratch buffer when max_line_len is 0 (unlimited). */
#define LP_SCRATCH_MAX ((size_t)16 * 1024 * 1024)

/* The parser's reusable state. Defined here so callers can embed it; treat
 * the members as private. */
struct lp_parser {
	struct lp_limits lim;
	struct lp_tag *tags;      /* grown on demand up to lim.max_tags */
	size_t tags_cap;
	struct lp_field *fields;  /* grown on demand up to lim.max_fields */
	size_t fields_cap;
	char *scratch;            /* unescape buffer, grown up to max_line_len */
	size_t scratch_cap;
	size_t scratch_max;
	size_t npoints;           /* points accepted by the last lp_parse() */
	size_t nrejected;         /* lines rejected by the last lp_parse() */
	char err[320];            /* reason passed to on_error */
};

/* Prepare a parser. limits may be NULL for LP_LIMITS_DEFAULT (the limits are
 * copied). Returns 0, or -1 if the initial buffers cannot be allocated (the
 * parser is then safe to lp_parser_free()). */
int lp_parser_init(struct lp_parser *p, const struct lp_limits *limits);
/* Release the parser's buffers; the struct itself belongs to the caller. */
void lp_parser_free(struct lp_parser *p);

/* Return 0 to accept the point; nonzero means the caller rejected it (it is
 * counted as rejected; no error message is produced). */
typedef int (*lp_point_fn)(void *ctx, const struct lp_point *pt, size_t lineno);
/* reason is git-style: lowercase, error first, subject quoted, e.g.
 * "invalid field value 'abc' for 'usage'". Valid during the call only. */
typedef void (*lp_error_fn)(void *ctx, size_t lineno, const char *reason);

/* Parse a whole body: lines end in \n or \r\n; blank lines and #-comments are
 * skipped (a string field value may itself contain newlines). A bad line never
 * stops the rest. Line numbers are 1-based and name the line where the entry
 * starts. Lines without a timestamp get default_time_ns rounded down to the
 * precision. on_point and on_error may be NULL. Returns the number of lines
 * rejected (by the parser or by on_point). */
size_t lp_parse(struct lp_parser *p, const char *buf, size_t len, enum lp_precision prec,
                int64_t default_time_ns, lp_point_fn on_point, lp_error_fn on_error, void *ctx);

#endif
