/* util/rng.h — a small deterministic pseudo-random generator (splitmix64)
 * for synthetic data and tests: the same seed gives the same numbers on
 * every machine. Not for anything secret. Depends on libc and libm only.
 */
#ifndef FORESHOCK_RNG_H
#define FORESHOCK_RNG_H

#include <stdint.h>

struct rng {
	uint64_t s;   /* the state: seed it with any value */
};

/* The next 64 random bits. */
uint64_t rng_next(struct rng *r);
/* Uniform in (0, 1): never 0 or 1. */
double rng_unif(struct rng *r);
/* Standard normal (Box-Muller over two rng_unif draws). */
double rng_norm(struct rng *r);

#endif
