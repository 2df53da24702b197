/* Embedders: text in, L2-normalised float32 vectors out (docs/knowledge-base.md).
 *
 *   imp_embedder_t *e = NULL;
 *   imp_error_t *err = imp_embed_hash_new(1024, &e);
 *   float *out = imp_malloc(n * imp_embedder_dim(e) * sizeof(float));
 *   err = imp_embedder_embed(e, texts, n, out);   // row i = texts[i]
 *   imp_embedder_free(e);
 *
 * Two implementations:
 *   hash    built in, no model: character n-grams and words feature-hashed into dim
 *           buckets (see imp_embed_hash_new). Deterministic, microseconds per text.
 *   openai  POST {url}/v1/embeddings {"model", "input": [...]} → data[i].embedding
 *   tei     POST {url}/embed {"inputs": [...]} → [[...], ...] (text-embeddings-inference)
 * Every vector an embedder returns has length 1, or is all zeros when the text has nothing
 * to embed (no letters or digits for hash; an all-zero answer from a server).
 *
 * Threads: an embedder is used by one thread at a time (the HTTP one owns a curl handle);
 * the hash embedder keeps no state and may be shared. */
#ifndef IMP_EMBED_H
#define IMP_EMBED_H

#include <stdbool.h>
#include <stddef.h>

#include "imp/config.h"
#include "imp/error.h"

typedef struct imp_embedder imp_embedder_t;

/* The interface. An implementation embeds this struct as its first member and fills it;
 * callers use the functions below. */
struct imp_embedder {
    const char *name;  /* "hash", "openai", "tei" (kb_versions.embedder_name) */
    const char *model; /* "hash-ngram-v1", or the server's model (kb_versions.embedder_model) */
    size_t dim;        /* kb_versions.embedder_dim */
    /* Fill out[i * dim .. (i + 1) * dim) with the vector of texts[i] for i < n. On error the
     * contents of out are unspecified. */
    imp_error_t *(*embed)(imp_embedder_t *self, const char *const *texts, size_t n, float *out);
    void (*destroy)(imp_embedder_t *self);
};

const char *imp_embedder_name(const imp_embedder_t *e);
const char *imp_embedder_model(const imp_embedder_t *e);
size_t imp_embedder_dim(const imp_embedder_t *e);

/* Embed n texts (UTF-8, NUL-terminated; n may be 0) into out (n * dim floats). Errors:
 * poison "embed_input" for a NULL text; others as the implementation says. */
imp_error_t *imp_embedder_embed(imp_embedder_t *e, const char *const *texts, size_t n, float *out);

/* NULL is a no-op. */
void imp_embedder_free(imp_embedder_t *e);

/* ---- hash: the built-in embedder -----------------------------------------------------
 *
 * Per text: lower-case (imp_kb_fold_cp: ASCII, Latin-1, Cyrillic with Kazakh letters, and
 * ё → е); split into words (maximal runs of imp_kb_is_word_cp); features are every word
 * (weight 2) and the character 3-, 4- and 5-grams of "<word>" (the word padded with
 * boundary marks; weight 1 each); each distinct feature counts 1 + ln(occurrences)
 * (sublinear tf) times its weight; a feature's 64-bit FNV-1a hash (finalised by a
 * mixer) picks the bucket (low 32 bits mod dim) and the sign (top bit) — the signed hashing
 * trick, so collisions cancel out on average instead of piling up. The vector is then
 * L2-normalised. Shared n-grams make "стрижка"/"стрижки"/"стрижку" and typos such as
 * "стрижка"/"стришка" close. name "hash", model "hash-ngram-v1". */

/* dim: 16 ... 16384 (1024 is the default of IMP_EMBED_DIM). Error: poison "embed_config". */
imp_error_t *imp_embed_hash_new(size_t dim, imp_embedder_t **out);

/* ---- HTTP embedders ------------------------------------------------------------------ */

typedef enum {
    IMP_EMBED_OPENAI = 0, /* POST {url}/v1/embeddings */
    IMP_EMBED_TEI,        /* POST {url}/embed */
} imp_embed_api_t;

typedef struct {
    imp_embed_api_t api;
    const char *url;         /* base URL, "http://127.0.0.1:8080" (a trailing '/' is fine) */
    const char *model;       /* sent as "model" (openai; required there); recorded as model */
    const char *api_key;     /* Authorization: Bearer … when not NULL or "" (secret) */
    size_t dim;              /* the dimension the server must return (required) */
    size_t batch;            /* texts per request; 0: 32 */
    long timeout_ms;         /* per request; 0: 30000 */
    const char *allow_cidrs; /* SSRF allow-list for local model servers (imp/http.h) */
    int max_attempts;        /* per request, first included; 0: 4 */
    long backoff_ms;         /* first retry delay, doubling; 0: 250 */
    long backoff_max_ms;     /* cap of one delay (also of a Retry-After); 0: 5000 */
} imp_embed_http_options_t;

