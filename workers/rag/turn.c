/* The rag handler: a turn → the tenant's bot version and KB version for its release channel
 * → hybrid retrieval → the answer → a draft for qc. */
#include "rag.h"

#include "imp/log.h"
#include "imp/mem.h"
#include "imp/opid.h"
#include "imp/usage.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define DRAFT_TOPIC "imp.draft.v1"

/* What a worker process keeps between turns; built on the first turn (one thread). */
static struct {
    bool ready;
    imp_embedder_t *embedder;
    imp_retrieval_cache_t *cache;
    imp_http_client_t *http;
    imp_pg_t *side; /* llm_turns, outside the turn's transaction */
} rag;

typedef struct {
    const char *channel, *conversation_key, *recipient, *question;
    const json_t *data;
    const json_t *history;
} turn_t;

typedef struct {
    char *instruction; /* heap; NULL: the default */
    char kb_version[IMP_UUID_STR_SIZE];
    char bot_version[IMP_UUID_STR_SIZE];
    long long bot_number;
} release_t;

typedef struct {
    char *answer;
    const char *mode;    /* "llm", "extractive", "none" */
    const char *failure; /* why mode is none (static string), or NULL */
    size_t ncite;        /* hits cited */
    long long llm_ms;
    bool llm_cached;             /* llm_ms was spent by an earlier attempt */
    long long prompt_tokens;     /* -1: not reported (or no LLM) */
    long long completion_tokens; /* idem */
} answer_t;

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static imp_error_t *init_once(void)
{
    if (rag.ready)
        return NULL;
    imp_error_t *err = imp_embedder_from_settings(&rag_settings.embed, &rag.embedder);
    if (err != NULL)
        return err;
    if (rag_settings.llm_url[0] != '\0') {
        err =
            imp_http_client_new(&(imp_http_options_t){.timeout_ms = rag_settings.llm_timeout_ms,
                                                      .allow_cidrs = rag_settings.llm_allow_cidrs},
                                &rag.http);
        if (err != NULL)
            return err;
    }
    rag.cache = imp_retrieval_cache_new((size_t)rag_settings.cache_bytes);
    rag.side = imp_pg_new(&(imp_pg_options_t){.dsn = rag_settings.rt.pg_dsn,
                                              .application_name = "imperium-rag-side"});
    rag.ready = true;
    return NULL;
}

static imp_error_t *parse_turn(const json_t *data, turn_t *t)
{
    t->data = data;
    t->channel = json_string_value(json_object_get(data, "channel"));
    t->conversation_key = json_string_value(json_object_get(data, "conversation_key"));
    t->recipient = json_string_value(json_object_get(data, "recipient"));
    t->question = json_string_value(json_object_get(data, "question"));
    t->history = json_object_get(data, "history");
    const char *missing = t->channel == NULL            ? "channel"
                          : t->conversation_key == NULL ? "conversation_key"
                          : t->recipient == NULL        ? "recipient"
                          : t->question == NULL         ? "question"
                                                        : NULL;
    if (missing != NULL)
        return imp_error_new(IMP_ERR_POISON, "bad_turn", "turn data.%s is missing", missing);
    return NULL;
}

/* What answers the tenant's turn (docs/bot-versions.md): on the canary release channel the
 * canary bot version when there is one, else the stable one; without any bot version the
 * tenant's settings (bot_instruction) as before. The KB version is the canary's pinned one,
 * else the tenant's stable one. */
#define SQL_RELEASE                                                                                \
    "SELECT CASE WHEN bv.id IS NULL THEN t.settings->>'bot_instruction' ELSE bv.instruction END, " \
    "coalesce(bv.kb_pin, (SELECT v.id FROM kb_versions v WHERE v.tenant_id = t.id "                \
    "AND v.state = 'stable')), bv.id, bv.number FROM tenants t LEFT JOIN LATERAL ("                \
    "SELECT b.id, b.number, b.instruction, "                                                       \
    "CASE WHEN b.state = 'canary' THEN b.kb_version_id END AS kb_pin "                             \
    "FROM bot_versions b JOIN bots o ON o.tenant_id = b.tenant_id AND o.id = b.bot_id "            \
    "WHERE b.tenant_id = t.id AND o.name = '" RAG_BOT_NAME "' AND (b.state = 'stable' "            \
    "OR (b.state = 'canary' AND t.release_channel = 'canary')) "                                   \
    "ORDER BY b.state = 'canary' DESC LIMIT 1) bv ON true WHERE t.id = $1"

