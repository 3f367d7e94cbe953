/* crash_store.c — kill -9 crash harness for the store (src/store/store.c).
 *
 * In SQLite's test6.c spirit: prove the store survives a kill at any point.
 * Each round forks a child that opens the database and writes alert
 * transitions in a loop (batches of 1-4 alerts per store_alerts_write, plus a
 * full checkpoint snapshot every few batches). Only after a write returned 0
 * does the child report it on a pipe, one write(2) per batch so a report is
 * never torn. The parent kill -9's the child at a random moment (often during
 * open/recovery, a write or a checkpoint), reopens the database and checks:
 *   - PRAGMA integrity_check and foreign_key_check are clean;
 *   - every reported transition is in the history, in order, and each
 *     alert's current row agrees with its last event;
 *   - the only events the parent was not told about belong to the single
 *     batch that was in flight (at most one per alert, at most one batch);
 *   - the checkpoint table holds exactly one complete snapshot: the last
 *     reported one, or the in-flight one.
 * The parent then adopts what the database holds and runs the next round on
 * the same file.
 *
 * This is process death, not power loss: it proves atomicity and that a
 * returned commit reached the OS. Power loss additionally needs the fsync
 * that synchronous=FULL performs (see docs/storage.md).
 *
 * Usage: crash_store [rounds]; env CRASH_STORE_ROUNDS, CRASH_STORE_SEED.
 * Exit 0 ok, 1 invariant violated, 99 harness error.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "store/store.h"

#define MAX_BATCH 4
#define MAX_OPEN 64
#define CKPT_ROWS 3000
#define CKPT_EVERY 8 /* batches */

static const char *const STATES[] = { "pending", "firing", "resolved", "cancelled" };

static int state_code(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, STATES[i]) == 0)
			return i;
	return -1;
}

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* ---- child: the writer that gets killed ---- */

struct open_alert {
	int64_t id;
	char key[48];
	int st;
	int64_t active, firing;
};

struct child {
	struct open_alert open[MAX_OPEN];
	int nopen;
	int64_t clock;   /* logical event time */
	int64_t gen;     /* checkpoint generation */
};

static int child_load_open(void *ctx, const struct alert_rec *r)
{
	struct child *c = ctx;
	if (c->nopen >= MAX_OPEN)
		return 0;
	struct open_alert *o = &c->open[c->nopen++];
	o->id = r->id;
	snprintf(o->key, sizeof o->key, "%s", r->series_key);
	o->st = state_code(r->state);
	o->active = r->active_at_ms;
	o->firing = r->firing_at_ms;
	return 0;
}

static int child_last_event(void *ctx, const struct alert_rec *r)
{
	*(int64_t *)ctx = r->event_at_ms;
	return 1;
}

static int child_ckpt_gen(void *ctx, const struct store_ckpt *c)
{
	*(int64_t *)ctx = c->last_ts_ms;
	return 1;
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(4);
		buf += w;
		len -= (size_t)w;
	}
}

