/* A fake OpenAI-compatible embedding server for the indexer's tests (tests/lib/fake_http.c):
 * POST /v1/embeddings {"model", "input": [...]} answers with the built-in hash embedder's
 * vectors (so retrieval over them works), and misbehaves on demand.
 *
 *   indexer_fake_embed PORT_FILE LOG_FILE MODE_FILE [DIM]
 *
 * Writes its port to PORT_FILE, appends one line per request to LOG_FILE:
 *   "<n> inputs=<texts> status=<code>"
 * and reads MODE_FILE (absent: ok) before answering each request:
 *   ok                    answer
 *   delay MS              answer after MS milliseconds
 *   hang N MS             the next N requests (counted from when the file changed) are
 *                         answered after MS milliseconds (longer than the client's timeout)
 *   reject STATUS TEXT    answer STATUS with {"error": {"message": TEXT}}
 * Runs until SIGTERM or SIGINT. */
#include "../../lib/fake_http.c"

#include "imp/embed.h"
#include "imp/mem.h"

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *log_path, *mode_path;
static imp_embedder_t *emb;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long served;
static char last_mode[512];
static long hung; /* requests hung under the current mode text */
static char **bodies;
static size_t nbodies;

static void keep(char *body)
{
    bodies = imp_realloc(bodies, (nbodies + 1) * sizeof(*bodies));
    bodies[nbodies++] = body;
}

static void read_mode(char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen(mode_path, "r");
    if (f == NULL)
        return;
    if (fgets(out, (int)cap, f) == NULL)
        out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\n")] = '\0';
}

static char *embeddings_body(json_t *input)
{
    size_t n = json_array_size(input), dim = imp_embedder_dim(emb);
    const char **texts = imp_calloc(n ? n : 1, sizeof(*texts));
    for (size_t i = 0; i < n; i++)
        texts[i] = json_string_value(json_array_get(input, i));
    float *vecs = imp_malloc((n ? n : 1) * dim * sizeof(float));
    imp_error_t *err = imp_embedder_embed(emb, texts, n, vecs);
    json_t *data = json_array();
    for (size_t i = 0; err == NULL && i < n; i++) {
        json_t *v = json_array();
        for (size_t k = 0; k < dim; k++)
            json_array_append_new(v, json_real(vecs[i * dim + k]));
        json_array_append_new(data, json_pack("{s:s, s:I, s:o}", "object", "embedding", "index",
                                              (json_int_t)i, "embedding", v));
    }
    imp_error_free(err);
    free(vecs);
    free(texts);
    json_t *doc = json_pack("{s:s, s:o, s:s}", "object", "list", "data", data, "model", "fake");
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return body;
}

static void on_request(const fake_http_request_t *req, fake_http_reply_t *reply, void *ctx)
{
    (void)ctx;
    char mode[512];
    read_mode(mode, sizeof(mode));
    json_t *doc = json_loads(req->body, 0, NULL);
    json_t *input = json_object_get(doc, "input");
    long status = 200, delay = 0, n = 0, ms = 0;
    char text[400] = "";
    char *body = NULL;
    pthread_mutex_lock(&lock);
    if (strcmp(mode, last_mode) != 0) {
        snprintf(last_mode, sizeof(last_mode), "%s", mode);
        hung = 0;
    }
    if (sscanf(mode, "delay %ld", &ms) == 1) {
        delay = ms;
    } else if (sscanf(mode, "hang %ld %ld", &n, &ms) == 2 && hung < n) {
        hung++;
        delay = ms;
    } else if (sscanf(mode, "reject %ld %399[^\n]", &status, text) == 2) {
        json_t *err =
            json_pack("{s:{s:s, s:s}}", "error", "message", text, "type", "invalid_request_error");
        body = json_dumps(err, JSON_COMPACT);
        json_decref(err);
    }
    if (!json_is_array(input) || strcmp(req->method, "POST") != 0) {
        status = 400;
        free(body);
        body = imp_strdup("{\"error\":{\"message\":\"not an embeddings request\"}}");
    }
    unsigned long seq = ++served;
    FILE *log = fopen(log_path, "a");
    if (log != NULL) {
        fprintf(log, "%lu inputs=%zu status=%ld delay=%ld\n", seq, json_array_size(input), status,
                delay);
        fclose(log);
    }
    if (body == NULL)
        body = embeddings_body(input);
    keep(body);
    pthread_mutex_unlock(&lock);
    json_decref(doc);
    reply->status = (int)status;
    reply->headers = "Content-Type: application/json\r\n";
    reply->body = body;
    reply->delay_ms = delay;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: indexer_fake_embed PORT_FILE LOG_FILE MODE_FILE [DIM]\n");
        return 2;
    }
    log_path = argv[2];
    mode_path = argv[3];
    imp_error_t *err = imp_embed_hash_new(argc > 4 ? (size_t)atoi(argv[4]) : 64, &emb);
    if (err != NULL) {
        fprintf(stderr, "indexer_fake_embed: %s\n", imp_error_message(err));
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    fake_http_t *f = fake_http_start();
    fake_http_set_handler(f, on_request, NULL);
    FILE *pf = fopen(argv[1], "w");
    if (pf == NULL)
        return 2;
    fprintf(pf, "%d\n", fake_http_port(f));
    fclose(pf);
    int sig = 0;
    sigwait(&set, &sig);
    fake_http_stop(f);
    for (size_t i = 0; i < nbodies; i++)
        free(bodies[i]);
    free(bodies);
    imp_embedder_free(emb);
    return 0;
}
