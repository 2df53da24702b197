/* Embedders: the built-in hash embedder (determinism, normalisation, case folding, similar
 * texts closer than unrelated ones, a frozen reference value) and the HTTP embedders against
 * a scripted local server (batching, retries on timeouts / 5xx / 429, 4xx as poison with the
 * server's message, answer checks, the SSRF guard, configuration). */
#include "imp/embed.h"

#include "imp/mem.h"

#include "fake_http.c"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DIM 1024
#define REFERENCE_NONZERO 19 /* "Стрижка 5000" in 64 dimensions */
#define REFERENCE_CHECKSUM 41.633318

static float *embed_one(imp_embedder_t *e, const char *text)
{
    float *v = imp_malloc(imp_embedder_dim(e) * sizeof(float));
    imp_error_t *err = imp_embedder_embed(e, &text, 1, v);
    ck_assert_msg(err == NULL, "embed: %s", err ? imp_error_message(err) : "");
    return v;
}

static double dotp(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

static double cos_texts(imp_embedder_t *e, const char *a, const char *b)
{
    float *x = embed_one(e, a), *y = embed_one(e, b);
    double c = dotp(x, y, imp_embedder_dim(e));
    free(x);
    free(y);
    return c;
}

static imp_embedder_t *hash_embedder(size_t dim)
{
    imp_embedder_t *e = NULL;
    ck_assert_ptr_null(imp_embed_hash_new(dim, &e));
    return e;
}

/* ---- hash --------------------------------------------------------------------------------- */

START_TEST(hash_identity)
{
    imp_embedder_t *e = hash_embedder(DIM);
    ck_assert_str_eq(imp_embedder_name(e), "hash");
    ck_assert_str_eq(imp_embedder_model(e), "hash-ngram-v1");
    ck_assert_uint_eq(imp_embedder_dim(e), DIM);
    imp_embedder_free(e);
    imp_embedder_free(NULL);
    imp_error_t *err = imp_embed_hash_new(8, &e);
    ck_assert_str_eq(imp_error_code(err), "embed_config");
    ck_assert_ptr_null(e);
    imp_error_free(err);
}
END_TEST

START_TEST(hash_deterministic)
{
    imp_embedder_t *a = hash_embedder(DIM), *b = hash_embedder(DIM);
    const char *texts[] = {"Сколько стоит стрижка?", "Opening hours: 9 am – 9 pm",
                           "Жұмыс уақытыңыз қандай?"};
    float *x = imp_malloc(3 * DIM * sizeof(float)), *y = imp_malloc(3 * DIM * sizeof(float));
    ck_assert_ptr_null(imp_embedder_embed(a, texts, 3, x));
    ck_assert_ptr_null(imp_embedder_embed(b, texts, 3, y));
    ck_assert(memcmp(x, y, 3 * DIM * sizeof(float)) == 0);
    /* One text at a time gives the same rows as a batch. */
    for (size_t i = 0; i < 3; i++) {
        float *one = embed_one(a, texts[i]);
        ck_assert(memcmp(one, x + i * DIM, DIM * sizeof(float)) == 0);
        free(one);
    }
    free(x);
    free(y);
    imp_embedder_free(a);
    imp_embedder_free(b);
}
END_TEST

START_TEST(hash_normalised)
{
    imp_embedder_t *e = hash_embedder(DIM);
    const char *texts[] = {"a", "стрижка", "Women's haircut: short hair 8,000 ₸, long 12,000 ₸",
                           "ааааааааааааааааааааааааааааааааааааааа"};
    for (size_t i = 0; i < IMP_ARRAY_LEN(texts); i++) {
        float *v = embed_one(e, texts[i]);
        ck_assert_double_eq_tol(dotp(v, v, DIM), 1.0, 1e-5);
        free(v);
    }
    /* Nothing to embed: all zeros. */
    const char *empty[] = {"", " ?! — ₸ 🙂 "};
    for (size_t i = 0; i < 2; i++) {
        float *v = embed_one(e, empty[i]);
        ck_assert_double_eq(dotp(v, v, DIM), 0.0);
        free(v);
    }
    imp_embedder_free(e);
}
END_TEST

START_TEST(hash_case_folding)
{
    imp_embedder_t *e = hash_embedder(DIM);
    const char *pairs[][2] = {
        {"СТРИЖКА Ёлка", "стрижка елка"},
        {"Hello WORLD", "hello world"},
        {"ҚАЗАҚ ӘЖЕ ІНІ", "қазақ әже іні"},
        {"Ёжик в тумане", "ежик в тумане"},
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(pairs); i++) {
        float *x = embed_one(e, pairs[i][0]), *y = embed_one(e, pairs[i][1]);
        ck_assert_msg(memcmp(x, y, DIM * sizeof(float)) == 0, "%s != %s", pairs[i][0], pairs[i][1]);
        free(x);
        free(y);
    }
    imp_embedder_free(e);
}
END_TEST

/* Paraphrases, inflections and typos are closer than unrelated texts. */
START_TEST(hash_similarity)
{
    imp_embedder_t *e = hash_embedder(DIM);
    const char *cases[][3] = {
        /* query, related, unrelated */
        {"скока стоит стрижка", "Женская стрижка: короткие волосы — 8 000 ₸",
         "Бесплатная парковка во дворе"},
        {"стришка", "стрижка", "маникюр"},
        {"what time do u open", "Opening hours: we open at 9 am", "Free parking in the courtyard"},
        {"can i cancel tomorrow", "Cancellations and rescheduling: cancel for free up to 24 hours",
         "Gel polish manicure 7,000"},
        {"где вы находитесь", "Салон находится по адресу: проспект Абая, 52",
         "Маникюр с покрытием гель-лаком"},
        {"окрашивание волос", "Окрашивание в один тон, мелирование", "Массаж спины"},
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++) {
        double rel = cos_texts(e, cases[i][0], cases[i][1]);
        double unrel = cos_texts(e, cases[i][0], cases[i][2]);
        ck_assert_msg(rel > unrel + 0.05, "\"%s\": related %.3f, unrelated %.3f", cases[i][0], rel,
                      unrel);
    }
    /* Identical texts: 1; function words alone weigh little. */
    ck_assert_double_eq_tol(cos_texts(e, "стрижка", "стрижка"), 1.0, 1e-5);
    ck_assert_double_lt(cos_texts(e, "what do you have", "what do you sell"),
                        cos_texts(e, "haircut price", "haircut prices"));
    imp_embedder_free(e);
}
END_TEST

/* The vectors of hash-ngram-v1 are part of every stored KB version: they must never change.
 * If this fails, the hashing changed: give it a new model name so old versions are not
 * compared with new queries. */
START_TEST(hash_reference_values)
{
    imp_embedder_t *e = hash_embedder(64);
    float *v = embed_one(e, "Стрижка 5000");
    double checksum = 0;
    int nonzero = 0;
    for (int i = 0; i < 64; i++) {
        checksum += (i + 1) * (double)v[i];
        nonzero += v[i] != 0;
    }
    ck_assert_int_eq(nonzero, REFERENCE_NONZERO);
    ck_assert_double_eq_tol(checksum, REFERENCE_CHECKSUM, 1e-4);
    free(v);
    imp_embedder_free(e);
}
END_TEST

START_TEST(embed_null_text)
{
    imp_embedder_t *e = hash_embedder(DIM);
    const char *texts[] = {"ok", NULL};
    float *out = imp_malloc(2 * DIM * sizeof(float));
    imp_error_t *err = imp_embedder_embed(e, texts, 2, out);
    ck_assert_str_eq(imp_error_code(err), "embed_input");
    imp_error_free(err);
    ck_assert_ptr_null(imp_embedder_embed(e, texts, 0, out));
    free(out);
    imp_embedder_free(e);
}
END_TEST

/* ---- HTTP --------------------------------------------------------------------------------- */

/* The scripted server: answers every request with one vector per input text "t<N>":
 * (N + 1, 1, 0, ...) of answer_dim values, in reverse order with explicit indexes for the
 * OpenAI API (so placement by index is tested), count_delta vectors more or fewer. */
typedef struct {
    pthread_mutex_t mu;
    size_t answer_dim;
    int count_delta;
    char *bodies[64];
    size_t nbodies;
} server_t;

static fake_http_t *fake;
static server_t server;

static json_t *vector_json(size_t dim, long n)
{
    json_t *v = json_array();
    for (size_t k = 0; k < dim; k++)
        json_array_append_new(v, json_real(k == 0 ? (double)(n + 1) : k == 1 ? 1.0 : 0.0));
    return v;
}

static void on_embed_request(const fake_http_request_t *req, fake_http_reply_t *reply, void *ctx)
{
    server_t *s = ctx;
    json_t *body = json_loads(req->body, 0, NULL);
    bool openai = strcmp(req->path, "/v1/embeddings") == 0;
    json_t *inputs = json_object_get(body, openai ? "input" : "inputs");
    size_t n = json_array_size(inputs);
    size_t m = (size_t)((long)n + s->count_delta);
    json_t *out = json_array();
    for (size_t i = 0; i < m; i++) {
        size_t at = openai ? m - 1 - i : i;
        const char *t = json_string_value(json_array_get(inputs, at < n ? at : 0));
        json_t *vec = vector_json(s->answer_dim, t ? strtol(t + 1, NULL, 10) : 0);
        if (openai)
            json_array_append_new(out, json_pack("{s:s, s:i, s:o}", "object", "embedding", "index",
                                                 (int)at, "embedding", vec));
        else
            json_array_append_new(out, vec);
    }
    if (openai)
        out = json_pack("{s:s, s:o, s:s}", "object", "list", "data", out, "model", "m1");
    char *text = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    json_decref(body);
    pthread_mutex_lock(&s->mu);
    ck_assert_uint_lt(s->nbodies, IMP_ARRAY_LEN(s->bodies));
    s->bodies[s->nbodies++] = text;
    pthread_mutex_unlock(&s->mu);
    reply->status = 200;
    reply->headers = "Content-Type: application/json\r\n";
    reply->body = text;
}

static void http_setup(void)
{
    memset(&server, 0, sizeof(server));
    pthread_mutex_init(&server.mu, NULL);
    server.answer_dim = 4;
    fake = fake_http_start();
    fake_http_set_handler(fake, on_embed_request, &server);
}

static void http_teardown(void)
{
    fake_http_stop(fake);
    for (size_t i = 0; i < server.nbodies; i++)
        free(server.bodies[i]);
    pthread_mutex_destroy(&server.mu);
}

static imp_embedder_t *http_embedder(imp_embed_api_t api, size_t batch, long timeout_ms,
                                     int attempts)
{
    char *url = fake_http_url(fake, "/");
    imp_embedder_t *e = NULL;
    imp_error_t *err = imp_embed_http_new(&(imp_embed_http_options_t){.api = api,
                                                                      .url = url,
                                                                      .model = "m1",
                                                                      .api_key = "sk-test",
                                                                      .dim = 4,
                                                                      .batch = batch,
                                                                      .timeout_ms = timeout_ms,
                                                                      .allow_cidrs = "127.0.0.0/8",
                                                                      .max_attempts = attempts,
                                                                      .backoff_ms = 10,
                                                                      .backoff_max_ms = 50},
                                          &e);
    free(url);
    ck_assert_msg(err == NULL, "%s", err ? imp_error_message(err) : "");
    return e;
}

static const char *ten_texts[] = {"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9"};

/* Row i of out is (i + 1, 1, 0, 0) normalised. */
static void check_rows(const float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const float *v = out + i * 4;
        ck_assert_double_eq_tol(dotp(v, v, 4), 1.0, 1e-5);
        ck_assert_double_eq_tol(v[0] / v[1], (double)(i + 1), 1e-4);
        ck_assert_double_eq(v[2], 0.0);
    }
}

