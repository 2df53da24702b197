/* The load driver of the end-to-end benchmark: signed generic webhooks, many conversations
 * at once over libcurl's multi interface (one process, little CPU next to the fleet).
 *
 *   e2e_load URL SLUG SECRET --convs N [--msgs M] [--conns C] [--rate R] [--prefix P]
 *            [--acks FILE] [--question Q]
 *
 * Conversation i ("P-c<i>") sends message m (id "P-c<i>-m<m>") only after message m-1 was
 * ACKed (200); at most C requests are in flight; --rate paces the first attempt of every
 * message (messages/s offered, 0: as fast as possible). A non-200 or a transport error is
 * retried after 200 ms, at most 50 times. --acks: "message_id conversation ack_ms" per
 * message. Prints "sent N acked N retries N seconds S"; exit 0 when every message was ACKed.
 */
#include "imp/crypto.h"
#include "imp/mem.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

typedef struct {
    long conv; /* conversation index */
    int msg;   /* message index within it */
    int tries;
    long long not_before_ms;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    char id[96];
} req_t;

static struct {
    const char *url, *secret, *prefix, *question, *acks_path;
    long convs;
    int msgs, conns;
    double rate;
    imp_hmac_t *hmac;
    long next_conv;    /* next conversation to start */
    long long offered; /* messages started (pacing slots taken) */
    long long start_ms;
    long long sent, acked, retries;
    FILE *acks;
} g;

static long long now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static size_t discard(char *p, size_t size, size_t n, void *u)
{
    (void)p;
    (void)u;
    return size * n;
}

static void die(const char *msg)
{
    fprintf(stderr, "e2e_load: %s\n", msg);
    exit(2);
}

/* Build and sign message (r->conv, r->msg), due at r->not_before_ms. */
static void prepare(req_t *r)
{
    char conv[64], ts[24], mac_b64[64];
    uint8_t mac[IMP_HMAC_SHA256_LEN];
    snprintf(conv, sizeof(conv), "%s-c%ld", g.prefix, r->conv);
    snprintf(r->id, sizeof(r->id), "%s-m%d", conv, r->msg);
    free(r->body);
    r->body = imp_asprintf("{\"conversation\":\"%s\",\"sender\":{\"id\":\"%s\",\"name\":\"Load\"},"
                           "\"message\":{\"id\":\"%s\",\"text\":\"%s\"}}",
                           conv, conv, r->id, g.question);
    snprintf(ts, sizeof(ts), "%lld", now_ms() / 1000);
    char *signed_text = imp_asprintf("%s.%s.%s", r->id, ts, r->body);
    imp_hmac_sha256(g.hmac, signed_text, strlen(signed_text), mac);
    free(signed_text);
    mac_b64[imp_base64_encode(mac, sizeof(mac), mac_b64)] = '\0';
    curl_slist_free_all(r->headers);
    char h[160];
    r->headers = curl_slist_append(NULL, "Content-Type: application/json");
    snprintf(h, sizeof(h), "webhook-id: %s", r->id);
    r->headers = curl_slist_append(r->headers, h);
    snprintf(h, sizeof(h), "webhook-timestamp: %s", ts);
    r->headers = curl_slist_append(r->headers, h);
    snprintf(h, sizeof(h), "webhook-signature: v1,%s", mac_b64);
    r->headers = curl_slist_append(r->headers, h);
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body);
}

/* The next message's pacing slot. */
static long long next_slot(void)
{
    long long k = g.offered++;
    return g.rate > 0 ? g.start_ms + (long long)(k * 1000.0 / g.rate) : 0;
}

/* Give slot r the next conversation; false when none is left. */
static bool take_conversation(req_t *r)
{
    if (g.next_conv >= g.convs)
        return false;
    r->conv = g.next_conv++;
    r->msg = 0;
    r->tries = 0;
    r->not_before_ms = next_slot();
    return true;
}

