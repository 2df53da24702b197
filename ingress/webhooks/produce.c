/* One producer per loop thread, its delivery reports bridged into the loop, and the tickets
 * that turn a webhook's delivery reports into its answer.
 *
 * The bridge: librdkafka writes a byte to a pipe whenever its main queue becomes non-empty
 * (rd_kafka_queue_io_event_enable); the pipe's read end is an h2o socket on the loop, so
 * the reports are served by rd_kafka_poll on the loop thread, where the requests live.
 *
 * A ticket has two owners: the request (through a shared allocation in its pool, disposed
 * when the request goes away: answered and written, or the client gone) and the messages
 * still waiting for reports. Whichever lets go last frees it. The answer is sent once: on
 * the last report, the first failure, or the ack timeout, whichever comes first — and only
 * while the request is still there. */
#include "ingress.h"

#include "imp/log.h"
#include "imp/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RETRY_AFTER_S 2

struct ing_producer {
    imp_kafka_producer_t *kp;
    h2o_socket_t *sock; /* read end of the pipe librdkafka writes to */
    int pipe_w;
    h2o_timeout_t ack_timeout;
    h2o_evloop_t *loop;
    size_t waiting; /* tickets not answered yet */
};

typedef struct {
    h2o_timeout_entry_t timer; /* first member: the timer callback's entry is the ticket */
    ing_producer_t *p;
    h2o_req_t *req; /* NULL once the request is gone */
    ing_reqinfo_t info;
    unsigned pending; /* messages queued whose report has not arrived */
    bool answered;
    bool failed;
    char opid[IMP_UUID_STR_SIZE]; /* X-Operation-Id */
    char *body;                   /* the 200 answer, ready to send */
    size_t body_len;
} ticket_t;

/* ---- answers ------------------------------------------------------------------------------ */

static void ticket_free(ticket_t *t)
{
    free(t->body);
    free(t);
}

/* Send the answer (once; the request is there). After this the ticket may be gone: the
 * request's disposal can free it. */
static void answer(ticket_t *t, bool persisted, const char *detail)
{
    h2o_req_t *req = t->req;
    t->answered = true;
    if (h2o_timeout_is_linked(&t->timer))
        h2o_timeout_unlink(&t->timer);
    t->p->waiting--;
    ing_stats_waiting(-1);
    ing_stats_ack((double)(ing_now_ns() - t->info.start_ns) / 1e9, persisted);
    if (!persisted) {
        ing_problem(req, &t->info, 503, "unavailable", "Service Unavailable", detail, RETRY_AFTER_S,
                    t->opid);
        return;
    }
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-operation-id"), 0, NULL,
                          h2o_strdup(&req->pool, t->opid, IMP_UUID_STR_LEN).base, IMP_UUID_STR_LEN);
    ing_answer(req, t->info.route, 200, "application/json", t->body, t->body_len);
}

/* The request went away (answered and written, or the client disconnected). */
static void on_req_dispose(void *slot)
{
    ticket_t *t = *(ticket_t **)slot;
    t->req = NULL;
    if (!t->answered) {
        /* Nobody to answer: the client will retry, and the events are deduplicated. */
        t->answered = true;
        h2o_timeout_unlink(&t->timer);
        t->p->waiting--;
        ing_stats_waiting(-1);
    }
    if (t->pending == 0)
        ticket_free(t);
}

static void on_ack_timeout(h2o_timeout_entry_t *entry)
{
    ticket_t *t = (ticket_t *)entry;
    ing_stats_produce_error("timeout");
    IMP_LOG_WARN("no delivery report within the ack timeout", IMP_LS("operation_id", t->opid),
                 IMP_LS("trace_id", t->info.trace.trace_id), IMP_LI("pending", t->pending));
    answer(t, false, "the event could not be stored in time; retry later");
}

