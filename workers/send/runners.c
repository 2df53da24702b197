/* The threads that make a batch's provider calls alongside the worker's own thread, started
 * once with the worker: a thread started and joined per batch cost a clone, a stack mapping
 * and an exit per call slot of every batch. */
#include "send.h"

#include "imp/mem.h"

#include <pthread.h>
#include <stdbool.h>

typedef struct {
    send_runners_t *r;
    size_t slot;
    pthread_t thread;
    pthread_cond_t go_cv;
    bool go;
} helper_t;

struct send_runners {
    pthread_mutex_t mu;
    pthread_cond_t done_cv;
    helper_t *runners; /* slots 1..n; runners[0] unused (the caller's slot) */
    size_t n, started;
    size_t pending; /* runners of the current round still working */
    void (*fn)(size_t slot, void *arg);
    void *arg;
    bool stop;
};

static void *helper_main(void *p)
{
    helper_t *t = p;
    send_runners_t *r = t->r;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!t->go && !r->stop)
            pthread_cond_wait(&t->go_cv, &r->mu);
        if (r->stop)
            break;
        t->go = false;
        void (*fn)(size_t, void *) = r->fn;
        void *arg = r->arg;
        pthread_mutex_unlock(&r->mu);
        fn(t->slot, arg);
        pthread_mutex_lock(&r->mu);
        if (--r->pending == 0)
            pthread_cond_signal(&r->done_cv);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

imp_error_t *send_runners_new(size_t n, send_runners_t **out)
{
    send_runners_t *r = imp_calloc(1, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->done_cv, NULL);
    r->n = n;
    r->runners = imp_calloc(n + 1, sizeof(*r->runners));
    for (size_t s = 1; s <= n; s++) {
        helper_t *t = &r->runners[s];
        *t = (helper_t){.r = r, .slot = s};
        pthread_cond_init(&t->go_cv, NULL);
        if (pthread_create(&t->thread, NULL, helper_main, t) != 0) {
            pthread_cond_destroy(&t->go_cv);
            send_runners_free(r);
            return imp_error_new(IMP_ERR_FATAL, "thread", "could not start call thread %zu", s);
        }
        r->started = s;
    }
    *out = r;
    return NULL;
}

void send_runners_run(send_runners_t *r, size_t nslots, void (*fn)(size_t slot, void *arg),
                      void *arg)
{
    size_t helpers = nslots > 1 && r != NULL ? nslots - 1 : 0;
    if (r != NULL && helpers > r->n)
        helpers = r->n;
    if (helpers > 0) {
        pthread_mutex_lock(&r->mu);
        r->fn = fn;
        r->arg = arg;
        r->pending = helpers;
        for (size_t s = 1; s <= helpers; s++) {
            r->runners[s].go = true;
            pthread_cond_signal(&r->runners[s].go_cv);
        }
        pthread_mutex_unlock(&r->mu);
    }
    fn(0, arg);
    if (helpers > 0) {
        pthread_mutex_lock(&r->mu);
        while (r->pending > 0)
            pthread_cond_wait(&r->done_cv, &r->mu);
        pthread_mutex_unlock(&r->mu);
    }
}

void send_runners_free(send_runners_t *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    for (size_t s = 1; s <= r->started; s++)
        pthread_cond_signal(&r->runners[s].go_cv);
    pthread_mutex_unlock(&r->mu);
    for (size_t s = 1; s <= r->started; s++) {
        pthread_join(r->runners[s].thread, NULL);
        pthread_cond_destroy(&r->runners[s].go_cv);
    }
    pthread_cond_destroy(&r->done_cv);
    pthread_mutex_destroy(&r->mu);
    free(r->runners);
    free(r);
}
