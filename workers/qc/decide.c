/* The qc handler: a draft in, judged by the rules of the bot version that answered it (or the
 * tenant's settings), the answer or the safe reply plus an escalation out, the conversation
 * handed over on a failure, and the turn's trace. */
#include "qc.h"

#include "imp/envelope.h"
#include "imp/log.h"
#include "imp/mem.h"
#include "imp/opid.h"
#include "imp/pg.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define OUTBOUND_TOPIC "imp.outbound.v1"
#define ESCALATION_EXCERPT 1500 /* bytes of the question and of the draft in an escalation */

typedef struct {
    const char *conversation_id; /* NULL when absent */
    const char *channel, *conversation_key, *recipient, *reply_to;
    const char *bot_version;  /* the bot version that answered; NULL when none */
    long long received_at_ms; /* 0 when absent */
    long long rag_ms, llm_ms;
    qc_draft_t view;
} draft_t;

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *str_member(const json_t *o, const char *name)
{
    return json_string_value(json_object_get(o, name));
}

static imp_error_t *parse_draft(const json_t *data, draft_t *d)
{
    memset(d, 0, sizeof(*d));
    d->conversation_id = str_member(data, "conversation_id");
    d->channel = str_member(data, "channel");
    d->conversation_key = str_member(data, "conversation_key");
    d->recipient = str_member(data, "recipient");
    d->reply_to = str_member(data, "reply_to");
    d->bot_version = str_member(data, "bot_version");
    d->received_at_ms = json_integer_value(json_object_get(data, "received_at_ms"));
    d->view.question = str_member(data, "question");
    d->view.answer = str_member(data, "answer");
    d->view.mode = str_member(data, "mode");
    d->view.failure = str_member(data, "failure");
    const json_t *conf = json_object_get(data, "confidence");
    const json_t *cites = json_object_get(data, "citations");
    const json_t *timings = json_object_get(data, "timings");
    d->view.confidence = json_number_value(conf);
    d->view.ncitations = json_array_size(cites);
    d->rag_ms = json_integer_value(json_object_get(timings, "rag_ms"));
    d->llm_ms = json_integer_value(json_object_get(timings, "llm_ms"));
    const char *missing = d->channel == NULL            ? "channel"
                          : d->conversation_key == NULL ? "conversation_key"
                          : d->recipient == NULL        ? "recipient"
                          : d->view.question == NULL    ? "question"
                          : d->view.answer == NULL      ? "answer"
                          : d->view.mode == NULL        ? "mode"
                          : !json_is_number(conf)       ? "confidence"
                                                        : NULL;
    if (missing != NULL)
        return imp_error_new(IMP_ERR_POISON, "bad_draft", "draft data.%s is missing", missing);
    if (strcmp(d->view.mode, "llm") != 0 && strcmp(d->view.mode, "extractive") != 0 &&
        strcmp(d->view.mode, "none") != 0)
        return imp_error_new(IMP_ERR_POISON, "bad_draft", "draft data.mode is unknown");
    uint8_t uuid[IMP_UUID_LEN];
    if (d->bot_version != NULL && imp_uuid_parse(d->bot_version, strlen(d->bot_version), uuid) != 0)
        return imp_error_new(IMP_ERR_POISON, "bad_draft", "draft data.bot_version is not a UUID");
    return NULL;
}

/* The rules of a draft (docs/bot-versions.md): the settings of the bot version that answered
 * it, so a turn is judged by the version that produced it whatever was published since; a
 * draft without one (or naming one the tenant does not have) is judged by tenants.settings. */
/* With it, in the same round trip, the state of the draft's conversation: whether a manager
 * has it now (it went to handover while the turn was on its way: an earlier draft failed, or
 * a manager stepped in). */
#define SQL_RULES                                                                                  \
    "SELECT coalesce(v.settings, t.settings)::text, v.id::text, "                                  \
    "(SELECT c.state FROM conversations c WHERE c.tenant_id = t.id AND c.id = $3::uuid) "          \
    "FROM tenants t "                                                                              \
    "LEFT JOIN bot_versions v ON v.tenant_id = t.id AND v.id = $2::uuid WHERE t.id = $1"