static void on_delivery(void *opaque, const imp_error_t *err, int32_t partition, int64_t offset,
                        void *ctx)
{
    ticket_t *t = opaque;
    (void)partition, (void)offset, (void)ctx;
    t->pending--;
    if (err != NULL) {
        ing_stats_produce_error("delivery");
        if (!t->failed)
            IMP_LOG_WARN("event not persisted", IMP_LS("operation_id", t->opid),
                         IMP_LS("trace_id", t->info.trace.trace_id), IMP_LE(err));
        t->failed = true;
    }
    if (!t->answered && (t->failed || t->pending == 0)) {
        /* The request is still there (its disposal marks the ticket answered): whichever of
         * it and the remaining reports lets go last frees the ticket. */
        answer(t, !t->failed, "the event could not be stored; retry later");
        return;
    }
    if (t->pending == 0 && t->req == NULL)
        ticket_free(t);
}

/* ---- the producer ------------------------------------------------------------------------- */

static void on_kafka_event(h2o_socket_t *sock, const char *err)
{
    ing_producer_t *p = sock->data;
    if (err != NULL) {
        IMP_LOG_ERROR("kafka event pipe failed", IMP_LS("error", err));
        return;
    }
    h2o_buffer_consume(&sock->input, sock->input->size);
    imp_kafka_producer_poll(p->kp, 0);
}

ing_producer_t *ing_producer_new(h2o_evloop_t *loop, const char *brokers,
                                 const imp_kafka_props_t *props, long long ack_timeout_ms,
                                 imp_error_t **err)
{
    char timeout[24];
    snprintf(timeout, sizeof(timeout), "%lld", ack_timeout_ms);
    /* The ack timeout bounds librdkafka's own retries; the operator's props come last. */
    size_t n = 1 + (props != NULL ? props->count : 0);
    imp_kafka_prop_t *items = imp_calloc(n, sizeof(*items));
    items[0] = (imp_kafka_prop_t){"delivery.timeout.ms", timeout};
    for (size_t i = 1; i < n; i++)
        items[i] = props->items[i - 1];
    imp_kafka_props_t all = {.items = items, .count = n};
    imp_kafka_producer_t *kp = imp_kafka_producer_new(brokers, &all, err);
    free(items);
    if (kp == NULL)
        return NULL;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
        *err = imp_error_new(IMP_ERR_FATAL, "pipe", "kafka event pipe: %s", strerror(errno));
        imp_kafka_producer_free(kp);
        return NULL;
    }
    ing_producer_t *p = imp_calloc(1, sizeof(*p));
    p->kp = kp;
    p->loop = loop;
    p->pipe_w = fds[1];
    imp_kafka_producer_set_on_delivery(kp, on_delivery, p);
    rd_kafka_t *rk = imp_kafka_producer_handle(kp);
    rd_kafka_queue_t *q = rd_kafka_queue_get_main(rk);
    rd_kafka_queue_io_event_enable(q, fds[1], "1", 1);
    rd_kafka_queue_destroy(q);
    /* librdkafka writes only when the queue goes from empty to one event: whatever it queued
     * before this point (connection errors while Kafka is down) would never be served, and
     * nothing after it would wake us. Wake the loop once to drain it. */
    if (write(fds[1], "1", 1) != 1)
        IMP_LOG_WARN("kafka event pipe: first wake-up not written",
                     IMP_LS("errno", strerror(errno)));
    /* Not DONT_READ: h2o reads the pipe for us (with it, epoll would spin). */
    p->sock = h2o_evloop_socket_create(loop, fds[0], 0);
    p->sock->data = p;
    h2o_socket_read_start(p->sock, on_kafka_event);
    h2o_timeout_init(loop, &p->ack_timeout, (uint64_t)ack_timeout_ms);
    return p;
}

void ing_producer_drain(ing_producer_t *p, h2o_evloop_t *loop, int timeout_ms)
{
    uint64_t deadline = ing_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (p->waiting > 0 && ing_now_ns() < deadline)
        h2o_evloop_run(loop, 10);
}

