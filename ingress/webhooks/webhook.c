/* Tenant webhooks: POST /v1/webhooks/{channel}/{slug} (verify → rate limit → normalize →
 * envelopes → produce, answered after the delivery reports) and Meta's GET handshake.
 *
 * Who may learn what: before a request is authenticated, every failure on the tenant's side
 * (unknown slug, channel not configured, bad signature, stale timestamp) gets the same 401;
 * only an authenticated request learns that its tenant is disabled (403), rate limited (429)
 * or sent malformed JSON (400). */
#include "ingress.h"

#include "imp/envelope.h"
#include "imp/log.h"
#include "imp/mem.h"
#include "imp/opid.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLUG_MAX 63

/* A tenant slug as the envelope would accept a name: [a-z0-9][a-z0-9_-]{0,62}. Anything
 * else cannot be a tenant and is answered like an unknown one. */
static bool slug_ok(h2o_iovec_t s)
{
    if (s.len == 0 || s.len > SLUG_MAX)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.base[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '-' && c != '_')))
            return false;
    }
    return true;
}

static void log_rejected(const ing_reqinfo_t *info, h2o_iovec_t slug, int status, const char *why)
{
    static const char *const routes[] = {"generic", "chatflow", "whatsapp", "telegram",
                                         "whatsapp_handshake"};
    char name[SLUG_MAX + 1] = "(invalid)";
    if (slug_ok(slug)) {
        memcpy(name, slug.base, slug.len);
        name[slug.len] = '\0';
    }
    IMP_LOG_INFO("webhook rejected", IMP_LS("route", routes[info->route]), IMP_LS("slug", name),
                 IMP_LI("status", status), IMP_LS("reason", why),
                 IMP_LS("trace_id", info->trace.trace_id));
}

/* ---- verification ------------------------------------------------------------------------- */

/* Check the request against the tenant's keys for ch. For Standard Webhooks the webhook-id
 * lands in webhook_id. NULL when authentic. */
static imp_error_t *verify(ing_thread_t *thr, h2o_req_t *req, ing_tenant_t *t, ing_channel_t ch,
                           char *webhook_id, size_t cap)
{
    ing_key_t keys[2];
    size_t n = ing_tenant_keys(t, ch, thr->index, imp_envelope_time_now_ms(), keys);
    if (n == 0)
        return imp_error_new(IMP_ERR_POISON, "channel_unconfigured",
                             "the tenant has no usable %s channel", ing_channel_name(ch));
    const char *body = req->entity.base;
    size_t len = req->entity.base != NULL ? req->entity.len : 0;
    switch (ch) {
    case ING_CH_GENERIC:
    case ING_CH_CHATFLOW:
        return ing_verify_standard(keys, n, ing_req_header, req, body, len, (int64_t)time(NULL),
                                   thr->app->tolerance_s, webhook_id, cap);
    case ING_CH_WHATSAPP:
        return ing_verify_meta(keys, n, ing_req_header, req, body, len);
    case ING_CH_TELEGRAM:
        return ing_verify_telegram(keys, n, ing_req_header, req);
    }
    return imp_error_new(IMP_ERR_POISON, "channel_unconfigured", "unknown channel");
}

/* ---- events → messages -------------------------------------------------------------------- */

/* The envelope of ev (its data is taken) and the Kafka key, as new heap strings. */
static imp_error_t *to_message(const char *tenant_id, ing_channel_t ch, ing_event_t *ev,
                               const ing_reqinfo_t *info, ing_msg_t *m, char **key, char **value)
{
    imp_error_t *err =
        imp_opid_inbound(tenant_id, ing_channel_name(ch), ev->provider_event_id, m->opid);
    if (err != NULL)
        return err;
    imp_envelope_t e;
    err = imp_envelope_new_event(&e, m->opid, ING_SOURCE, ev->type, tenant_id, ev->data);
    ev->data = NULL;
    if (err != NULL)
        return err;
    e.subject = imp_strdup(ev->conversation_key);
    memcpy(e.traceparent, info->traceparent, sizeof(e.traceparent));
    /* Every attribute was checked by imp_envelope_new_event or comes from imp_trace_format. */
    err = imp_envelope_serialize_trusted(&e, value, &m->value_len);
    imp_envelope_dispose(&e);
    if (err != NULL)
        return err;
    *key = imp_asprintf("%s:%s", tenant_id, ev->conversation_key);
    m->topic = ING_TOPIC_INBOUND;
    m->key = *key;
    m->key_len = strlen(*key);
    m->value = *value;
    return NULL;
}

/* Wrap every event and hand them to the producer, which answers. */
static void accept_events(h2o_req_t *req, const ing_reqinfo_t *info, ing_tenant_t *t,
                          ing_channel_t ch, ing_event_t *ev, size_t n)
{
    ing_msg_t *msgs = imp_calloc(n, sizeof(*msgs));
    char **bufs = imp_calloc(2 * n, sizeof(*bufs));
    imp_error_t *err = NULL;
    for (size_t i = 0; i < n && err == NULL; i++)
        err = to_message(ing_tenant_id(t), ch, &ev[i], info, &msgs[i], &bufs[2 * i],
                         &bufs[2 * i + 1]);
    if (err != NULL) {
        /* The normalizer promised valid events: this is a bug, and the sender may retry. */
        IMP_LOG_ERROR("event could not be wrapped", IMP_LS("tenant_id", ing_tenant_id(t)),
                      IMP_LS("trace_id", info->trace.trace_id), IMP_LE(err));
        imp_error_free(err);
        ing_problem(req, info, 500, "internal", "Internal Server Error",
                    "the webhook could not be processed", 0, NULL);
    } else {
        ing_produce_and_answer(ing_thread_of(req)->producer, req, info, msgs, n);
    }
    for (size_t i = 0; i < 2 * n; i++)
        free(bufs[i]);
    free(bufs);
    free(msgs);
}

