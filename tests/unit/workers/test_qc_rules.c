/* imperium-qc's rules (workers/qc/rules.c): settings with defaults, Cyrillic-aware folding,
 * and the exact decision for each rule. */
#include "../../../workers/qc/rules.c"

#include <check.h>
#include <stdlib.h>

static qc_rules_t rules_from(const char *settings_json, int *ignored)
{
    json_t *s = json_loads(settings_json, 0, NULL);
    ck_assert_ptr_nonnull(s);
    qc_rules_t r;
    qc_rules_from_settings(s, &r, ignored);
    json_decref(s);
    return r;
}

static qc_draft_t good_draft(void)
{
    return (qc_draft_t){.question = "How much is a men's haircut?",
                        .answer = "Men's haircut 5,000 ₸, clipper cut 3,500 ₸",
                        .mode = "extractive",
                        .confidence = 0.8,
                        .ncitations = 1};
}

static void decide(const qc_rules_t *r, const qc_draft_t *d, bool pass, const char *reason)
{
    qc_decision_t dec;
    qc_decide(r, d, &dec);
    ck_assert_msg(dec.pass == pass, "pass: expected %d, got %d (%s)", pass, dec.pass, dec.reason);
    ck_assert_str_eq(dec.reason, reason);
}

START_TEST(test_defaults)
{
    int ignored = -1;
    qc_rules_t r = rules_from("{}", &ignored);
    ck_assert_int_eq(ignored, 0);
    ck_assert(r.min_confidence == QC_DEFAULT_MIN_CONFIDENCE);
    ck_assert_uint_eq(r.max_length, QC_DEFAULT_MAX_LENGTH);
    ck_assert(r.must_cite);
    ck_assert_uint_eq(r.nforbidden, 0);
    qc_draft_t d = good_draft();
    decide(&r, &d, true, "");
    qc_rules_dispose(&r);
}
END_TEST

START_TEST(test_settings_and_invalid_members)
{
    int ignored = 0;
    qc_rules_t r = rules_from("{\"qc\":{\"min_confidence\":0.6,\"max_length\":20,"
                              "\"must_cite\":false,\"forbidden_topics\":[\"Оружие\",7,\"  \"]}}",
                              &ignored);
    ck_assert_int_eq(ignored, 1); /* the 7; the blank pattern is dropped silently */
    ck_assert(r.min_confidence == 0.6);
    ck_assert_uint_eq(r.max_length, 20);
    ck_assert(!r.must_cite);
    ck_assert_uint_eq(r.nforbidden, 1);
    ck_assert_str_eq(r.forbidden[0], "оружие");
    qc_rules_dispose(&r);

    r = rules_from("{\"qc\":{\"min_confidence\":2,\"max_length\":-1,\"must_cite\":\"yes\","
                   "\"forbidden_topics\":\"guns\"}}",
                   &ignored);
    ck_assert_int_eq(ignored, 4);
    ck_assert(r.min_confidence == QC_DEFAULT_MIN_CONFIDENCE);
    ck_assert_uint_eq(r.max_length, QC_DEFAULT_MAX_LENGTH);
    ck_assert(r.must_cite);
    ck_assert_uint_eq(r.nforbidden, 0);
    qc_rules_dispose(&r);
}
END_TEST

START_TEST(test_fold)
{
    char *f = qc_fold("  ЁЛКА   Ёжик\tÀBC\n Қазақ  ");
    ck_assert_str_eq(f, "елка ежик àbc қазақ");
    free(f);
    f = qc_fold("");
    ck_assert_str_eq(f, "");
    free(f);
}
END_TEST