static void child_main(const char *path, int fd, uint64_t seed)
{
	char err[256];
	log_set_level(LOG_ERROR);
	struct store *s = store_open(path, err, sizeof err);
	if (s == NULL) {
		fprintf(stderr, "child: %s\n", err);
		_exit(2);
	}
	struct child c = { .nopen = 0 };
	if (store_alerts_scan(s, 0, 0, child_load_open, &c) < 0 ||
	    store_alert_history(s, NULL, INT64_MIN, INT64_MAX, 1, child_last_event, &c.clock) < 0 ||
	    store_ckpt_scan(s, child_ckpt_gen, &c.gen) < 0)
		_exit(2);
	uint64_t x = seed | 1;
	int64_t next_key = (int64_t)(rnd(&x) % 1000000000);
	unsigned char blob[200];
	for (int batchno = 1;; batchno++) {
		struct alert_rec recs[MAX_BATCH];
		int slot[MAX_BATCH]; /* index into c.open, or -1 for a new alert */
		char keys[MAX_BATCH][48];
		int n = 1 + (int)(rnd(&x) % MAX_BATCH);
		int used[MAX_OPEN] = { 0 };
		for (int i = 0; i < n; i++) {
			struct alert_rec *r = &recs[i];
			memset(r, 0, sizeof *r);
			r->labels_json = "{\"alertname\":\"crash\"}";
			r->event_at_ms = ++c.clock;
			r->value = (double)c.clock;
			r->score = 0.5;
			int k = -1;
			if (c.nopen > 0 && (c.nopen >= MAX_OPEN || rnd(&x) % 2)) {
				k = (int)(rnd(&x) % (uint64_t)c.nopen);
				if (used[k])
					k = -1;
			}
			if (k < 0 && c.nopen >= MAX_OPEN) {
				n = i; /* no free alert to use: shorter batch */
				break;
			}
			slot[i] = k;
			if (k < 0) {
				snprintf(keys[i], sizeof keys[i], "crash{n=\"%" PRId64 "\"}", next_key++);
				r->series_key = keys[i];
				r->state = "pending";
				r->active_at_ms = r->event_at_ms;
			} else {
				struct open_alert *o = &c.open[k];
				used[k] = 1;
				r->id = o->id;
				r->series_key = o->key;
				r->active_at_ms = o->active;
				r->firing_at_ms = o->firing;
				if (o->st == 0) {
					r->state = rnd(&x) % 3 ? "firing" : "cancelled";
					if (r->state[0] == 'f')
						r->firing_at_ms = r->event_at_ms;
				} else {
					r->state = "resolved";
				}
				if (r->state[0] != 'f')
					r->resolved_at_ms = r->event_at_ms;
			}
		}
		if (n == 0)
			_exit(5);
		if (store_alerts_write(s, recs, (size_t)n, err, sizeof err) != 0) {
			fprintf(stderr, "child: %s\n", err);
			_exit(3);
		}
		/* Acknowledged: report the whole batch with one write. */
		char line[1024];
		size_t len = (size_t)snprintf(line, sizeof line, "B");
		for (int i = 0; i < n; i++)
			len += (size_t)snprintf(line + len, sizeof line - len, " %" PRId64 ":%d",
			                        recs[i].id, state_code(recs[i].state));
		line[len++] = '\n';
		write_all(fd, line, len);
		/* Update the local view (drop ended alerts, add new ones). */
		for (int i = n - 1; i >= 0; i--) {
			int code = state_code(recs[i].state);
			if (slot[i] >= 0) {
				struct open_alert *o = &c.open[slot[i]];
				o->st = code;
				o->firing = recs[i].firing_at_ms;
			}
		}
		for (int i = 0; i < n; i++) {
			if (slot[i] < 0 && c.nopen < MAX_OPEN) {
				struct open_alert *o = &c.open[c.nopen++];
				o->id = recs[i].id;
				snprintf(o->key, sizeof o->key, "%s", recs[i].series_key);
				o->st = 0;
				o->active = recs[i].active_at_ms;
				o->firing = 0;
			}
		}
		for (int k = 0; k < c.nopen;) {
			if (c.open[k].st >= 2)
				c.open[k] = c.open[--c.nopen];
			else
				k++;
		}

		if (batchno % CKPT_EVERY == 0) {
			int64_t gen = c.gen + 1;
			if (store_ckpt_begin(s) != 0)
				_exit(3);
			for (int i = 0; i < CKPT_ROWS; i++) {
				char key[48];
				snprintf(key, sizeof key, "ck{i=\"%d\"}", i);
				memset(blob, (int)(gen & 0xff), sizeof blob);
				struct store_ckpt ck = { key, NULL, "default", (uint64_t)gen, gen, blob,
				                         sizeof blob, 0, 0, 0 };
				if (store_ckpt_put(s, &ck) != 0)
					_exit(3);
			}
			if (store_ckpt_commit(s) != 0)
				_exit(3);
			c.gen = gen;
			len = (size_t)snprintf(line, sizeof line, "C %" PRId64 "\n", gen);
			write_all(fd, line, len);
		}
	}
}

