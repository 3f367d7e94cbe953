/* router.h — dispatch of one request to its handler (router.c). */
#ifndef FORESHOCK_HTTP_ROUTER_H
#define FORESHOCK_HTTP_ROUTER_H

struct api_ctx;
struct api_request;
struct api_response;

/* Handle one request completely; always fills resp (status, body). */
void api_handle(struct api_ctx *api, const struct api_request *req, struct api_response *resp);

#endif
