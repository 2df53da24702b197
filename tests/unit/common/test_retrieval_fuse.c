/* Retrieval without Postgres: the exact dense top-n against a brute-force sort, on one and
 * several threads and while the caller does something else, reciprocal
 * rank fusion with given full-text hits (ranks, scores, ties, unknown and repeated ordinals,
 * k), the confidence formula, the embedder check, the log JSON, references, and the cache's
 * bookkeeping (LRU bound, invalidation, a load racing an invalidation). */
#include "retrieval.c"       /* the module itself: its static helpers are tested directly */
#include "retrieval_cache.c" /* the cache's insert and eviction */

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TENANT_A "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
#define TENANT_B "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"

static unsigned long long rng = 88172645463325252ULL;

static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void random_unit(float *v, size_t dim)
{
    for (size_t k = 0; k < dim; k++)
        v[k] = frand();
    imp_embed_normalize(v, dim);
}

static imp_retrieval_index_t *random_index(size_t n, size_t dim)
{
    imp_retrieval_index_t *idx = imp_retrieval_index_new(TENANT_A, "v1", "hash", "m", dim);
    float *v = imp_malloc(dim * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        random_unit(v, dim);
        imp_retrieval_index_add(idx, (int64_t)i + 1000, (int32_t)i, "src", "", "text", v);
    }
    free(v);
    imp_retrieval_index_seal(idx);
    return idx;
}

typedef struct {
    size_t row;
    float score;
} scored_t;

