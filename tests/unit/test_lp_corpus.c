/* test_lp_corpus.c — conformance of the line-protocol parser against the
 * influxdata/line-protocol-corpus decode cases in
 * $FORESHOCK_SHARED_DATA/lineprotocol/decode-corpus.json.
 *
 * Each case is {input:{text|text.binary(base64), precision, defaultTime},
 * output:{result:[points]} | {error}}. A case with an error must have at least
 * one line rejected (the corpus rejects a whole body when any line is bad;
 * the wording need not match). A case with a result must be accepted whole
 * and yield exactly those points: name, tags (sorted by key), fields in order
 * with their types, and the time in ns.
 *
 * Prints "lineprotocol corpus: N/M cases pass"; exits 1 if any case fails,
 * 77 if the corpus is missing. LP_CORPUS_VERBOSE=1 prints each failure.
 */
#include "config.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/line.h"
#include "util/buf.h"

/* Cases the corpus decides in a way we deliberately do not follow; each is
 * explained in docs/line-protocol.md. Keyed by the case's "key". */
static const char *const known_divergent[] = {
	NULL,
};

struct got {
	json_t *points;  /* array of points in the corpus's JSON shape */
	size_t nerr;
	char first_err[400];
};

static json_t *str_json(struct lp_str s)
{
	return json_stringn_nocheck(s.p, s.len);
}

static int on_point(void *ctx, const struct lp_point *pt, size_t lineno)
{
	struct got *g = ctx;
	(void)lineno;
	json_t *tags = json_array(), *fields = json_array();
	for (size_t i = 0; i < pt->ntags; i++)
		json_array_append_new(tags, json_pack("{s:o,s:o}", "key", str_json(pt->tags[i].key), "value",
		                                      str_json(pt->tags[i].value)));
	for (size_t i = 0; i < pt->nfields; i++) {
		const struct lp_field *f = &pt->fields[i];
		json_t *v = NULL;
		char ubuf[32];
		switch (f->type) {
		case LP_FLOAT:
			v = json_pack("{s:f}", "float", f->v.f);
			break;
		case LP_INT:
			v = json_pack("{s:I}", "int", (json_int_t)f->v.i);
			break;
		case LP_UINT:
			snprintf(ubuf, sizeof ubuf, "%llu", (unsigned long long)f->v.u);
			v = json_pack("{s:s}", "uint", ubuf); /* string: may exceed json_int_t */
			break;
		case LP_BOOL:
			v = json_pack("{s:b}", "bool", f->v.b);
			break;
		case LP_STRING:
			v = json_pack("{s:o}", "string", str_json(f->v.s));
			break;
		}
		json_array_append_new(fields, json_pack("{s:o,s:o}", "key", str_json(f->key), "value", v));
	}
	json_array_append_new(g->points, json_pack("{s:o,s:o,s:o,s:I}", "name", str_json(pt->name), "tags",
	                                           tags, "fields", fields, "time", (json_int_t)pt->time_ns));
	return 0;
}

static void on_error(void *ctx, size_t lineno, const char *reason)
{
	struct got *g = ctx;
	if (g->nerr++ == 0)
		snprintf(g->first_err, sizeof g->first_err, "line %zu: %s", lineno, reason);
}

static int b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* Decode standard base64 (padding optional). Returns malloc'd bytes. */
static char *b64decode(const char *in, size_t *outlen)
{
	size_t n = strlen(in);
	char *out = malloc(n / 4 * 3 + 4);
	size_t o = 0;
	unsigned acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64val((unsigned char)in[i]);
		if (v < 0)
			continue;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	*outlen = o;
	return out;
}

static int str_eq(json_t *a, json_t *b)
{
	return json_is_string(a) && json_is_string(b) && json_string_length(a) == json_string_length(b) &&
	       memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
}

/* Compare one expected field value ({"float":1}) with ours. */
static int value_eq(json_t *exp, json_t *got)
{
	const char *ek, *gk;
	json_t *ev, *gv;
	if (json_object_size(exp) != 1 || json_object_size(got) != 1)
		return 0;
	void *ei = json_object_iter(exp), *gi = json_object_iter(got);
	ek = json_object_iter_key(ei);
	gk = json_object_iter_key(gi);
	ev = json_object_iter_value(ei);
	gv = json_object_iter_value(gi);
	if (strcmp(ek, gk) != 0)
		return 0;
	if (!strcmp(ek, "float"))
		return json_is_number(ev) && json_number_value(ev) == json_real_value(gv);
	if (!strcmp(ek, "int"))
		return json_is_integer(ev) && json_integer_value(ev) == json_integer_value(gv);
	if (!strcmp(ek, "uint"))
		return json_is_string(ev) && !strcmp(json_string_value(ev), json_string_value(gv));
	if (!strcmp(ek, "bool"))
		return json_is_boolean(ev) && json_is_true(ev) == json_is_true(gv);
	if (!strcmp(ek, "string"))
		return str_eq(ev, gv);
	return 0;
}

static int kv_list_eq(json_t *exp, json_t *got, int fields)
{
	if (json_array_size(exp) != json_array_size(got))
		return 0;
	for (size_t i = 0; i < json_array_size(exp); i++) {
		json_t *e = json_array_get(exp, i), *g = json_array_get(got, i);
		if (!str_eq(json_object_get(e, "key"), json_object_get(g, "key")))
			return 0;
		if (fields ? !value_eq(json_object_get(e, "value"), json_object_get(g, "value"))
		           : !str_eq(json_object_get(e, "value"), json_object_get(g, "value")))
			return 0;
	}
	return 1;
}