/* The turn's instruction, KB version ("" for none) and bot version ("" for none); in the same
 * round trip, the lexemes of the question (for the retrieval, when there is a KB version). */
static imp_error_t *load_release(imp_pg_t *pg, const char *tenant, const char *question,
                                 release_t *r, imp_retrieval_lexemes_t *lexemes)
{
    const char *params[] = {tenant};
    char *terms = imp_retrieval_lexemes_param(question);
    const char *lparams[] = {terms};
    memset(r, 0, sizeof(*r));
    imp_pg_batch_t *b = imp_pg_batch_new();
    imp_pg_batch_add_cached(b, SQL_RELEASE, 1, params);
    imp_pg_batch_add_cached(b, IMP_RETRIEVAL_LEXEMES_SQL, 1, lparams);
    free(terms);
    imp_error_t *err = imp_pg_batch_run(pg, b);
    const imp_pg_result_t *res = imp_pg_batch_result(b, 0);
    if (err == NULL)
        imp_retrieval_lexemes_parse(imp_pg_batch_result(b, 1), lexemes);
    if (err == NULL && imp_pg_result_rows(res) == 1) {
        const char *ins = imp_pg_result_value(res, 0, 0);
        const char *ver = imp_pg_result_value(res, 0, 1);
        const char *bot = imp_pg_result_value(res, 0, 2);
        r->instruction = ins ? imp_strdup(ins) : NULL;
        if (ver != NULL)
            snprintf(r->kb_version, sizeof(r->kb_version), "%s", ver);
        if (bot != NULL) {
            snprintf(r->bot_version, sizeof(r->bot_version), "%s", bot);
            imp_pg_result_get_int64(res, 0, 3, &r->bot_number);
        }
    }
    imp_pg_batch_free(b);
    return err;
}

static bool is_last_attempt(const imp_envelope_t *ev)
{
    return ev->attempt + 1 >= rag_settings.rt.max_attempts;
}

/* Turns whose LLM call this process gave up on (on their last attempt). The runtime runs a
 * batch's successful handlers again when a later event of the batch fails; such a re-run of
 * the same attempt takes the same outcome instead of calling the LLM once more. */
#define GAVE_UP_SLOTS 64
static struct {
    char turn[IMP_UUID_STR_SIZE];
    int attempt;
    const char *failure;
} gave_up[GAVE_UP_SLOTS];
static unsigned gave_up_next;

static const char *gave_up_before(const imp_envelope_t *ev)
{
    for (unsigned i = 0; i < GAVE_UP_SLOTS; i++)
        if (gave_up[i].failure != NULL && gave_up[i].attempt == ev->attempt &&
            strcmp(gave_up[i].turn, ev->id) == 0)
            return gave_up[i].failure;
    return NULL;
}

static void remember_gave_up(const imp_envelope_t *ev, const char *failure)
{
    unsigned i = gave_up_next++ % GAVE_UP_SLOTS;
    snprintf(gave_up[i].turn, sizeof(gave_up[i].turn), "%s", ev->id);
    gave_up[i].attempt = ev->attempt;
    gave_up[i].failure = failure;
}

/* An LLM failure: retried by the runtime while attempts remain; on the last attempt (or when
 * retrying cannot help) the turn goes on as mode none, so qc sends the safe reply and
 * escalates instead of the turn dying in the dead-letter queue with the customer unanswered. */
static imp_error_t *llm_failed(const imp_envelope_t *ev, imp_error_t *err, answer_t *a)
{
    bool retriable = imp_error_class(err) == IMP_ERR_RETRIABLE;
    IMP_LOG_WARN("llm failed", IMP_LE(err), IMP_LI("attempt", ev->attempt),
                 IMP_LB("giving_up", !retriable || is_last_attempt(ev)));
    if (retriable && !is_last_attempt(ev))
        return err;
    a->mode = "none";
    a->failure = strcmp(imp_error_code(err), "llm_timeout") == 0  ? "llm_timeout"
                 : strcmp(imp_error_code(err), "llm_status") == 0 ? "llm_status"
                                                                  : "llm_garbage";
    a->answer = imp_strdup("");
    remember_gave_up(ev, a->failure);
    imp_error_free(err);
    return NULL;
}

