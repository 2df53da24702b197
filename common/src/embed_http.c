/* Embedders over HTTP (OpenAI-compatible /v1/embeddings, text-embeddings-inference /embed)
 * with batching, bounded retries and answer checks; and the IMP_EMBED_* factory. */
#include "imp/embed.h"

#include "imp/http.h"
#include "imp/log.h"
#include "imp/mem.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_BATCH 32
#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_ATTEMPTS 4
#define DEFAULT_BACKOFF_MS 250
#define DEFAULT_BACKOFF_MAX_MS 5000
#define MAX_ANSWER (64 * 1024 * 1024)
#define SERVER_MESSAGE_MAX 300

typedef struct {
    imp_embedder_t base;
    imp_embed_api_t api;
    char *endpoint;
    char *model;
    char *auth_header; /* "Authorization: Bearer …" or NULL */
    size_t batch;
    long timeout_ms;
    int max_attempts;
    long backoff_ms, backoff_max_ms;
    imp_http_client_t *client;
} http_embedder_t;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- requests ------------------------------------------------------------------------- */

/* The request's JSON, or NULL when a text is not valid UTF-8 (jansson refuses it). */
static char *request_body(const http_embedder_t *h, const char *const *texts, size_t n)
{
    json_t *input = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_string(texts[i]);
        if (t == NULL) {
            json_decref(input);
            return NULL;
        }
        json_array_append_new(input, t);
    }
    json_t *body = json_object();
    if (h->api == IMP_EMBED_OPENAI) {
        json_object_set_new(body, "model", json_string(h->model));
        json_object_set_new(body, "input", input);
    } else {
        json_object_set_new(body, "inputs", input);
        json_object_set_new(body, "truncate", json_true());
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return text;
}

/* At most max bytes of s[0..len), not cutting a UTF-8 sequence, as a new heap string with
 * control characters replaced by spaces (it goes into one-line messages). */
static char *clip(const char *s, size_t len, size_t max)
{
    if (len > max) {
        len = max;
        while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
            len--;
    }
    char *out = imp_strndup(s, len);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    return out;
}

/* The server's own words: error.message (OpenAI), error (TEI), message, else the start of
 * the body. A new heap string. */
static char *server_message(const char *body, size_t len)
{
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, 0, &jerr);
    json_t *msg = NULL;
    if (json_is_object(doc)) {
        msg = json_object_get(doc, "error");
        if (json_is_object(msg))
            msg = json_object_get(msg, "message");
        if (!json_is_string(msg))
            msg = json_object_get(doc, "message");
    }
    char *out = json_is_string(msg)
                    ? clip(json_string_value(msg), json_string_length(msg), SERVER_MESSAGE_MAX)
                    : clip(body, len, SERVER_MESSAGE_MAX);
    json_decref(doc);
    return out;
}

static bool retriable_status(long status)
{
    return status == 408 || status == 425 || status == 429 || status >= 500;
}

/* One request with bounded retries. On success *resp is the 2xx answer. */
static imp_error_t *post_with_retries(http_embedder_t *h, const char *body, size_t ntexts,
                                      imp_http_response_t **resp)
{
    const char *headers[] = {"Content-Type: application/json", h->auth_header, NULL};
    char *last = NULL;
    imp_error_t *err = NULL;
    *resp = NULL;
    for (int attempt = 1; attempt <= h->max_attempts; attempt++) {
        imp_http_response_t *r = NULL;
        long delay = h->backoff_ms << (attempt - 1 < 16 ? attempt - 1 : 16);
        err = imp_http_request(h->client,
                               &(imp_http_request_t){.method = "POST",
                                                     .url = h->endpoint,
                                                     .headers = headers,
                                                     .body = body,
                                                     .body_len = strlen(body),
                                                     .timeout_ms = h->timeout_ms},
                               &r);
        if (err != NULL) {
            if (imp_error_class(err) == IMP_ERR_POISON) /* SSRF guard, malformed URL */
                goto out;
            free(last);
            last = imp_strdup(imp_error_message(err));
            imp_error_free(err);
            err = NULL;
        } else {
            long status = imp_http_response_status(r);
            size_t len = 0;
            const char *text = imp_http_response_body(r, &len);
            if (status >= 200 && status < 300) {
                *resp = r;
                goto out;
            }
            char *msg = server_message(text, len);
            if (!retriable_status(status)) {
                err = imp_error_new(IMP_ERR_POISON, "embed_rejected",
                                    "embedding server rejected %zu texts with status %ld: %s",
                                    ntexts, status, msg);
                imp_error_set_detail(err, msg);
                free(msg);
                imp_http_response_free(r);
                goto out;
            }
            free(last);
            last = imp_asprintf("status %ld: %s", status, msg);
            free(msg);
            long long after = imp_http_response_retry_after_s(r);
            if (after >= 0)
                delay = after * 1000 > h->backoff_max_ms ? h->backoff_max_ms : (long)after * 1000;
            imp_http_response_free(r);
        }
        if (attempt < h->max_attempts) {
            if (delay > h->backoff_max_ms)
                delay = h->backoff_max_ms;
            IMP_LOG_WARN("embedding request failed, retrying", IMP_LS("error", last),
                         IMP_LI("attempt", attempt), IMP_LI("delay_ms", delay));
            sleep_ms(delay);
        }
    }
    err = imp_error_new(IMP_ERR_RETRIABLE, "embed_unavailable",
                        "embedding server unavailable after %d attempts: %s", h->max_attempts,
                        last ? last : "no answer");
out:
    free(last);
    return err;
}