/* The settings object the draft is judged by (new reference; an empty object when none), the
 * bot version it came from (*version, or "" for tenants.settings), and whether its
 * conversation is in handover. */
static imp_error_t *load_settings(imp_pg_t *pg, const char *tenant, const draft_t *d, json_t **out,
                                  char version[IMP_UUID_STR_SIZE], bool *handover)
{
    imp_pg_result_t *res = NULL;
    const char *params[] = {tenant, d->bot_version, d->conversation_id};
    version[0] = '\0';
    imp_error_t *err = imp_pg_exec_cached(pg, SQL_RULES, 3, params, &res);
    if (err != NULL)
        return err;
    const char *text = imp_pg_result_value(res, 0, 0), *id = imp_pg_result_value(res, 0, 1);
    const char *state = imp_pg_result_value(res, 0, 2);
    *handover = state != NULL && strcmp(state, "handover") == 0;
    *out = text ? json_loads(text, 0, NULL) : NULL;
    if (*out == NULL)
        *out = json_object();
    if (id != NULL)
        snprintf(version, IMP_UUID_STR_SIZE, "%s", id);
    else if (d->bot_version != NULL)
        IMP_LOG_WARN("bot version not found: judged by the tenant's settings",
                     IMP_LS("bot_version", d->bot_version));
    imp_pg_result_free(res);
    return NULL;
}

/* The manager chat of the tenant's enabled Telegram channel (heap), or NULL. */
static imp_error_t *load_manager_chat(imp_pg_t *pg, const char *tenant, char **out)
{
    imp_pg_result_t *res = NULL;
    const char *params[] = {tenant};
    *out = NULL;
    imp_error_t *err = imp_pg_exec_cached(
        pg,
        "SELECT settings->>'manager_chat_id' FROM channels WHERE tenant_id = $1 "
        "AND kind = 'telegram' AND enabled AND coalesce(settings->>'manager_chat_id', '') <> '' "
        "ORDER BY name LIMIT 1",
        1, params, &res);
    if (err != NULL)
        return err;
    if (imp_pg_result_rows(res) == 1)
        *out = imp_strdup(imp_pg_result_value(res, 0, 0));
    imp_pg_result_free(res);
    return NULL;
}

static json_t *nullable_str(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

/* purpose: "answer", "safe_reply", "escalation" or "forward"; the id derives from the draft with
 * the step the contract names for it (docs/conversation-events.md). */
static imp_error_t *emit_outbound(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, const draft_t *d,
                                  const char *purpose, const char *channel, const char *recipient,
                                  const char *text, bool reply)
{
    const char *step = strcmp(purpose, "answer") == 0 ? "reply" : purpose;
    char id[IMP_UUID_STR_SIZE];
    imp_error_t *err = imp_opid_derive(ev->id, step, id);
    if (err != NULL)
        return err;
    json_t *data = json_pack(
        "{s:o, s:s, s:s, s:s, s:s, s:o, s:o}", "conversation_id", nullable_str(d->conversation_id),
        "channel", channel, "recipient", recipient, "text", text, "purpose", purpose, "reply_to",
        nullable_str(reply && d->reply_to && d->reply_to[0] ? d->reply_to : NULL), "received_at_ms",
        reply && d->received_at_ms > 0 ? json_integer(d->received_at_ms) : json_null());
    if (data == NULL)
        return imp_error_new(IMP_ERR_POISON, "bad_draft", "draft text is not valid UTF-8");
    imp_envelope_t out;
    err = imp_envelope_derive(&out, ev, id, "imperium/qc", "imp.outbound.message.v1", data);
    if (err != NULL)
        return err;
    char *key = imp_asprintf("%s:%s", ev->tenantid, d->conversation_key);
    err = imp_worker_emit(ctx, OUTBOUND_TOPIC, key, &out);
    free(key);
    return err;
}

/* Bytes of s that fit in max without cutting a code point. */
static int excerpt(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max)
        return (int)n;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    return (int)max;
}

