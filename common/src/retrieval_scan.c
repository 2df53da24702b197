/* The scans of a retrieval index: the exact dense top-n (a quantised prefilter, then the
 * float32 matrix, on one or more threads) and the full-text top-n with BM25 over the
 * in-memory lexicon. */
#include "retrieval_internal.h"

#include "imp/mem.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MIN_ROWS_PER_THREAD 1024 /* below this a thread costs more than it saves */

/* ---- dense search ---------------------------------------------------------------------- */

typedef float v4f __attribute__((vector_size(16)));

/* Four independent 4-wide accumulators (GCC/Clang vector extensions: SSE2 on any x86-64,
 * NEON on ARM). */
float retrieval_dot(const float *a, const float *b, size_t n)
{
    v4f s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        v4f a0, a1, a2, a3, b0, b1, b2, b3;
        memcpy(&a0, a + i, 16);
        memcpy(&a1, a + i + 4, 16);
        memcpy(&a2, a + i + 8, 16);
        memcpy(&a3, a + i + 12, 16);
        memcpy(&b0, b + i, 16);
        memcpy(&b1, b + i + 4, 16);
        memcpy(&b2, b + i + 8, 16);
        memcpy(&b3, b + i + 12, 16);
        s0 += a0 * b0;
        s1 += a1 * b1;
        s2 += a2 * b2;
        s3 += a3 * b3;
    }
    v4f s = (s0 + s1) + (s2 + s3);
    float r = (s[0] + s[1]) + (s[2] + s[3]);
    for (; i < n; i++)
        r += a[i] * b[i];
    return r;
}

/* Heap order: the root is the worst kept hit (lowest score; among equals the highest row). */
static bool worse(const imp_retrieval_dense_hit_t *x, const imp_retrieval_dense_hit_t *y)
{
    return x->score < y->score || (x->score == y->score && x->row > y->row);
}

