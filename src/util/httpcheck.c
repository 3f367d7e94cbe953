/* util/httpcheck.c — URL and header checks for outgoing requests (httpcheck.h). */
#include "util/httpcheck.h"

#include <ctype.h>
#include <string.h>

int http_url_valid(const char *u)
{
	const char *rest;
	if (!strncmp(u, "http://", 7))
		rest = u + 7;
	else if (!strncmp(u, "https://", 8))
		rest = u + 8;
	else
		return 0;
	if (!*rest || *rest == '/')
		return 0;
	for (const char *p = u; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return 0;
	return 1;
}

int http_header_valid(const char *name, const char *value)
{
	if (!*name)
		return 0;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("!#$%&'*+-.^_`|~", *p))
			return 0;
	for (const char *p = value; *p; p++)
		if (*p == '\r' || *p == '\n')
			return 0;
	return 1;
}
