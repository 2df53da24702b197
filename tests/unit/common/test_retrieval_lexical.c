/* Full text in memory: the tsvector text Postgres prints, the lexicon built from it, and
 * BM25 over it (rare terms outweigh common ones, headings count twice, configurations add up,
 * ties by ordinal, lexemes absent from the version). */
#include "kb_lexicon.c" /* the module itself: its parser is tested directly */

#include "imp/retrieval.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(tsvector_text)
{
    const char *p = "'it''s':1A,2 'a\\\\b':3 'ц':4B 'plain'";
    entry_t e;
    ck_assert_int_eq(next_entry(&p, &e), 1);
    e.lexeme[e.len] = '\0';
    ck_assert_str_eq(e.lexeme + 1, "it's");
    ck_assert_uint_eq(e.tf_head, 1);
    ck_assert_uint_eq(e.tf, 1);
    ck_assert_int_eq(next_entry(&p, &e), 1);
    e.lexeme[e.len] = '\0';
    ck_assert_str_eq(e.lexeme + 1, "a\\b");
    ck_assert_int_eq(next_entry(&p, &e), 1);
    e.lexeme[e.len] = '\0';
    ck_assert_str_eq(e.lexeme + 1, "ц");
    ck_assert_uint_eq(e.tf, 1); /* weight B is not the heading */
    ck_assert_int_eq(next_entry(&p, &e), 1);
    ck_assert_uint_eq(e.tf, 1); /* stripped: present once */
    ck_assert_int_eq(next_entry(&p, &e), 0);

    const char *bad[] = {"'open", "x:1", "'a':", "'a':1A,", "'a'b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *q = bad[i];
        int rc;
        while ((rc = next_entry(&q, &e)) == 1)
            ;
        ck_assert_msg(rc == -1, "\"%s\" parsed", bad[i]);
    }
    kb_lexicon_t *lx = kb_lexicon_new();
    ck_assert_int_eq(kb_lexicon_add_tsvector(lx, 0, KB_LEX_SIMPLE, "'ok':1 'broken"), -1);
    ck_assert_uint_eq(kb_lexicon_terms(lx), 0); /* nothing of a malformed text is kept */
    ck_assert_int_eq(kb_lexicon_add_tsvector(lx, 0, KB_LEX_SIMPLE, ""), 0);
    kb_lexicon_free(lx);
}
END_TEST

/* Five chunks; vectors do not matter here. */
static imp_retrieval_index_t *corpus(void)
{
    static const char *const ru[] = {
        "'стрижк':1A 'цен':2A 'женск':3 'стрижк':4",     /* heading and text */
        "'стрижк':5 'окрашиван':1A,2 'цен':3",           /* text only */
        "'парковк':1A 'двор':2 'цен':3",                 /* no haircut */
        "'цен':1A 'маникюр':2 'педикюр':3 'стрижк':4,5", /* twice in the text */
        "'цен':1 'оплат':2A",
    };
    imp_retrieval_index_t *idx = imp_retrieval_index_new("t", "v", "hash", "m", 4);
    float v[4] = {1, 0, 0, 0};
    for (int i = 0; i < 5; i++) {
        imp_retrieval_index_add(idx, 100 + i, i * 10, "s", "", "x", v);
        ck_assert_int_eq(imp_retrieval_index_add_tsvector(idx, 1, ru[i]), 0);
        ck_assert_int_eq(imp_retrieval_index_add_tsvector(idx, 0, i == 2 ? "'парковка':1A" : ""),
                         0);
    }
    ck_assert_int_eq(imp_retrieval_index_add_tsvector(idx, 7, "'x':1"), -1);
    imp_retrieval_index_seal(idx);
    return idx;
}

static size_t search(const imp_retrieval_index_t *idx, char **ru, size_t nru, char **simple,
                     size_t nsimple, imp_retrieval_fts_hit_t *out, size_t n)
{
    imp_retrieval_lexemes_t q = {{simple, ru, NULL}, {nsimple, nru, 0}};
    size_t got = 0;
    imp_retrieval_lexical(idx, &q, n, out, &got);
    return got;
}