static imp_error_t *answer(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, const turn_t *t,
                           const char *instruction, const imp_retrieval_result_t *res, answer_t *a)
{
    if (res->n == 0) {
        a->mode = "none";
        a->failure = "no_hits";
        a->answer = imp_strdup("");
        return NULL;
    }
    if (rag.http == NULL) {
        a->mode = "extractive";
        a->answer =
            rag_extractive_answer(res->hits[0].chunk->text, (size_t)rag_settings.extractive_max);
        a->ncite = 1;
        return NULL;
    }
    size_t nctx =
        res->n < (size_t)rag_settings.context_chunks ? res->n : (size_t)rag_settings.context_chunks;
    rag_prompt_t p = {.turn_id = ev->id,
                      .tenant_id = ev->tenantid,
                      .question = t->question,
                      .history = t->history,
                      .instruction = instruction,
                      .hits = res,
                      .nctx = nctx,
                      .traceparent = ev->traceparent};
    const char *failure = gave_up_before(ev);
    if (failure != NULL) {
        *a = (answer_t){.mode = "none", .failure = failure, .answer = imp_strdup("")};
        return NULL;
    }
    rag_completion_t c;
    imp_error_t *err = rag_llm_answer(imp_worker_ctx_pg(ctx), rag.side, rag.http, &p, &c);
    if (err != NULL && strncmp(imp_error_code(err), "llm_", 4) == 0)
        return llm_failed(ev, err, a);
    if (err != NULL)
        return err;
    a->mode = "llm";
    a->answer = c.text;
    a->llm_ms = c.llm_ms;
    a->llm_cached = c.cached;
    a->prompt_tokens = c.prompt_tokens;
    a->completion_tokens = c.completion_tokens;
    a->ncite = nctx;
    return NULL;
}

static json_t *citations(const imp_retrieval_result_t *res, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n && i < res->n; i++) {
        const imp_retrieval_hit_t *h = &res->hits[i];
        json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:f}", "chunk_id",
                                             (json_int_t)h->chunk->id, "source", h->chunk->source,
                                             "heading", h->chunk->heading, "score", h->score));
    }
    return arr;
}

static json_t *copy_member(const json_t *data, const char *name)
{
    json_t *v = json_object_get(data, name);
    return v != NULL ? json_deep_copy(v) : json_null();
}

static json_t *uuid_or_null(const char *id)
{
    return id[0] ? json_string(id) : json_null();
}

static imp_error_t *emit_draft(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, const turn_t *t,
                               const release_t *rel, const imp_retrieval_result_t *res,
                               const answer_t *a, long long rag_ms)
{
    char id[IMP_UUID_STR_SIZE];
    imp_error_t *err = imp_opid_derive(ev->id, "draft", id);
    if (err != NULL)
        return err;
    double conf = strcmp(a->mode, "none") == 0 ? 0.0 : res->confidence;
    json_t *data =
        json_pack("{s:o, s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:s, s:f, s:o, s:o, s:o, s:{s:I, s:I}}",
                  "conversation_id", copy_member(t->data, "conversation_id"), "channel", t->channel,
                  "conversation_key", t->conversation_key, "recipient", t->recipient, "question",
                  t->question, "reply_to", copy_member(t->data, "reply_to"), "received_at_ms",
                  copy_member(t->data, "received_at_ms"), "answer", a->answer, "mode", a->mode,
                  "confidence", conf, "citations", citations(res, a->ncite), "kb_version",
                  uuid_or_null(rel->kb_version), "bot_version", uuid_or_null(rel->bot_version),
                  "timings", "rag_ms", (json_int_t)rag_ms, "llm_ms", (json_int_t)a->llm_ms);
    if (data == NULL)
        return imp_error_new(IMP_ERR_POISON, "bad_turn", "draft could not be built");
    if (a->failure != NULL)
        json_object_set_new(data, "failure", json_string(a->failure));
    imp_envelope_t out;
    err = imp_envelope_derive(&out, ev, id, "imperium/rag", "imp.draft.created.v1", data);
    if (err != NULL)
        return err;
    char *key = imp_asprintf("%s:%s", ev->tenantid, t->conversation_key);
    err = imp_worker_emit(ctx, DRAFT_TOPIC, key, &out);
    free(key);
    return err;
}