/* The request's input texts, joined by commas. */
static char *request_inputs(size_t i, const char *key)
{
    const fake_http_request_t *r = fake_http_request(fake, i);
    json_t *body = json_loads(r->body, 0, NULL);
    json_t *inputs = json_object_get(body, key);
    char buf[256] = "";
    for (size_t k = 0; k < json_array_size(inputs); k++)
        snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s", k ? "," : "",
                 json_string_value(json_array_get(inputs, k)));
    json_decref(body);
    return imp_strdup(buf);
}

START_TEST(openai_batching)
{
    imp_embedder_t *e = http_embedder(IMP_EMBED_OPENAI, 4, 5000, 3);
    ck_assert_str_eq(imp_embedder_name(e), "openai");
    ck_assert_str_eq(imp_embedder_model(e), "m1");
    float out[10 * 4];
    ck_assert_ptr_null(imp_embedder_embed(e, ten_texts, 10, out));
    ck_assert_uint_eq(fake_http_count(fake), 3);
    const char *expect[] = {"t0,t1,t2,t3", "t4,t5,t6,t7", "t8,t9"};
    for (size_t i = 0; i < 3; i++) {
        const fake_http_request_t *r = fake_http_request(fake, i);
        ck_assert_str_eq(r->method, "POST");
        ck_assert_str_eq(r->path, "/v1/embeddings");
        ck_assert_str_eq(fake_http_header(r, "authorization"), "Bearer sk-test");
        ck_assert_str_eq(fake_http_header(r, "content-type"), "application/json");
        char *inputs = request_inputs(i, "input");
        ck_assert_str_eq(inputs, expect[i]);
        free(inputs);
        json_t *body = json_loads(r->body, 0, NULL);
        ck_assert_str_eq(json_string_value(json_object_get(body, "model")), "m1");
        json_decref(body);
    }
    check_rows(out, 10); /* placed by "index", though the server answered in reverse */
    imp_embedder_free(e);
}
END_TEST

