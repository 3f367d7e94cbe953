/* engine_fixture.h — the shared cmocka fixture of the engine's unit tests:
 * before each test a store in a fresh temporary directory, self-statistics
 * and the engine's default configuration; after it, the store closed and the
 * directory removed. Pass engine_fixture_setup/engine_fixture_teardown to
 * cmocka_unit_test_setup_teardown; the test gets a struct engine_fixture *
 * in *state. The fixture owns the store and the directory; the test owns
 * the engines it makes (engine_free them before returning). */
#ifndef FORESHOCK_TESTS_ENGINE_FIXTURE_H
#define FORESHOCK_TESTS_ENGINE_FIXTURE_H

#include "engine/engine.h"
#include "store/store.h"
#include "util/selfstats.h"

/* a label_ref of two string literals */
#define REF(n, v) { n, sizeof(n) - 1, v, sizeof(v) - 1 }

struct engine_fixture {
	char dir[64];              /* the temporary directory, removed by the teardown */
	char db[128];              /* dir/f.db, the store's file */
	struct store *store;       /* open on db; closed by the teardown */
	struct selfstats stats;    /* the counters of the engine under test */
	struct selfstats stats2;   /* a second engine's, for tests that compare two */
	struct engine_config cfg;  /* engine_config_default(); the test may change it */
};

int engine_fixture_setup(void **state);
int engine_fixture_teardown(void **state);

/* A test function run with the fixture, for the CMUnitTest table. */
#define ENGINE_FIXTURE_TEST(t) \
	cmocka_unit_test_setup_teardown(t, engine_fixture_setup, engine_fixture_teardown)

/* A new engine with f->cfg, the built-in model, the given store (f->store or
 * NULL for none) and counters; fails the test if it cannot be made. */
struct engine *engine_fixture_engine(struct engine_fixture *f, struct store *store,
                                     struct selfstats *stats);

#endif
