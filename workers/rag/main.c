/* imperium-rag: turns in, draft answers from the tenant's knowledge base out. */
#include "rag.h"

#include "imp/mem.h"
#include "imp/worker.h"

#include <stddef.h>

rag_settings_t rag_settings;

static const imp_config_entry_t config_table[] = {
    IMP_WORKER_CONFIG(rag_settings_t, rt),
    IMP_EMBED_CONFIG(rag_settings_t, embed),
    {"IMP_LLM_URL", IMP_CFG_STRING, "", 0, 0, 0,
     "OpenAI-compatible chat-completions URL (…/v1/chat/completions); empty: extractive answers",
     offsetof(rag_settings_t, llm_url)},
    {"IMP_LLM_MODEL", IMP_CFG_STRING, "gpt-4o-mini", 0, 0, 0, "model sent to the LLM",
     offsetof(rag_settings_t, llm_model)},
    {"IMP_LLM_API_KEY", IMP_CFG_STRING, "", 0, 0, IMP_CFG_SECRET,
     "bearer token for the LLM (empty: none)", offsetof(rag_settings_t, llm_api_key)},
    {"IMP_LLM_TIMEOUT", IMP_CFG_DURATION, "20s", 100, 600000, 0,
     "timeout of one chat-completions request", offsetof(rag_settings_t, llm_timeout_ms)},
    {"IMP_LLM_ALLOW_CIDRS", IMP_CFG_STRING, "", 0, 0, 0,
     "private or loopback networks the LLM may be in, e.g. 127.0.0.0/8 (SSRF guard)",
     offsetof(rag_settings_t, llm_allow_cidrs)},
    {"IMP_LLM_MAX_TOKENS", IMP_CFG_INT, "512", 16, 32768, 0, "max_tokens of a completion",
     offsetof(rag_settings_t, llm_max_tokens)},
    {"IMP_LLM_TEMPERATURE", IMP_CFG_DOUBLE, "0.2", 0, 2, 0, "temperature of a completion",
     offsetof(rag_settings_t, llm_temperature)},
    {"IMP_RAG_TOP_K", IMP_CFG_INT, "8", 1, 50, 0, "chunks retrieved (and logged) per turn",
     offsetof(rag_settings_t, top_k)},
    {"IMP_RAG_CONTEXT_CHUNKS", IMP_CFG_INT, "4", 1, 50, 0,
     "best chunks given to the LLM as context (and cited)",
     offsetof(rag_settings_t, context_chunks)},
    {"IMP_RAG_EXTRACTIVE_MAX", IMP_CFG_INT, "600", 50, 4000, 0,
     "characters of an extractive answer (cut at a sentence end)",
     offsetof(rag_settings_t, extractive_max)},
    {"IMP_RAG_HISTORY", IMP_CFG_INT, "10", 0, 50, 0,
     "earlier messages of the conversation given to the LLM",
     offsetof(rag_settings_t, history_max)},
    {"IMP_RAG_CACHE_SIZE", IMP_CFG_SIZE, "512MiB", 0, 0, 0,
     "memory for cached KB indexes (least recently used dropped first)",
     offsetof(rag_settings_t, cache_bytes)},
};

int main(int argc, char **argv)
{
    static const char *const topics[] = {"imp.turn.v1"};
    imp_worker_def_t def = {
        .name = "rag",
        .topics = topics,
        .ntopics = 1,
        .handler = rag_handle,
    };
    return imp_worker_main(argc, argv, "imperium-rag",
                           "Answers turns from the tenant's knowledge base: hybrid retrieval, then "
                           "an LLM or the best chunk.",
                           config_table, IMP_ARRAY_LEN(config_table), &rag_settings,
                           offsetof(rag_settings_t, rt), &def);
}