START_TEST(tei_batching)
{
    imp_embedder_t *e = http_embedder(IMP_EMBED_TEI, 2, 5000, 3);
    ck_assert_str_eq(imp_embedder_name(e), "tei");
    float out[5 * 4];
    ck_assert_ptr_null(imp_embedder_embed(e, ten_texts, 5, out));
    ck_assert_uint_eq(fake_http_count(fake), 3);
    const char *expect[] = {"t0,t1", "t2,t3", "t4"};
    for (size_t i = 0; i < 3; i++) {
        ck_assert_str_eq(fake_http_request(fake, i)->path, "/embed");
        char *inputs = request_inputs(i, "inputs");
        ck_assert_str_eq(inputs, expect[i]);
        free(inputs);
    }
    check_rows(out, 5);
    imp_embedder_free(e);
}
END_TEST

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The first answer takes longer than the timeout: the request is sent again and succeeds. */
START_TEST(timeout_retried)
{
    fake_http_push(fake, (fake_http_reply_t){.status = 200, .body = "[]", .delay_ms = 3000});
    imp_embedder_t *e = http_embedder(IMP_EMBED_TEI, 8, 300, 3);
    float out[2 * 4];
    double t0 = now_s();
    imp_error_t *err = imp_embedder_embed(e, ten_texts, 2, out);
    double took = now_s() - t0;
    ck_assert_msg(err == NULL, "%s", err ? imp_error_message(err) : "");
    ck_assert_uint_eq(fake_http_count(fake), 2);
    ck_assert_double_ge(took, 0.3);
    ck_assert_double_lt(took, 2.5);
    check_rows(out, 2);
    imp_embedder_free(e);
}
END_TEST

