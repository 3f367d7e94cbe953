/* cli/cli.h — sub-commands of the `foreshock` tool; cli/main.c dispatches.
 * Each returns the process exit status (0 ok, 1 failure/rejections, 2 usage). */
#ifndef FORESHOCK_CLI_H
#define FORESHOCK_CLI_H

int cli_replay_main(int argc, char **argv);     /* foreshock replay [--model FILE] FILE.csv */
int cli_parse_main(int argc, char **argv);      /* foreshock parse --format influx|prometheus ... */
int cli_backtest_main(int argc, char **argv);   /* foreshock backtest --corpus DIR ... */
int cli_forecast_main(int argc, char **argv);   /* foreshock forecast-eval ... */
int cli_backup_main(int argc, char **argv);     /* foreshock backup --out FILE ... */
int cli_restore_main(int argc, char **argv);    /* foreshock restore --from FILE --data-dir DIR */

#endif
