/* util/httpcheck.h — checks on the URLs and headers foreshockd sends requests
 * with (alert notifications, the remote_write exporter): configuration
 * values, validated when the configuration is read. No allocation. */
#ifndef FORESHOCK_UTIL_HTTPCHECK_H
#define FORESHOCK_UTIL_HTTPCHECK_H

/* 1 if u is http:// or https:// with a host and no whitespace or control
 * characters, else 0. */
int http_url_valid(const char *u);
/* 1 if name is an HTTP token (RFC 9110) and value has no CR or LF, else 0. */
int http_header_valid(const char *name, const char *value);

#endif