START_TEST(server_errors_retried)
{
    fake_http_push(fake, (fake_http_reply_t){.status = 503, .body = "busy"});
    fake_http_push(fake, (fake_http_reply_t){.status = 429, .headers = "Retry-After: 0\r\n"});
    imp_embedder_t *e = http_embedder(IMP_EMBED_OPENAI, 8, 5000, 3);
    float out[3 * 4];
    ck_assert_ptr_null(imp_embedder_embed(e, ten_texts, 3, out));
    ck_assert_uint_eq(fake_http_count(fake), 3);
    check_rows(out, 3);
    imp_embedder_free(e);
}
END_TEST

START_TEST(retries_bounded)
{
    fake_http_set_default(fake, (fake_http_reply_t){.status = 500, .body = "{\"error\":\"oom\"}"});
    fake_http_set_handler(fake, NULL, NULL);
    imp_embedder_t *e = http_embedder(IMP_EMBED_TEI, 8, 5000, 3);
    float out[4];
    imp_error_t *err = imp_embedder_embed(e, ten_texts, 1, out);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_RETRIABLE);
    ck_assert_str_eq(imp_error_code(err), "embed_unavailable");
    ck_assert_str_eq(imp_error_message(err),
                     "texts 0..0: embedding server unavailable after 3 attempts: status 500: oom");
    ck_assert_uint_eq(fake_http_count(fake), 3);
    imp_error_free(err);
    imp_embedder_free(e);
}
END_TEST

