/* util/log.h — leveled key=value logging to stderr.
 *
 * Lines look like `ts=2026-11-25T13:00:00.123Z level=info event=startup listen=127.0.0.1:9790`
 * so that grep and log shippers can read them. The level threshold is set once
 * at start-up (log_set_level) before threads start; log_msg() is thread-safe
 * (one fprintf per line). Depends on nothing above libc.
 */
#ifndef FORESHOCK_LOG_H
#define FORESHOCK_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3, LOG_OFF = 4 };

/* Set the minimum level printed. Call before starting threads. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parse "debug|info|warn|error|off"; returns -1 on an unknown name. */
int log_level_parse(const char *name, enum log_level *out);
/* fmt should be key=value pairs, e.g. "event=reload models=%d". */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
