/* util/lockrank.c — the lock-order check (see lockrank.h). Compiled to
 * nothing without FORESHOCK_LOCK_CHECK. */
#include "util/lockrank.h"

#ifdef FORESHOCK_LOCK_CHECK
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define LOCKRANK_MAX 64

struct held {
	pthread_mutex_t *mu;
	int rank;
};

static _Thread_local struct held held[LOCKRANK_MAX];
static _Thread_local int nheld;
static _Atomic(lockrank_handler) handler;

static void default_handler(int have, int wanted)
{
	fprintf(stderr, "lockrank: lock of rank %d taken while holding rank %d "
	        "(order: src/engine/internal.h)\n", wanted, have);
	abort();
}

void lockrank_set_handler(lockrank_handler fn)
{
	atomic_store(&handler, fn);
}

int lockrank_depth(void)
{
	return nheld;
}

/* Record that this thread now holds mu at rank. */
static void push_held(pthread_mutex_t *mu, int rank)
{
	if (nheld == LOCKRANK_MAX) {
		fprintf(stderr, "lockrank: more than %d locks held\n", LOCKRANK_MAX);
		abort();
	}
	held[nheld++] = (struct held){ mu, rank };
}

int lockrank_lock(pthread_mutex_t *mu, int rank)
{
	int top = -1, relock = 0;
	for (int i = 0; i < nheld; i++) {
		if (held[i].mu == mu)
			relock = 1;
		if (held[i].rank > top)
			top = held[i].rank;
	}
	if (!relock && top >= rank) {
		lockrank_handler fn = atomic_load(&handler);
		(fn ? fn : default_handler)(top, rank);
	}
	int rc = pthread_mutex_lock(mu);
	if (rc == 0)
		push_held(mu, rank);
	return rc;
}

int lockrank_trylock(pthread_mutex_t *mu, int rank)
{
	int rc = pthread_mutex_trylock(mu);
	if (rc == 0)
		push_held(mu, rank);
	return rc;
}

int lockrank_unlock(pthread_mutex_t *mu)
{
	for (int i = nheld; i-- > 0;) {
		if (held[i].mu == mu) {
			held[i] = held[--nheld];
			break;
		}
	}
	return pthread_mutex_unlock(mu);
}
#else
/* ISO C wants a translation unit to declare something. */
typedef int lockrank_unused;
#endif