/* ---- POST --------------------------------------------------------------------------------- */

/* The tenant's part once authenticated: disabled, rate limit, normalize, produce. */
static void authenticated(h2o_req_t *req, const ing_reqinfo_t *info, ing_tenant_t *t,
                          ing_channel_t ch, h2o_iovec_t slug, const char *webhook_id)
{
    ing_app_t *app = ing_thread_of(req)->app;
    int retry_after = 0;
    if (ing_tenant_disabled(t)) {
        log_rejected(info, slug, 403, "tenant disabled");
        ing_problem(req, info, 403, "tenant-disabled", "Forbidden", "the tenant is disabled", 0,
                    NULL);
        return;
    }
    if (!ing_ratelimit_take(app->ratelimit, ing_tenant_id(t), info->start_ns, &retry_after)) {
        ing_problem(req, info, 429, "rate-limited", "Too Many Requests",
                    "the tenant's webhook rate limit is exceeded; retry later", retry_after, NULL);
        return;
    }
    ing_event_t *ev = NULL;
    size_t n = 0;
    imp_error_t *err = ing_normalize(ch, req->entity.base, req->entity.base ? req->entity.len : 0,
                                     webhook_id, &ev, &n);
    if (err != NULL) {
        log_rejected(info, slug, 400, imp_error_message(err));
        imp_error_free(err);
        ing_problem(req, info, 400, "malformed-json", "Bad Request", "the body is not valid JSON",
                    0, NULL);
        return;
    }
    accept_events(req, info, t, ch, ev, n);
    ing_events_free(ev, n);
}

void ing_webhook_post(h2o_req_t *req, ing_channel_t ch, h2o_iovec_t slug)
{
    ing_thread_t *thr = ing_thread_of(req);
    ing_reqinfo_t info;
    ing_reqinfo_init(&info, req, (ing_route_t)ch);
    if (req->entity.len > (size_t)thr->app->settings->max_body) {
        ing_problem(req, &info, 413, "payload-too-large", "Payload Too Large",
                    "the body is larger than the ingress accepts", 0, NULL);
        return;
    }
    char why[160];
    if (!ing_directory_ready(thr->app->directory, why, sizeof(why))) {
        ing_problem_unavailable(req, &info, "the tenant directory is still loading", NULL);
        return;
    }
    ing_tenant_t *t =
        slug_ok(slug) ? ing_directory_get(thr->app->directory, slug.base, slug.len) : NULL;
    char webhook_id[ING_WEBHOOK_ID_MAX + 1] = "";
    imp_error_t *err = t == NULL ? imp_error_new(IMP_ERR_POISON, "unknown_tenant", "unknown tenant")
                                 : verify(thr, req, t, ch, webhook_id, sizeof(webhook_id));
    if (err != NULL) {
        log_rejected(&info, slug, 401, imp_error_code(err));
        imp_error_free(err);
        ing_problem_unauthorized(req, &info);
    } else {
        authenticated(req, &info, t, ch, slug, webhook_id[0] ? webhook_id : NULL);
    }
    ing_tenant_release(t);
}

/* ---- GET handshake ------------------------------------------------------------------------ */

void ing_webhook_handshake(h2o_req_t *req, h2o_iovec_t slug)
{
    ing_thread_t *thr = ing_thread_of(req);
    ing_reqinfo_t info;
    ing_reqinfo_init(&info, req, ING_ROUTE_HANDSHAKE);
    char why[160];
    if (!ing_directory_ready(thr->app->directory, why, sizeof(why))) {
        ing_problem_unavailable(req, &info, "the tenant directory is still loading", NULL);
        return;
    }
    ing_tenant_t *t =
        slug_ok(slug) ? ing_directory_get(thr->app->directory, slug.base, slug.len) : NULL;
    ing_key_t tokens[2];
    size_t n = t != NULL ? ing_tenant_verify_tokens(t, imp_envelope_time_now_ms(), tokens) : 0;
    const char *query = req->query_at != SIZE_MAX ? req->path.base + req->query_at + 1 : "";
    size_t qlen = req->query_at != SIZE_MAX ? req->path.len - req->query_at - 1 : 0;
    const char *challenge = NULL;
    size_t clen = 0;
    imp_error_t *err = n == 0
                           ? imp_error_new(IMP_ERR_POISON, "unknown_tenant", "no verify token")
                           : ing_verify_meta_handshake(tokens, n, query, qlen, &challenge, &clen);
    if (err == NULL && ing_tenant_disabled(t))
        err = imp_error_new(IMP_ERR_POISON, "tenant_disabled", "tenant disabled");
    if (err != NULL) {
        log_rejected(&info, slug, 403, imp_error_code(err));
        imp_error_free(err);
        ing_problem(req, &info, 403, "handshake-refused", "Forbidden",
                    "the verification token does not match", 0, NULL);
    } else {
        ing_answer(req, ING_ROUTE_HANDSHAKE, 200, "text/plain; charset=utf-8", challenge, clen);
    }
    ing_tenant_release(t);
}
