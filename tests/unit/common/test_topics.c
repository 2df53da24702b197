/* The topics manifest parser, and the repository's own deploy/topics.conf. */
#include "imp/topics.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(parses_valid_lines)
{
    const char *text = "# comment line\n"
                       "\n"
                       "imp.inbound.v1 12 7d delete\n"
                       "  imp.tenants.v1\t3   -1   compact   # trailing comment\n"
                       "a-b_c.D 1 500ms compact,delete\r\n"
                       "last 10000 2w delete"; /* no final newline */
    imp_topics_t *t = NULL;
    imp_error_t *err = imp_topics_parse(text, "x.conf", &t);
    ck_assert_ptr_null(err);
    ck_assert_uint_eq(t->count, 4);
    ck_assert_str_eq(t->topics[0].name, "imp.inbound.v1");
    ck_assert_int_eq(t->topics[0].partitions, 12);
    ck_assert_int_eq(t->topics[0].retention_ms, 7LL * 86400000);
    ck_assert_str_eq(t->topics[0].cleanup_policy, "delete");
    ck_assert_int_eq(t->topics[0].line, 3);
    ck_assert_str_eq(t->topics[1].name, "imp.tenants.v1");
    ck_assert_int_eq(t->topics[1].retention_ms, -1);
    ck_assert_str_eq(t->topics[1].cleanup_policy, "compact");
    ck_assert_int_eq(t->topics[2].retention_ms, 500);
    ck_assert_str_eq(t->topics[2].cleanup_policy, "compact,delete");
    ck_assert_int_eq(t->topics[3].partitions, 10000);
    ck_assert_int_eq(t->topics[3].line, 6);
    ck_assert_ptr_eq(imp_topics_find(t, "a-b_c.D"), &t->topics[2]);
    ck_assert_ptr_null(imp_topics_find(t, "nope"));
    imp_topics_free(t);

    ck_assert_ptr_null(imp_topics_parse("", "empty", &t));
    ck_assert_uint_eq(t->count, 0);
    imp_topics_free(t);
}
END_TEST

/* Each malformed manifest fails on the expected line with the expected words. */
START_TEST(rejects_malformed_lines)
{
    static const struct {
        const char *text;
        const char *expect;
    } cases[] = {
        {"ok 1 1d delete\nbad 1 1d\n", "m.conf:2: expected 4 fields"},
        {"x 1 1d delete extra\n", "m.conf:1: expected 4 fields (name partitions retention "
                                  "cleanup.policy), got 5"},
        {"\n\nx 0 1d delete\n", "m.conf:3: invalid partition count \"0\""},
        {"x 10001 1d delete\n", "m.conf:1: invalid partition count"},
        {"x 3x 1d delete\n", "m.conf:1: invalid partition count \"3x\""},
        {"x 3 7 delete\n", "m.conf:1: invalid retention \"7\""},
        {"x 3 -2 delete\n", "m.conf:1: invalid retention \"-2\""},
        {"x 3 7y delete\n", "m.conf:1: invalid retention"},
        {"x 3 1d remove\n", "m.conf:1: invalid cleanup.policy \"remove\""},
        {"bad/name 3 1d delete\n", "m.conf:1: invalid topic name \"bad/name\""},
        {".. 3 1d delete\n", "m.conf:1: invalid topic name"},
        {"a 1 1d delete\n# c\na 2 1d delete\n", "m.conf:3: topic \"a\" already declared on line 1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        imp_topics_t *t = (imp_topics_t *)1;
        imp_error_t *err = imp_topics_parse(cases[i].text, "m.conf", &t);
        ck_assert_msg(err != NULL, "case %zu parsed", i);
        ck_assert_ptr_null(t);
        ck_assert_int_eq(imp_error_class(err), IMP_ERR_FATAL);
        ck_assert_str_eq(imp_error_code(err), "topics_manifest");
        ck_assert_msg(strstr(imp_error_message(err), cases[i].expect) != NULL,
                      "case %zu: \"%s\" lacks \"%s\"", i, imp_error_message(err), cases[i].expect);
        imp_error_free(err);
    }
}
END_TEST

START_TEST(retention_units)
{
    int64_t ms = 0;
    ck_assert_int_eq(imp_topics_parse_retention("250ms", &ms), 0);
    ck_assert_int_eq(ms, 250);
    ck_assert_int_eq(imp_topics_parse_retention("30s", &ms), 0);
    ck_assert_int_eq(ms, 30000);
    ck_assert_int_eq(imp_topics_parse_retention("5m", &ms), 0);
    ck_assert_int_eq(ms, 300000);
    ck_assert_int_eq(imp_topics_parse_retention("12h", &ms), 0);
    ck_assert_int_eq(ms, 43200000);
    ck_assert_int_eq(imp_topics_parse_retention("-1", &ms), 0);
    ck_assert_int_eq(ms, -1);
    ck_assert_int_eq(imp_topics_parse_retention("", &ms), -1);
    ck_assert_int_eq(imp_topics_parse_retention("d", &ms), -1);
    ck_assert_int_eq(imp_topics_parse_retention("1.5d", &ms), -1);
    ck_assert_int_eq(imp_topics_parse_retention("99999999999999999999d", &ms), -1);
    ck_assert_int_eq(imp_topics_parse_retention("9999999999999999w", &ms), -1);
}
END_TEST

START_TEST(load_missing_file)
{
    imp_topics_t *t = NULL;
    imp_error_t *err = imp_topics_load("/nonexistent/topics.conf", &t);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(imp_error_message(err), "/nonexistent/topics.conf"));
    imp_error_free(err);
}
END_TEST

