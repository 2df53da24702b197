/* The LLM answer: an OpenAI-compatible chat completion per turn, stored in llm_turns. */
#include "rag.h"

#include "imp/log.h"
#include "imp/mem.h"
#include "imp/pg.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

const char RAG_DEFAULT_INSTRUCTION[] =
    "You are the customer assistant of this business. Answer the customer's question briefly "
    "and politely, in the customer's language, using only the knowledge base excerpts below. "
    "Do not invent prices, dates or promises. If the excerpts do not answer the question, say "
    "that a manager will reply.";

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *system_message(const rag_prompt_t *p)
{
    const char *instr =
        p->instruction && p->instruction[0] ? p->instruction : RAG_DEFAULT_INSTRUCTION;
    size_t cap = strlen(instr) + 64;
    for (size_t i = 0; i < p->nctx; i++) {
        const imp_retrieval_chunk_t *c = p->hits->hits[i].chunk;
        cap += strlen(c->source) + strlen(c->heading) + strlen(c->text) + 32;
    }
    char *out = imp_malloc(cap);
    size_t n = (size_t)snprintf(out, cap, "%s\n\nKnowledge base excerpts:", instr);
    for (size_t i = 0; i < p->nctx; i++) {
        const imp_retrieval_chunk_t *c = p->hits->hits[i].chunk;
        n += (size_t)snprintf(out + n, cap - n, "\n\n[%zu] %s%s%s\n%s", i + 1, c->source,
                              c->heading[0] ? " — " : "", c->heading, c->text);
    }
    return out;
}

char *rag_llm_request_body(const rag_prompt_t *p, const char *model, double temperature,
                           long long max_tokens, size_t history_max)
{
    json_t *messages = json_array();
    char *sys = system_message(p);
    json_array_append_new(messages, json_pack("{s:s, s:s}", "role", "system", "content", sys));
    free(sys);
    size_t nh = json_array_size(p->history);
    for (size_t i = nh > history_max ? nh - history_max : 0; i < nh; i++) {
        const json_t *m = json_array_get(p->history, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        const char *text = json_string_value(json_object_get(m, "text"));
        if (role == NULL || text == NULL ||
            (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0))
            continue;
        json_array_append_new(messages, json_pack("{s:s, s:s}", "role", role, "content", text));
    }
    json_array_append_new(messages,
                          json_pack("{s:s, s:s}", "role", "user", "content", p->question));
    json_t *body = json_pack("{s:s, s:o, s:f, s:I}", "model", model, "messages", messages,
                             "temperature", temperature, "max_tokens", (json_int_t)max_tokens);
    char *out = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return out;
}

static bool blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return false;
    return true;
}

char *rag_llm_parse_answer(const char *body, size_t len, long long *prompt_tokens,
                           long long *completion_tokens)
{
    *prompt_tokens = *completion_tokens = -1;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    const json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
    const char *content =
        json_string_value(json_object_get(json_object_get(choice, "message"), "content"));
    char *out = NULL;
    if (content != NULL && !blank(content)) {
        while (*content == ' ' || *content == '\n' || *content == '\r' || *content == '\t')
            content++;
        size_t n = strlen(content);
        while (n > 0 && (content[n - 1] == ' ' || content[n - 1] == '\n' ||
                         content[n - 1] == '\r' || content[n - 1] == '\t'))
            n--;
        out = imp_asprintf("%.*s", (int)n, content);
    }
    const json_t *usage = json_object_get(root, "usage");
    if (json_is_integer(json_object_get(usage, "prompt_tokens")))
        *prompt_tokens = json_integer_value(json_object_get(usage, "prompt_tokens"));
    if (json_is_integer(json_object_get(usage, "completion_tokens")))
        *completion_tokens = json_integer_value(json_object_get(usage, "completion_tokens"));
    json_decref(root);
    return out;
}

void rag_completion_dispose(rag_completion_t *c)
{
    free(c->text);
    *c = (rag_completion_t){0};
}

static imp_error_t *lookup(imp_pg_t *tx, const char *turn_id, rag_completion_t *out)
{
    imp_pg_result_t *res = NULL;
    const char *params[] = {turn_id};
    imp_error_t *err = imp_pg_exec_cached(
        tx,
        "SELECT completion, llm_ms, coalesce(prompt_tokens, -1), coalesce(completion_tokens, -1) "
        "FROM llm_turns WHERE operation_id = $1",
        1, params, &res);
    if (err == NULL && imp_pg_result_rows(res) == 1) {
        out->text = imp_strdup(imp_pg_result_value(res, 0, 0));
        imp_pg_result_get_int64(res, 0, 1, &out->llm_ms);
        imp_pg_result_get_int64(res, 0, 2, &out->prompt_tokens);
        imp_pg_result_get_int64(res, 0, 3, &out->completion_tokens);
        out->cached = true;
    }
    imp_pg_result_free(res);
    return err;
}