/* The turn's usage for metering (keyed by tenant): one event per turn, whatever the mode. */
static imp_error_t *emit_usage(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, const turn_t *t,
                               const answer_t *a)
{
    bool llm = strcmp(a->mode, "llm") == 0;
    imp_usage_counter_t c[] = {
        {"turns", 1},
        {"llm_requests", llm ? 1 : 0},
        {"prompt_tokens", llm && a->prompt_tokens > 0 ? a->prompt_tokens : 0},
        {"completion_tokens", llm && a->completion_tokens > 0 ? a->completion_tokens : 0}};
    const char *conv = json_string_value(json_object_get(t->data, "conversation_id"));
    imp_usage_t u = {.kind = "turn",
                     .ref = ev->id,
                     .conversation_id = conv,
                     .channel = t->channel,
                     .model = llm ? rag_settings.llm_model : NULL,
                     .counters = c,
                     .ncounters = IMP_ARRAY_LEN(c)};
    imp_envelope_t out;
    imp_error_t *err = imp_usage_event(ev, "imperium/rag", &u, &out);
    if (err == NULL)
        err = imp_worker_emit(ctx, IMP_TOPIC_USAGE, ev->tenantid, &out);
    return err;
}

/* Retrieval over the version (an empty result when the tenant has none). */
static imp_error_t *retrieve(imp_pg_t *pg, const imp_envelope_t *ev, const char *version,
                             const char *question, const imp_retrieval_lexemes_t *lexemes,
                             imp_retrieval_result_t *res)
{
    if (version[0] == '\0')
        return NULL;
    imp_retrieval_index_t *idx = NULL;
    imp_error_t *err = imp_retrieval_cache_get(rag.cache, pg, ev->tenantid, version, &idx);
    imp_retrieval_params_t params = IMP_RETRIEVAL_PARAMS_DEFAULT;
    params.k = (size_t)rag_settings.top_k;
    params.lexemes = lexemes;
    if (err == NULL)
        err = imp_retrieval_search(pg, idx, rag.embedder, question, &params, res);
    imp_retrieval_index_unref(idx);
    if (err == NULL)
        err = imp_retrieval_log_write(pg, ev->id, question, res, NULL);
    return err;
}

imp_error_t *rag_handle(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, void *user)
{
    (void)user;
    long long t0 = mono_ms();
    turn_t t = {0};
    release_t rel = {0};
    imp_retrieval_lexemes_t lexemes = {0};
    imp_retrieval_result_t res = {0};
    answer_t a = {0};
    imp_pg_t *pg = imp_worker_ctx_pg(ctx);
    if (ev->tenantid[0] == '\0')
        return imp_error_new(IMP_ERR_POISON, "bad_turn", "turn has no tenant");
    imp_error_t *err = init_once();
    if (err == NULL)
        err = parse_turn(ev->data, &t);
    if (err == NULL)
        err = load_release(pg, ev->tenantid, t.question, &rel, &lexemes);
    if (err == NULL)
        err = retrieve(pg, ev, rel.kb_version, t.question, &lexemes, &res);
    if (err == NULL && rel.kb_version[0] == '\0')
        a = (answer_t){.mode = "none", .failure = "no_kb", .answer = imp_strdup("")};
    else if (err == NULL)
        err = answer(ctx, ev, &t, rel.instruction, &res, &a);
    long long rag_ms = mono_ms() - t0 - (a.llm_cached ? 0 : a.llm_ms);
    if (err == NULL)
        err = emit_draft(ctx, ev, &t, &rel, &res, &a, rag_ms > 0 ? rag_ms : 0);
    if (err == NULL)
        err = emit_usage(ctx, ev, &t, &a);
    if (err == NULL)
        IMP_LOG_INFO("draft created", IMP_LS("mode", a.mode), IMP_LF("confidence", res.confidence),
                     IMP_LI("hits", res.n), IMP_LS("failure", a.failure ? a.failure : ""),
                     IMP_LI("bot_version", rel.bot_number));
    free(a.answer);
    imp_retrieval_lexemes_dispose(&lexemes);
    imp_retrieval_result_dispose(&res);
    free(rel.instruction);
    return err;
}
