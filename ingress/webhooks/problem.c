/* Answers: RFC 9457 application/problem+json for every error, plain bodies for the rest,
 * and a filter that turns the errors h2o sends by itself (413 for a body over
 * max_request_entity_size, 400 for a malformed request) into problems too. */
#include "ingress.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROBLEM_CTYPE "application/problem+json"

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

static void add_header(h2o_req_t *req, const h2o_token_t *token, const char *value, size_t len)
{
    h2o_add_header(&req->pool, &req->res.headers, token, NULL, value, len);
}

void ing_answer(h2o_req_t *req, ing_route_t route, int status, const char *ctype, const char *body,
                size_t len)
{
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    req->res.content_length = len;
    add_header(req, H2O_TOKEN_CONTENT_TYPE, ctype, strlen(ctype));
    add_header(req, H2O_TOKEN_CACHE_CONTROL, H2O_STRLIT("no-store"));
    ing_stats_request(route, status);
    h2o_send_inline(req, body, len);
}

void ing_problem(h2o_req_t *req, const ing_reqinfo_t *info, int status, const char *name,
                 const char *title, const char *detail, int retry_after_s, const char *opid)
{
    char type[96];
    snprintf(type, sizeof(type), "urn:imperium:problem:%s", name);
    json_t *p = json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", type, "title", title, "status",
                          status, "detail", detail, "trace_id", info->trace.trace_id);
    char *body = json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(p);
    if (retry_after_s > 0) {
        char *v = h2o_mem_alloc_pool(&req->pool, 16);
        int n = snprintf(v, 16, "%d", retry_after_s);
        add_header(req, H2O_TOKEN_RETRY_AFTER, v, (size_t)n);
    }
    if (opid != NULL) {
        char *v = h2o_mem_alloc_pool(&req->pool, IMP_UUID_STR_SIZE);
        memcpy(v, opid, IMP_UUID_STR_SIZE);
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-operation-id"), 0, NULL,
                              v, IMP_UUID_STR_LEN);
    }
    ing_answer(req, info->route, status, PROBLEM_CTYPE, body, strlen(body));
    free(body);
}

/* Unknown tenant, channel not configured, bad signature: one answer, so that nobody can
 * tell which tenants exist. */
void ing_problem_unauthorized(h2o_req_t *req, const ing_reqinfo_t *info)
{
    ing_problem(req, info, 401, "unauthorized", "Unauthorized",
                "the webhook could not be authenticated for this URL", 0, NULL);
}

void ing_problem_unavailable(h2o_req_t *req, const ing_reqinfo_t *info, const char *detail,
                             const char *opid)
{
    ing_problem(req, info, 503, "unavailable", "Service Unavailable", detail, 2, opid);
}

/* ---- h2o's own errors --------------------------------------------------------------------- */

typedef struct {
    h2o_ostream_t super;
    h2o_iovec_t body;
    bool sent;
} rewrite_t;

/* Swallow h2o's text body and send the problem in its place. */
static void rewrite_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                         h2o_send_state_t state)
{
    rewrite_t *r = (rewrite_t *)self;
    (void)bufs, (void)bufcnt;
    if (r->sent) {
        h2o_ostream_send_next(self, req, NULL, 0, state);
        return;
    }
    r->sent = true;
    h2o_ostream_send_next(self, req, &r->body, 1, state);
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    int status = req->res.status;
    if (status >= 400) {
        ing_reqinfo_t info;
        ing_reqinfo_init(&info, req, ING_ROUTE_OTHER);
        const char *name = status == 413 ? "payload-too-large" : "bad-request";
        const char *detail = status == 413 ? "the body is larger than the ingress accepts"
                                           : "the request could not be read";
        char type[96];
        snprintf(type, sizeof(type), "urn:imperium:problem:%s", name);
        json_t *p =
            json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", type, "title", reason_phrase(status),
                      "status", status, "detail", detail, "trace_id", info.trace.trace_id);
        char *text = json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(p);
        rewrite_t *r = (rewrite_t *)h2o_add_ostream(req, sizeof(*r), slot);
        r->super.do_send = rewrite_send;
        r->body = h2o_strdup(&req->pool, text, strlen(text));
        r->sent = false;
        free(text);
        memset(&req->res.headers, 0, sizeof(req->res.headers));
        add_header(req, H2O_TOKEN_CONTENT_TYPE, H2O_STRLIT(PROBLEM_CTYPE));
        req->res.content_length = r->body.len;
        ing_stats_request(ING_ROUTE_OTHER, status);
        slot = &r->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

void ing_problem_filter_register(h2o_hostconf_t *host)
{
    h2o_filter_t *f = h2o_create_filter(&host->fallback_path, sizeof(*f));
    f->on_setup_ostream = on_setup_ostream;
}