static char *escalation_text(const draft_t *d, const char *reason)
{
    const char *q = d->view.question, *a = d->view.answer[0] ? d->view.answer : "(none)";
    return imp_asprintf(
        "Escalation: %s\nConversation: %s (%s)\nConversation id: %s\n"
        "Question: %.*s%s\nDraft: %.*s%s",
        reason, d->conversation_key, d->channel, d->conversation_id ? d->conversation_id : "-",
        excerpt(q, ESCALATION_EXCERPT), q, strlen(q) > ESCALATION_EXCERPT ? "…" : "",
        excerpt(a, ESCALATION_EXCERPT), a, strlen(a) > ESCALATION_EXCERPT ? "…" : "");
}

static imp_error_t *hand_over(imp_pg_t *pg, const char *tenant, const draft_t *d)
{
    if (d->conversation_id == NULL)
        return NULL;
    const char *params[] = {tenant, d->conversation_id};
    return imp_pg_exec_deferred(pg,
                                "UPDATE conversations SET state = 'handover', updated_at = now() "
                                "WHERE tenant_id = $1 AND id = $2::uuid",
                                2, params);
}

/* The bot stays silent in a conversation a manager has: the question goes to the manager
 * chat as a forward (a reply to it reaches the customer, as for dialog's forwards). */
static imp_error_t *forward_path(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, const draft_t *d)
{
    char *manager = NULL;
    imp_error_t *err = load_manager_chat(imp_worker_ctx_pg(ctx), ev->tenantid, &manager);
    if (err != NULL || manager == NULL)
        return err;
    const char *q = d->view.question;
    char *text = imp_asprintf("%s (%s), while a manager has the conversation:\n%.*s%s",
                              d->recipient, d->conversation_key, excerpt(q, ESCALATION_EXCERPT), q,
                              strlen(q) > ESCALATION_EXCERPT ? "…" : "");
    err = emit_outbound(ctx, ev, d, "forward", "telegram", manager, text, false);
    free(text);
    free(manager);
    return err;
}

/* The safe reply to the customer, the escalation to the manager chat (when the tenant has
 * one) and the handover. Without a manager chat the conversation stays with the bot: a
 * handover nobody sees would leave the customer in silence. */
static imp_error_t *fail_path(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, const draft_t *d,
                              const json_t *settings, const char *reason, bool *escalated)
{
    imp_pg_t *pg = imp_worker_ctx_pg(ctx);
    const char *safe = str_member(settings, "safe_reply");
    char *folded = safe ? qc_fold(safe) : NULL;
    if (folded == NULL || folded[0] == '\0')
        safe = QC_DEFAULT_SAFE_REPLY;
    free(folded);
    imp_error_t *err =
        emit_outbound(ctx, ev, d, "safe_reply", d->channel, d->recipient, safe, true);
    char *manager = NULL;
    if (err == NULL)
        err = load_manager_chat(pg, ev->tenantid, &manager);
    *escalated = err == NULL && manager != NULL;
    if (err == NULL && manager == NULL)
        IMP_LOG_WARN("no manager chat: not escalated", IMP_LS("reason", reason));
    if (*escalated) {
        char *text = escalation_text(d, reason);
        err = emit_outbound(ctx, ev, d, "escalation", "telegram", manager, text, false);
        free(text);
    }
    if (err == NULL && *escalated)
        err = hand_over(pg, ev->tenantid, d);
    free(manager);
    return err;
}

