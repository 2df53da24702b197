/* The handler of imp.outbound.message.v1: claim, send, record, report (docs/send.md). */
#include "send.h"

#include "imp/log.h"
#include "imp/mem.h"
#include "imp/opid.h"
#include "imp/usage.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    OUT_SENT,      /* 2xx */
    OUT_RETRY,     /* not sent, 408/425/429/5xx, or ambiguous to an idempotent provider */
    OUT_PERMANENT, /* any other answer, or a request we refuse to make (SSRF, bad URL) */
    OUT_UNKNOWN,   /* ambiguous to a provider without idempotency keys */
} outcome_t;

/* What happened to one provider call. */
typedef struct {
    outcome_t outcome;
    char *error;               /* owned; NULL when sent */
    char *provider_message_id; /* owned */
    long long retry_after_ms;
    bool committed; /* its failure or release is committed on the claim connection */
} result_t;

/* The calls this process made, by the Kafka message that asked for them: the runtime runs a
 * batch's handlers again when it rolls the batch back (a later event failed, a commit failed),
 * and a message whose call was made is then settled from its result instead of being claimed
 * and sent again. The same message (topic, partition, offset) comes to this process again
 * only when its batch did not commit (then its call was made and its result stands) or as a
 * duplicate the inbox sets aside, so an old entry is harmless; the ring, twice a batch, only
 * bounds memory. */
struct send_call {
    char id[IMP_UUID_STR_SIZE];
    char topic[64];
    int32_t partition;
    int64_t offset;
    int attempts;
    result_t r;
};

static void result_dispose(result_t *r)
{
    free(r->error);
    free(r->provider_message_id);
    memset(r, 0, sizeof(*r));
}

static bool call_is(const send_call_t *c, imp_worker_ctx_t *ctx, const imp_envelope_t *ev)
{
    const char *topic = imp_worker_ctx_topic(ctx);
    return c->id[0] != '\0' && strcmp(c->id, ev->id) == 0 &&
           c->partition == imp_worker_ctx_partition(ctx) &&
           c->offset == imp_worker_ctx_offset(ctx) && topic != NULL && strcmp(c->topic, topic) == 0;
}

static send_call_t *call_find(send_t *st, imp_worker_ctx_t *ctx, const imp_envelope_t *ev)
{
    for (size_t i = 0; i < st->ncalls; i++)
        if (call_is(&st->calls[i], ctx, ev))
            return &st->calls[i];
    return NULL;
}

/* A slot for a new call (the oldest one's, once the ring is full). */
static send_call_t *call_new(send_t *st, imp_worker_ctx_t *ctx, const imp_envelope_t *ev)
{
    if (st->calls == NULL) {
        st->capcalls = st->s->rt.batch_max > 0 ? 2 * (size_t)st->s->rt.batch_max : 2;
        st->calls = imp_calloc(st->capcalls, sizeof(*st->calls));
    }
    send_call_t *c = &st->calls[st->nextcall];
    st->nextcall = (st->nextcall + 1) % st->capcalls;
    if (st->ncalls < st->capcalls)
        st->ncalls++;
    result_dispose(&c->r);
    snprintf(c->id, sizeof(c->id), "%s", ev->id);
    const char *topic = imp_worker_ctx_topic(ctx);
    snprintf(c->topic, sizeof(c->topic), "%s", topic ? topic : "");
    c->partition = imp_worker_ctx_partition(ctx);
    c->offset = imp_worker_ctx_offset(ctx);
    return c;
}

void send_calls_free(send_t *st)
{
    for (size_t i = 0; i < st->ncalls; i++)
        result_dispose(&st->calls[i].r);
    free(st->calls);
    st->calls = NULL;
    st->ncalls = st->capcalls = st->nextcall = 0;
}

static const char *str_member(const json_t *data, const char *name, bool required,
                              imp_error_t **err)
{
    const json_t *v = json_object_get(data, name);
    if (*err != NULL)
        return NULL;
    if (v == NULL || json_is_null(v)) {
        if (required)
            *err = imp_error_new(IMP_ERR_POISON, "bad_outbound", "data.%s is missing", name);
        return NULL;
    }
    if (!json_is_string(v) || (required && json_string_length(v) == 0)) {
        *err = imp_error_new(IMP_ERR_POISON, "bad_outbound", "data.%s is not a %sstring", name,
                             required ? "non-empty " : "");
        return NULL;
    }
    return json_string_value(v);
}