#define STORE_SQL                                                                                  \
    "INSERT INTO llm_turns (tenant_id, operation_id, completion, model, prompt_tokens, "           \
    "completion_tokens, llm_ms) VALUES ($1, $2, $3, $4, $5::integer, $6::integer, "                \
    "$7::integer) ON CONFLICT (operation_id) DO NOTHING"

/* Committed on the side connection, so the completion outlives the turn's transaction; also
 * written in the turn's transaction (a no-op when the side commit went through), so a side
 * connection that fails loses nothing that the turn commits. */
static imp_error_t *store(imp_pg_t *tx, imp_pg_t *side, const rag_prompt_t *p,
                          const rag_completion_t *c, long long pt, long long ct)
{
    char spt[24], sct[24], sms[24];
    snprintf(spt, sizeof(spt), "%lld", pt);
    snprintf(sct, sizeof(sct), "%lld", ct);
    snprintf(sms, sizeof(sms), "%lld", c->llm_ms);
    const char *params[] = {
        p->tenant_id,         p->turn_id,           c->text, rag_settings.llm_model,
        pt >= 0 ? spt : NULL, ct >= 0 ? sct : NULL, sms};
    imp_error_t *err = imp_pg_tx_begin(side);
    if (err == NULL)
        err = imp_pg_set_tenant(side, p->tenant_id);
    if (err == NULL)
        err = imp_pg_exec_cached(side, STORE_SQL, 7, params, NULL);
    if (err == NULL)
        err = imp_pg_tx_commit(side);
    if (err != NULL) {
        imp_pg_tx_rollback(side);
        IMP_LOG_WARN("llm_turns side write failed", IMP_LE(err));
        imp_error_free(err);
    }
    return imp_pg_exec_cached(tx, STORE_SQL, 7, params, NULL);
}

static imp_error_t *classify(imp_error_t *http_err, imp_http_response_t *resp)
{
    if (http_err != NULL) {
        imp_err_class_t cls = imp_error_class(http_err);
        imp_error_t *err = imp_error_new(cls, "llm_timeout", "llm request failed: %s",
                                         imp_error_message(http_err));
        imp_error_free(http_err);
        return err;
    }
    imp_error_t *st = imp_http_response_error(resp);
    if (st == NULL)
        return NULL;
    imp_error_t *err = imp_error_new(imp_error_class(st), "llm_status", "llm answered %ld",
                                     imp_http_response_status(resp));
    imp_error_free(st);
    return err;
}

static imp_error_t *call(imp_http_client_t *http, const rag_prompt_t *p, rag_completion_t *out,
                         long long *pt, long long *ct)
{
    char *body =
        rag_llm_request_body(p, rag_settings.llm_model, rag_settings.llm_temperature,
                             rag_settings.llm_max_tokens, (size_t)rag_settings.history_max);
    char *auth = rag_settings.llm_api_key[0]
                     ? imp_asprintf("Authorization: Bearer %s", rag_settings.llm_api_key)
                     : NULL;
    const char *headers[] = {"Content-Type: application/json", auth, NULL};
    imp_http_response_t *resp = NULL;
    long long t0 = mono_ms();
    imp_error_t *err = imp_http_request(
        http,
        &(imp_http_request_t){.method = "POST",
                              .url = rag_settings.llm_url,
                              .headers = headers,
                              .body = body,
                              .body_len = strlen(body),
                              .traceparent = p->traceparent[0] ? p->traceparent : NULL},
        &resp);
    out->llm_ms = mono_ms() - t0;
    err = classify(err, resp);
    if (err == NULL) {
        size_t len = 0;
        const char *answer = imp_http_response_body(resp, &len);
        out->text = rag_llm_parse_answer(answer, len, pt, ct);
        if (out->text == NULL)
            err = imp_error_new(IMP_ERR_RETRIABLE, "llm_garbage",
                                "llm answer has no completion text");
    }
    imp_http_response_free(resp);
    free(auth);
    free(body);
    return err;
}

imp_error_t *rag_llm_answer(imp_pg_t *tx, imp_pg_t *side, imp_http_client_t *http,
                            const rag_prompt_t *p, rag_completion_t *out)
{
    *out = (rag_completion_t){0};
    imp_error_t *err = lookup(tx, p->turn_id, out);
    if (err != NULL || out->cached)
        return err;
    long long pt = -1, ct = -1;
    err = call(http, p, out, &pt, &ct);
    out->prompt_tokens = pt;
    out->completion_tokens = ct;
    if (err == NULL)
        err = store(tx, side, p, out, pt, ct);
    if (err != NULL)
        rag_completion_dispose(out);
    return err;
}
