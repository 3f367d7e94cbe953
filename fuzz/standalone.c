/* standalone.c — run a libFuzzer-style target without libFuzzer.
 *
 * Linked with one fuzz/fuzz_NAME.c, it feeds every file named on the command
 * line (directories are walked one level) to LLVMFuzzerTestOneInput(). Used by
 * `make check` to replay each parser's corpus under the sanitizers, the way
 * SQLite's fuzzcheck replays fuzzer finds: only crashes, sanitizer reports and
 * leaks fail the run.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "cannot open '%s': %s\n", path, strerror(errno));
		return -1;
	}
	size_t cap = 4096, len = 0;
	uint8_t *buf = malloc(cap);
	if (!buf) {
		fclose(f);
		return -1;
	}
	size_t n;
	while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap) {
			uint8_t *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				fclose(f);
				return -1;
			}
			buf = nb;
			cap *= 2;
		}
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	int files = 0, errors = 0;
	char deflt[4096];
	char *defargv[2];
	if (argc == 1) {
		/* `make check` runs fuzz/fuzz_NAME with no arguments: replay
		 * $FORESHOCK_SRCDIR/fuzz/corpus/NAME. */
		const char *base = strrchr(argv[0], '/');
		base = base ? base + 1 : argv[0];
		if (strncmp(base, "fuzz_", 5) == 0)
			base += 5;
		const char *src = getenv("FORESHOCK_SRCDIR");
		snprintf(deflt, sizeof deflt, "%s/fuzz/corpus/%s", src ? src : ".", base);
		defargv[0] = argv[0];
		defargv[1] = deflt;
		argv = defargv;
		argc = 2;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "cannot stat '%s': %s\n", argv[i], strerror(errno));
			errors++;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			errors += run_file(argv[i]) != 0;
			files++;
			continue;
		}
		DIR *d = opendir(argv[i]);
		if (!d) {
			errors++;
			continue;
		}
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			char path[4096];
			snprintf(path, sizeof path, "%s/%s", argv[i], de->d_name);
			errors += run_file(path) != 0;
			files++;
		}
		closedir(d);
	}
	printf("replayed %d inputs, %d unreadable\n", files, errors);
	return errors ? 1 : (files ? 0 : 77);
}
