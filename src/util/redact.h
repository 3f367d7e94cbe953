/* util/redact.h — secrets out of what is shown: a URL for logs, /metrics and
 * error messages. Depends on libc only. */
#ifndef FORESHOCK_UTIL_REDACT_H
#define FORESHOCK_UTIL_REDACT_H

#include <stddef.h>

/* A copy of url with the password of http://user:PASS@host and the values of
 * query parameters whose name holds token, pass, secret, key, auth or sig
 * replaced by "xxxxx". malloc'd (caller frees), NULL when out of memory. */
char *redact_url(const char *url);
/* The same into buf (truncated to len - 1 bytes); returns buf. */
const char *redact_url_buf(const char *url, char *buf, size_t len);

#endif