static imp_error_t *write_trace(imp_pg_t *pg, const imp_envelope_t *ev, const draft_t *d,
                                const qc_decision_t *dec, bool escalated, long long qc_ms,
                                const char *bot_version)
{
    char ingress[24] = "", rag[24], llm[24], qc[24], conf[32], trace[33] = "";
    long long before_rag = ev->time_ms - d->rag_ms - d->received_at_ms;
    if (d->received_at_ms > 0)
        snprintf(ingress, sizeof(ingress), "%lld", before_rag > 0 ? before_rag : 0);
    snprintf(rag, sizeof(rag), "%lld", d->rag_ms > 0 ? d->rag_ms : 0);
    snprintf(llm, sizeof(llm), "%lld", d->llm_ms > 0 ? d->llm_ms : 0);
    snprintf(qc, sizeof(qc), "%lld", qc_ms);
    double c = d->view.confidence < 0 ? 0 : d->view.confidence > 1 ? 1 : d->view.confidence;
    snprintf(conf, sizeof(conf), "%.4f", c);
    if (strlen(ev->traceparent) >= 35)
        snprintf(trace, sizeof(trace), "%.32s", ev->traceparent + 3);
    const char *params[] = {ev->tenantid,
                            ev->causationid[0] ? ev->causationid : ev->id,
                            ev->id,
                            d->conversation_id,
                            d->view.mode,
                            ingress[0] ? ingress : NULL,
                            rag,
                            llm,
                            qc,
                            conf,
                            dec->pass ? "pass" : "fail",
                            dec->reason,
                            escalated ? "t" : "f",
                            trace[0] ? trace : NULL,
                            bot_version[0] ? bot_version : NULL};
    return imp_pg_exec_deferred(
        pg,
        "INSERT INTO message_traces (tenant_id, operation_id, draft_id, conversation_id, mode, "
        "ingress_ms, rag_ms, llm_ms, qc_ms, confidence, decision, reason, escalated, trace_id, "
        "bot_version_id) VALUES ($1, $2, $3, $4::uuid, $5, $6::integer, $7::integer, "
        "$8::integer, $9::integer, $10::real, $11, $12, $13::boolean, $14, $15::uuid) "
        "ON CONFLICT (operation_id) DO NOTHING",
        15, params);
}

imp_error_t *qc_handle(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, void *user)
{
    (void)user;
    long long t0 = mono_ms();
    draft_t d;
    json_t *settings = NULL;
    char version[IMP_UUID_STR_SIZE] = "";
    qc_rules_t rules;
    qc_rules_init(&rules);
    if (ev->tenantid[0] == '\0')
        return imp_error_new(IMP_ERR_POISON, "bad_draft", "draft has no tenant");
    bool escalated = false, handover = false;
    imp_error_t *err = parse_draft(ev->data, &d);
    if (err == NULL)
        err =
            load_settings(imp_worker_ctx_pg(ctx), ev->tenantid, &d, &settings, version, &handover);
    if (err != NULL)
        goto out;
    int ignored = 0;
    qc_rules_from_settings(settings, &rules, &ignored);
    if (ignored > 0)
        IMP_LOG_WARN("invalid qc settings ignored", IMP_LI("count", ignored));
    qc_decision_t dec;
    if (handover) {
        dec = (qc_decision_t){.pass = false, .reason = "handover"};
        err = forward_path(ctx, ev, &d);
    } else {
        qc_decide(&rules, &d.view, &dec);
        if (dec.pass)
            err = emit_outbound(ctx, ev, &d, "answer", d.channel, d.recipient, d.view.answer, true);
        else
            err = fail_path(ctx, ev, &d, settings, dec.reason, &escalated);
    }
    if (err == NULL)
        err = write_trace(imp_worker_ctx_pg(ctx), ev, &d, &dec, escalated, mono_ms() - t0, version);
    if (err == NULL)
        IMP_LOG_INFO("draft decided", IMP_LS("decision", dec.pass ? "pass" : "fail"),
                     IMP_LS("reason", dec.reason), IMP_LS("mode", d.view.mode),
                     IMP_LB("escalated", escalated), IMP_LS("bot_version", version));
out:
    qc_rules_dispose(&rules);
    json_decref(settings);
    return err;
}