/* A 4xx is the input's fault: no retry, poison, the server's own message. */
START_TEST(client_error_is_poison)
{
    fake_http_push(
        fake,
        (fake_http_reply_t){.status = 400,
                            .headers = "Content-Type: application/json\r\n",
                            .body = "{\"error\":{\"message\":\"This model's maximum context length "
                                    "is 8192 tokens\",\"type\":\"invalid_request_error\"}}"});
    imp_embedder_t *e = http_embedder(IMP_EMBED_OPENAI, 8, 5000, 3);
    float out[4 * 4];
    imp_error_t *err = imp_embedder_embed(e, ten_texts, 4, out);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
    ck_assert_str_eq(imp_error_code(err), "embed_rejected");
    ck_assert_str_eq(imp_error_message(err),
                     "texts 0..3: embedding server rejected 4 texts with status 400: This "
                     "model's maximum context length is 8192 tokens");
    ck_assert_str_eq(imp_error_detail(err), "This model's maximum context length is 8192 tokens");
    ck_assert_uint_eq(fake_http_count(fake), 1);
    imp_error_free(err);

    fake_http_push(fake, (fake_http_reply_t){.status = 413,
                                             .body = "{\"error\":\"Input validation error: "
                                                     "batch size 4 > maximum allowed batch size "
                                                     "2\",\"error_type\":\"Validation\"}"});
    imp_embedder_t *tei = http_embedder(IMP_EMBED_TEI, 8, 5000, 3);
    err = imp_embedder_embed(tei, ten_texts, 4, out);
    ck_assert_str_eq(imp_error_code(err), "embed_rejected");
    ck_assert_ptr_nonnull(strstr(imp_error_message(err), "maximum allowed batch size 2"));
    imp_error_free(err);
    imp_embedder_free(tei);
    imp_embedder_free(e);
}
END_TEST

START_TEST(wrong_answers)
{
    imp_embedder_t *e = http_embedder(IMP_EMBED_OPENAI, 8, 5000, 3);
    float out[2 * 4];
    server.answer_dim = 3;
    imp_error_t *err = imp_embedder_embed(e, ten_texts, 2, out);
    ck_assert_str_eq(imp_error_code(err), "embed_dim");
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
    ck_assert_str_eq(imp_error_message(err),
                     "texts 0..1: embedding dimension 3, expected 4 (IMP_EMBED_DIM)");
    imp_error_free(err);
    server.answer_dim = 4;
    server.count_delta = -1;
    err = imp_embedder_embed(e, ten_texts, 2, out);
    ck_assert_str_eq(imp_error_code(err), "embed_answer");
    imp_error_free(err);
    server.count_delta = 0;
    fake_http_push(fake, (fake_http_reply_t){.status = 200, .body = "<html>"});
    err = imp_embedder_embed(e, ten_texts, 2, out);
    ck_assert_str_eq(imp_error_code(err), "embed_answer");
    imp_error_free(err);
    const char *bad_utf8[] = {"ok", "\xff"};
    err = imp_embedder_embed(e, bad_utf8, 2, out);
    ck_assert_str_eq(imp_error_code(err), "embed_input");
    imp_error_free(err);
    imp_embedder_free(e);
}
END_TEST

/* Loopback is refused unless the allow-list names it: no request leaves. */
START_TEST(ssrf_guard)
{
    char *url = fake_http_url(fake, "/");
    imp_embedder_t *e = NULL;
    ck_assert_ptr_null(imp_embed_http_new(
        &(imp_embed_http_options_t){.api = IMP_EMBED_TEI, .url = url, .dim = 4}, &e));
    float out[4];
    imp_error_t *err = imp_embedder_embed(e, ten_texts, 1, out);
    ck_assert_str_eq(imp_error_code(err), "ssrf_blocked");
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
    ck_assert_uint_eq(fake_http_count(fake), 0);
    imp_error_free(err);
    imp_embedder_free(e);
    err = imp_embed_http_new(
        &(imp_embed_http_options_t){
            .api = IMP_EMBED_TEI, .url = url, .dim = 4, .allow_cidrs = "not-a-cidr"},
        &e);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_FATAL);
    imp_error_free(err);
    free(url);
}
END_TEST

