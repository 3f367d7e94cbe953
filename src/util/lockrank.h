/* util/lockrank.h — the ranks of the process's nested locks, and a check
 * that every thread takes them in rank order.
 *
 * A thread may only take a lock ranked strictly after every lock it already
 * holds (src/engine/internal.h states the order and why). Built with
 * FORESHOCK_LOCK_CHECK (configure --enable-debug, and tests/unit/test_lockrank),
 * lockrank_lock() keeps a per-thread stack of held locks and reports a lock
 * taken out of order to the violation handler (default: message on stderr,
 * abort) before it blocks; without it both calls are plain pthread calls.
 * Re-locking a lock the thread holds is left to the mutex (the store's
 * error-checking mutex answers EDEADLK).
 */
#ifndef FORESHOCK_LOCKRANK_H
#define FORESHOCK_LOCKRANK_H

#include <pthread.h>

enum lock_rank {
	LOCK_RANK_PERSIST = 5,   /* engine persist_mu: one incremental state write at a time */
	LOCK_RANK_FLUSH = 10,    /* engine flush_mu: serializes flushes and checkpoints */
	LOCK_RANK_STORE_W = 20,  /* store wmu: the read-write connection */
	LOCK_RANK_SHARD = 30,    /* engine shard i: LOCK_RANK_SHARD + i (i < 64) */
	LOCK_RANK_SVC = 100,     /* engine svc_mu: service models */
	LOCK_RANK_STORE_R = 110, /* store rmu: the read-only connection */
	LOCK_RANK_FAM = 120,     /* engine fam_mu: metric family types */
	LOCK_RANK_STORE_FAULT = 130, /* store fmu: the fault text (a leaf) */
	LOCK_RANK_ORPHAN = 140,  /* engine orphan_mu: open alerts awaiting their series (a leaf) */
	LOCK_RANK_RWEXPORT = 150, /* store/rwexport.c mu: the exporter's pending buffer and queue
	                          * (a leaf: taken under a shard or svc_mu by the outputs) */
	LOCK_RANK_STAGE = 160,   /* engine stage.mu: the pool of staging buffers (a leaf) */
};

#ifdef FORESHOCK_LOCK_CHECK
int lockrank_lock(pthread_mutex_t *mu, int rank);
int lockrank_unlock(pthread_mutex_t *mu);
/* A trylock cannot deadlock: no order check; held once it succeeds. */
int lockrank_trylock(pthread_mutex_t *mu, int rank);
/* Called with the rank held highest and the rank wanted; the default
 * prints both and aborts. NULL restores the default. */
typedef void (*lockrank_handler)(int held, int wanted);
void lockrank_set_handler(lockrank_handler fn);
/* Locks the calling thread holds now. */
int lockrank_depth(void);
#else
static inline int lockrank_lock(pthread_mutex_t *mu, int rank)
{
	(void)rank;
	return pthread_mutex_lock(mu);
}
static inline int lockrank_unlock(pthread_mutex_t *mu)
{
	return pthread_mutex_unlock(mu);
}
static inline int lockrank_trylock(pthread_mutex_t *mu, int rank)
{
	(void)rank;
	return pthread_mutex_trylock(mu);
}
#endif

#endif
