/* imperium-rag: a turn in, a draft answer out (docs/answers.md).
 *
 * turn.c is the handler (turn → bot version and KB version → retrieval → answer → draft),
 * answer_llm.c the OpenAI-compatible chat completion with its per-turn store,
 * answer_extractive.c the answer cut from the best chunk. */
#ifndef RAG_H
#define RAG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "imp/embed.h"
#include "imp/error.h"
#include "imp/http.h"
#include "imp/retrieval.h"
#include "imp/worker.h"

/* The bot whose versions answer a tenant's turns (bots.name; one per tenant for now). */
#define RAG_BOT_NAME "default"

typedef struct {
    imp_worker_settings_t rt;
    imp_embed_settings_t embed;
    char *llm_url;
    char *llm_model;
    char *llm_api_key;
    long long llm_timeout_ms;
    char *llm_allow_cidrs;
    long long llm_max_tokens;
    double llm_temperature;
    long long top_k;
    long long context_chunks;
    long long extractive_max;
    long long history_max;
    long long cache_bytes;
} rag_settings_t;

extern rag_settings_t rag_settings;

/* A turn's question with what the LLM prompt needs (borrowed). */
typedef struct {
    const char *turn_id;
    const char *tenant_id;
    const char *question;
    const json_t *history;   /* [{"role", "text"}], oldest first; may be NULL */
    const char *instruction; /* the bot version's (or, without one, tenants.settings
                                bot_instruction), or NULL for the default */
    const imp_retrieval_result_t *hits;
    size_t nctx;             /* chunks given as context (the first nctx hits) */
    const char *traceparent; /* may be "" */
} rag_prompt_t;

typedef struct {
    char *text;                  /* the completion, trimmed, never empty (heap) */
    long long llm_ms;            /* time of the call that produced it */
    bool cached;                 /* found in llm_turns: no call made */
    long long prompt_tokens;     /* as the LLM reported them; -1 when it did not say */
    long long completion_tokens; /* idem */
} rag_completion_t;

/* The default system instruction when the bot version (or tenant) has none. */
extern const char RAG_DEFAULT_INSTRUCTION[];

/* The request body (a new heap string) for the prompt. */
char *rag_llm_request_body(const rag_prompt_t *p, const char *model, double temperature,
                           long long max_tokens, size_t history_max);

/* The completion from a chat-completions answer body; NULL when it is garbage or empty.
 * *prompt_tokens and *completion_tokens are -1 when the answer does not say. */
char *rag_llm_parse_answer(const char *body, size_t len, long long *prompt_tokens,
                           long long *completion_tokens);

/* The completion of the turn: from llm_turns when a previous attempt stored it, else from
 * the LLM (stored at once on the side connection, so no retry calls the LLM again). An LLM
 * failure is an error with code "llm_timeout", "llm_status" or "llm_garbage" (no text):
 * retriable, except a 4xx other than 408/425/429 and the SSRF guard's refusal (poison). */
imp_error_t *rag_llm_answer(imp_pg_t *tx, imp_pg_t *side, imp_http_client_t *http,
                            const rag_prompt_t *p, rag_completion_t *out);
void rag_completion_dispose(rag_completion_t *c);

/* The text of a chunk cut for a customer: whole when it has at most max code points, else up
 * to the last sentence end within max (". ", "! ", "? ", "…", a line break), else to the last
 * space with "…". Trimmed. A new heap string. */
char *rag_extractive_answer(const char *text, size_t max);

/* The handler (turn.c). */
imp_error_t *rag_handle(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, void *user);

#endif