START_TEST(from_settings)
{
    imp_embed_settings_t s = {.provider = "hash", .dim = 256, .batch = 32};
    imp_embedder_t *e = NULL;
    ck_assert_ptr_null(imp_embedder_from_settings(&s, &e));
    ck_assert_str_eq(imp_embedder_name(e), "hash");
    ck_assert_uint_eq(imp_embedder_dim(e), 256);
    imp_embedder_free(e);

    s.provider = "word2vec";
    imp_error_t *err = imp_embedder_from_settings(&s, &e);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_FATAL);
    ck_assert_ptr_nonnull(strstr(imp_error_message(err), "IMP_EMBED_PROVIDER"));
    imp_error_free(err);

    s.provider = "openai";
    s.url = "http://127.0.0.1:1";
    s.model = "";
    err = imp_embedder_from_settings(&s, &e);
    ck_assert_ptr_nonnull(strstr(imp_error_message(err), "IMP_EMBED_MODEL"));
    imp_error_free(err);

    s.provider = "tei";
    s.url = "";
    err = imp_embedder_from_settings(&s, &e);
    ck_assert_ptr_nonnull(strstr(imp_error_message(err), "IMP_EMBED_URL"));
    imp_error_free(err);

    s.url = "http://127.0.0.1:1";
    ck_assert_ptr_null(imp_embedder_from_settings(&s, &e));
    ck_assert_str_eq(imp_embedder_name(e), "tei");
    imp_embedder_free(e);
}
END_TEST

/* The config table macro expands into a working table. */
typedef struct {
    imp_embed_settings_t embed;
} settings_t;

static const imp_config_entry_t table[] = {IMP_EMBED_CONFIG(settings_t, embed)};

START_TEST(config_table)
{
    settings_t st = {0};
    setenv("IMP_EMBED_PROVIDER", "tei", 1);
    setenv("IMP_EMBED_URL", "http://127.0.0.1:8081", 1);
    setenv("IMP_EMBED_TIMEOUT", "2s", 1);
    ck_assert_ptr_null(imp_config_load(table, IMP_ARRAY_LEN(table), &st));
    ck_assert_str_eq(st.embed.provider, "tei");
    ck_assert_int_eq(st.embed.dim, 1024);
    ck_assert_int_eq(st.embed.batch, 32);
    ck_assert_int_eq(st.embed.timeout_ms, 2000);
    ck_assert_int_eq(st.embed.max_attempts, 4);
    ck_assert_str_eq(st.embed.api_key, "");
    imp_config_dispose(table, IMP_ARRAY_LEN(table), &st);
    unsetenv("IMP_EMBED_PROVIDER");
    unsetenv("IMP_EMBED_URL");
    unsetenv("IMP_EMBED_TIMEOUT");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("embed");
    TCase *hash = tcase_create("hash");
    tcase_add_test(hash, hash_identity);
    tcase_add_test(hash, hash_deterministic);
    tcase_add_test(hash, hash_normalised);
    tcase_add_test(hash, hash_case_folding);
    tcase_add_test(hash, hash_similarity);
    tcase_add_test(hash, hash_reference_values);
    tcase_add_test(hash, embed_null_text);
    tcase_add_test(hash, config_table);
    suite_add_tcase(s, hash);
    TCase *http = tcase_create("http");
    tcase_add_checked_fixture(http, http_setup, http_teardown);
    tcase_add_test(http, openai_batching);
    tcase_add_test(http, tei_batching);
    tcase_add_test(http, timeout_retried);
    tcase_add_test(http, server_errors_retried);
    tcase_add_test(http, retries_bounded);
    tcase_add_test(http, client_error_is_poison);
    tcase_add_test(http, wrong_answers);
    tcase_add_test(http, ssrf_guard);
    tcase_add_test(http, from_settings);
    suite_add_tcase(s, http);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
