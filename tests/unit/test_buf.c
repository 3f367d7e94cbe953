/* test_buf.c — unit tests of util/buf's whole-stream reads: obuf_read (a
 * stream to its end, capped at the buffer's max) and obuf_read_file (a
 * file by path), which the YAML loader, the CLI and the corpus tests use;
 * and of errbuf_printf, the error messages of the store and the CLI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/buf.h"

/* A temporary file holding n bytes of a pattern; its path in path. */
static void make_file(char *path, size_t pathlen, size_t n)
{
	snprintf(path, pathlen, "/tmp/fs-buf-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "wb");
	assert_non_null(f);
	for (size_t i = 0; i < n; i++)
		fputc('a' + (int)(i % 26), f);
	assert_int_equal(fclose(f), 0);
}

static void check_pattern(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 'a' + (int)(i % 26))
			fail_msg("byte %zu is '%c'", i, p[i]);
	assert_int_equal(p[n], 0);
}

/* Sizes around the buffer's first capacity (4 KiB) and several doublings. */
static void test_read_file_sizes(void **st)
{
	(void)st;
	static const size_t sizes[] = { 0, 1, 4094, 4095, 4096, 4097, 100000 };
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		char path[64];
		make_file(path, sizeof path, sizes[k]);
		size_t len = 12345;
		char *p = obuf_read_file(path, 0, &len);
		assert_non_null(p);
		assert_int_equal(len, sizes[k]);
		check_pattern(p, len);
		free(p);
		assert_non_null(p = obuf_read_file(path, 0, NULL));
		free(p);
		unlink(path);
	}
	errno = 0;
	assert_null(obuf_read_file("/nonexistent/fs-buf", 0, NULL));
	assert_int_equal(errno, ENOENT);
}

/* max bytes are read; one more is refused with EFBIG. */
static void test_read_max(void **st)
{
	(void)st;
	static const size_t maxes[] = { 1, 4095, 4096, 5000, 70000 };
	for (size_t k = 0; k < sizeof maxes / sizeof maxes[0]; k++) {
		size_t max = maxes[k];
		char path[64];
		make_file(path, sizeof path, max);
		size_t len = 0;
		char *p = obuf_read_file(path, max, &len);
		assert_non_null(p);
		assert_int_equal(len, max);
		check_pattern(p, len);
		free(p);
		unlink(path);
		make_file(path, sizeof path, max + 1);
		errno = 0;
		assert_null(obuf_read_file(path, max, &len));
		assert_int_equal(errno, EFBIG);
		unlink(path);
	}
}

/* obuf_read appends to what the buffer holds; a failed buffer stays failed. */
static void test_read_stream(void **st)
{
	(void)st;
	static char text[] = "hello, stream";
	FILE *f = fmemopen(text, strlen(text), "r");
	assert_non_null(f);
	struct obuf b;
	obuf_init(&b, 0);
	obuf_puts(&b, ">");
	assert_int_equal(obuf_read(&b, f), 0);
	assert_string_equal(b.p, ">hello, stream");
	assert_int_equal(b.len, strlen(text) + 1);
	fclose(f);
	obuf_free(&b);
	f = fmemopen(text, strlen(text), "r");
	assert_non_null(f);
	obuf_init(&b, 4);
	errno = 0;
	assert_int_equal(obuf_read(&b, f), -1);
	assert_int_equal(errno, EFBIG);
	assert_true(b.failed);
	assert_int_equal(obuf_read(&b, f), -1);
	fclose(f);
	obuf_free(&b);
}

/* errbuf_printf: formatted, truncated to fit, nothing without a buffer. */
static void test_errbuf(void **st)
{
	(void)st;
	char err[8] = "x";
	errbuf_printf(err, sizeof err, "cannot read '%s'", "f");
	assert_string_equal(err, "cannot ");
	errbuf_printf(err, sizeof err, "%d", 42);
	assert_string_equal(err, "42");
	errbuf_printf(err, 0, "%d", 7);
	assert_string_equal(err, "42");
	errbuf_printf(NULL, 8, "%d", 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errbuf),
		cmocka_unit_test(test_read_file_sizes),
		cmocka_unit_test(test_read_max),
		cmocka_unit_test(test_read_stream),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