imp_error_t *send_parse_msg(const json_t *data, send_msg_t *m)
{
    imp_error_t *err = NULL;
    m->conversation_id = str_member(data, "conversation_id", false, &err);
    m->channel = str_member(data, "channel", true, &err);
    m->recipient = str_member(data, "recipient", true, &err);
    m->text = str_member(data, "text", true, &err);
    m->purpose = str_member(data, "purpose", true, &err);
    m->reply_to = str_member(data, "reply_to", false, &err);
    uint8_t u[IMP_UUID_LEN];
    if (err == NULL && m->conversation_id != NULL &&
        imp_uuid_parse(m->conversation_id, strlen(m->conversation_id), u) != 0)
        err = imp_error_new(IMP_ERR_POISON, "bad_outbound", "data.conversation_id is not a UUID");
    return err;
}

static imp_error_t *emit_delivery(imp_worker_ctx_t *ctx, const imp_envelope_t *ev,
                                  const send_msg_t *m, const char *status, const char *pmid,
                                  const char *error, int attempts)
{
    imp_envelope_t out;
    imp_error_t *err = send_delivery_event(ev, m, status, pmid, error, attempts, &out);
    if (err != NULL)
        return err;
    char *key = send_event_key(ev, m);
    err = imp_worker_emit(ctx, SEND_TOPIC_DELIVERY, key, &out);
    free(key);
    return err;
}

/* A message the provider accepted, for metering (keyed by tenant). */
static imp_error_t *emit_usage(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, const send_msg_t *m)
{
    imp_usage_counter_t c[] = {{"messages", 1},
                               {"characters", (long long)imp_usage_chars(m->text)}};
    imp_usage_t u = {.kind = "message",
                     .ref = ev->id,
                     .conversation_id = m->conversation_id,
                     .channel = m->channel,
                     .purpose = m->purpose,
                     .counters = c,
                     .ncounters = IMP_ARRAY_LEN(c)};
    imp_envelope_t out;
    imp_error_t *err = imp_usage_event(ev, SEND_SOURCE, &u, &out);
    if (err == NULL)
        err = imp_worker_emit(ctx, IMP_TOPIC_USAGE, ev->tenantid, &out);
    return err;
}

static void classify_response(const imp_http_response_t *resp, const send_provider_t *p,
                              result_t *r)
{
    size_t len = 0;
    const char *body = imp_http_response_body(resp, &len);
    long status = imp_http_response_status(resp);
    if (status >= 200 && status < 300) {
        r->outcome = OUT_SENT;
        r->provider_message_id = p->message_id ? p->message_id(body, len) : NULL;
        return;
    }
    imp_error_t *e = imp_http_response_error(resp);
    r->outcome = imp_error_class(e) == IMP_ERR_RETRIABLE ? OUT_RETRY : OUT_PERMANENT;
    imp_error_free(e);
    char *answer = send_answer_excerpt(body, len);
    r->error = imp_asprintf("%s answered %ld: %s", p->name, status, answer);
    free(answer);
    long long ra = imp_http_response_retry_after_s(resp);
    r->retry_after_ms = ra > 0 ? ra * 1000 : 0;
}

static void classify_failure(const imp_error_t *e, const send_provider_t *p, result_t *r)
{
    if (imp_error_class(e) != IMP_ERR_RETRIABLE)
        r->outcome = OUT_PERMANENT;
    else if (imp_http_outcome(e) == IMP_HTTP_AMBIGUOUS && !p->idempotent)
        r->outcome = OUT_UNKNOWN;
    else
        r->outcome = OUT_RETRY;
    r->error = imp_asprintf("%s: %s", p->name, imp_error_message(e));
}

/* One call to the provider (or the sink), with client http (thread-safe for distinct
 * clients: no logging, no shared state). */
static void call(imp_http_client_t *http, const send_provider_t *p, const send_req_t *req,
                 const imp_envelope_t *ev, result_t *r)
{
    memset(r, 0, sizeof(*r));
    if (p->build == NULL) {
        r->outcome = OUT_SENT;
        r->provider_message_id = imp_asprintf("sink:%s", ev->id);
        return;
    }
    imp_http_response_t *resp = NULL;
    imp_http_request_t hr = {.method = "POST",
                             .url = req->url,
                             .headers = (const char *const *)req->headers,
                             .body = req->body,
                             .body_len = strlen(req->body),
                             .traceparent = ev->traceparent[0] ? ev->traceparent : NULL};
    imp_error_t *e = imp_http_request(http, &hr, &resp);
    if (e == NULL)
        classify_response(resp, p, r);
    else
        classify_failure(e, p, r);
    imp_error_free(e);
    imp_http_response_free(resp);
}