/* ---- answers -------------------------------------------------------------------------- */

static imp_error_t *read_vector(const http_embedder_t *h, json_t *arr, size_t i, float *out)
{
    if (!json_is_array(arr))
        return imp_error_new(IMP_ERR_POISON, "embed_answer",
                             "embedding answer: vector %zu is not an array", i);
    size_t dim = json_array_size(arr);
    if (dim != h->base.dim)
        return imp_error_new(IMP_ERR_POISON, "embed_dim",
                             "embedding dimension %zu, expected %zu (IMP_EMBED_DIM)", dim,
                             h->base.dim);
    for (size_t k = 0; k < dim; k++) {
        json_t *v = json_array_get(arr, k);
        double d = json_is_number(v) ? json_number_value(v) : NAN;
        if (!isfinite(d))
            return imp_error_new(IMP_ERR_POISON, "embed_answer",
                                 "embedding answer: value %zu of vector %zu is not a finite "
                                 "number",
                                 k, i);
        out[k] = (float)d;
    }
    imp_embed_normalize(out, dim);
    return NULL;
}

/* data[i].embedding, placed by data[i].index when present. */
static imp_error_t *parse_openai(const http_embedder_t *h, json_t *doc, size_t n, float *out)
{
    json_t *data = json_is_object(doc) ? json_object_get(doc, "data") : NULL;
    if (!json_is_array(data) || json_array_size(data) != n)
        return imp_error_new(IMP_ERR_POISON, "embed_answer",
                             "embedding answer: expected \"data\" with %zu items, got %zu", n,
                             json_is_array(data) ? json_array_size(data) : 0);
    bool *seen = imp_calloc(n, sizeof(*seen));
    imp_error_t *err = NULL;
    for (size_t i = 0; i < n && err == NULL; i++) {
        json_t *item = json_array_get(data, i);
        json_t *index = json_object_get(item, "index");
        size_t at = i;
        if (index != NULL) {
            if (!json_is_integer(index) || json_integer_value(index) < 0 ||
                (size_t)json_integer_value(index) >= n || seen[json_integer_value(index)]) {
                err = imp_error_new(IMP_ERR_POISON, "embed_answer",
                                    "embedding answer: item %zu has a bad index", i);
                break;
            }
            at = (size_t)json_integer_value(index);
        }
        seen[at] = true;
        err = read_vector(h, json_object_get(item, "embedding"), i, out + at * h->base.dim);
    }
    free(seen);
    return err;
}

static imp_error_t *parse_tei(const http_embedder_t *h, json_t *doc, size_t n, float *out)
{
    if (!json_is_array(doc) || json_array_size(doc) != n)
        return imp_error_new(IMP_ERR_POISON, "embed_answer",
                             "embedding answer: expected an array of %zu vectors, got %zu", n,
                             json_is_array(doc) ? json_array_size(doc) : 0);
    for (size_t i = 0; i < n; i++) {
        imp_error_t *err = read_vector(h, json_array_get(doc, i), i, out + i * h->base.dim);
        if (err != NULL)
            return err;
    }
    return NULL;
}

static imp_error_t *parse_answer(const http_embedder_t *h, const imp_http_response_t *r, size_t n,
                                 float *out)
{
    size_t len = 0;
    const char *body = imp_http_response_body(r, &len);
    if (imp_http_response_truncated(r))
        return imp_error_new(IMP_ERR_POISON, "embed_answer",
                             "embedding answer longer than %d bytes", MAX_ANSWER);
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, 0, &jerr);
    if (doc == NULL)
        return imp_error_new(IMP_ERR_POISON, "embed_answer", "embedding answer is not JSON: %s",
                             jerr.text);
    imp_error_t *err =
        h->api == IMP_EMBED_OPENAI ? parse_openai(h, doc, n, out) : parse_tei(h, doc, n, out);
    json_decref(doc);
    return err;
}

/* ---- the embedder --------------------------------------------------------------------- */

static imp_error_t *http_embed(imp_embedder_t *self, const char *const *texts, size_t n, float *out)
{
    http_embedder_t *h = (http_embedder_t *)self;
    for (size_t start = 0; start < n; start += h->batch) {
        size_t m = n - start < h->batch ? n - start : h->batch;
        char *body = request_body(h, texts + start, m);
        if (body == NULL)
            return imp_error_new(IMP_ERR_POISON, "embed_input",
                                 "texts %zu..%zu are not valid UTF-8", start, start + m - 1);
        imp_http_response_t *resp = NULL;
        imp_error_t *err = post_with_retries(h, body, m, &resp);
        free(body);
        if (err == NULL)
            err = parse_answer(h, resp, m, out + start * self->dim);
        imp_http_response_free(resp);
        if (err != NULL)
            return imp_error_prefix(err, "texts %zu..%zu", start, start + m - 1);
    }
    return NULL;
}

