/* datadir.c — data directory lock and database marker (see datadir.h). */
#include "store/datadir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int datadir_lock(const char *dir, char *err, size_t errlen)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/foreshock.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(err, errlen, "unable to open '%s': %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK)
			snprintf(err, errlen, "data dir '%s' is in use by another process (lock '%s' "
			         "held): stop that foreshockd first", dir, path);
		else
			snprintf(err, errlen, "unable to lock '%s': %s", path, strerror(e));
		return -1;
	}
	return fd;
}

int datadir_marker_read(const char *dir, char *id, size_t len, char *err, size_t errlen)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/foreshock.id", dir);
	FILE *f = fopen(path, "r");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "unable to read '%s': %s", path, strerror(errno));
		return -1;
	}
	if (!fgets(id, (int)len, f))
		id[0] = '\0';
	fclose(f);
	id[strcspn(id, "\r\n")] = '\0';
	return 1;
}

int datadir_marker_write(const char *dir, const char *id, char *err, size_t errlen)
{
	char path[4200], tmp[4300];
	snprintf(path, sizeof path, "%s/foreshock.id", dir);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	size_t n = strlen(id);
	int ok = fd >= 0 && write(fd, id, n) == (ssize_t)n && write(fd, "\n", 1) == 1 &&
	         fsync(fd) == 0;
	int e = errno;
	if (fd >= 0)
		close(fd);
	if (ok && rename(tmp, path) < 0) {
		e = errno;
		ok = 0;
	}
	if (!ok) {
		unlink(tmp);
		snprintf(err, errlen, "unable to write '%s': %s", path, strerror(e));
		return -1;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}