/* A permanent failure: state failed and its delivery event commit on the claim connection
 * (once: *committed says it was); the returned error (poison, or retriable on the last
 * attempt) makes it a dead letter. */
static imp_error_t *fail(send_t *st, const imp_envelope_t *ev, const send_msg_t *m, const char *why,
                         int attempts, imp_err_class_t cls, bool *committed)
{
    if (!*committed) {
        imp_envelope_t d;
        imp_error_t *err = send_delivery_event(ev, m, "failed", NULL, why, attempts, &d);
        char *key = send_event_key(ev, m);
        if (err == NULL)
            err = send_fail(st, ev, why, &d, key);
        free(key);
        if (err != NULL)
            return err;
        *committed = true;
        IMP_LOG_WARN("send failed", IMP_LS("channel", m->channel), IMP_LS("reason", why));
    }
    return imp_error_new(cls, cls == IMP_ERR_POISON ? "send_rejected" : "send_failed", "%s", why);
}

/* What the call's result makes of the message. The runtime may run this again for the same
 * call (its transaction was rolled back for another event of the batch): what it writes in
 * that transaction is written again, what it committed on the claim connection is not. */
static imp_error_t *settle(send_t *st, imp_worker_ctx_t *ctx, const imp_envelope_t *ev,
                           const send_msg_t *m, int attempts, result_t *r)
{
    imp_pg_t *pg = imp_worker_ctx_pg(ctx);
    imp_error_t *err = NULL;
    bool last = ev->attempt + 1 >= st->s->rt.max_attempts;
    switch (r->outcome) {
    case OUT_SENT:
        err = send_record(pg, ev, "sent", r->provider_message_id, NULL);
        if (err == NULL)
            err = send_trace_ms(pg, ev, m);
        if (err == NULL)
            err = emit_delivery(ctx, ev, m, "sent", r->provider_message_id, NULL, attempts);
        if (err == NULL)
            err = emit_usage(ctx, ev, m);
        return err;
    case OUT_UNKNOWN:
        IMP_LOG_WARN("send outcome unknown: not repeated", IMP_LS("channel", m->channel),
                     IMP_LS("reason", r->error));
        err = send_record(pg, ev, "unknown", NULL, r->error);
        if (err == NULL)
            err = emit_delivery(ctx, ev, m, "unknown", NULL, r->error, attempts);
        return err;
    case OUT_PERMANENT:
        return fail(st, ev, m, r->error, attempts, IMP_ERR_POISON, &r->committed);
    case OUT_RETRY:
        break;
    }
    if (last)
        return fail(st, ev, m, r->error, attempts, IMP_ERR_RETRIABLE, &r->committed);
    if (!r->committed) {
        err = send_release(st, ev, r->error, r->retry_after_ms);
        if (err != NULL)
            return err;
        r->committed = true;
    }
    err = imp_error_new(IMP_ERR_RETRIABLE, "send_retry", "%s", r->error);
    imp_error_set_retry_after_ms(err, r->retry_after_ms);
    return err;
}

static imp_error_t *send_claimed(send_t *st, imp_worker_ctx_t *ctx, const imp_envelope_t *ev,
                                 const send_msg_t *m, const send_provider_t *p,
                                 const send_req_t *req, int attempts)
{
    send_call_t *c = call_new(st, ctx, ev);
    c->attempts = attempts;
    call(st->http, p, req, ev, &c->r);
    send_guard_result(st, ev->tenantid, p->name, c->r.outcome == OUT_RETRY);
    return settle(st, ctx, ev, m, attempts, &c->r);
}

static imp_error_t *deliver(send_t *st, imp_worker_ctx_t *ctx, const imp_envelope_t *ev,
                            const send_msg_t *m, const send_provider_t *p, const send_req_t *req)
{
    imp_error_t *err = send_guard_check(st, ev->tenantid, p->name);
    if (err != NULL)
        return err;
    send_claim_t c;
    if ((err = send_claim(st, ev, m, p->idempotent, &c)) != NULL)
        return err;
    switch (c.kind) {
    case CLAIM_DONE:
        /* Settled earlier: report it again (same event id) in case that report was lost. */
        err = emit_delivery(ctx, ev, m, c.state, c.provider_message_id, c.last_error, c.attempts);
        break;
    case CLAIM_DEFER:
        err = imp_error_new(IMP_ERR_RETRIABLE, "send_deferred",
                            "provider asked to wait: %lld ms left", c.wait_ms);
        imp_error_set_retry_after_ms(err, c.wait_ms);
        break;
    case CLAIM_SEND:
        err = send_claimed(st, ctx, ev, m, p, req, c.attempts);
        break;
    }
    send_claim_dispose(&c);
    return err;
}