static void sift_down(imp_retrieval_dense_hit_t *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(&h[l], &h[m]))
            m = l;
        if (r < n && worse(&h[r], &h[m]))
            m = r;
        if (m == i)
            return;
        imp_retrieval_dense_hit_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void sift_up(imp_retrieval_dense_hit_t *h, size_t i)
{
    while (i > 0 && worse(&h[i], &h[(i - 1) / 2])) {
        imp_retrieval_dense_hit_t t = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

/* A bounded heap of the best n hits seen: O(rows * log n), no sort of all rows. */
typedef struct {
    imp_retrieval_dense_hit_t *h;
    size_t n, kept;
} topn_t;

static void topn_offer(topn_t *t, size_t row, float score)
{
    imp_retrieval_dense_hit_t hit = {row, score};
    if (t->kept < t->n) {
        t->h[t->kept] = hit;
        sift_up(t->h, t->kept++);
    } else if (t->n > 0 && worse(&t->h[0], &hit)) {
        t->h[0] = hit;
        sift_down(t->h, t->kept, 0);
    }
}

/* Heap sort in place, worst moved to the end each time: best first. */
static void topn_finish(topn_t *t)
{
    for (size_t end = t->kept; end > 1; end--) {
        imp_retrieval_dense_hit_t x = t->h[0];
        t->h[0] = t->h[end - 1];
        t->h[end - 1] = x;
        sift_down(t->h, end - 1, 0);
    }
}

/* ---- the exact scan and its quantised prefilter ----------------------------------------
 *
 * Reading the float32 matrix is what a dense search costs (4 KiB a row at 1024 dimensions:
 * the scan runs at memory speed). So the rows are first scored from a copy quantised to
 * 16-bit integers — half the bytes, and integer multiply-adds — with a bound on each
 * score's error; only the rows whose upper bound reaches the n-th best lower bound are
 * scored again from the float32 matrix. The result is exactly the top n of the float32
 * scores (same scores, same order), because a row left out is provably below it:
 *
 *   x = s_r * x' + e (|e_i| <= s_r / 2),  q = s_q * q' + d (|d_i| <= s_q / 2), so
 *   |q.x - s_q s_r (q'.x')| <= s_r / 2 * |q|_1 + s_q / 2 * s_r * |x'|_1   (+ float rounding)
 *
 * The n rows with the largest lower bounds all score at least the smallest of those, T; a
 * row whose upper bound is below T cannot be among the best n. Typically a few more than n
 * rows are scored again. */
#define QX 2047     /* quantised matrix values lie in [-QX, QX] */
#define QQ 1023     /* quantised query values lie in [-QQ, QQ] */
#define QBLOCK 1024 /* QBLOCK * QQ * QX < 2^31: partial sums of this many fit in int32 */

void retrieval_quantize(imp_retrieval_index_t *idx)
{
    size_t n = idx->n, dim = idx->dim;
    idx->qmatrix = imp_malloc((n * dim + 1) * sizeof(*idx->qmatrix));
    idx->qscale = imp_malloc((n + 1) * sizeof(*idx->qscale));
    idx->ql1 = imp_malloc((n + 1) * sizeof(*idx->ql1));
    idx->ql2 = imp_malloc((n + 1) * sizeof(*idx->ql2));
    for (size_t r = 0; r < n; r++) {
        const float *x = idx->matrix + r * dim;
        int16_t *out = idx->qmatrix + r * dim;
        double max = 0, l1 = 0, l2 = 0;
        for (size_t i = 0; i < dim; i++) {
            max = fabs(x[i]) > max ? fabs(x[i]) : max;
            l2 += (double)x[i] * x[i];
        }
        double s = max / QX;
        for (size_t i = 0; i < dim; i++) {
            long v = s > 0 ? lrint(x[i] / s) : 0;
            out[i] = (int16_t)(v > QX ? QX : v < -QX ? -QX : v);
            l1 += labs(v);
        }
        idx->qscale[r] = s;
        idx->ql1[r] = l1;
        idx->ql2[r] = sqrt(l2);
    }
}

typedef struct {
    int16_t *q;      /* dim values in [-QQ, QQ] */
    double scale;    /* s_q */
    double l1;       /* |q|_1 of the float query */
    double rounding; /* times |x|_2: the float rounding of an exact score, with margin */
} qquery_t;

/* False when the query is all zeros (every score is 0: no prefilter needed). */
static bool quantize_query(const float *q, size_t dim, qquery_t *out)
{
    double max = 0, l1 = 0, l2 = 0;
    for (size_t i = 0; i < dim; i++) {
        max = fabs(q[i]) > max ? fabs(q[i]) : max;
        l1 += fabs(q[i]);
        l2 += (double)q[i] * q[i];
    }
    if (max == 0)
        return false;
    out->q = imp_malloc(dim * sizeof(*out->q));
    out->scale = max / QQ;
    out->l1 = l1;
    /* A float sum of dim products errs by at most dim * 2^-24 * sum |q_i x_i|, and that sum
     * is at most |q|_2 |x|_2; four times that covers the bounds' own rounding too. */
    out->rounding = 4.0 * (double)dim / 16777216.0 * sqrt(l2);
    for (size_t i = 0; i < dim; i++) {
        long v = lrint(q[i] / out->scale);
        out->q[i] = (int16_t)(v > QQ ? QQ : v < -QQ ? -QQ : v);
    }
    return true;
}

/* Integer dot product; the inner loop is one the compiler vectorises (pmaddwd on x86). */
static int64_t qdot(const int16_t *a, const int16_t *b, size_t dim)
{
    int64_t total = 0;
    for (size_t start = 0; start < dim; start += QBLOCK) {
        size_t end = start + QBLOCK < dim ? start + QBLOCK : dim;
        int32_t s = 0;
        for (size_t i = start; i < end; i++)
            s += (int32_t)a[i] * b[i];
        total += s;
    }
    return total;
}

/* The rows are scanned in blocks that the participants claim one at a time, so a thread
 * that the scheduler leaves waiting slows nobody down: the others take its share, and the
 * caller waits only for blocks actually claimed. Each participant keeps its own best n and
 * merges it at the end. Helper threads are detached and hold a reference to the index; the
 * job is freed by whoever leaves it last. */
#define BLOCK_SCAN_ROWS 512 /* 1 MiB of the quantised copy at 1024 dimensions */

struct retrieval_dense_job {
    imp_retrieval_index_t *idx; /* a reference */
    float *q;                   /* a copy: the caller may free its own */
    qquery_t qq;
    bool prefilter;
    float *hi; /* per row: the upper bound of its score (prefilter) */
    size_t n, nblocks;
    atomic_size_t next_block;
    atomic_int refs;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t blocks_done;                /* under mu */
    imp_retrieval_dense_hit_t *merged; /* under mu: n entries (lower bounds, or scores) */
    size_t nmerged;
};

/* Exact scores of rows [begin, end). */
static void scan_exact(const retrieval_dense_job_t *j, size_t begin, size_t end, topn_t *top)
{
    const imp_retrieval_index_t *idx = j->idx;
    for (size_t row = begin; row < end; row++)
        topn_offer(top, row, retrieval_dot(j->q, idx->matrix + row * idx->dim, idx->dim));
}

/* Bounds of rows [begin, end): upper ones into hi, lower ones into the heap. */
static void scan_quantised(retrieval_dense_job_t *j, size_t begin, size_t end, topn_t *lo)
{
    const imp_retrieval_index_t *idx = j->idx;
    const qquery_t *qq = &j->qq;
    for (size_t row = begin; row < end; row++) {
        double s = idx->qscale[row];
        double approx =
            qq->scale * s * (double)qdot(qq->q, idx->qmatrix + row * idx->dim, idx->dim);
        double err =
            s * 0.5 * (qq->l1 + qq->scale * idx->ql1[row]) + qq->rounding * idx->ql2[row] + 1e-6;
        j->hi[row] = (float)(approx + err);
        topn_offer(lo, row, (float)(approx - err));
    }
}

static void job_release(retrieval_dense_job_t *j)
{
    if (atomic_fetch_sub(&j->refs, 1) != 1)
        return;
    imp_retrieval_index_unref(j->idx);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j->merged);
    free(j->hi);
    free(j->qq.q);
    free(j->q);
    free(j);
}

/* Claim and scan blocks until none is left, then merge what was found. */
static void participate(retrieval_dense_job_t *j)
{
    imp_retrieval_dense_hit_t *buf = imp_malloc((j->n + 1) * sizeof(*buf));
    topn_t top = {buf, j->n, 0};
    size_t done = 0, b;
    while ((b = atomic_fetch_add(&j->next_block, 1)) < j->nblocks) {
        size_t end = (b + 1) * BLOCK_SCAN_ROWS < j->idx->n ? (b + 1) * BLOCK_SCAN_ROWS : j->idx->n;
        if (j->prefilter)
            scan_quantised(j, b * BLOCK_SCAN_ROWS, end, &top);
        else
            scan_exact(j, b * BLOCK_SCAN_ROWS, end, &top);
        done++;
    }
    pthread_mutex_lock(&j->mu);
    topn_t merged = {j->merged, j->n, j->nmerged};
    for (size_t i = 0; i < top.kept; i++)
        topn_offer(&merged, top.h[i].row, top.h[i].score);
    j->nmerged = merged.kept;
    j->blocks_done += done;
    if (j->blocks_done == j->nblocks)
        pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    free(buf);
}

static void *helper_main(void *arg)
{
    participate(arg);
    job_release(arg);
    return NULL;
}

retrieval_dense_job_t *retrieval_dense_begin(imp_retrieval_index_t *idx, const float *q, size_t n,
                                             size_t threads)
{
    assert(idx->qmatrix != NULL || idx->n == 0); /* sealed */
    retrieval_dense_job_t *j = imp_calloc(1, sizeof(*j));
    j->idx = imp_retrieval_index_ref(idx);
    j->q = imp_malloc(idx->dim * sizeof(float));
    memcpy(j->q, q, idx->dim * sizeof(float));
    j->n = n < idx->n ? n : idx->n;
    j->nblocks = j->n > 0 ? (idx->n + BLOCK_SCAN_ROWS - 1) / BLOCK_SCAN_ROWS : 0;
    j->merged = imp_malloc((j->n + 1) * sizeof(*j->merged));
    j->prefilter = j->n > 0 && quantize_query(q, idx->dim, &j->qq);
    if (j->prefilter)
        j->hi = imp_malloc(idx->n * sizeof(*j->hi));
    atomic_init(&j->next_block, 0);
    atomic_init(&j->refs, 1);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    if (threads > IMP_RETRIEVAL_MAX_THREADS)
        threads = IMP_RETRIEVAL_MAX_THREADS;
    if (idx->n < MIN_ROWS_PER_THREAD * (threads > 0 ? threads : 1))
        threads = 1; /* a thread would cost more than it saves */
    for (size_t t = 1; t < threads && j->nblocks > 1; t++) {
        pthread_t tid;
        atomic_fetch_add(&j->refs, 1);
        if (pthread_create(&tid, NULL, helper_main, j) != 0) {
            atomic_fetch_sub(&j->refs, 1); /* the caller scans its share */
            break;
        }
        pthread_detach(tid);
    }
    return j;
}

void retrieval_dense_end(retrieval_dense_job_t *j, imp_retrieval_dense_hit_t *out, size_t *nout)
{
    participate(j);
    pthread_mutex_lock(&j->mu);
    while (j->blocks_done < j->nblocks)
        pthread_cond_wait(&j->cv, &j->mu);
    pthread_mutex_unlock(&j->mu);
    topn_t top = {out, j->n, 0};
    if (j->prefilter) {
        /* The n-th best lower bound (the heap's root), or no bar when fewer rows. */
        float bar = j->nmerged == j->n ? j->merged[0].score : -INFINITY;
        for (size_t row = 0; row < j->idx->n; row++)
            if (j->hi[row] >= bar)
                scan_exact(j, row, row + 1, &top);
    } else {
        for (size_t i = 0; i < j->nmerged; i++)
            topn_offer(&top, j->merged[i].row, j->merged[i].score);
    }
    topn_finish(&top);
    *nout = top.kept;
    job_release(j);
}

void imp_retrieval_dense_plain(const imp_retrieval_index_t *idx, const float *q, size_t n,
                               imp_retrieval_dense_hit_t *out, size_t *nout)
{
    topn_t top = {out, n < idx->n ? n : idx->n, 0};
    for (size_t row = 0; row < idx->n; row++)
        topn_offer(&top, row, retrieval_dot(q, idx->matrix + row * idx->dim, idx->dim));
    topn_finish(&top);
    *nout = top.kept;
}

void imp_retrieval_dense(const imp_retrieval_index_t *idx, const float *q, size_t n, size_t threads,
                         imp_retrieval_dense_hit_t *out, size_t *nout)
{
    /* The job's reference does not modify the index's contents. */
    retrieval_dense_end(retrieval_dense_begin((imp_retrieval_index_t *)idx, q, n, threads), out,
                        nout);
}

/* ---- full text ---------------------------------------------------------------------------- */

void imp_retrieval_lexical(const imp_retrieval_index_t *idx, const imp_retrieval_lexemes_t *q,
                           size_t n, imp_retrieval_fts_hit_t *out, size_t *nout)
{
    assert(kb_lexicon_sealed(idx->lexicon));
    *nout = 0;
    if (idx->n == 0 || n == 0)
        return;
    float *score = imp_calloc(idx->n, sizeof(*score));
    uint32_t *touched = imp_malloc(idx->n * sizeof(*touched));
    size_t ntouched = 0;
    for (int c = 0; c < IMP_RETRIEVAL_CONFIGS; c++)
        for (size_t i = 0; i < q->n[c]; i++)
            kb_lexicon_score(idx->lexicon, c, q->lex[c][i], score, touched, &ntouched);
    imp_retrieval_dense_hit_t *heap = imp_malloc(n * sizeof(*heap));
    topn_t top = {heap, n, 0};
    for (size_t i = 0; i < ntouched; i++)
        topn_offer(&top, touched[i], score[touched[i]]);
    topn_finish(&top);
    for (size_t i = 0; i < top.kept; i++)
        out[i] = (imp_retrieval_fts_hit_t){idx->chunks[heap[i].row].ordinal, heap[i].score};
    *nout = top.kept;
    free(heap);
    free(touched);
    free(score);
}
