/* Unit tests for imperium-dlq's pure helpers: time and id arguments, UTF-8, cells, tables. */
#include "../../../workers/dlq-replayer/format.c"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2026-05-01T03:00:00Z */
#define NOW 1777604400000LL

START_TEST(time_relative)
{
    int64_t ms = 0;
    ck_assert_int_eq(dlq_parse_time("15m", NOW, &ms), 0);
    ck_assert_int_eq(ms, NOW - 15 * 60000LL);
    ck_assert_int_eq(dlq_parse_time("2h", NOW, &ms), 0);
    ck_assert_int_eq(ms, NOW - 2 * 3600000LL);
    ck_assert_int_eq(dlq_parse_time("7d", NOW, &ms), 0);
    ck_assert_int_eq(ms, NOW - 7 * 86400000LL);
    ck_assert_int_eq(dlq_parse_time("30s", NOW, &ms), 0);
    ck_assert_int_eq(ms, NOW - 30000);
    ck_assert_int_eq(dlq_parse_time("1w", NOW, &ms), 0);
    ck_assert_int_eq(ms, NOW - 604800000LL);
}
END_TEST

START_TEST(time_absolute)
{
    int64_t ms = 0;
    ck_assert_int_eq(dlq_parse_time("2026-05-01T03:00:00Z", 0, &ms), 0);
    ck_assert_int_eq(ms, NOW);
    ck_assert_int_eq(dlq_parse_time("2026-05-01T05:00:00.250+02:00", 0, &ms), 0);
    ck_assert_int_eq(ms, NOW + 250);
    ck_assert_int_eq(dlq_parse_time("2026-05-01", 0, &ms), 0);
    ck_assert_int_eq(ms, NOW - 3 * 3600000LL);
}
END_TEST

START_TEST(time_rejected)
{
    static const char *const bad[] = {"",
                                      "m",
                                      "15",
                                      "15x",
                                      "-5m",
                                      "0m",
                                      "1.5h",
                                      "15 m",
                                      "h15",
                                      "99999999d",
                                      "yesterday",
                                      "2026-13-01",
                                      "2026-05-01T03:00:00",
                                      "2026-05-01 03:00:00Z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 42;
        ck_assert_msg(dlq_parse_time(bad[i], NOW, &ms) == -1, "accepted \"%s\"", bad[i]);
    }
    int64_t ms;
    /* An age reaching before 1970 is an error, not a negative time. */
    ck_assert_int_eq(dlq_parse_time("60w", 1000, &ms), -1);
    ck_assert_int_eq(dlq_parse_time(NULL, NOW, &ms), -1);
}
END_TEST

