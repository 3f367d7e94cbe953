/* http/api.c — the helpers every handler uses: response building (api_send,
 * api_error, api_add_header), query arguments, time and selector parameters,
 * label sets and values as JSON. It calls no handler and routes nothing
 * (router.c does). See api.h.
 */
#include "http/api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/selector.h"
#include "util/timefmt.h"

const char *api_format_value(double v, char *buf, size_t len)
{
	if (isnan(v)) {
		snprintf(buf, len, "NaN");
		return buf;
	}
	if (isinf(v)) {
		snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
		return buf;
	}
	for (int p = 0; p <= 16; p++) {
		snprintf(buf, len, "%.*e", p, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return buf;
}

/* ------------------------------------------------------------------------ */
/* responses */

void api_send(struct api_response *resp, unsigned status, const char *content_type,
              struct obuf *b)
{
	if (b->failed) {
		obuf_free(b);
		api_error(resp, 500, "internal", "response too large or out of memory");
		return;
	}
	free(resp->body);
	resp->status = status;
	resp->content_type = content_type;
	resp->body = obuf_steal(b, &resp->len);
}

void api_error(struct api_response *resp, unsigned status, const char *type, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	struct obuf b;
	obuf_init(&b, 0);
	obuf_puts(&b, "{\"status\":\"error\",\"errorType\":");
	obuf_json_str(&b, type, strlen(type));
	obuf_puts(&b, ",\"error\":");
	obuf_json_str(&b, msg, strlen(msg));
	obuf_puts(&b, "}\n");
	free(resp->body);
	resp->status = status;
	resp->content_type = "application/json";
	resp->body = b.failed ? NULL : obuf_steal(&b, &resp->len);
	if (!resp->body)
		resp->len = 0;
	obuf_free(&b);
}

void api_add_header(struct api_response *resp, const char *name, const char *fmt, ...)
{
	if (resp->nheaders >= API_MAX_HEADERS)
		return;
	resp->headers[resp->nheaders].name = name;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(resp->headers[resp->nheaders].value, sizeof resp->headers[0].value, fmt, ap);
	va_end(ap);
	resp->nheaders++;
}

const char *api_arg(const struct api_request *req, const char *key)
{
	for (size_t i = 0; i < req->nargs; i++)
		if (!strcmp(req->args[i].key, key))
			return req->args[i].value;
	return NULL;
}

/* Optional time parameter: 0 if absent (*ms untouched), 1 if set, -1 (and
 * a 400 in resp) if invalid. */
int api_time_arg(const struct api_request *req, const char *key, int64_t *ms,
                 struct api_response *resp)
{
	const char *v = api_arg(req, key);
	if (!v || !*v)
		return 0;
	if (time_parse_param_ms(v, ms)) {
		api_error(resp, 400, "bad_data",
		          "invalid parameter '%s': cannot parse '%.64s' as RFC 3339 or epoch seconds",
		          key, v);
		return -1;
	}
	return 1;
}

/* Parse every argument named key (and alt, if not NULL) as a selector.
 * Returns the count (sel[] filled, caller frees) or -1 with a 400 in resp. */
long api_parse_selectors(const struct api_request *req, const char *key, const char *alt,
                         struct selector **out, struct api_response *resp)
{
	size_t n = 0;
	for (size_t i = 0; i < req->nargs; i++)
		if (!strcmp(req->args[i].key, key) || (alt && !strcmp(req->args[i].key, alt)))
			n++;
	*out = NULL;
	if (n == 0)
		return 0;
	struct selector *sel = calloc(n, sizeof *sel);
	if (!sel) {
		api_error(resp, 500, "internal", "out of memory");
		return -1;
	}
	size_t k = 0;
	for (size_t i = 0; i < req->nargs; i++) {
		if (strcmp(req->args[i].key, key) && (!alt || strcmp(req->args[i].key, alt)))
			continue;
		char err[256];
		if (selector_parse(&sel[k], req->args[i].value, err, sizeof err)) {
			api_error(resp, 400, "bad_data", "invalid parameter '%s': %s", req->args[i].key,
			          err);
			for (size_t j = 0; j < k; j++)
				selector_free(&sel[j]);
			free(sel);
			return -1;
		}
		k++;
	}
	*out = sel;
	return (long)n;
}

void api_free_selectors(struct selector *sel, long n)
{
	for (long i = 0; i < n; i++)
		selector_free(&sel[i]);
	free(sel);
}

void api_json_labels(struct obuf *b, const struct labels *l)
{
	obuf_add(b, "{", 1);
	for (size_t i = 0; i < l->n; i++) {
		if (i)
			obuf_add(b, ",", 1);
		obuf_json_str(b, l->names[i], strlen(l->names[i]));
		obuf_add(b, ":", 1);
		obuf_json_str(b, l->values[i], strlen(l->values[i]));
	}
	obuf_add(b, "}", 1);
}
