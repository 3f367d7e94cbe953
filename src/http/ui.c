/* http/ui.c — the dashboard served at GET / and the files it loads from /ui/:
 * src/http/ui.html (one self-contained page, inline CSS and JS) and dygraphs
 * from Debian's libjs-dygraphs, both embedded into the binary at build time
 * by scripts/embed.sh (mk/ui.am), so the page works offline with no CDN.
 * Edit the page in src/http/ui.html. */
#include <string.h>

#include "http/api.h"
#include "http/handlers.h"

extern const unsigned char ui_html[], ui_dygraph_js[], ui_dygraph_css[];
extern const size_t ui_html_len, ui_dygraph_js_len, ui_dygraph_css_len;

const char *ui_page(size_t *len)
{
	*len = ui_html_len;
	return (const char *)ui_html;
}

const char *ui_asset(const char *path, size_t *len, const char **ctype)
{
	if (!strcmp(path, "/") || !strcmp(path, "/index.html")) {
		*ctype = "text/html; charset=utf-8";
		*len = ui_html_len;
		return (const char *)ui_html;
	}
	if (!strcmp(path, "/ui/dygraph.min.js")) {
		*ctype = "text/javascript; charset=utf-8";
		*len = ui_dygraph_js_len;
		return (const char *)ui_dygraph_js;
	}
	if (!strcmp(path, "/ui/dygraph.min.css")) {
		*ctype = "text/css; charset=utf-8";
		*len = ui_dygraph_css_len;
		return (const char *)ui_dygraph_css;
	}
	return NULL;
}