void ing_producer_free(ing_producer_t *p)
{
    if (p == NULL)
        return;
    rd_kafka_t *rk = imp_kafka_producer_handle(p->kp);
    rd_kafka_queue_t *q = rd_kafka_queue_get_main(rk);
    rd_kafka_queue_io_event_enable(q, -1, NULL, 0);
    rd_kafka_queue_destroy(q);
    /* Reports still due would point at tickets of a loop that no longer runs. */
    imp_kafka_producer_set_on_delivery(p->kp, NULL, NULL);
    imp_kafka_producer_free(p->kp);
    if (p->sock != NULL) {
        /* Tickets still waiting (the drain gave up on them) leak with the process: their
         * reports will never come. Their timers must not outlive the timeout. */
        while (!h2o_linklist_is_empty(&p->ack_timeout._entries))
            h2o_timeout_unlink(
                H2O_STRUCT_FROM_MEMBER(h2o_timeout_entry_t, _link, p->ack_timeout._entries.next));
        h2o_timeout_dispose(p->loop, &p->ack_timeout);
        h2o_socket_close(p->sock);
    }
    close(p->pipe_w);
    free(p);
}

size_t ing_producer_waiting(const ing_producer_t *p)
{
    return p->waiting;
}

imp_error_t *ing_producer_ping(ing_producer_t *p, int timeout_ms)
{
    return imp_kafka_producer_ping(p->kp, timeout_ms);
}

/* ---- one webhook -------------------------------------------------------------------------- */

/* {"accepted": n, "operation_ids": ["…", …]} */
static void build_body(ticket_t *t, const ing_msg_t *msgs, size_t n)
{
    size_t cap = 64 + n * (IMP_UUID_STR_LEN + 3);
    char *b = imp_malloc(cap);
    size_t len = (size_t)snprintf(b, cap, "{\"accepted\":%zu,\"operation_ids\":[", n);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            b[len++] = ',';
        b[len++] = '"';
        memcpy(b + len, msgs[i].opid, IMP_UUID_STR_LEN);
        len += IMP_UUID_STR_LEN;
        b[len++] = '"';
    }
    memcpy(b + len, "]}", 3);
    t->body = b;
    t->body_len = len + 2;
}

/* Queue one message; NULL or the reason it was not queued. */
static const char *queue_one(ing_producer_t *p, ticket_t *t, const ing_msg_t *m)
{
    imp_kafka_out_t out = {.topic = m->topic,
                           .partition = IMP_KAFKA_PARTITION_ANY,
                           .key = m->key,
                           .key_len = m->key_len,
                           .value = m->value,
                           .value_len = m->value_len,
                           .opaque = t};
    imp_error_t *err = imp_kafka_produce(p->kp, &out);
    if (err == NULL)
        return NULL;
    bool full = strcmp(imp_error_code(err), "kafka_queue_full") == 0;
    IMP_LOG_WARN("event not queued", IMP_LS("operation_id", m->opid),
                 IMP_LS("trace_id", t->info.trace.trace_id), IMP_LE(err));
    imp_error_free(err);
    ing_stats_produce_error(full ? "queue_full" : "produce");
    return full ? "too many events are waiting to be stored; retry later"
                : "the event could not be stored; retry later";
}

void ing_produce_and_answer(ing_producer_t *p, h2o_req_t *req, const ing_reqinfo_t *info,
                            const ing_msg_t *msgs, size_t n)
{
    ticket_t *t = imp_calloc(1, sizeof(*t));
    t->p = p;
    t->req = req;
    t->info = *info;
    memcpy(t->opid, msgs[0].opid, sizeof(t->opid));
    build_body(t, msgs, n);
    ticket_t **slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), on_req_dispose);
    *slot = t;
    t->timer.cb = on_ack_timeout;
    h2o_timeout_link(p->loop, &p->ack_timeout, &t->timer);
    p->waiting++;
    ing_stats_waiting(1);
    const char *why = NULL;
    for (size_t i = 0; i < n && why == NULL; i++) {
        if ((why = queue_one(p, t, &msgs[i])) == NULL)
            t->pending++;
    }
    /* Reports are served on this thread, and not before this function returns. */
    if (why != NULL)
        answer(t, false, why);
}