/* What a message needs before its call. */
typedef struct {
    send_msg_t m;
    send_channel_t ch;
    send_req_t req;
    const send_provider_t *p;
} prepared_t;

static void prepared_dispose(prepared_t *x)
{
    send_req_dispose(&x->req);
    send_channel_dispose(&x->ch);
}

/* Its provider and request (x->m parsed, x->ch loaded). */
static imp_error_t *prepare_req(send_t *st, const imp_envelope_t *ev, prepared_t *x)
{
    const char *base = NULL;
    imp_error_t *err = send_route(st, x->m.channel, &x->ch, &x->p, &base);
    if (err == NULL && x->p->build != NULL)
        err = x->p->build(&x->m, &x->ch, base, ev->id, &x->req);
    return err;
}

/* Its channel, provider and request (x->m parsed already). */
static imp_error_t *prepare_msg(send_t *st, imp_worker_ctx_t *ctx, const imp_envelope_t *ev,
                                prepared_t *x)
{
    imp_error_t *err = NULL;
    if (ev->tenantid[0] == '\0')
        err = imp_error_new(IMP_ERR_POISON, "bad_outbound", "tenantid is missing");
    if (err == NULL)
        err = send_channel_load(st, imp_worker_ctx_pg(ctx), ev->tenantid, x->m.channel, &x->ch);
    if (err == NULL)
        err = prepare_req(st, ev, x);
    return err;
}

imp_error_t *send_handle(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, void *user)
{
    send_t *st = user;
    prepared_t x = {0};
    imp_error_t *err = send_parse_msg(ev->data, &x.m);
    if (err != NULL)
        return err;
    /* Called already (in prepare, or in an earlier run of this batch): settle from it. */
    send_call_t *made = call_find(st, ctx, ev);
    if (made != NULL)
        return settle(st, ctx, ev, &x.m, made->attempts, &made->r);
    err = prepare_msg(st, ctx, ev, &x);
    if (err == NULL)
        err = deliver(st, ctx, ev, &x.m, x.p, &x.req);
    prepared_dispose(&x);
    return err;
}

/* ---- concurrent calls of a batch ----------------------------------------------------------- */

typedef struct {
    imp_worker_ctx_t *ctx;
    const imp_envelope_t *ev;
    prepared_t x;
    send_call_t *slot;
} job_t;

/* A channel read once per batch for its (tenant, kind). */
typedef struct {
    const char *tenant, *kind; /* borrowed from the event that read it */
    send_channel_t ch;
    bool ok;
} chan_t;

static const chan_t *batch_channel(send_t *st, imp_worker_ctx_t *ctx, const imp_envelope_t *ev,
                                   const char *kind, chan_t *chans, size_t *nchans)
{
    for (size_t i = 0; i < *nchans; i++)
        if (strcmp(chans[i].tenant, ev->tenantid) == 0 && strcmp(chans[i].kind, kind) == 0)
            return &chans[i];
    chan_t *c = &chans[(*nchans)++];
    c->tenant = ev->tenantid;
    c->kind = kind;
    imp_error_t *err = send_channel_load(st, imp_worker_ctx_pg(ctx), ev->tenantid, kind, &c->ch);
    c->ok = err == NULL;
    imp_error_free(err); /* its messages' handlers meet it again */
    return c;
}

typedef struct {
    job_t *jobs;
    size_t n;
    atomic_size_t next;
} jobs_t;

typedef struct {
    jobs_t *q;
    imp_http_client_t *const *http; /* a client per slot */
} run_t;

static void run_slot(size_t slot, void *arg)
{
    run_t *r = arg;
    for (size_t i; (i = atomic_fetch_add(&r->q->next, 1)) < r->q->n;) {
        job_t *j = &r->q->jobs[i];
        call(r->http[slot], j->x.p, &j->x.req, j->ev, &j->slot->r);
    }
}

/* Claim the jobs' messages in one round trip; keep those claimed fresh (the others are left
 * to their handlers), each with its call slot. */