/* ---- parent: kill, reopen, verify ---- */

struct hist {
	uint8_t n;
	uint8_t st[4];
};

struct expect {
	struct hist *h;      /* indexed by alert id */
	size_t cap;
	int64_t gen;         /* last checkpoint generation known to be committed */
};

static struct hist *hist_at(struct expect *e, int64_t id)
{
	if (id <= 0 || id > 100000000)
		return NULL;
	if ((size_t)id >= e->cap) {
		size_t cap = e->cap ? e->cap : 1024;
		while (cap <= (size_t)id)
			cap *= 2;
		struct hist *h = realloc(e->h, cap * sizeof *h);
		if (h == NULL)
			return NULL;
		memset(h + e->cap, 0, (cap - e->cap) * sizeof *h);
		e->h = h;
		e->cap = cap;
	}
	return &e->h[id];
}

struct dbview {
	struct expect db;     /* history as the database holds it */
	int64_t *row_state;   /* current row state per id, -1 = no row */
	size_t row_cap;
	int bad;
	char why[256];
};

static int view_event(void *ctx, const struct alert_rec *r)
{
	/* history comes newest first: prepend */
	struct dbview *v = ctx;
	struct hist *h = hist_at(&v->db, r->id);
	int code = state_code(r->state);
	if (h == NULL || code < 0 || h->n >= 4) {
		snprintf(v->why, sizeof v->why, "bad history row for alert %" PRId64, r->id);
		v->bad = 1;
		return 1;
	}
	memmove(h->st + 1, h->st, h->n);
	h->st[0] = (uint8_t)code;
	h->n++;
	return 0;
}

static int view_row(void *ctx, const struct alert_rec *r)
{
	struct dbview *v = ctx;
	if ((size_t)r->id >= v->row_cap) {
		size_t cap = v->row_cap ? v->row_cap : 1024;
		while (cap <= (size_t)r->id)
			cap *= 2;
		int64_t *p = realloc(v->row_state, cap * sizeof *p);
		if (p == NULL)
			return 1;
		for (size_t i = v->row_cap; i < cap; i++)
			p[i] = -1;
		v->row_state = p;
		v->row_cap = cap;
	}
	v->row_state[r->id] = state_code(r->state);
	return 0;
}

struct ckview {
	size_t n;
	int64_t gen;
	int mixed;
};

static int view_ckpt(void *ctx, const struct store_ckpt *c)
{
	struct ckview *v = ctx;
	if (v->n == 0)
		v->gen = c->last_ts_ms;
	else if (c->last_ts_ms != v->gen)
		v->mixed = 1;
	if (c->fingerprint != (uint64_t)c->last_ts_ms || c->state_len != 200 ||
	    ((const unsigned char *)c->state)[199] != (unsigned char)(c->last_ts_ms & 0xff))
		v->mixed = 1;
	v->n++;
	return 0;
}

/* Apply one report line from the child to the expectation. */
static int apply_report(struct expect *e, char *line, int *inflight_gen_ok)
{
	if (line[0] == 'C') {
		int64_t gen = strtoll(line + 2, NULL, 10);
		if (gen != e->gen + 1)
			return -1;
		e->gen = gen;
		return 0;
	}
	if (line[0] != 'B')
		return -1;
	char *p = line + 1;
	while (*p == ' ') {
		char *end;
		int64_t id = strtoll(p + 1, &end, 10);
		if (*end != ':')
			return -1;
		int code = (int)strtol(end + 1, &p, 10);
		struct hist *h = hist_at(e, id);
		if (h == NULL || h->n >= 4 || code < 0 || code > 3)
			return -1;
		h->st[h->n++] = (uint8_t)code;
	}
	(void)inflight_gen_ok;
	return 0;
}