static void http_destroy(imp_embedder_t *self)
{
    http_embedder_t *h = (http_embedder_t *)self;
    imp_http_client_free(h->client);
    free(h->endpoint);
    free(h->model);
    free(h->auth_header);
    free(h);
}

imp_error_t *imp_embed_http_new(const imp_embed_http_options_t *o, imp_embedder_t **out)
{
    *out = NULL;
    if (o->url == NULL || o->url[0] == '\0')
        return imp_error_new(IMP_ERR_FATAL, "embed_config", "embedding server URL is not set");
    if (o->dim == 0 || o->dim > 16384)
        return imp_error_new(IMP_ERR_FATAL, "embed_config",
                             "embedding dimension must be between 1 and 16384, not %zu", o->dim);
    if (o->api == IMP_EMBED_OPENAI && (o->model == NULL || o->model[0] == '\0'))
        return imp_error_new(IMP_ERR_FATAL, "embed_config",
                             "an OpenAI-compatible embedder needs a model name");
    http_embedder_t *h = imp_calloc(1, sizeof(*h));
    h->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    imp_error_t *err = imp_http_client_new(
        &(imp_http_options_t){.timeout_ms = h->timeout_ms,
                              .connect_timeout_ms = h->timeout_ms < 5000 ? h->timeout_ms : 5000,
                              .max_body = MAX_ANSWER,
                              .allow_cidrs = o->allow_cidrs},
        &h->client);
    if (err != NULL) {
        free(h);
        return imp_error_prefix(err, "IMP_EMBED_ALLOW_CIDRS");
    }
    size_t ulen = strlen(o->url);
    while (ulen > 0 && o->url[ulen - 1] == '/')
        ulen--;
    h->api = o->api;
    h->endpoint = imp_asprintf("%.*s%s", (int)ulen, o->url,
                               o->api == IMP_EMBED_OPENAI ? "/v1/embeddings" : "/embed");
    h->model = imp_strdup(o->model != NULL ? o->model : "");
    if (o->api_key != NULL && o->api_key[0] != '\0')
        h->auth_header = imp_asprintf("Authorization: Bearer %s", o->api_key);
    h->batch = o->batch > 0 ? o->batch : DEFAULT_BATCH;
    h->max_attempts = o->max_attempts > 0 ? o->max_attempts : DEFAULT_ATTEMPTS;
    h->backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : DEFAULT_BACKOFF_MS;
    h->backoff_max_ms = o->backoff_max_ms > 0 ? o->backoff_max_ms : DEFAULT_BACKOFF_MAX_MS;
    h->base.name = o->api == IMP_EMBED_OPENAI ? "openai" : "tei";
    h->base.model = h->model;
    h->base.dim = o->dim;
    h->base.embed = http_embed;
    h->base.destroy = http_destroy;
    *out = &h->base;
    return NULL;
}

imp_error_t *imp_embedder_from_settings(const imp_embed_settings_t *s, imp_embedder_t **out)
{
    *out = NULL;
    const char *p = s->provider != NULL ? s->provider : "hash";
    if (strcmp(p, "hash") == 0) {
        imp_error_t *err = imp_embed_hash_new((size_t)s->dim, out);
        if (err != NULL)
            return imp_error_prefix(err, "IMP_EMBED_DIM");
        return NULL;
    }
    imp_embed_api_t api;
    if (strcmp(p, "openai") == 0)
        api = IMP_EMBED_OPENAI;
    else if (strcmp(p, "tei") == 0)
        api = IMP_EMBED_TEI;
    else
        return imp_error_new(IMP_ERR_FATAL, "embed_config",
                             "IMP_EMBED_PROVIDER must be hash, openai or tei, not \"%s\"", p);
    if (s->url == NULL || s->url[0] == '\0')
        return imp_error_new(IMP_ERR_FATAL, "embed_config",
                             "IMP_EMBED_URL is required when IMP_EMBED_PROVIDER is %s", p);
    if (api == IMP_EMBED_OPENAI && (s->model == NULL || s->model[0] == '\0'))
        return imp_error_new(IMP_ERR_FATAL, "embed_config",
                             "IMP_EMBED_MODEL is required when IMP_EMBED_PROVIDER is openai");
    return imp_embed_http_new(&(imp_embed_http_options_t){.api = api,
                                                          .url = s->url,
                                                          .model = s->model,
                                                          .api_key = s->api_key,
                                                          .dim = (size_t)s->dim,
                                                          .batch = (size_t)s->batch,
                                                          .timeout_ms = (long)s->timeout_ms,
                                                          .allow_cidrs = s->allow_cidrs,
                                                          .max_attempts = (int)s->max_attempts},
                              out);
}
