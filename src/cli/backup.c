/* cli_backup.c — `foreshock backup` and `foreshock restore`: online backup
 * of a daemon's SQLite store and restore into a data directory, both with
 * SQLite's backup API (store_copy() in store/backup.c).
 *
 *   foreshock backup (--data-dir DIR | --db FILE) --out FILE [--force]
 *   foreshock restore --from FILE --data-dir DIR [--force]
 *
 * backup works while foreshockd runs: the copy is one read transaction on
 * the live WAL database, so it is consistent and never blocks the daemon.
 * restore needs the daemon stopped: it takes the data dir's lock
 * (datadir.h), so it refuses while a foreshockd holds it. Both print one
 * line describing the copy. Exit 0 ok, 1 failure, 2 usage.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "store/datadir.h"
#include "store/store.h"

static void describe(const char *what, const char *path, const struct store_info *in)
{
	printf("%s '%s': schema %d, id %s, %lld alerts (%lld open), %lld events, %lld series\n",
	       what, path, in->version, in->id[0] ? in->id : "(none)", (long long)in->alerts,
	       (long long)in->open_alerts, (long long)in->events, (long long)in->series);
}

static const struct option backup_opts[] = {
	{ "data-dir", required_argument, NULL, 'd' },
	{ "db", required_argument, NULL, 'b' },
	{ "out", required_argument, NULL, 'o' },
	{ "from", required_argument, NULL, 'f' },
	{ "force", no_argument, NULL, 'F' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

int cli_backup_main(int argc, char **argv)
{
	const char *dir = NULL, *db = NULL, *out = NULL;
	int force = 0, c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "d:o:h", backup_opts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'b': db = optarg; break;
		case 'o': out = optarg; break;
		case 'F': force = 1; break;
		case 'h':
			printf("usage: foreshock backup (--data-dir DIR | --db FILE) --out FILE [--force]\n"
			       "Online, consistent copy of foreshockd's store (safe while it runs).\n");
			return 0;
		default: return 2;
		}
	}
	if ((!dir == !db) || !out || optind < argc) {
		fprintf(stderr, "foreshock backup: need --out and one of --data-dir or --db\n");
		return 2;
	}
	char src[4200];
	if (dir)
		snprintf(src, sizeof src, "%s/foreshock.db", dir);
	else
		snprintf(src, sizeof src, "%s", db);
	if (!force && access(out, F_OK) == 0) {
		fprintf(stderr, "foreshock backup: '%s' exists (use --force to replace it)\n", out);
		return 1;
	}
	char err[1024];
	struct store_info info;
	if (store_copy(src, out, 1, &info, err, sizeof err) < 0) {
		fprintf(stderr, "foreshock backup: %s\n", err);
		return 1;
	}
	describe("backup", out, &info);
	return 0;
}

int cli_restore_main(int argc, char **argv)
{
	const char *dir = NULL, *from = NULL;
	int force = 0, c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "d:f:h", backup_opts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'f': from = optarg; break;
		case 'F': force = 1; break;
		case 'h':
			printf("usage: foreshock restore --from FILE --data-dir DIR [--force]\n"
			       "Restore a backup into a data dir (foreshockd must be stopped).\n");
			return 0;
		default: return 2;
		}
	}
	if (!dir || !from || optind < argc) {
		fprintf(stderr, "foreshock restore: need --from FILE and --data-dir DIR\n");
		return 2;
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "foreshock restore: unable to create '%s': %s\n", dir, strerror(errno));
		return 1;
	}
	char err[1024];
	int lockfd = datadir_lock(dir, err, sizeof err);
	if (lockfd < 0) {
		fprintf(stderr, "foreshock restore: %s\n", err);
		return 1;
	}
	int rc = 1;
	char dst[4200];
	snprintf(dst, sizeof dst, "%s/foreshock.db", dir);
	struct store_info info;
	if (!force && access(dst, F_OK) == 0) {
		fprintf(stderr, "foreshock restore: database '%s' exists (use --force to replace it)\n",
		        dst);
		goto out;
	}
	if (store_copy(from, dst, 0, &info, err, sizeof err) < 0) {
		fprintf(stderr, "foreshock restore: %s\n", err);
		goto out;
	}
	/* the data dir now holds this database (a version-1 backup gets its id
	 * when foreshockd first opens it) */
	if (info.id[0]) {
		if (datadir_marker_write(dir, info.id, err, sizeof err) < 0) {
			fprintf(stderr, "foreshock restore: %s\n", err);
			goto out;
		}
	} else {
		char marker[4200];
		snprintf(marker, sizeof marker, "%s/foreshock.id", dir);
		unlink(marker);
	}
	describe("restored", dst, &info);
	rc = 0;
out:
	close(lockfd);
	return rc;
}
