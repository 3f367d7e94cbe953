/* util/redact.c — URLs fit for logs (see redact.h). */
#include "config.h" /* autoconf: _GNU_SOURCE (memrchr) */

#include "util/redact.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int secret_param(const char *name, size_t n)
{
	static const char *const words[] = { "token", "pass", "secret", "key", "auth", "sig", NULL };
	char low[64];
	if (n >= sizeof low)
		n = sizeof low - 1;
	for (size_t i = 0; i < n; i++)
		low[i] = (char)tolower((unsigned char)name[i]);
	low[n] = 0;
	for (int i = 0; words[i]; i++)
		if (strstr(low, words[i]))
			return 1;
	return 0;
}

char *redact_url(const char *url)
{
	static const char mask[] = "xxxxx";
	size_t n = strlen(url);
	/* each masked value grows by at most 5 bytes and takes at least 3 ("&k="):
	 * 2n + 64 always fits */
	char *out = malloc(2 * n + 64);
	if (!out)
		return NULL;
	size_t w = 0;
	const char *p = url;
	const char *auth = strstr(url, "://");
	auth = auth ? auth + 3 : url;
	size_t alen = strcspn(auth, "/?#");
	const char *at = memrchr(auth, '@', alen);
	if (at) {
		const char *colon = memchr(auth, ':', (size_t)(at - auth));
		if (colon) {
			/* scheme://user: then the mask, then @host... */
			size_t k = (size_t)(colon + 1 - url);
			memcpy(out, url, k);
			w = k;
			memcpy(out + w, mask, sizeof mask - 1);
			w += sizeof mask - 1;
			p = at;
		}
	}
	/* the rest, with secret query values masked */
	const char *q = strchr(p, '?');
	size_t head = q ? (size_t)(q - p) : strlen(p);
	memcpy(out + w, p, head);
	w += head;
	if (q) {
		p = q;
		while (*p && *p != '#') {
			char sep = *p++; /* '?' or '&' */
			size_t plen = strcspn(p, "&#");
			const char *eq = memchr(p, '=', plen);
			out[w++] = sep;
			if (eq && secret_param(p, (size_t)(eq - p))) {
				memcpy(out + w, p, (size_t)(eq + 1 - p));
				w += (size_t)(eq + 1 - p);
				memcpy(out + w, mask, sizeof mask - 1);
				w += sizeof mask - 1;
			} else {
				memcpy(out + w, p, plen);
				w += plen;
			}
			p += plen;
		}
		size_t rest = strlen(p);
		memcpy(out + w, p, rest);
		w += rest;
	}
	out[w] = 0;
	return out;
}

const char *redact_url_buf(const char *url, char *buf, size_t len)
{
	char *r = redact_url(url);
	snprintf(buf, len, "%s", r ? r : "(url)");
	free(r);
	return buf;
}