START_TEST(test_forbidden_cyrillic)
{
    int ignored;
    qc_rules_t r =
        rules_from("{\"qc\":{\"forbidden_topics\":[\"ЛЕЧЕНИЕ ГРИБКА\",\"refund\"]}}", &ignored);
    qc_draft_t d = good_draft();
    d.question = "Вы делаете Лечение   грибка ногтей?";
    decide(&r, &d, false, "forbidden_topic: лечение грибка");
    d = good_draft();
    d.answer = "We give a REFUND within 14 days";
    decide(&r, &d, false, "forbidden_topic: refund");
    d = good_draft();
    d.question = "Сколько стоит стрижка?";
    decide(&r, &d, true, "");
    qc_rules_dispose(&r);

    /* ё in the pattern matches е in the text and the other way round. */
    r = rules_from("{\"qc\":{\"forbidden_topics\":[\"Счёт\"]}}", &ignored);
    d = good_draft();
    d.question = "выставите счет?";
    decide(&r, &d, false, "forbidden_topic: счет");
    qc_rules_dispose(&r);
}
END_TEST

START_TEST(test_each_rule)
{
    int ignored;
    qc_rules_t r = rules_from("{\"qc\":{\"min_confidence\":0.5,\"max_length\":10}}", &ignored);
    qc_draft_t d = good_draft();
    d.answer = "Да, 5000 ₸";
    decide(&r, &d, true, ""); /* 10 code points, not 13 bytes */
    d.answer = "Да, 5000 ₸!";
    decide(&r, &d, false, "too_long: 11 > 10");
    d = good_draft();
    d.answer = "ok";
    d.confidence = 0.49;
    decide(&r, &d, false, "low_confidence: 0.49 < 0.50");
    d.confidence = 0.5;
    decide(&r, &d, true, "");
    d.ncitations = 0;
    decide(&r, &d, false, "no_citation");
    d.mode = "llm";
    decide(&r, &d, false, "no_citation");
    d.answer = " \n\t ";
    decide(&r, &d, false, "no_answer");
    d = good_draft();
    d.mode = "none";
    d.answer = "";
    d.confidence = 0;
    d.ncitations = 0;
    d.failure = "llm_timeout";
    decide(&r, &d, false, "no_answer: llm_timeout");
    d.failure = NULL;
    decide(&r, &d, false, "no_answer");
    qc_rules_dispose(&r);

    r = rules_from("{\"qc\":{\"must_cite\":false}}", &ignored);
    d = good_draft();
    d.ncitations = 0;
    decide(&r, &d, true, "");
    qc_rules_dispose(&r);
}
END_TEST

START_TEST(test_forbidden_wins_over_no_answer)
{
    int ignored;
    qc_rules_t r = rules_from("{\"qc\":{\"forbidden_topics\":[\"оружие\"]}}", &ignored);
    qc_draft_t d = {.question = "Где купить ОРУЖИЕ?", .answer = "", .mode = "none"};
    decide(&r, &d, false, "forbidden_topic: оружие");
    qc_rules_dispose(&r);
}
END_TEST

START_TEST(test_reason_never_cuts_a_code_point)
{
    qc_rules_t r;
    qc_rules_init(&r);
    char pattern[400] = "";
    for (int i = 0; i < 150; i++)
        strcat(pattern, "ж");
    add_forbidden(&r, pattern);
    qc_draft_t d = good_draft();
    d.question = pattern;
    qc_decision_t dec;
    qc_decide(&r, &d, &dec);
    ck_assert(!dec.pass);
    ck_assert(imp_kb_utf8_valid(dec.reason, strlen(dec.reason), NULL));
    ck_assert_uint_eq(strlen(dec.reason), strlen("forbidden_topic: ") + 120);
    qc_rules_dispose(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("qc_rules");
    TCase *tc = tcase_create("rules");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_settings_and_invalid_members);
    tcase_add_test(tc, test_fold);
    tcase_add_test(tc, test_forbidden_cyrillic);
    tcase_add_test(tc, test_each_rule);
    tcase_add_test(tc, test_forbidden_wins_over_no_answer);
    tcase_add_test(tc, test_reason_never_cuts_a_code_point);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
