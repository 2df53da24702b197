/* What the retrieval module's files share (private to common/src/retrieval*.c). */
#ifndef IMP_RETRIEVAL_INTERNAL_H
#define IMP_RETRIEVAL_INTERNAL_H

#include "imp/retrieval.h"

#include "kb_lexicon.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct imp_retrieval_index {
    atomic_size_t refs;
    char *tenant, *version;
    char *embedder_name, *embedder_model;
    size_t dim, n, cap;
    float *matrix; /* cap rows of dim floats, MATRIX_ALIGN-aligned */
    imp_retrieval_chunk_t *chunks;
    size_t text_bytes;
    kb_lexicon_t *lexicon;
    long long expected; /* kb_versions.chunk_count, when loaded */
    /* Made by seal (retrieval_quantize): the matrix as 16-bit integers, each row scaled by
     * qscale[row]; the 1-norm of the row's integers ql1[row] and the 2-norm of its floats
     * ql2[row]. */
    int16_t *qmatrix;
    float *qscale, *ql1, *ql2;
};

/* Build the quantised copy of the matrix (seal). */
void retrieval_quantize(imp_retrieval_index_t *idx);

/* Dot product of two vectors of n floats. */
float retrieval_dot(const float *a, const float *b, size_t n);

/* A dense scan shared between the caller and threads - 1 helper threads, which start at
 * once: the caller may do something else (the full-text round trip to Postgres) before it
 * joins in with retrieval_dense_end. begin never fails: without threads the caller scans
 * everything in end. The job holds its own reference to the index and copy of q. */
typedef struct retrieval_dense_job retrieval_dense_job_t;
retrieval_dense_job_t *retrieval_dense_begin(imp_retrieval_index_t *idx, const float *q, size_t n,
                                             size_t threads);
/* Scan what is left, wait for the blocks the helpers took, put the best n into out (n
 * entries), release the job. */
void retrieval_dense_end(retrieval_dense_job_t *job, imp_retrieval_dense_hit_t *out, size_t *nout);

#endif
