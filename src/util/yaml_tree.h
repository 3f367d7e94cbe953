/* util/yaml_tree.h — load a YAML document into a small tree that remembers line numbers.
 *
 * Config and model loaders walk this tree and report errors as
 * "FILE:LINE: reason". libyaml loads the document (yaml_parser_load); this
 * module turns its nodes into the tree. Aliases (reported at the anchored
 * node) and multiple
 * documents are rejected. A tree owns all its strings; ytree_free() frees it.
 */
#ifndef FORESHOCK_YAML_TREE_H
#define FORESHOCK_YAML_TREE_H

#include <stddef.h>
#include <stdint.h>

enum ynode_type { Y_SCALAR, Y_SEQ, Y_MAP };

struct ynode {
	enum ynode_type type;
	int line;              /* 1-based line of the node's start */
	char *scalar;          /* Y_SCALAR: the text ("" for an empty value) */
	int quoted;            /* Y_SCALAR: written in quotes (so "null" is a string) */
	size_t n;              /* Y_SEQ/Y_MAP: number of items */
	struct ynode **items;  /* Y_SEQ: items; Y_MAP: values */
	char **keys;           /* Y_MAP: keys (scalars only) */
	int *key_lines;        /* Y_MAP: line of each key */
	const char *file;      /* name used in messages (points into the root's copy) */
};

/* Load; on error NULL and "FILE:LINE: reason" in err. An empty document gives
 * an empty map. */
struct ynode *ytree_load_file(const char *path, char *err, size_t errlen);
struct ynode *ytree_load_string(const char *s, size_t len, const char *name, char *err,
                                size_t errlen);
void ytree_free(struct ynode *root);

/* Map lookup; NULL if absent or if map is not a map. */
const struct ynode *ymap_get(const struct ynode *map, const char *key);
/* Fail with "FILE:LINE: unknown key 'k' (allowed: a, b)" if map has a key not in
 * allowed (NULL-terminated). Returns 0 or -1. */
int ymap_check_keys(const struct ynode *map, const char *const *allowed, char *err, size_t errlen);

/* Typed reads. Each returns 0, or -1 with "FILE:LINE: reason" naming `what`. */
int ynode_double(const struct ynode *n, const char *what, double *out, char *err, size_t errlen);
int ynode_int(const struct ynode *n, const char *what, int64_t *out, char *err, size_t errlen);
int ynode_bool(const struct ynode *n, const char *what, int *out, char *err, size_t errlen);
/* Durations: "250ms", "30s", "5m", "2h", "1d", "1w", or a bare number of seconds. */
int ynode_duration_ms(const struct ynode *n, const char *what, int64_t *out, char *err,
                      size_t errlen);
/* The duration under key in map into *out, if the key is there (*out is left as
 * it is otherwise), and at least min_ms: 0, or -1 with
 * "FILE:LINE: duration 'V' for 'key' out of range (at least MIN)" in err. */
int ymap_duration_min(const struct ynode *map, const char *key, int64_t min_ms, int64_t *out,
                      char *err, size_t errlen);
/* The number under key in map into *out, if the key is there (*out is left as
 * it is otherwise), and within [lo, hi]: 0, or -1 with
 * "FILE:LINE: value V for 'key' out of range [lo, hi]" in err. */
int ymap_double_range(const struct ynode *map, const char *key, double lo, double hi, double *out,
                      char *err, size_t errlen);
/* Byte sizes: "512", "64KiB", "10MiB", "1GiB" (also KB/MB/GB as powers of 1000). */
int ynode_bytes(const struct ynode *n, const char *what, int64_t *out, char *err, size_t errlen);
int ynode_string(const struct ynode *n, const char *what, const char **out, char *err,
                 size_t errlen);

/* Format "FILE:LINE: " + message into err. */
void yerr(char *err, size_t errlen, const struct ynode *at, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* ms as a duration the parsers read back, in its largest whole unit ("1s",
 * "90s", "250ms", "0s") into buf of len bytes; returns buf. */
const char *format_duration_ms(int64_t ms, char *buf, size_t len);

/* Parse a duration string as above; returns 0 or -1. Shared with CLI flags. */
int parse_duration_ms(const char *s, int64_t *out);

#endif
