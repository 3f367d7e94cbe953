/* util/rng.c — splitmix64 and the draws built on it (see rng.h). */
#include "util/rng.h"

#include <math.h>

uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

double rng_unif(struct rng *r)
{
	return ((rng_next(r) >> 11) + 0.5) / 9007199254740992.0;
}

double rng_norm(struct rng *r)
{
	double u = rng_unif(r), v = rng_unif(r);
	return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}
