/* engine_fixture.c — the shared cmocka fixture of the engine's unit tests
 * (engine_fixture.h): a store in a temporary directory, self-statistics and
 * the default engine configuration, made and removed around each test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "engine_fixture.h"

int engine_fixture_setup(void **state)
{
	struct engine_fixture *f = calloc(1, sizeof *f);
	char err[256];
	if (!f)
		return -1;
	snprintf(f->dir, sizeof f->dir, "/tmp/fs-engine-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->db, sizeof f->db, "%s/f.db", f->dir);
	f->store = store_open(f->db, err, sizeof err);
	if (!f->store) {
		print_error("cannot open store '%s': %s\n", f->db, err);
		free(f);
		return -1;
	}
	selfstats_init(&f->stats);
	selfstats_init(&f->stats2);
	engine_config_default(&f->cfg);
	*state = f;
	return 0;
}

int engine_fixture_teardown(void **state)
{
	struct engine_fixture *f = *state;
	store_close(f->store);
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
	int rc = system(cmd);
	free(f);
	return rc == 0 ? 0 : -1;
}

struct engine *engine_fixture_engine(struct engine_fixture *f, struct store *store,
                                     struct selfstats *stats)
{
	char err[256];
	struct engine *e = engine_new(&f->cfg, model_builtin_default(), store, stats, err, sizeof err);
	if (!e)
		fail_msg("engine_new: %s", err);
	return e;
}