static void parse_args(int argc, char **argv)
{
    if (argc < 4)
        die("usage: e2e_load URL SLUG SECRET --convs N [--msgs M] [--conns C] [--rate R] "
            "[--prefix P] [--acks FILE] [--question Q]");
    g.url = imp_asprintf("%s/v1/webhooks/generic/%s", argv[1], argv[2]);
    g.secret = argv[3];
    g.msgs = 1;
    g.conns = 64;
    g.prefix = "c";
    g.question = "hello";
    for (int i = 4; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--convs") == 0)
            g.convs = atol(v);
        else if (strcmp(k, "--msgs") == 0)
            g.msgs = atoi(v);
        else if (strcmp(k, "--conns") == 0)
            g.conns = atoi(v);
        else if (strcmp(k, "--rate") == 0)
            g.rate = atof(v);
        else if (strcmp(k, "--prefix") == 0)
            g.prefix = v;
        else if (strcmp(k, "--acks") == 0)
            g.acks_path = v;
        else if (strcmp(k, "--question") == 0)
            g.question = v;
        else
            die("unknown option");
    }
    if (g.convs <= 0 || g.msgs <= 0 || g.conns <= 0)
        die("--convs, --msgs and --conns must be > 0");
    if (strchr(g.question, '"') != NULL || strchr(g.question, '\\') != NULL)
        die("--question must not hold quotes or backslashes");
    if (strncmp(g.secret, "whsec_", 6) != 0)
        die("SECRET must start with whsec_");
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    uint8_t key[256];
    size_t keylen = 0;
    if (imp_base64_decode(g.secret + 6, strlen(g.secret + 6), key, sizeof(key), &keylen) != 0)
        die("SECRET is not base64 after whsec_");
    g.hmac = imp_hmac_new(key, keylen);
    if (g.acks_path != NULL && (g.acks = fopen(g.acks_path, "w")) == NULL)
        die("cannot write --acks");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)g.conns);
    int nslots = g.conns < g.convs ? g.conns : (int)g.convs;
    req_t *slots = imp_calloc((size_t)nslots, sizeof(*slots));
    g.start_ms = now_ms();
    int running = 0, active = 0;
    for (int i = 0; i < nslots; i++) {
        req_t *r = &slots[i];
        r->easy = curl_easy_init();
        curl_easy_setopt(r->easy, CURLOPT_URL, g.url);
        curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, 30000L);
        curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
        curl_easy_setopt(r->easy, CURLOPT_TCP_NODELAY, 1L);
        if (take_conversation(r))
            active++;
        else
            r->conv = -1;
    }
    bool *in_flight = imp_calloc((size_t)nslots, sizeof(bool));
    while (active > 0) {
        long long now = now_ms(), wait = 1000;
        for (int i = 0; i < nslots; i++) {
            req_t *r = &slots[i];
            if (r->conv < 0 || in_flight[i])
                continue;
            if (r->not_before_ms > now) {
                if (r->not_before_ms - now < wait)
                    wait = r->not_before_ms - now;
                continue;
            }
            prepare(r);
            curl_multi_add_handle(multi, r->easy);
            in_flight[i] = true;
            g.sent++;
        }
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            req_t *r = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            long status = 0;
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            bool ok = m->data.result == CURLE_OK && status == 200;
            curl_multi_remove_handle(multi, r->easy);
            in_flight[r - slots] = false;
            if (!ok) {
                g.retries++;
                if (++r->tries > 50) {
                    fprintf(stderr, "e2e_load: message %s never acked\n", r->id);
                    exit(1);
                }
                r->not_before_ms = now_ms() + 200;
                continue;
            }
            g.acked++;
            if (g.acks != NULL)
                fprintf(g.acks, "%s %s-c%ld %lld\n", r->id, g.prefix, r->conv, now_ms());
            r->tries = 0;
            if (++r->msg < g.msgs)
                r->not_before_ms = next_slot();
            else if (!take_conversation(r)) {
                r->conv = -1;
                active--;
            }
        }
        if (active > 0)
            curl_multi_poll(multi, NULL, 0, (int)(wait > 0 ? (wait < 1000 ? wait : 1000) : 0),
                            NULL);
    }
    printf("sent %lld acked %lld retries %lld seconds %.1f\n", g.sent, g.acked, g.retries,
           (now_ms() - g.start_ms) / 1000.0);
    for (int i = 0; i < nslots; i++) {
        curl_slist_free_all(slots[i].headers);
        free(slots[i].body);
        curl_easy_cleanup(slots[i].easy);
    }
    free(slots);
    free(in_flight);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    imp_hmac_free(g.hmac);
    if (g.acks != NULL)
        fclose(g.acks);
    free((char *)g.url);
    return g.acked == g.convs * g.msgs ? 0 : 1;
}