START_TEST(ids)
{
    long long id = 0;
    ck_assert_int_eq(dlq_parse_id("1", &id), 0);
    ck_assert_int_eq(id, 1);
    ck_assert_int_eq(dlq_parse_id("9223372036854775807", &id), 0);
    ck_assert_int_eq(id, 9223372036854775807LL);
    static const char *const bad[] = {
        "0", "-1", "+1", " 1", "1 ", "1a", "", "abc", "9223372036854775808", "0x10"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(dlq_parse_id(bad[i], &id) == -1, "accepted \"%s\"", bad[i]);
}
END_TEST

START_TEST(utf8)
{
    ck_assert(dlq_utf8_text("", 0));
    ck_assert(dlq_utf8_text("plain", 5));
    ck_assert(dlq_utf8_text("caf\xc3\xa9 \xe2\x80\xa6 \xf0\x9f\x98\x80", 14));
    ck_assert(!dlq_utf8_text("a\0b", 3));             /* NUL: Postgres text refuses it */
    ck_assert(!dlq_utf8_text("\xff\xfe", 2));         /* not UTF-8 at all */
    ck_assert(!dlq_utf8_text("\xc3", 1));             /* truncated sequence */
    ck_assert(!dlq_utf8_text("\xc0\xaf", 2));         /* overlong */
    ck_assert(!dlq_utf8_text("\xed\xa0\x80", 3));     /* surrogate */
    ck_assert(!dlq_utf8_text("\xf4\x90\x80\x80", 4)); /* beyond U+10FFFF */
    ck_assert_uint_eq(dlq_utf8_len("caf\xc3\xa9"), 4);
    ck_assert_uint_eq(dlq_utf8_len(""), 0);
}
END_TEST

static void check_cell(const char *in, size_t max, const char *want)
{
    char *got = dlq_cell(in, max);
    ck_assert_str_eq(got, want);
    free(got);
}

START_TEST(cells)
{
    check_cell(NULL, 10, "-");
    check_cell("short", 10, "short");
    check_cell("exactly10!", 10, "exactly10!");
    check_cell("eleven char", 10, "eleven ch\xe2\x80\xa6");
    check_cell("line\none\ttab", 20, "line one tab");
    /* Cut by code points, never inside a character. */
    check_cell("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 3, "\xc3\xa9\xc3\xa9\xe2\x80\xa6");
    check_cell("ab\xff", 10, "ab ");
    check_cell("x", 1, "x");
    check_cell("xy", 1, "\xe2\x80\xa6");
}
END_TEST

static void check_escape(const char *in, size_t len, const char *want)
{
    char *got = dlq_escape(in, len);
    ck_assert_str_eq(got, want);
    free(got);
}

START_TEST(escapes)
{
    check_escape("{\"a\":1}\n\tok", 11, "{\"a\":1}\n\tok");
    check_escape("\xff\xfenot json\0", 11, "\\xff\\xfenot json\\x00");
    check_escape("caf\xc3\xa9\x1b[2J", 9, "caf\xc3\xa9\\x1b[2J");
    check_escape("", 0, "");
}
END_TEST

START_TEST(base64_and_ages)
{
    char *b = dlq_base64("\xff\xfe\x00", 3);
    ck_assert_str_eq(b, "//4A");
    free(b);
    char age[16];
    dlq_format_age(45000, age, sizeof(age));
    ck_assert_str_eq(age, "45s");
    dlq_format_age(12 * 60000, age, sizeof(age));
    ck_assert_str_eq(age, "12m");
    dlq_format_age(3 * 3600000LL, age, sizeof(age));
    ck_assert_str_eq(age, "3h");
    dlq_format_age(5 * 86400000LL, age, sizeof(age));
    ck_assert_str_eq(age, "5d");
    dlq_format_age(-5, age, sizeof(age));
    ck_assert_str_eq(age, "0s");
}
END_TEST

static char *print_to_string(const dlq_table_t *t)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    dlq_table_print(t, f);
    fclose(f);
    return buf;
}

START_TEST(table)
{
    static const char *const header[] = {"ID", "WORKER", "REASON"};
    dlq_table_t t;
    dlq_table_init(&t, header, 3);
    char *r1[] = {strdup("7"), strdup("dialog"), strdup("gave up")};
    char *r2[] = {strdup("123"), strdup("s\xc3\xa9nd"), strdup("-")};
    dlq_table_add(&t, r1);
    dlq_table_add(&t, r2);
    char *out = print_to_string(&t);
    /* Columns padded to the widest cell in code points; the last one is not padded. */
    ck_assert_str_eq(out, "ID   WORKER  REASON\n"
                          "7    dialog  gave up\n"
                          "123  s\xc3\xa9nd    -\n");
    free(out);
    dlq_table_dispose(&t);

    dlq_table_init(&t, header, 3);
    out = print_to_string(&t);
    ck_assert_str_eq(out, "ID  WORKER  REASON\n");
    free(out);
    for (int i = 0; i < 40; i++) { /* grows past its first allocation */
        char *row[] = {strdup("1"), strdup("w"), strdup("r")};
        dlq_table_add(&t, row);
    }
    ck_assert_uint_eq(t.nrows, 40);
    dlq_table_dispose(&t);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dlq_format");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, time_relative);
    tcase_add_test(tc, time_absolute);
    tcase_add_test(tc, time_rejected);
    tcase_add_test(tc, ids);
    tcase_add_test(tc, utf8);
    tcase_add_test(tc, cells);
    tcase_add_test(tc, escapes);
    tcase_add_test(tc, base64_and_ages);
    tcase_add_test(tc, table);
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
