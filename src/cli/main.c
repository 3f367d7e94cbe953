/* cli/main.c — the `foreshock` command-line tool: offline use of the daemon's
 * own code (replay, parse, backtest, forecast evaluation). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: foreshock COMMAND [OPTIONS]\n"
	        "\n"
	        "Offline tools that run foreshockd's own code.\n"
	        "\n"
	        "commands:\n"
	        "  replay [--model FILE] FILE.csv   score a CSV (timestamp,value) with a detector model\n"
	        "  parse --format influx|prometheus read metrics on stdin, print what is accepted/rejected\n"
	        "  backtest --corpus DIR [...]      run a model over a labelled corpus, NAB scoring\n"
	        "  forecast-eval [...]              walk-forward forecast accuracy (MASE, coverage)\n"
	        "  backup --data-dir DIR --out FILE online backup of foreshockd's store\n"
	        "  restore --from FILE --data-dir DIR  restore a backup (foreshockd stopped)\n"
	        "\n"
	        "`foreshock COMMAND --help` describes each command. See foreshock(1).\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
		printf("foreshock %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "replay"))
		return cli_replay_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "parse"))
		return cli_parse_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "backtest"))
		return cli_backtest_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "forecast-eval"))
		return cli_forecast_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "backup"))
		return cli_backup_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "restore"))
		return cli_restore_main(argc - 1, argv + 1);
	fprintf(stderr, "foreshock: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
