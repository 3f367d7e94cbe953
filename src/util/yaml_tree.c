/* util/yaml_tree.c — a YAML document loaded by libyaml (yaml_parser_load) as a
 * struct ynode tree with line numbers (see yaml_tree.h). Used by the config
 * and model loaders. */
#include "util/yaml_tree.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util/buf.h"

#define YTREE_MAX_DEPTH 64

void yerr(char *err, size_t errlen, const struct ynode *at, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	int n = 0;
	if (at)
		n = snprintf(err, errlen, "%s:%d: ", at->file ? at->file : "<yaml>", at->line);
	if (n < 0 || (size_t)n >= errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

static void node_free(struct ynode *n)
{
	if (!n)
		return;
	free(n->scalar);
	for (size_t i = 0; i < n->n; i++) {
		node_free(n->items[i]);
		if (n->keys)
			free(n->keys[i]);
	}
	free(n->items);
	free(n->keys);
	free(n->key_lines);
	free(n);
}

void ytree_free(struct ynode *root)
{
	if (!root)
		return;
	char *file = (char *)root->file;
	node_free(root);
	free(file);
}

struct yparse {
	yaml_parser_t parser;
	yaml_document_t doc;
	const char *file;
	char *err;
	size_t errlen;
	unsigned char *seen;   /* per document node: already in the tree (an alias) */
};

static int line_of(const yaml_node_t *yn)
{
	return (int)yn->start_mark.line + 1;
}

static struct ynode *new_node(enum ynode_type t, const yaml_node_t *yn, const char *file)
{
	struct ynode *n = calloc(1, sizeof *n);
	if (!n)
		return NULL;
	n->type = t;
	n->line = line_of(yn);
	n->file = file;
	return n;
}

/* Our tree of document node idx. libyaml's document keeps an alias as a
 * second reference to its anchor's node: a node reached twice is one,
 * reported at the anchored node's line (the document keeps no alias). */
static struct ynode *from_doc(struct yparse *p, int idx, int depth)
{
	yaml_node_t *yn = yaml_document_get_node(&p->doc, idx);
	if (!yn) {
		snprintf(p->err, p->errlen, "%s: unexpected YAML node", p->file);
		return NULL;
	}
	if (depth > YTREE_MAX_DEPTH) {
		snprintf(p->err, p->errlen, "%s:%d: nesting too deep", p->file, line_of(yn));
		return NULL;
	}
	if (p->seen[idx - 1]) {
		snprintf(p->err, p->errlen, "%s:%d: aliases are not supported", p->file, line_of(yn));
		return NULL;
	}
	p->seen[idx - 1] = 1;
	struct ynode *n = NULL;
	switch (yn->type) {
	case YAML_SCALAR_NODE:
		n = new_node(Y_SCALAR, yn, p->file);
		if (!n)
			goto oom;
		n->scalar = strndup((const char *)yn->data.scalar.value, yn->data.scalar.length);
		if (!n->scalar)
			goto oom;
		n->quoted = yn->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
		            yn->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
		return n;
	case YAML_SEQUENCE_NODE: {
		n = new_node(Y_SEQ, yn, p->file);
		size_t cnt = (size_t)(yn->data.sequence.items.top - yn->data.sequence.items.start);
		if (!n || (cnt && !(n->items = calloc(cnt, sizeof *n->items))))
			goto oom;
		for (size_t i = 0; i < cnt; i++) {
			if (!(n->items[i] = from_doc(p, yn->data.sequence.items.start[i], depth + 1)))
				goto fail;
			n->n = i + 1;
		}
		return n;
	}
	case YAML_MAPPING_NODE: {
		n = new_node(Y_MAP, yn, p->file);
		size_t cnt = (size_t)(yn->data.mapping.pairs.top - yn->data.mapping.pairs.start);
		if (!n || (cnt && (!(n->items = calloc(cnt, sizeof *n->items)) ||
		                   !(n->keys = calloc(cnt, sizeof *n->keys)) ||
		                   !(n->key_lines = calloc(cnt, sizeof *n->key_lines)))))
			goto oom;
		for (size_t i = 0; i < cnt; i++) {
			const yaml_node_pair_t *pr = &yn->data.mapping.pairs.start[i];
			yaml_node_t *kn = yaml_document_get_node(&p->doc, pr->key);
			if (!kn || kn->type != YAML_SCALAR_NODE) {
				snprintf(p->err, p->errlen, "%s:%d: mapping keys must be scalars", p->file,
				         kn ? line_of(kn) : n->line);
				goto fail;
			}
			char *key = strndup((const char *)kn->data.scalar.value, kn->data.scalar.length);
			if (!key)
				goto oom;
			for (size_t j = 0; j < n->n; j++) {
				if (strcmp(n->keys[j], key) == 0) {
					snprintf(p->err, p->errlen, "%s:%d: duplicate key '%s'", p->file,
					         line_of(kn), key);
					free(key);
					goto fail;
				}
			}
			struct ynode *child = from_doc(p, pr->value, depth + 1);
			if (!child) {
				free(key);
				goto fail;
			}
			n->items[i] = child;
			n->keys[i] = key;
			n->key_lines[i] = line_of(kn);
			n->n = i + 1;
		}
		return n;
	}
	default:
		snprintf(p->err, p->errlen, "%s:%d: unexpected YAML node", p->file, line_of(yn));
		return NULL;
	}
oom:
	snprintf(p->err, p->errlen, "%s: out of memory", p->file);
fail:
	node_free(n);
	return NULL;
}

static int parse_error(struct yparse *p)
{
	snprintf(p->err, p->errlen, "%s:%zu: %s", p->file, (size_t)p->parser.problem_mark.line + 1,
	         p->parser.problem ? p->parser.problem : "invalid YAML");
	return -1;
}

/* The document (libyaml's yaml_parser_load) as our tree. */
static struct ynode *load(struct yparse *p)
{
	struct ynode *root = NULL;
	if (!yaml_parser_load(&p->parser, &p->doc)) {
		parse_error(p);
		return NULL;
	}
	yaml_node_t *top = yaml_document_get_root_node(&p->doc);
	if (top) {
		size_t nodes = (size_t)(p->doc.nodes.top - p->doc.nodes.start);
		p->seen = calloc(nodes, 1);
		if (!p->seen) {
			snprintf(p->err, p->errlen, "%s: out of memory", p->file);
			goto out;
		}
		root = from_doc(p, 1, 0); /* the root is node 1 */
		if (!root)
			goto out;
	} else {
		root = calloc(1, sizeof *root);
		if (!root) {
			snprintf(p->err, p->errlen, "%s: out of memory", p->file);
			goto out;
		}
		root->type = Y_MAP;
		root->line = 1;
		root->file = p->file;
	}
	/* a second document (one with content: libyaml cannot tell an empty
	 * one from the end of the stream)? */
	yaml_document_t next;
	if (!yaml_parser_load(&p->parser, &next)) {
		parse_error(p);
		goto fail;
	}
	int second = yaml_document_get_root_node(&next) != NULL;
	int line = (int)next.start_mark.line + 1;
	yaml_document_delete(&next);
	if (second) {
		snprintf(p->err, p->errlen, "%s:%d: only one YAML document is allowed", p->file, line);
		goto fail;
	}
	if (root->type == Y_SCALAR && root->scalar[0] == '\0') {
		root->type = Y_MAP;
	}
	goto out;
fail:
	node_free(root);
	root = NULL;
out:
	free(p->seen);
	p->seen = NULL;
	yaml_document_delete(&p->doc);
	return root;
}

struct ynode *ytree_load_string(const char *s, size_t len, const char *name, char *err,
                                size_t errlen)
{
	char dummy[1];
	struct yparse p = { .err = err ? err : dummy, .errlen = err ? errlen : sizeof dummy };
	char *file = strdup(name ? name : "<yaml>");
	if (!file) {
		snprintf(p.err, p.errlen, "out of memory");
		return NULL;
	}
	p.file = file;
	if (!yaml_parser_initialize(&p.parser)) {
		snprintf(p.err, p.errlen, "%s: cannot initialise YAML parser", file);
		free(file);
		return NULL;
	}
	yaml_parser_set_input_string(&p.parser, (const unsigned char *)s, len);
	struct ynode *root = load(&p);
	yaml_parser_delete(&p.parser);
	if (!root) {
		free(file);
		return NULL;
	}
	return root;
}

struct ynode *ytree_load_file(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
		return NULL;
	}
	struct obuf b;
	obuf_init(&b, 16u << 20);
	int rc = obuf_read(&b, f);
	int e = errno;
	fclose(f);
	if (rc < 0) {
		if (e == EFBIG)
			snprintf(err, errlen, "'%s' is larger than 16 MiB", path);
		else
			snprintf(err, errlen, "cannot read '%s'", path);
		obuf_free(&b);
		return NULL;
	}
	struct ynode *root = ytree_load_string(b.p, b.len, path, err, errlen);
	obuf_free(&b);
	return root;
}

const struct ynode *ymap_get(const struct ynode *map, const char *key)
{
	if (!map || map->type != Y_MAP)
		return NULL;
	for (size_t i = 0; i < map->n; i++)
		if (strcmp(map->keys[i], key) == 0)
			return map->items[i];
	return NULL;
}

int ymap_check_keys(const struct ynode *map, const char *const *allowed, char *err, size_t errlen)
{
	if (!map || map->type != Y_MAP)
		return 0;
	for (size_t i = 0; i < map->n; i++) {
		int ok = 0;
		for (const char *const *a = allowed; *a; a++)
			if (strcmp(*a, map->keys[i]) == 0) {
				ok = 1;
				break;
			}
		if (ok)
			continue;
		char list[512];
		size_t off = 0;
		list[0] = '\0';
		for (const char *const *a = allowed; *a && off < sizeof list; a++) {
			int w = snprintf(list + off, sizeof list - off, "%s%s", a == allowed ? "" : ", ", *a);
			if (w < 0)
				break;
			off += (size_t)w;
		}
		snprintf(err, errlen, "%s:%d: unknown key '%s' (allowed: %s)", map->file,
		         map->key_lines[i], map->keys[i], list);
		return -1;
	}
	return 0;
}

static int need_scalar(const struct ynode *n, const char *what, char *err, size_t errlen)
{
	if (!n || n->type != Y_SCALAR) {
		yerr(err, errlen, n, "'%s' must be a single value", what);
		return -1;
	}
	return 0;
}

int ynode_string(const struct ynode *n, const char *what, const char **out, char *err,
                 size_t errlen)
{
	if (need_scalar(n, what, err, errlen) < 0)
		return -1;
	*out = n->scalar;
	return 0;
}

int ynode_double(const struct ynode *n, const char *what, double *out, char *err, size_t errlen)
{
	if (need_scalar(n, what, err, errlen) < 0)
		return -1;
	char *end;
	errno = 0;
	double v = strtod(n->scalar, &end);
	if (end == n->scalar || *end || errno || !isfinite(v)) {
		yerr(err, errlen, n, "invalid number '%s' for '%s'", n->scalar, what);
		return -1;
	}
	*out = v;
	return 0;
}

int ynode_int(const struct ynode *n, const char *what, int64_t *out, char *err, size_t errlen)
{
	if (need_scalar(n, what, err, errlen) < 0)
		return -1;
	char *end;
	errno = 0;
	long long v = strtoll(n->scalar, &end, 10);
	if (end == n->scalar || *end || errno) {
		yerr(err, errlen, n, "invalid integer '%s' for '%s'", n->scalar, what);
		return -1;
	}
	*out = v;
	return 0;
}

int ynode_bool(const struct ynode *n, const char *what, int *out, char *err, size_t errlen)
{
	if (need_scalar(n, what, err, errlen) < 0)
		return -1;
	static const char *const t[] = { "true", "True", "TRUE", "yes", "Yes", "on", "1", NULL };
	static const char *const f[] = { "false", "False", "FALSE", "no", "No", "off", "0", NULL };
	for (int i = 0; t[i]; i++)
		if (!strcmp(n->scalar, t[i])) {
			*out = 1;
			return 0;
		}
	for (int i = 0; f[i]; i++)
		if (!strcmp(n->scalar, f[i])) {
			*out = 0;
			return 0;
		}
	yerr(err, errlen, n, "invalid boolean '%s' for '%s' (use true or false)", n->scalar, what);
	return -1;
}

int parse_duration_ms(const char *s, int64_t *out)
{
	if (!s || !*s)
		return -1;
	int64_t total = 0;
	const char *p = s;
	while (*p) {
		if (!isdigit((unsigned char)*p) && *p != '.')
			return -1;
		char *end;
		errno = 0;
		double v = strtod(p, &end);
		if (end == p || errno || v < 0)
			return -1;
		p = end;
		double mult;
		if (!*p)
			mult = 1000; /* bare number: seconds */
		else if (!strncmp(p, "ms", 2)) {
			mult = 1;
			p += 2;
		} else if (*p == 's') {
			mult = 1000;
			p++;
		} else if (*p == 'm') {
			mult = 60e3;
			p++;
		} else if (*p == 'h') {
			mult = 3600e3;
			p++;
		} else if (*p == 'd') {
			mult = 86400e3;
			p++;
		} else if (*p == 'w') {
			mult = 7 * 86400e3;
			p++;
		} else
			return -1;
		double ms = v * mult;
		if (ms > 9e15)
			return -1;
		total += (int64_t)llround(ms);
	}
	*out = total;
	return 0;
}

int ynode_duration_ms(const struct ynode *n, const char *what, int64_t *out, char *err,
                      size_t errlen)
{
	if (need_scalar(n, what, err, errlen) < 0)
		return -1;
	if (parse_duration_ms(n->scalar, out) < 0) {
		yerr(err, errlen, n, "invalid duration '%s' for '%s' (e.g. 30s, 5m, 1h)", n->scalar,
		     what);
		return -1;
	}
	return 0;
}

const char *format_duration_ms(int64_t ms, char *buf, size_t len)
{
	static const struct { int64_t ms; const char *unit; } units[] = {
		{ 7 * 86400000LL, "w" }, { 86400000LL, "d" }, { 3600000LL, "h" }, { 60000LL, "m" },
		{ 1000LL, "s" },
	};
	if (ms == 0) {
		snprintf(buf, len, "0s");
		return buf;
	}
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (ms % units[i].ms == 0) {
			snprintf(buf, len, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
			return buf;
		}
	snprintf(buf, len, "%lldms", (long long)ms);
	return buf;
}

int ymap_duration_min(const struct ynode *map, const char *key, int64_t min_ms, int64_t *out,
                      char *err, size_t errlen)
{
	const struct ynode *n = ymap_get(map, key);
	if (!n)
		return 0;
	if (ynode_duration_ms(n, key, out, err, errlen) < 0)
		return -1;
	if (*out < min_ms) {
		char lo[32];
		yerr(err, errlen, n, "duration '%s' for '%s' out of range (at least %s)", n->scalar, key,
		     format_duration_ms(min_ms, lo, sizeof lo));
		return -1;
	}
	return 0;
}

int ymap_double_range(const struct ynode *map, const char *key, double lo, double hi, double *out,
                      char *err, size_t errlen)
{
	const struct ynode *n = ymap_get(map, key);
	if (!n)
		return 0;
	double v;
	if (ynode_double(n, key, &v, err, errlen) < 0)
		return -1;
	if (!(v >= lo && v <= hi)) {
		yerr(err, errlen, n, "value %g for '%s' out of range [%g, %g]", v, key, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

int ynode_bytes(const struct ynode *n, const char *what, int64_t *out, char *err, size_t errlen)
{
	if (need_scalar(n, what, err, errlen) < 0)
		return -1;
	char *end;
	errno = 0;
	double v = strtod(n->scalar, &end);
	if (end == n->scalar || errno || v < 0)
		goto bad;
	while (*end == ' ')
		end++;
	static const struct {
		const char *suffix;
		double mult;
	} units[] = { { "", 1 },         { "B", 1 },       { "KiB", 1024.0 }, { "MiB", 1048576.0 },
		      { "GiB", 1073741824.0 }, { "KB", 1e3 }, { "MB", 1e6 },     { "GB", 1e9 },
		      { "k", 1e3 },          { "K", 1024.0 } };
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (!strcmp(end, units[i].suffix)) {
			double b = v * units[i].mult;
			if (b > 9e18)
				goto bad;
			*out = (int64_t)b;
			return 0;
		}
	}
bad:
	yerr(err, errlen, n, "invalid size '%s' for '%s' (e.g. 10MiB)", n->scalar, what);
	return -1;
}
