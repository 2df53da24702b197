/* A fake OpenAI-compatible chat-completions server for the rag tests.
 *
 *   rag_fake_llm PORT_FILE LOG_FILE
 *
 * Writes its port to PORT_FILE, then answers every POST by the last user message:
 *   contains "[slow]"     answers after 3 s (past the worker's timeout in the tests)
 *   contains "[500]"      500 with a raw error body
 *   contains "[garbage]"  200 with a body that is not JSON
 *   contains "[empty]"    200 with an empty completion
 *   otherwise             200 with a completion that quotes the question
 * Every request appends "<kind>|<last user message>" to LOG_FILE (one write per line).
 * Runs until SIGTERM or SIGINT. */
#include "../../lib/fake_http.c"

#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_KEPT 4096

static int log_fd = -1;
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;
static char *kept[MAX_KEPT]; /* reply bodies, alive until the server stops */
static size_t nkept;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static char *last_user_message(const char *body, size_t len)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    const json_t *msgs = json_object_get(root, "messages");
    char *out = NULL;
    for (size_t i = json_array_size(msgs); i > 0 && out == NULL; i--) {
        const json_t *m = json_array_get(msgs, i - 1);
        const char *role = json_string_value(json_object_get(m, "role"));
        const char *content = json_string_value(json_object_get(m, "content"));
        if (role != NULL && content != NULL && strcmp(role, "user") == 0)
            out = strdup(content);
    }
    json_decref(root);
    return out ? out : strdup("");
}

static const char *keep(char *s)
{
    pthread_mutex_lock(&kept_lock);
    if (nkept < MAX_KEPT)
        kept[nkept++] = s;
    pthread_mutex_unlock(&kept_lock);
    return s;
}

static void on_request(const fake_http_request_t *req, fake_http_reply_t *reply, void *ctx)
{
    (void)ctx;
    char *q = last_user_message(req->body, req->body_len);
    const char *kind = strstr(q, "[slow]")      ? "slow"
                       : strstr(q, "[500]")     ? "500"
                       : strstr(q, "[garbage]") ? "garbage"
                       : strstr(q, "[empty]")   ? "empty"
                                                : "ok";
    for (char *c = q; *c; c++)
        if (*c == '\n')
            *c = ' ';
    char line[1024];
    int n = snprintf(line, sizeof(line), "%s|%.900s\n", kind, q);
    if (write(log_fd, line, (size_t)n) != n)
        perror("rag_fake_llm: log");
    reply->status = 200;
    reply->headers = "Content-Type: application/json\r\n";
    if (strcmp(kind, "500") == 0) {
        reply->status = 500;
        reply->body = "Traceback (most recent call last): internal server error";
    } else if (strcmp(kind, "garbage") == 0) {
        reply->body = "<html>502 bad gateway</html>";
    } else if (strcmp(kind, "empty") == 0) {
        reply->body = "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"  \"}}]}";
    } else {
        json_t *a = json_pack("{s:[{s:{s:s, s:s+}}], s:{s:i, s:i}}", "choices", "message", "role",
                              "assistant", "content", "LLM answer to: ", q, "usage",
                              "prompt_tokens", 120, "completion_tokens", 12);
        reply->body = keep(json_dumps(a, JSON_COMPACT));
        json_decref(a);
        if (strcmp(kind, "slow") == 0)
            reply->delay_ms = 3000;
    }
    free(q);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: rag_fake_llm PORT_FILE LOG_FILE\n");
        return 2;
    }
    log_fd = open(argv[2], O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log_fd < 0) {
        perror("rag_fake_llm: open log");
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    fake_http_t *f = fake_http_start();
    fake_http_set_handler(f, on_request, NULL);
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", argv[1]);
    FILE *pf = fopen(tmp, "w");
    if (pf == NULL || fprintf(pf, "%d\n", fake_http_port(f)) < 0 || fclose(pf) != 0 ||
        rename(tmp, argv[1]) != 0) {
        perror("rag_fake_llm: port file");
        return 1;
    }
    while (!stop)
        pause();
    fake_http_stop(f);
    for (size_t i = 0; i < nkept; i++)
        free(kept[i]);
    close(log_fd);
    return 0;
}