static int points_eq(json_t *exp, json_t *got)
{
	if (json_array_size(exp) != json_array_size(got))
		return 0;
	for (size_t i = 0; i < json_array_size(exp); i++) {
		json_t *e = json_array_get(exp, i), *g = json_array_get(got, i);
		if (!str_eq(json_object_get(e, "name"), json_object_get(g, "name")))
			return 0;
		if (!kv_list_eq(json_object_get(e, "tags"), json_object_get(g, "tags"), 0))
			return 0;
		if (!kv_list_eq(json_object_get(e, "fields"), json_object_get(g, "fields"), 1))
			return 0;
		if (json_integer_value(json_object_get(e, "time")) != json_integer_value(json_object_get(g, "time")))
			return 0;
	}
	return 1;
}

/* Unsigned values may exceed json_int_t, which jansson refuses: turn every
 * number after a "uint" key into a string before loading. */
static char *quote_uints(const char *in, size_t n)
{
	static const char pat[] = "\"uint\":";
	char *out = malloc(n * 2 + 1);
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		if (n - i >= sizeof pat - 1 && !memcmp(in + i, pat, sizeof pat - 1)) {
			memcpy(out + o, pat, sizeof pat - 1);
			o += sizeof pat - 1;
			i += sizeof pat - 1;
			while (i < n && (in[i] == ' ' || in[i] == '\n' || in[i] == '\t' || in[i] == '\r'))
				out[o++] = in[i++];
			out[o++] = '"';
			while (i < n && ((in[i] >= '0' && in[i] <= '9') || in[i] == '-'))
				out[o++] = in[i++];
			out[o++] = '"';
			continue;
		}
		out[o++] = in[i++];
	}
	out[o] = '\0';
	return out;
}

int main(void)
{
	const char *dir = getenv("FORESHOCK_SHARED_DATA");
	char path[4096];
	snprintf(path, sizeof path, "%s/lineprotocol/decode-corpus.json", dir ? dir : "../shared/data");
	size_t rawlen;
	char *raw = obuf_read_file(path, 0, &rawlen);
	if (!raw) {
		fprintf(stderr, "cannot open '%s': skipping\n", path);
		return 77;
	}
	char *fixed = quote_uints(raw, rawlen);
	free(raw);
	json_error_t jerr;
	json_t *root = json_loads(fixed, JSON_ALLOW_NUL, &jerr);
	free(fixed);
	if (!root) {
		fprintf(stderr, "invalid corpus '%s': %s (line %d)\n", path, jerr.text, jerr.line);
		return 1;
	}
	int verbose = getenv("LP_CORPUS_VERBOSE") != NULL;
	json_t *cases = json_object_get(root, "decode");
	struct lp_parser p;
	struct lp_limits unlimited = { 0, 0, 0, 0, 0 };
	if (lp_parser_init(&p, &unlimited) != 0) /* the corpus tests syntax, not our limits */
		return 1;
	size_t total = 0, pass = 0, skipped = 0;
	const char *key;
	json_t *c;
	json_object_foreach(cases, key, c) {
		json_t *in = json_object_get(c, "input"), *out = json_object_get(c, "output");
		json_t *text = json_object_get(in, "text");
		char *bin = NULL;
		const char *buf;
		size_t len;
		total++;
		if (json_is_object(text)) {
			bin = b64decode(json_string_value(json_object_get(text, "binary")), &len);
			buf = bin;
		} else {
			buf = json_string_value(text);
			len = json_string_length(text);
		}
		enum lp_precision prec;
		if (lp_precision_parse(json_string_value(json_object_get(in, "precision")), &prec) != 0) {
			fprintf(stderr, "case %s: unknown precision '%s'\n", key,
			        json_string_value(json_object_get(in, "precision")));
			free(bin);
			continue;
		}
		int64_t dflt = (int64_t)json_integer_value(json_object_get(in, "defaultTime"));
		struct got g = { json_array(), 0, "" };
		lp_parse(&p, buf, len, prec, dflt, on_point, on_error, &g);
		json_t *want = json_object_get(out, "result");
		int ok = want ? (g.nerr == 0 && points_eq(want, g.points)) : g.nerr > 0;
		int divergent = 0;
		for (size_t i = 0; known_divergent[i]; i++)
			if (!strcmp(known_divergent[i], key))
				divergent = 1;
		if (ok) {
			pass++;
		} else if (divergent) {
			skipped++;
		} else if (verbose) {
			char *gs = json_dumps(g.points, JSON_COMPACT | JSON_ENSURE_ASCII);
			char *ws = want ? json_dumps(want, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
			char *is = json_dumps(text, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
			printf("FAIL %s prec=%s input=%s\n  want: %s\n  got:  %s%s%s\n", key,
			       json_string_value(json_object_get(in, "precision")), is,
			       want ? ws : json_string_value(json_object_get(out, "error")), gs,
			       g.nerr ? " error: " : "", g.first_err);
			free(gs);
			free(ws);
			free(is);
		}
		json_decref(g.points);
		free(bin);
	}
	lp_parser_free(&p);
	json_decref(root);
	printf("lineprotocol corpus: %zu/%zu cases pass", pass, total);
	if (skipped)
		printf(" (%zu documented divergences)", skipped);
	printf("\n");
	return pass + skipped == total ? 0 : 1;
}