/* The repository's manifest: every topic of ARCHITECTURE.md §3 and each worker's pair. */
START_TEST(repository_manifest)
{
    const char *src = getenv("IMP_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/deploy/topics.conf", src ? src : ".");
    imp_topics_t *t = NULL;
    imp_error_t *err = imp_topics_load(path, &t);
    ck_assert_msg(err == NULL, "%s", err ? imp_error_message(err) : "");
    static const char *const main_topics[] = {
        "imp.tenants.v1",  "imp.inbound.v1",  "imp.turn.v1",    "imp.draft.v1",
        "imp.outbound.v1", "imp.delivery.v1", "imp.kb.v1",      "imp.usage.v1",
        "imp.commands.v1", "imp.ops.v1",      "imp.control.v1", "imp.test.v1"};
    for (size_t i = 0; i < sizeof(main_topics) / sizeof(main_topics[0]); i++)
        ck_assert_msg(imp_topics_find(t, main_topics[i]) != NULL, "%s missing", main_topics[i]);
    static const char *const workers[] = {"dialog",  "rag",      "qc",      "send",
                                          "indexer", "metering", "control", "example"};
    for (size_t i = 0; i < sizeof(workers) / sizeof(workers[0]); i++) {
        char name[64];
        snprintf(name, sizeof(name), "imp.retry.%s.v1", workers[i]);
        ck_assert_msg(imp_topics_find(t, name) != NULL, "%s missing", name);
        snprintf(name, sizeof(name), "imp.dlq.%s.v1", workers[i]);
        ck_assert_msg(imp_topics_find(t, name) != NULL, "%s missing", name);
    }
    ck_assert_str_eq(imp_topics_find(t, "imp.tenants.v1")->cleanup_policy, "compact");
    ck_assert_int_eq(imp_topics_find(t, "imp.test.v1")->partitions, 12);
    imp_topics_free(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("topics");
    TCase *tc = tcase_create("manifest");
    tcase_add_test(tc, parses_valid_lines);
    tcase_add_test(tc, rejects_malformed_lines);
    tcase_add_test(tc, retention_units);
    tcase_add_test(tc, load_missing_file);
    tcase_add_test(tc, repository_manifest);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