static void claim_jobs(send_t *st, job_t *jobs, size_t *njobs)
{
    size_t n = *njobs, kept = 0;
    if (n == 0)
        return;
    const imp_envelope_t **evs = imp_calloc(n, sizeof(*evs));
    const send_msg_t **ms = imp_calloc(n, sizeof(*ms));
    bool *fresh = imp_calloc(n, sizeof(*fresh));
    for (size_t i = 0; i < n; i++) {
        evs[i] = jobs[i].ev;
        ms[i] = &jobs[i].x.m;
    }
    imp_error_t *err = send_claim_new_many(st, evs, ms, n, fresh);
    imp_error_free(err); /* nothing claimed: the handlers claim one by one */
    for (size_t i = 0; i < n; i++) {
        if (!fresh[i]) {
            prepared_dispose(&jobs[i].x);
            continue;
        }
        job_t j = jobs[i];
        j.slot = call_new(st, j.ctx, j.ev);
        j.slot->attempts = 1;
        jobs[kept++] = j;
    }
    *njobs = kept;
    free(fresh);
    free(ms);
    free(evs);
}

/* The jobs' calls on up to st->npool clients at once. */
static void run_jobs(send_t *st, job_t *jobs, size_t n)
{
    jobs_t q = {.jobs = jobs, .n = n};
    atomic_init(&q.next, 0);
    run_t r = {.q = &q, .http = st->pool};
    send_runners_run(st->runners, n < st->npool ? n : st->npool, run_slot, &r);
}

/* Claim and call, concurrently, the first message of each conversation of the batch that is
 * due for a call; the handlers then settle them from their results (call_find), and make the
 * other messages' calls one after the other, in order, as without prepare: a conversation's
 * messages never overlap, and its first message's call is over before its second's starts.
 * A message that meets anything but the common case here (a bad event, a missing channel, a
 * guard, a row claimed before) is left to its handler, which meets it again and decides. The
 * channels are read once per (tenant, kind) and the claims made in one round trip. */
void send_prepare(imp_worker_ctx_t *const *ctx, size_t n, void *user)
{
    send_t *st = user;
    if (st->npool < 2 || n < 2)
        return;
    job_t *jobs = imp_calloc(n, sizeof(*jobs));
    char **keys = imp_calloc(n, sizeof(*keys));
    chan_t *chans = imp_calloc(n, sizeof(*chans));
    size_t njobs = 0, nkeys = 0, nchans = 0;
    for (size_t i = 0; i < n; i++) {
        const imp_envelope_t *ev = imp_worker_ctx_event(ctx[i]);
        prepared_t x = {0};
        imp_error_t *err = send_parse_msg(ev->data, &x.m);
        if (err != NULL) {
            imp_error_free(err);
            continue;
        }
        char *key = send_event_key(ev, &x.m);
        bool seen = false;
        for (size_t k = 0; k < nkeys && !seen; k++)
            seen = strcmp(keys[k], key) == 0;
        if (seen) {
            free(key);
            continue;
        }
        keys[nkeys++] = key;
        if (call_find(st, ctx[i], ev) != NULL || ev->tenantid[0] == '\0')
            continue;
        const chan_t *c = batch_channel(st, ctx[i], ev, x.m.channel, chans, &nchans);
        if (!c->ok)
            continue;
        x.ch.settings = json_incref(c->ch.settings);
        x.ch.secrets = json_incref(c->ch.secrets);
        err = prepare_req(st, ev, &x);
        if (err == NULL && x.p->build == NULL) { /* the sink: nothing to wait for */
            prepared_dispose(&x);
            continue;
        }
        if (err == NULL)
            err = send_guard_check(st, ev->tenantid, x.p->name);
        if (err != NULL) {
            imp_error_free(err);
            prepared_dispose(&x);
            continue;
        }
        jobs[njobs++] = (job_t){.ctx = ctx[i], .ev = ev, .x = x};
    }
    claim_jobs(st, jobs, &njobs);
    if (njobs > 0)
        run_jobs(st, jobs, njobs);
    for (size_t i = 0; i < njobs; i++) {
        send_guard_result(st, jobs[i].ev->tenantid, jobs[i].x.p->name,
                          jobs[i].slot->r.outcome == OUT_RETRY);
        prepared_dispose(&jobs[i].x);
    }
    for (size_t k = 0; k < nkeys; k++)
        free(keys[k]);
    for (size_t k = 0; k < nchans; k++)
        send_channel_dispose(&chans[k].ch);
    free(chans);
    free(keys);
    free(jobs);
}