/* Errors: fatal "embed_config" (missing url or dim, malformed allow-list); *out NULL.
 *
 * embed() sends ceil(n / batch) requests in order. A request is retried, with the delay
 * doubling from backoff_ms (or the server's Retry-After, capped at backoff_max_ms), on a
 * transport failure (not sent, timeout, reset) and on 408, 429 and 5xx, up to max_attempts;
 * then the error is retriable ("embed_unavailable", naming the last failure). Embedding is
 * idempotent, so an ambiguous failure is retried too. Any other status is poison
 * "embed_rejected" whose message carries the server's own message (error.message of an
 * OpenAI-style body, error of a TEI body, else the start of the body). An answer that does
 * not parse, has the wrong number of vectors, a vector of another dimension than dim
 * ("embed_dim") or a non-finite value is poison. Vectors are L2-normalised here, whatever
 * the server did. */
imp_error_t *imp_embed_http_new(const imp_embed_http_options_t *opts, imp_embedder_t **out);

/* ---- configuration (IMP_EMBED_*) ----------------------------------------------------- */

typedef struct {
    char *provider; /* hash | openai | tei */
    char *url;
    char *model;
    long long dim;
    long long batch;
    long long timeout_ms;
    char *api_key;
    char *allow_cidrs;
    long long max_attempts;
} imp_embed_settings_t;

/* Config table entries for imp_embed_settings_t embedded as member `field` of the binary's
 * settings struct `type` (the indexer and the rag worker): put
 * IMP_EMBED_CONFIG(settings_t, embed) in the table, then imp_embedder_from_settings. */
#define IMP_EMBED_CONFIG(type, field)                                                              \
    {"IMP_EMBED_PROVIDER",                                                                         \
     IMP_CFG_STRING,                                                                               \
     "hash",                                                                                       \
     0,                                                                                            \
     0,                                                                                            \
     0,                                                                                            \
     "embedder: hash (built in, no model), openai (/v1/embeddings) or tei "                        \
     "(text-embeddings-inference /embed)",                                                         \
     offsetof(type, field.provider)},                                                              \
        {"IMP_EMBED_URL",                                                                          \
         IMP_CFG_STRING,                                                                           \
         "",                                                                                       \
         0,                                                                                        \
         0,                                                                                        \
         0,                                                                                        \
         "base URL of the embedding server (openai, tei), e.g. http://127.0.0.1:8081",             \
         offsetof(type, field.url)},                                                               \
        {"IMP_EMBED_MODEL",                                                                        \
         IMP_CFG_STRING,                                                                           \
         "",                                                                                       \
         0,                                                                                        \
         0,                                                                                        \
         0,                                                                                        \
         "model name sent to the server and recorded with each KB version (e.g. bge-m3)",          \
         offsetof(type, field.model)},                                                             \
        {"IMP_EMBED_DIM",                                                                          \
         IMP_CFG_INT,                                                                              \
         "1024",                                                                                   \
         16,                                                                                       \
         16384,                                                                                    \
         0,                                                                                        \
         "vector dimension (hash: buckets; openai, tei: what the model returns, checked)",         \
         offsetof(type, field.dim)},                                                               \
        {"IMP_EMBED_BATCH",          IMP_CFG_INT, "32", 1, 2048, 0, "texts per embedding request", \
         offsetof(type, field.batch)},                                                             \
        {"IMP_EMBED_TIMEOUT",                                                                      \
         IMP_CFG_DURATION,                                                                         \
         "30s",                                                                                    \
         100,                                                                                      \
         600000,                                                                                   \
         0,                                                                                        \
         "timeout of one embedding request",                                                       \
         offsetof(type, field.timeout_ms)},                                                        \
        {"IMP_EMBED_API_KEY",                                                                      \
         IMP_CFG_STRING,                                                                           \
         "",                                                                                       \
         0,                                                                                        \
         0,                                                                                        \
         IMP_CFG_SECRET,                                                                           \
         "bearer token for the embedding server (empty: none)",                                    \
         offsetof(type, field.api_key)},                                                           \
        {"IMP_EMBED_ALLOW_CIDRS",                                                                  \
         IMP_CFG_STRING,                                                                           \
         "",                                                                                       \
         0,                                                                                        \
         0,                                                                                        \
         0,                                                                                        \
         "private or loopback networks the embedding server may be in, e.g. 127.0.0.0/8 "          \
         "(the SSRF guard blocks them otherwise)",                                                 \
         offsetof(type, field.allow_cidrs)},                                                       \
    {                                                                                              \
        "IMP_EMBED_MAX_ATTEMPTS", IMP_CFG_INT, "4", 1, 10, 0,                                      \
            "attempts per embedding request on timeouts, 429 and 5xx",                             \
            offsetof(type, field.max_attempts)                                                     \
    }

/* The embedder the settings describe. Errors: fatal "embed_config" naming the variable
 * (unknown provider, missing IMP_EMBED_URL or IMP_EMBED_MODEL for openai). */
imp_error_t *imp_embedder_from_settings(const imp_embed_settings_t *s, imp_embedder_t **out);

/* L2-normalise v[0..dim) in place; an all-zero vector stays zero. Returns the old norm. */
double imp_embed_normalize(float *v, size_t dim);

#endif