static int cmp_scored(const void *a, const void *b)
{
    const scored_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

START_TEST(dense_is_exact)
{
    const size_t n = 5000, dim = 64, top = 10;
    imp_retrieval_index_t *idx = random_index(n, dim);
    float q[64];
    random_unit(q, dim);
    scored_t *all = imp_malloc(n * sizeof(*all));
    for (size_t i = 0; i < n; i++)
        all[i] = (scored_t){i, retrieval_dot(q, imp_retrieval_index_vector(idx, i), dim)};
    qsort(all, n, sizeof(*all), cmp_scored);
    /* One thread or several, with the caller joining at once or after a while: all the same
     * top, equal to the sort of every score. */
    for (size_t threads = 1; threads <= 4; threads++) {
        for (int late = 0; late < 2; late++) {
            imp_retrieval_dense_hit_t hits[10];
            size_t nh = 0;
            retrieval_dense_job_t *job = retrieval_dense_begin(idx, q, top, threads);
            if (late)
                usleep(20000); /* the helpers take most blocks meanwhile */
            retrieval_dense_end(job, hits, &nh);
            ck_assert_uint_eq(nh, top);
            for (size_t i = 0; i < top; i++) {
                ck_assert_uint_eq(hits[i].row, all[i].row);
                ck_assert_float_eq(hits[i].score, all[i].score);
            }
        }
    }
    /* The kernel against a plain loop. */
    double plain = 0;
    for (size_t k = 0; k < dim; k++)
        plain += (double)q[k] * imp_retrieval_index_vector(idx, 7)[k];
    ck_assert_double_eq_tol(retrieval_dot(q, imp_retrieval_index_vector(idx, 7), dim), plain, 1e-5);
    free(all);
    imp_retrieval_index_unref(idx);
}
END_TEST

/* The quantised prefilter never drops a row of the exact top n: clusters of near-duplicate
 * rows (differences far below the quantisation step), rows with one dominant component,
 * rows that are not normalised, and queries taken from the clusters, against a brute-force
 * sort of the float32 scores. */
START_TEST(prefilter_is_exact)
{
    const size_t dim = 96, clusters = 150, copies = 6, top = 25;
    imp_retrieval_index_t *idx = imp_retrieval_index_new(TENANT_A, "v1", "hash", "m", dim);
    float base[96], v[96];
    size_t n = 0;
    for (size_t c = 0; c < clusters; c++) {
        random_unit(base, dim);
        for (size_t k = 0; k < copies; k++, n++) {
            for (size_t i = 0; i < dim; i++)
                v[i] = base[i] + frand() * 1e-5f;
            if (c % 10 == 0) /* spiky: one component dominates the row's scale */
                v[c % dim] += 5.0f;
            imp_embed_normalize(v, dim);
            if (c % 7 == 0) /* longer than 1 */
                for (size_t i = 0; i < dim; i++)
                    v[i] *= 7.0f;
            imp_retrieval_index_add(idx, (int64_t)n, (int32_t)n, "s", "", "t", v);
        }
    }
    imp_retrieval_index_seal(idx);
    scored_t *all = imp_malloc(n * sizeof(*all));
    for (size_t qn = 0; qn < 40; qn++) {
        const float *qv = imp_retrieval_index_vector(idx, (qn * 37) % n);
        for (size_t i = 0; i < dim; i++)
            v[i] = qv[i] + frand() * 1e-3f;
        imp_embed_normalize(v, dim);
        for (size_t i = 0; i < n; i++)
            all[i] = (scored_t){i, retrieval_dot(v, imp_retrieval_index_vector(idx, i), dim)};
        qsort(all, n, sizeof(*all), cmp_scored);
        imp_retrieval_dense_hit_t hits[25];
        size_t nh = 0;
        imp_retrieval_dense(idx, v, top, 1 + qn % 2, hits, &nh);
        ck_assert_uint_eq(nh, top);
        for (size_t i = 0; i < top; i++) {
            ck_assert_uint_eq(hits[i].row, all[i].row);
            ck_assert_float_eq(hits[i].score, all[i].score);
        }
    }
    free(all);
    imp_retrieval_index_unref(idx);
}
END_TEST

START_TEST(dense_ties_and_bounds)
{
    imp_retrieval_index_t *idx = imp_retrieval_index_new(TENANT_A, "v1", "hash", "m", 4);
    float same[4] = {1, 0, 0, 0}, other[4] = {0, 1, 0, 0};
    for (int i = 0; i < 5; i++)
        imp_retrieval_index_add(idx, i, i, "s", "", "t", i == 2 ? other : same);
    imp_retrieval_index_seal(idx);
    imp_retrieval_dense_hit_t hits[8];
    size_t nh = 0;
    imp_retrieval_dense(idx, same, 3, 1, hits, &nh);
    ck_assert_uint_eq(nh, 3);
    ck_assert_uint_eq(hits[0].row, 0); /* equal scores: lower rows first */
    ck_assert_uint_eq(hits[1].row, 1);
    ck_assert_uint_eq(hits[2].row, 3);
    imp_retrieval_dense(idx, same, 8, 4, hits, &nh); /* more than the index holds */
    ck_assert_uint_eq(nh, 5);
    ck_assert_uint_eq(hits[4].row, 2);
    imp_retrieval_dense(idx, same, 0, 1, hits, &nh);
    ck_assert_uint_eq(nh, 0);
    imp_retrieval_index_unref(idx);
}
END_TEST

/* Six chunks (ordinals 10..60) at known cosines to the query e0: 1, .8, .6, 0, 0, -1. */
static imp_retrieval_index_t *known_index(void)
{
    static const float rows[6][4] = {{1, 0, 0, 0}, {0.8f, 0.6f, 0, 0}, {0.6f, 0.8f, 0, 0},
                                     {0, 1, 0, 0}, {0, 0, 1, 0},       {-1, 0, 0, 0}};
    static const char *const headings[] = {"A", "B", "C", "D", "E", "F"};
    imp_retrieval_index_t *idx = imp_retrieval_index_new(TENANT_A, "v1", "hash", "m", 4);
    for (int i = 0; i < 6; i++)
        imp_retrieval_index_add(idx, 100 + i, 10 * (i + 1), i < 3 ? "one.md" : "two.md",
                                headings[i], "text of the chunk", rows[i]);
    imp_retrieval_index_seal(idx);
    return idx;
}

static const float E0[4] = {1, 0, 0, 0};

START_TEST(fusion_ranks_and_scores)
{
    imp_retrieval_index_t *idx = known_index();
    /* Full text found D first and B second; 999 is not in the index, 20 again is ignored. */
    imp_retrieval_fts_hit_t fts[] = {{40, 2.5}, {20, 1.25}, {999, 1.0}, {20, 0.5}};
    imp_retrieval_params_t p = {
        .k = 3, .fts_n = 10, .dense_n = 3, .rrf_k = 60, .dense_floor = 0.2, .dense_full = 1.0};
    imp_retrieval_result_t res = {0};
    imp_retrieval_fuse(idx, E0, fts, 4, &p, &res);
    ck_assert_uint_eq(res.n, 3);
    /* B: 1/62 (text, 2nd) + 1/62 (dense, 2nd); A: 1/61 (dense, 1st); D: 1/61 (text, 1st);
     * C (1/63, dense 3rd) is fourth. A and D tie: both first somewhere, A is closer. */
    const imp_retrieval_hit_t *h = res.hits;
    ck_assert_str_eq(h[0].chunk->heading, "B");
    ck_assert_double_eq_tol(h[0].score, 2.0 / 62, 1e-12);
    ck_assert_int_eq(h[0].fts_rank, 2);
    ck_assert_double_eq(h[0].fts_score, 1.25);
    ck_assert_int_eq(h[0].dense_rank, 2);
    ck_assert_double_eq_tol(h[0].dense_score, 0.8, 1e-6);
    ck_assert_str_eq(h[1].chunk->heading, "A");
    ck_assert_double_eq_tol(h[1].score, 1.0 / 61, 1e-12);
    ck_assert_int_eq(h[1].fts_rank, 0);
    ck_assert_int_eq(h[1].dense_rank, 1);
    ck_assert_str_eq(h[2].chunk->heading, "D");
    ck_assert_int_eq(h[2].fts_rank, 1);
    ck_assert_double_eq(h[2].fts_score, 2.5);
    ck_assert_int_eq(h[2].dense_rank, 0);
    ck_assert_double_eq_tol(h[2].dense_score, 0.0, 1e-6); /* computed though not a candidate */
    ck_assert_int_eq(h[2].chunk->ordinal, 40);
    ck_assert_int_eq(h[2].chunk->id, 103);
    /* Confidence: F = (2/62) / (2/61), D = (0.8 - 0.2) / (1.0 - 0.2). */
    ck_assert_double_eq_tol(res.confidence, sqrt(61.0 / 62.0 * 0.75),
                            1e-6); /* cosines are floats */
    imp_retrieval_result_dispose(&res);
    imp_retrieval_result_dispose(&res); /* idempotent */
    imp_retrieval_index_unref(idx);
}
END_TEST

START_TEST(fusion_confidence_cases)
{
    imp_retrieval_index_t *idx = known_index();
    imp_retrieval_params_t p = {
        .k = 8, .fts_n = 10, .dense_n = 50, .rrf_k = 60, .dense_floor = 0.2, .dense_full = 1.0};
    imp_retrieval_result_t res = {0};
    /* First in both lists with cosine 1: 1. */
    imp_retrieval_fts_hit_t first[] = {{10, 1.0}};
    imp_retrieval_fuse(idx, E0, first, 1, &p, &res);
    ck_assert_uint_eq(res.n, 6);
    ck_assert_double_eq_tol(res.confidence, 1.0, 1e-12);
    imp_retrieval_result_dispose(&res);
    /* No full-text hit: F = 1/2. */
    imp_retrieval_fuse(idx, E0, NULL, 0, &p, &res);
    ck_assert_double_eq_tol(res.confidence, sqrt(0.5), 1e-12);
    imp_retrieval_result_dispose(&res);
    /* The best is far from the query (D = 0): 0, however well the text matched. */
    const float e3[4] = {0, 0, 0, 1};
    imp_retrieval_fuse(idx, e3, first, 1, &p, &res);
    ck_assert_double_eq(res.confidence, 0.0);
    imp_retrieval_result_dispose(&res);
    /* Defaults fill what is unset. */
    imp_retrieval_fuse(idx, E0, NULL, 0, &(imp_retrieval_params_t){.k = 2}, &res);
    ck_assert_uint_eq(res.n, 2);
    imp_retrieval_result_dispose(&res);
    imp_retrieval_fuse(idx, E0, NULL, 0, NULL, &res);
    ck_assert_uint_eq(res.n, 6);
    imp_retrieval_result_dispose(&res);
    imp_retrieval_index_unref(idx);
}
END_TEST

START_TEST(empty_index)
{
    imp_retrieval_index_t *idx = imp_retrieval_index_new(TENANT_A, "v1", "hash", "m", 4);
    imp_retrieval_index_seal(idx);
    imp_retrieval_fts_hit_t fts[] = {{1, 1.0}};
    imp_retrieval_result_t res = {0};
    imp_retrieval_fuse(idx, E0, fts, 1, NULL, &res);
    ck_assert_uint_eq(res.n, 0);
    ck_assert_double_eq(res.confidence, 0.0);
    char *json = imp_retrieval_result_json(&res);
    ck_assert_str_eq(json, "[]");
    free(json);
    imp_retrieval_result_dispose(&res);
    imp_retrieval_index_unref(idx);
}
END_TEST

/* A result keeps its index alive after the caller let go of it. */
START_TEST(result_holds_a_reference)
{
    imp_retrieval_index_t *idx = known_index();
    imp_retrieval_result_t res = {0};
    imp_retrieval_fuse(idx, E0, NULL, 0, NULL, &res);
    imp_retrieval_index_unref(idx);
    ck_assert_str_eq(res.hits[0].chunk->text, "text of the chunk");
    char *json = imp_retrieval_result_json(&res);
    json_t *arr = json_loads(json, 0, NULL);
    ck_assert_uint_eq(json_array_size(arr), 6);
    json_t *best = json_array_get(arr, 0);
    ck_assert_int_eq(json_integer_value(json_object_get(best, "chunk_id")), 100);
    ck_assert_int_eq(json_integer_value(json_object_get(best, "ordinal")), 10);
    ck_assert_str_eq(json_string_value(json_object_get(best, "source")), "one.md");
    ck_assert_int_eq(json_integer_value(json_object_get(best, "dense_rank")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(best, "fts_rank")), 0);
    ck_assert_double_eq_tol(json_number_value(json_object_get(best, "dense_score")), 1.0, 1e-6);
    ck_assert_double_eq_tol(json_number_value(json_object_get(best, "score")), 1.0 / 61, 1e-6);
    json_decref(arr);
    free(json);
    imp_retrieval_result_dispose(&res);
}
END_TEST

START_TEST(matches_and_embedder_check)
{
    imp_retrieval_index_t *idx = known_index();
    const imp_retrieval_chunk_t *c = imp_retrieval_index_chunk(idx, 1);
    ck_assert(imp_retrieval_chunk_matches(c, "one.md", "B"));
    ck_assert(imp_retrieval_chunk_matches(c, NULL, "of the"));
    ck_assert(imp_retrieval_chunk_matches(c, "one.md", NULL));
    ck_assert(!imp_retrieval_chunk_matches(c, "two.md", "B"));
    ck_assert(!imp_retrieval_chunk_matches(c, NULL, "absent"));
    ck_assert_uint_eq(imp_retrieval_index_size(idx), 6);
    ck_assert_uint_eq(imp_retrieval_index_dim(idx), 4);
    ck_assert_str_eq(imp_retrieval_index_tenant(idx), TENANT_A);
    ck_assert_str_eq(imp_retrieval_index_version(idx), "v1");
    ck_assert_uint_eq(row_of(idx, 30), 2);
    ck_assert_uint_eq(row_of(idx, 35), SIZE_MAX);

    imp_embedder_t *e = NULL;
    ck_assert_ptr_null(imp_embed_hash_new(16, &e));
    imp_error_t *err = imp_retrieval_index_check_embedder(idx, e);
    ck_assert_str_eq(imp_error_code(err), "retrieval_embedder");
    ck_assert_str_eq(imp_error_message(err),
                     "kb version v1 was built with hash/m (dimension 4), the query embedder is "
                     "hash/hash-ngram-v1 (dimension 16)");
    imp_error_free(err);
    imp_retrieval_index_t *ok =
        imp_retrieval_index_new(TENANT_A, "v2", "hash", "hash-ngram-v1", 16);
    ck_assert_ptr_null(imp_retrieval_index_check_embedder(ok, e));
    imp_retrieval_index_unref(ok);
    imp_embedder_free(e);
    imp_retrieval_index_unref(idx);
}
END_TEST

/* ---- the cache ---------------------------------------------------------------------------- */

static imp_retrieval_index_t *sized_index(const char *tenant, const char *version)
{
    imp_retrieval_index_t *idx = imp_retrieval_index_new(tenant, version, "hash", "m", 256);
    float v[256] = {1};
    for (int i = 0; i < 100; i++) /* about 100 KiB */
        imp_retrieval_index_add(idx, i, i, "s", "", "t", v);
    return idx;
}

START_TEST(cache_bound_and_invalidation)
{
    imp_retrieval_index_t *probe = sized_index(TENANT_A, "p");
    size_t one = imp_retrieval_index_bytes(probe);
    imp_retrieval_index_unref(probe);
    imp_retrieval_cache_t *c = imp_retrieval_cache_new(2 * one + one / 2); /* room for two */

    imp_retrieval_index_t *a1 = insert(c, sized_index(TENANT_A, "1"), c->epoch);
    imp_retrieval_index_t *b1 = insert(c, sized_index(TENANT_B, "1"), c->epoch);
    ck_assert_ptr_eq(lookup(c, TENANT_A, "1")->idx, a1);
    lookup(c, TENANT_A, "1")->used = ++c->tick; /* A was used after B */
    imp_retrieval_index_t *a2 = insert(c, sized_index(TENANT_A, "2"), c->epoch);
    imp_retrieval_cache_stats_t st;
    imp_retrieval_cache_stats(c, &st);
    ck_assert_uint_eq(st.entries, 2);
    ck_assert_uint_eq(st.evictions, 1);
    ck_assert_uint_le(st.bytes, 2 * one + one / 2);
    ck_assert_ptr_null(lookup(c, TENANT_B, "1")); /* the least recently used went */
    ck_assert_ptr_nonnull(lookup(c, TENANT_A, "1"));
    ck_assert_str_eq(b1->version, "1"); /* still alive: the caller holds it */

    /* A second copy of a cached version: the cached one is returned, the copy freed. */
    imp_retrieval_index_t *again = insert(c, sized_index(TENANT_A, "2"), c->epoch);
    ck_assert_ptr_eq(again, a2);

    imp_retrieval_cache_invalidate(c, TENANT_A);
    imp_retrieval_cache_stats(c, &st);
    ck_assert_uint_eq(st.entries, 0);
    ck_assert_uint_eq(st.bytes, 0);

    /* A load that started before an invalidation is returned but not kept. */
    unsigned long long before = c->epoch;
    imp_retrieval_cache_invalidate(c, TENANT_B);
    imp_retrieval_index_t *stale = insert(c, sized_index(TENANT_B, "3"), before);
    ck_assert_ptr_null(lookup(c, TENANT_B, "3"));
    /* One larger than the whole cache is not kept either. */
    imp_retrieval_cache_t *tiny = imp_retrieval_cache_new(one / 2);
    imp_retrieval_index_t *big = insert(tiny, sized_index(TENANT_A, "9"), tiny->epoch);
    ck_assert_ptr_null(lookup(tiny, TENANT_A, "9"));

    imp_retrieval_index_unref(big);
    imp_retrieval_cache_free(tiny);
    imp_retrieval_index_unref(stale);
    imp_retrieval_index_unref(again);
    imp_retrieval_index_unref(a1);
    imp_retrieval_index_unref(a2);
    imp_retrieval_index_unref(b1);
    imp_retrieval_cache_free(c);
}
END_TEST

/* Many threads search one index at once and agree with a search done alone. */
static imp_retrieval_index_t *shared;
static float shared_q[64];

static void *search_thread(void *arg)
{
    size_t *top = arg;
    for (int i = 0; i < 50; i++) {
        imp_retrieval_result_t res = {0};
        imp_retrieval_fts_hit_t fts[] = {{5, 1.0}, {17, 0.5}};
        imp_retrieval_fuse(shared, shared_q, fts, 2, NULL, &res);
        *top = (size_t)res.hits[0].chunk->ordinal;
        imp_retrieval_result_dispose(&res);
    }
    return NULL;
}

START_TEST(concurrent_searches)
{
    shared = random_index(2000, 64);
    random_unit(shared_q, 64);
    size_t alone = 0, tops[4];
    search_thread(&alone);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, search_thread, &tops[i]);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_uint_eq(tops[i], alone);
    }
    ck_assert_uint_eq(atomic_load(&shared->refs), 1);
    imp_retrieval_index_unref(shared);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("retrieval_fuse");
    TCase *tc = tcase_create("fuse");
    tcase_add_test(tc, dense_is_exact);
    tcase_add_test(tc, prefilter_is_exact);
    tcase_add_test(tc, dense_ties_and_bounds);
    tcase_add_test(tc, fusion_ranks_and_scores);
    tcase_add_test(tc, fusion_confidence_cases);
    tcase_add_test(tc, empty_index);
    tcase_add_test(tc, result_holds_a_reference);
    tcase_add_test(tc, matches_and_embedder_check);
    tcase_add_test(tc, cache_bound_and_invalidation);
    tcase_add_test(tc, concurrent_searches);
    suite_add_tcase(s, tc);
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