START_TEST(bm25_ranking)
{
    imp_retrieval_index_t *idx = corpus();
    ck_assert_uint_eq(imp_retrieval_index_terms(idx), 10); /* 9 Russian, 1 simple */
    imp_retrieval_fts_hit_t hits[8];

    /* "цен" is in every chunk: it alone ranks by the heading, then the shorter text. */
    char *common[] = {"цен"};
    ck_assert_uint_eq(search(idx, common, 1, NULL, 0, hits, 8), 5);
    ck_assert_int_eq(hits[0].ordinal, 0); /* heading, length 4 */
    ck_assert_double_gt(hits[0].score, 0);
    ck_assert_double_lt(hits[0].score, 0.5); /* idf of a term in every chunk is small */

    /* A rare term decides over a common one. */
    char *q2[] = {"цен", "парковк"};
    ck_assert_uint_eq(search(idx, q2, 2, NULL, 0, hits, 8), 5);
    ck_assert_int_eq(hits[0].ordinal, 20);

    /* The heading occurrence outweighs two in the text of a longer chunk. */
    char *haircut[] = {"стрижк"};
    ck_assert_uint_eq(search(idx, haircut, 1, NULL, 0, hits, 8), 3);
    ck_assert_int_eq(hits[0].ordinal, 0);
    ck_assert_int_eq(hits[1].ordinal, 30);
    ck_assert_int_eq(hits[2].ordinal, 10);

    /* Configurations add up: the same chunk found in 'simple' too gains. */
    char *park_simple[] = {"парковка"};
    char *park_ru[] = {"парковк"};
    imp_retrieval_fts_hit_t one[1];
    search(idx, park_ru, 1, NULL, 0, one, 1);
    double ru_only = one[0].score;
    ck_assert_uint_eq(search(idx, park_ru, 1, park_simple, 1, one, 1), 1);
    ck_assert_int_eq(one[0].ordinal, 20);
    ck_assert_double_gt(one[0].score, ru_only);

    /* Absent lexemes, the wrong configuration, n smaller than the matches. */
    char *absent[] = {"погод"};
    ck_assert_uint_eq(search(idx, absent, 1, NULL, 0, hits, 8), 0);
    ck_assert_uint_eq(search(idx, NULL, 0, haircut, 1, hits, 8), 0);
    ck_assert_uint_eq(search(idx, common, 1, NULL, 0, hits, 2), 2);
    ck_assert_uint_eq(search(idx, common, 1, NULL, 0, hits, 0), 0);
    imp_retrieval_index_unref(idx);
}
END_TEST

/* Equal scores keep ordinal order. */
START_TEST(ties_by_ordinal)
{
    imp_retrieval_index_t *idx = imp_retrieval_index_new("t", "v", "hash", "m", 4);
    float v[4] = {1, 0, 0, 0};
    for (int i = 0; i < 6; i++) {
        imp_retrieval_index_add(idx, i, 5 + i * 5, "s", "", "x", v);
        imp_retrieval_index_add_tsvector(idx, 2, "'same':1 'other':2");
    }
    imp_retrieval_index_seal(idx);
    char *q[] = {"same"};
    imp_retrieval_lexemes_t lx = {{NULL, NULL, q}, {0, 0, 1}};
    imp_retrieval_fts_hit_t hits[4];
    size_t got = 0;
    imp_retrieval_lexical(idx, &lx, 4, hits, &got);
    ck_assert_uint_eq(got, 4);
    for (size_t i = 1; i < got; i++) {
        ck_assert_double_eq(hits[i].score, hits[0].score);
        ck_assert_int_gt(hits[i].ordinal, hits[i - 1].ordinal);
    }
    ck_assert_uint_gt(imp_retrieval_index_bytes(idx), 0);
    imp_retrieval_index_unref(idx);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("retrieval_lexical");
    TCase *tc = tcase_create("lexical");
    tcase_add_test(tc, tsvector_text);
    tcase_add_test(tc, bm25_ranking);
    tcase_add_test(tc, ties_by_ordinal);
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