static int verify(const char *path, struct expect *e, int round, uint64_t *extra_total)
{
	char err[256];
	struct store *s = store_open(path, err, sizeof err);
	if (s == NULL) {
		fprintf(stderr, "round %d: reopen failed: %s\n", round, err);
		return -1;
	}
	int ret = -1;
	struct dbview v = { 0 };
	struct ckview ck = { 0 };
	if (store_integrity_check(s, err, sizeof err) != 0) {
		fprintf(stderr, "round %d: %s\n", round, err);
		goto out;
	}
	if (store_alert_history(s, NULL, INT64_MIN, INT64_MAX, 0, view_event, &v) != 0 || v.bad ||
	    store_alerts_scan(s, 1, INT64_MIN, view_row, &v) != 0 ||
	    store_ckpt_scan(s, view_ckpt, &ck) != 0) {
		fprintf(stderr, "round %d: reading back failed %s\n", round, v.why);
		goto out;
	}
	/* 1. every acknowledged transition is there, in order; extras are at
	 *    most one per alert and belong to one batch. */
	size_t extra = 0;
	size_t cap = v.db.cap > e->cap ? v.db.cap : e->cap;
	for (size_t id = 1; id < cap; id++) {
		struct hist none = { 0 };
		struct hist *want = id < e->cap ? &e->h[id] : &none;
		struct hist *have = id < v.db.cap ? &v.db.h[id] : &none;
		if (have->n < want->n || memcmp(have->st, want->st, want->n) != 0) {
			fprintf(stderr, "round %d: alert %zu lost acknowledged transitions: "
			        "reported %u events (last %s), database has %u\n", round, id, want->n,
			        want->n ? STATES[want->st[want->n - 1]] : "-", have->n);
			goto out;
		}
		if (have->n > want->n + 1) {
			fprintf(stderr, "round %d: alert %zu has %u unacknowledged events\n", round, id,
			        have->n - want->n);
			goto out;
		}
		extra += have->n - want->n;
		/* 2. the alert's row agrees with its last event */
		if (have->n > 0) {
			int64_t row = id < v.row_cap ? v.row_state[id] : -1;
			if (row != have->st[have->n - 1]) {
				fprintf(stderr, "round %d: alert %zu row state %" PRId64 " but last event %s\n",
				        round, id, row, STATES[have->st[have->n - 1]]);
				goto out;
			}
		}
	}
	if (extra > MAX_BATCH) {
		fprintf(stderr, "round %d: %zu unacknowledged events (> one batch)\n", round, extra);
		goto out;
	}
	/* 3. exactly one complete checkpoint snapshot */
	if (ck.mixed || (ck.n != 0 && ck.n != CKPT_ROWS)) {
		fprintf(stderr, "round %d: torn checkpoint: %zu rows, mixed=%d\n", round, ck.n, ck.mixed);
		goto out;
	}
	int64_t gen = ck.n ? ck.gen : 0;
	if (gen != e->gen && gen != e->gen + 1) {
		fprintf(stderr, "round %d: checkpoint generation %" PRId64 ", expected %" PRId64
		        " or the in-flight one\n", round, gen, e->gen);
		goto out;
	}
	/* Adopt the database's truth for the next round. */
	free(e->h);
	*e = v.db;
	e->gen = gen;
	v.db.h = NULL;
	*extra_total += extra;
	ret = 0;
out:
	free(v.db.h);
	free(v.row_state);
	store_close(s);
	return ret;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void rm_db(const char *dir, const char *path)
{
	char p[700];
	unlink(path);
	if (snprintf(p, sizeof p, "%s-wal", path) < (int)sizeof p)
		unlink(p);
	if (snprintf(p, sizeof p, "%s-shm", path) < (int)sizeof p)
		unlink(p);
	rmdir(dir);
}

int main(int argc, char **argv)
{
	int rounds = 20;
	const char *env = getenv("CRASH_STORE_ROUNDS");
	if (argc > 1)
		rounds = atoi(argv[1]);
	else if (env)
		rounds = atoi(env);
	env = getenv("CRASH_STORE_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	uint64_t x = seed | 1;
	fprintf(stderr, "crash_store: rounds=%d seed=%" PRIu64 "\n", rounds, seed);
	log_set_level(LOG_WARN);

	char dir[512], path[600];
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof dir, "%s/crash_store.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 99;
	}
	snprintf(path, sizeof path, "%s/crash.db", dir);

	struct expect e = { 0 };
	uint64_t acked = 0, extra_total = 0;
	int status = 0, rc = 0;
	for (int round = 0; round < rounds && rc == 0; round++) {
		int fds[2];
		if (pipe(fds) != 0) {
			perror("pipe");
			rc = 99;
			break;
		}
		uint64_t child_seed = rnd(&x);
		/* Kill after 0-150 ms: early kills land in open/recovery/migration,
		 * later ones in writes and checkpoints. */
		int64_t delay = (int64_t)(rnd(&x) % 150);
		fflush(stderr);
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			rc = 99;
			break;
		}
		if (pid == 0) {
			close(fds[0]);
			child_main(path, fds[1], child_seed);
			_exit(0);
		}
		close(fds[1]);
		/* Read reports until the deadline, then kill, then drain to EOF. */
		char buf[65536];
		size_t have = 0;
		int64_t deadline = now_ms() + delay;
		int killed = 0;
		for (;;) {
			int timeout = -1;
			if (!killed) {
				int64_t left = deadline - now_ms();
				if (left <= 0) {
					kill(pid, SIGKILL);
					killed = 1;
				} else {
					timeout = (int)left;
				}
			}
			struct pollfd pfd = { fds[0], POLLIN, 0 };
			int pr = poll(&pfd, 1, timeout);
			if (pr < 0 && errno == EINTR)
				continue;
			if (pr == 0)
				continue;
			ssize_t r = read(fds[0], buf + have, sizeof buf - have - 1);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break; /* EOF: the child is gone */
			have += (size_t)r;
			buf[have] = '\0';
			char *line = buf, *nl;
			while ((nl = strchr(line, '\n')) != NULL) {
				*nl = '\0';
				if (apply_report(&e, line, NULL) != 0) {
					fprintf(stderr, "round %d: bad report '%s'\n", round, line);
					rc = 1;
				}
				if (line[0] == 'B')
					acked++;
				line = nl + 1;
			}
			have = (size_t)(buf + have - line);
			memmove(buf, line, have);
		}
		close(fds[0]);
		if (waitpid(pid, &status, 0) != pid) {
			perror("waitpid");
			rc = 99;
			break;
		}
		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
			fprintf(stderr, "round %d: child exited on its own (status %d)\n", round, status);
			rc = 1;
			break;
		}
		if (have != 0) {
			fprintf(stderr, "round %d: torn report line\n", round);
			rc = 1;
			break;
		}
		if (rc == 0 && verify(path, &e, round, &extra_total) != 0)
			rc = 1;
	}
	size_t alerts = 0;
	for (size_t i = 1; i < e.cap; i++)
		alerts += e.h[i].n > 0;
	fprintf(stderr, "crash_store: %s rounds=%d acked_batches=%" PRIu64 " alerts=%zu "
	        "checkpoint_gen=%" PRId64 " unacked_but_committed_events=%" PRIu64 " seed=%" PRIu64 "\n",
	        rc ? "FAIL" : "ok", rounds, acked, alerts, e.gen, extra_total, seed);
	free(e.h);
	if (rc == 0)
		rm_db(dir, path);
	else
		fprintf(stderr, "crash_store: database kept in %s\n", dir);
	return rc;
}
