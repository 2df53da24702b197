/* A fake provider for the send tests (it_send_*.sh): answers like ChatFlow, Meta and
 * Telegram by path, records every request as one JSON line, and fails on script.
 *
 *   send_fake_provider --port-file F --record F [--script 500,500,200] [--retry-after S]
 *                      [--delay-ms D] [--fail-while FILE] [--body TEXT] [--reject TEXT]
 *
 * --script: statuses of the first requests in order (then 200). --retry-after adds
 * "Retry-After: S" to 429 answers. --delay-ms delays every answer. --fail-while: answer 500
 * while FILE exists. --reject: answer 400 to a request whose body contains TEXT. --body: the body
 * of non-2xx answers. Record line: {"t_ms", "method",
 * "path", "headers": {lowercase name: value}, "body"}. Runs until SIGTERM. */
#include "../../lib/fake_http.c"

#include <ctype.h>
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/time.h>

static FILE *record;
static pthread_mutex_t record_lock = PTHREAD_MUTEX_INITIALIZER;
static int script[64];
static size_t nscript;
static atomic_size_t seen;
static long retry_after = -1, delay_ms;
static const char *fail_while, *reject, *error_body = "{\"error\":\"scripted failure\"}";
static volatile sig_atomic_t stop;
static atomic_long next_id = 1000;

static long long now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void write_record(const fake_http_request_t *req)
{
    json_t *h = json_object();
    for (size_t i = 0; i < req->nheaders; i++) {
        char *name = strdup(req->names[i]);
        for (char *p = name; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        json_object_set_new(h, name, json_string(req->values[i]));
        free(name);
    }
    json_t *line =
        json_pack("{s:I, s:s, s:s, s:o, s:s%}", "t_ms", (json_int_t)now_ms(), "method", req->method,
                  "path", req->path, "headers", h, "body", req->body, req->body_len);
    char *s = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    pthread_mutex_lock(&record_lock);
    fprintf(record, "%s\n", s);
    fflush(record);
    pthread_mutex_unlock(&record_lock);
    free(s);
}

/* Bodies stay valid until exit: one per request, leaked on purpose (test code). */
static char *ok_body(const char *path)
{
    long id = atomic_fetch_add(&next_id, 1);
    char *b = malloc(160);
    if (strstr(path, "/sendMessage") != NULL)
        snprintf(b, 160, "{\"ok\":true,\"result\":{\"message_id\":%ld}}", id);
    else if (strstr(path, "/messages/send-text") != NULL)
        snprintf(b, 160, "{\"message_id\":\"cf-%ld\"}", id);
    else if (strstr(path, "/messages") != NULL)
        snprintf(b, 160,
                 "{\"messaging_product\":\"whatsapp\",\"messages\":[{\"id\":\"wamid.%ld\"}]}", id);
    else
        snprintf(b, 160, "{\"message_id\":\"gen-%ld\"}", id);
    return b;
}

static void on_request(const fake_http_request_t *req, fake_http_reply_t *reply, void *ctx)
{
    (void)ctx;
    write_record(req);
    size_t n = atomic_fetch_add(&seen, 1);
    int status = n < nscript ? script[n] : 200;
    if (fail_while != NULL && access(fail_while, F_OK) == 0)
        status = 500;
    if (reject != NULL && req->body != NULL && strstr(req->body, reject) != NULL)
        status = 400;
    reply->status = status;
    reply->delay_ms = delay_ms;
    if (status >= 200 && status < 300) {
        reply->body = ok_body(req->path);
        reply->headers = "Content-Type: application/json\r\n";
        return;
    }
    reply->body = error_body;
    if (status == 429 && retry_after >= 0) {
        char *h = malloc(96);
        snprintf(h, 96, "Retry-After: %ld\r\nContent-Type: application/json\r\n", retry_after);
        reply->headers = h;
    } else {
        reply->headers = "Content-Type: application/json\r\n";
    }
}

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    const char *port_file = NULL, *record_path = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port-file") == 0)
            port_file = argv[i + 1];
        else if (strcmp(argv[i], "--record") == 0)
            record_path = argv[i + 1];
        else if (strcmp(argv[i], "--retry-after") == 0)
            retry_after = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--delay-ms") == 0)
            delay_ms = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--fail-while") == 0)
            fail_while = argv[i + 1];
        else if (strcmp(argv[i], "--body") == 0)
            error_body = argv[i + 1];
        else if (strcmp(argv[i], "--reject") == 0)
            reject = argv[i + 1];
        else if (strcmp(argv[i], "--script") == 0) {
            char *copy = strdup(argv[i + 1]), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t && nscript < 64;
                 t = strtok_r(NULL, ",", &save))
                script[nscript++] = atoi(t);
            free(copy);
        } else {
            fprintf(stderr, "send_fake_provider: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (port_file == NULL || record_path == NULL) {
        fprintf(stderr, "send_fake_provider: --port-file and --record are required\n");
        return 2;
    }
    record = fopen(record_path, "a");
    if (record == NULL)
        return 1;
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    signal(SIGPIPE, SIG_IGN);
    fake_http_t *f = fake_http_start();
    fake_http_set_handler(f, on_request, NULL);
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
    FILE *pf = fopen(tmp, "w");
    fprintf(pf, "%d\n", fake_http_port(f));
    fclose(pf);
    rename(tmp, port_file);
    while (!stop)
        usleep(50000);
    fake_http_stop(f);
    fclose(record);
    return 0;
}
