/* Unit tests for the JSON-lines logger: every line is parsed back with jansson. */
#include "imp/log.h"

#include "imp/mem.h"

#include <check.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- capture ---- */

static char *cap_buf;
static size_t cap_len;
static FILE *cap_stream;

static void capture_start(imp_log_level_t level)
{
    cap_stream = open_memstream(&cap_buf, &cap_len);
    ck_assert_ptr_nonnull(cap_stream);
    imp_log_init("imperium-test", level);
    imp_log_set_stream(cap_stream);
    imp_log_clear_context();
}

/* Everything written since capture_start (owned by the capture until capture_stop). */
static const char *captured(void)
{
    fflush(cap_stream);
    return cap_len ? cap_buf : "";
}

static void capture_stop(void)
{
    imp_log_set_stream(NULL);
    fclose(cap_stream);
    free(cap_buf);
    cap_buf = NULL;
    cap_len = 0;
}

/* The only line captured, parsed; asserts there is exactly one and that it is an object. */
static json_t *only_line(void)
{
    const char *out = captured();
    size_t len = strlen(out);
    ck_assert_msg(len > 0 && out[len - 1] == '\n', "no terminated line: \"%s\"", out);
    ck_assert_msg(strchr(out, '\n') == out + len - 1, "more than one line: \"%s\"", out);
    json_error_t jerr;
    json_t *obj = json_loadb(out, len - 1, 0, &jerr);
    ck_assert_msg(obj != NULL, "not JSON (%s): %s", jerr.text, out);
    ck_assert(json_is_object(obj));
    return obj;
}

static const char *str_field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    ck_assert_msg(json_is_string(v), "%s is not a string", key);
    return json_string_value(v);
}

/* ---- tests ---- */

START_TEST(line_shape_and_types)
{
    capture_start(IMP_LOG_LEVEL_INFO);
    IMP_LOG_INFO("consumer started", IMP_LS("topic", "imp.inbound.v1"), IMP_LI("partitions", 4),
                 IMP_LF("ratio", 0.25), IMP_LB("ok", 1), IMP_LB("replay", 0),
                 IMP_LI("min", LLONG_MIN), IMP_LI("max", LLONG_MAX), IMP_LS("none", NULL));
    ck_assert(strncmp(captured(), "{\"ts\":\"", 7) == 0);
    json_t *o = only_line();
    ck_assert_str_eq(str_field(o, "level"), "info");
    ck_assert_str_eq(str_field(o, "msg"), "consumer started");
    ck_assert_str_eq(str_field(o, "binary"), "imperium-test");
    ck_assert_str_eq(str_field(o, "topic"), "imp.inbound.v1");
    ck_assert(json_is_integer(json_object_get(o, "partitions")));
    ck_assert_int_eq(json_integer_value(json_object_get(o, "partitions")), 4);
    ck_assert(json_is_real(json_object_get(o, "ratio")));
    ck_assert(json_real_value(json_object_get(o, "ratio")) == 0.25);
    ck_assert(json_is_true(json_object_get(o, "ok")));
    ck_assert(json_is_false(json_object_get(o, "replay")));
    ck_assert(json_integer_value(json_object_get(o, "min")) == LLONG_MIN);
    ck_assert(json_integer_value(json_object_get(o, "max")) == LLONG_MAX);
    ck_assert_str_eq(str_field(o, "none"), "");
    ck_assert_uint_eq(json_object_size(o), 12);
    json_decref(o);
    capture_stop();
}
END_TEST

START_TEST(timestamp_format)
{
    capture_start(IMP_LOG_LEVEL_DEBUG);
    /* The logger reads CLOCK_REALTIME; time() may use a coarser clock that lags it across a
     * second boundary, so read the same clock here. */
    struct timespec ts0, ts1;
    clock_gettime(CLOCK_REALTIME, &ts0);
    IMP_LOG_INFO("tick", IMP_LI("n", 1));
    clock_gettime(CLOCK_REALTIME, &ts1);
    time_t before = ts0.tv_sec, after = ts1.tv_sec;
    json_t *o = only_line();
    const char *ts = str_field(o, "ts");

    regex_t re;
    ck_assert_int_eq(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    ck_assert_msg(regexec(&re, ts, 0, NULL, 0) == 0, "bad ts %s", ts);
    regfree(&re);

    /* UTC, and now. */
    struct tm tm = {0};
    ck_assert_ptr_nonnull(strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm));
    time_t t = timegm(&tm);
    ck_assert_int_ge(t, before);
    ck_assert_int_le(t, after);
    json_decref(o);
    capture_stop();
}
END_TEST

START_TEST(no_fields)
{
    capture_start(IMP_LOG_LEVEL_INFO);
    IMP_LOG_WARN("plain");
    json_t *o = only_line();
    ck_assert_str_eq(str_field(o, "level"), "warn");
    ck_assert_uint_eq(json_object_size(o), 4); /* ts, level, msg, binary */
    json_decref(o);
    capture_stop();
}
END_TEST

START_TEST(context_fields)
{
    capture_start(IMP_LOG_LEVEL_INFO);
    IMP_LOG_INFO("no context");
    json_t *o = only_line();
    ck_assert_ptr_null(json_object_get(o, "tenant_id"));
    ck_assert_ptr_null(json_object_get(o, "operation_id"));
    ck_assert_ptr_null(json_object_get(o, "trace_id"));
    json_decref(o);
    capture_stop();

    capture_start(IMP_LOG_LEVEL_INFO);
    char tenant[] = "11111111-2222-4333-8444-555555555555";
    imp_log_set_context(tenant, "38ba8c08-dc05-5928-b4fe-5b282ede93e0",
                        "4bf92f3577b34da6a3ce929d0e0e4736");
    tenant[0] = 'X'; /* copied, not borrowed */
    IMP_LOG_INFO("with context");
    o = only_line();
    ck_assert_str_eq(str_field(o, "tenant_id"), "11111111-2222-4333-8444-555555555555");
    ck_assert_str_eq(str_field(o, "operation_id"), "38ba8c08-dc05-5928-b4fe-5b282ede93e0");
    ck_assert_str_eq(str_field(o, "trace_id"), "4bf92f3577b34da6a3ce929d0e0e4736");
    json_decref(o);
    capture_stop();

    capture_start(IMP_LOG_LEVEL_INFO);
    imp_log_set_context("t1", NULL, NULL);
    IMP_LOG_INFO("tenant only");
    o = only_line();
    ck_assert_str_eq(str_field(o, "tenant_id"), "t1");
    ck_assert_ptr_null(json_object_get(o, "operation_id"));
    ck_assert_ptr_null(json_object_get(o, "trace_id"));
    json_decref(o);
    capture_stop();

    capture_start(IMP_LOG_LEVEL_INFO); /* clears the context */
    IMP_LOG_INFO("cleared");
    o = only_line();
    ck_assert_ptr_null(json_object_get(o, "tenant_id"));
    json_decref(o);
    capture_stop();
}
END_TEST

static void *log_from_other_thread(void *arg)
{
    (void)arg;
    IMP_LOG_INFO("other thread");
    return NULL;
}

START_TEST(context_is_per_thread)
{
    capture_start(IMP_LOG_LEVEL_INFO);
    imp_log_set_context("t-main", "op-main", NULL);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, log_from_other_thread, NULL), 0);
    pthread_join(th, NULL);
    json_t *o = only_line();
    ck_assert_ptr_null(json_object_get(o, "tenant_id"));
    ck_assert_ptr_null(json_object_get(o, "operation_id"));
    json_decref(o);
    capture_stop();
}
END_TEST

/* Text round-trips exactly through the JSON line, and the line stays one line. */
static void roundtrip_text(const char *text)
{
    capture_start(IMP_LOG_LEVEL_INFO);
    IMP_LOG_INFO(text, IMP_LS("body", text), IMP_LS(text, "key"));
    json_t *o = only_line();
    ck_assert_str_eq(str_field(o, "msg"), text);
    ck_assert_str_eq(str_field(o, "body"), text);
    ck_assert_str_eq(str_field(o, text), "key");
    json_decref(o);
    capture_stop();
}

START_TEST(escaping)
{
    roundtrip_text("say \"hi\"");
    roundtrip_text("back\\slash");
    roundtrip_text("two\nlines\r\n");
    roundtrip_text("tab\there");
    roundtrip_text("bell\a nul-ish\x01 esc\x1b unit\x1f del\x7f");
    roundtrip_text("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"); /* é € 😀 */
    roundtrip_text("</script>\u2028");
    roundtrip_text("");

    capture_start(IMP_LOG_LEVEL_INFO);
    IMP_LOG_INFO("ctl", IMP_LS("v", "a\x01z"));
    ck_assert_ptr_nonnull(strstr(captured(), "\"v\":\"a\\u0001z\""));
    capture_stop();
}
END_TEST

START_TEST(invalid_utf8_is_replaced)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"a\xff"
         "b",
         "a\xef\xbf\xbd"
         "b"},                                                    /* not UTF-8 at all */
        {"cut \xc3", "cut \xef\xbf\xbd"},                         /* truncated at the end */
        {"\xc3(", "\xef\xbf\xbd("},                               /* bad continuation */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                 /* overlong '/' */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* a surrogate */
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF */
        {"\x80", "\xef\xbf\xbd"}, /* stray continuation */
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++) {
        capture_start(IMP_LOG_LEVEL_INFO);
        IMP_LOG_INFO("bytes", IMP_LS("v", cases[i].in));
        json_t *o = only_line();
        ck_assert_msg(strcmp(str_field(o, "v"), cases[i].out) == 0, "case %zu", i);
        json_decref(o);
        capture_stop();
    }
}
END_TEST

START_TEST(long_line)
{
    char *big = imp_malloc(5001);
    for (int i = 0; i < 5000; i++)
        big[i] = (char)('a' + i % 26);
    big[5000] = '\0';
    big[100] = '"';
    roundtrip_text(big);
    free(big);
}
END_TEST

START_TEST(non_finite_doubles)
{
    capture_start(IMP_LOG_LEVEL_INFO);
    IMP_LOG_INFO("nums", IMP_LF("inf", INFINITY), IMP_LF("nan", NAN), IMP_LF("neg", -1.5),
                 IMP_LF("tiny", 1e-300));
    json_t *o = only_line();
    ck_assert(json_is_null(json_object_get(o, "inf")));
    ck_assert(json_is_null(json_object_get(o, "nan")));
    ck_assert(json_real_value(json_object_get(o, "neg")) == -1.5);
    ck_assert(json_real_value(json_object_get(o, "tiny")) == 1e-300);
    json_decref(o);
    capture_stop();
}
END_TEST

START_TEST(error_fields)
{
    imp_error_t *err = imp_error_new(IMP_ERR_RETRIABLE, "provider_5xx", "provider answered 503");
    capture_start(IMP_LOG_LEVEL_INFO);
    IMP_LOG_ERROR("send failed", IMP_LE(err), IMP_LI("attempt", 2));
    json_t *o = only_line();
    ck_assert_str_eq(str_field(o, "level"), "error");
    ck_assert_str_eq(str_field(o, "error"), "provider answered 503");
    ck_assert_str_eq(str_field(o, "error_code"), "provider_5xx");
    ck_assert_str_eq(str_field(o, "error_class"), "retriable");
    ck_assert_ptr_null(json_object_get(o, "error_detail"));
    ck_assert_int_eq(json_integer_value(json_object_get(o, "attempt")), 2);
    json_decref(o);
    capture_stop();

    imp_error_set_detail(err, "{\"busy\":true}\n");
    capture_start(IMP_LOG_LEVEL_INFO);
    IMP_LOG_ERROR("send failed", IMP_LE(err));
    o = only_line();
    ck_assert_str_eq(str_field(o, "error_detail"), "{\"busy\":true}\n");
    json_decref(o);
    capture_stop();
    imp_error_free(err);

    capture_start(IMP_LOG_LEVEL_INFO);
    IMP_LOG_INFO("no error", IMP_LE(NULL));
    o = only_line();
    ck_assert_ptr_null(json_object_get(o, "error"));
    ck_assert_uint_eq(json_object_size(o), 4);
    json_decref(o);
    capture_stop();
}
END_TEST

static int side_effects;

static const char *expensive(void)
{
    side_effects++;
    return "computed";
}

START_TEST(level_filter_skips_formatting)
{
    side_effects = 0;
    capture_start(IMP_LOG_LEVEL_INFO);
    IMP_LOG_DEBUG("hidden", IMP_LS("v", expensive()), IMP_LI("n", ++side_effects));
    ck_assert_int_eq(side_effects, 0); /* arguments were never evaluated */
    ck_assert_str_eq(captured(), "");
    IMP_LOG_INFO("shown", IMP_LS("v", expensive()));
    ck_assert_int_eq(side_effects, 1);
    json_t *o = only_line();
    ck_assert_str_eq(str_field(o, "v"), "computed");
    json_decref(o);
    capture_stop();

    capture_start(IMP_LOG_LEVEL_ERROR);
    IMP_LOG_DEBUG("hidden", IMP_LS("v", expensive()));
    IMP_LOG_INFO("hidden", IMP_LS("v", expensive()));
    IMP_LOG_WARN("hidden", IMP_LS("v", expensive()));
    ck_assert_int_eq(side_effects, 1);
    ck_assert_str_eq(captured(), "");
    IMP_LOG_ERROR("shown", IMP_LS("v", expensive()));
    ck_assert_int_eq(side_effects, 2);
    capture_stop();
}
END_TEST

START_TEST(every_level_at_debug)
{
    capture_start(IMP_LOG_LEVEL_DEBUG);
    IMP_LOG_DEBUG("m");
    IMP_LOG_INFO("m");
    IMP_LOG_WARN("m");
    IMP_LOG_ERROR("m");
    const char *out = captured();
    const char *want[] = {"debug", "info", "warn", "error"};
    for (size_t i = 0; i < IMP_ARRAY_LEN(want); i++) {
        const char *nl = strchr(out, '\n');
        ck_assert_ptr_nonnull(nl);
        json_t *o = json_loadb(out, (size_t)(nl - out), 0, NULL);
        ck_assert_ptr_nonnull(o);
        ck_assert_str_eq(str_field(o, "level"), want[i]);
        json_decref(o);
        out = nl + 1;
    }
    ck_assert_str_eq(out, "");
    capture_stop();
}
END_TEST

START_TEST(level_names)
{
    const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        imp_log_level_t lv = IMP_LOG_LEVEL_ERROR;
        ck_assert_int_eq(imp_log_level_parse(names[i], &lv), 0);
        ck_assert_int_eq(lv, i);
        ck_assert_str_eq(imp_log_level_name(lv), names[i]);
    }
    imp_log_level_t lv = IMP_LOG_LEVEL_WARN;
    ck_assert_int_eq(imp_log_level_parse("warning", &lv), -1);
    ck_assert_int_eq(imp_log_level_parse("INFO", &lv), -1);
    ck_assert_int_eq(imp_log_level_parse("", &lv), -1);
    ck_assert_int_eq(lv, IMP_LOG_LEVEL_WARN);
    ck_assert_str_eq(imp_log_level_name((imp_log_level_t)42), "unknown");
}
END_TEST

enum { WRITERS = 4, LINES_EACH = 250 };

static void *writer(void *arg)
{
    long id = (long)arg;
    char tenant[16];
    snprintf(tenant, sizeof(tenant), "t%ld", id);
    imp_log_set_context(tenant, NULL, NULL);
    for (int i = 0; i < LINES_EACH; i++)
        IMP_LOG_INFO("concurrent", IMP_LI("writer", id), IMP_LI("i", i));
    return NULL;
}

START_TEST(concurrent_lines_do_not_interleave)
{
    capture_start(IMP_LOG_LEVEL_INFO);
    pthread_t th[WRITERS];
    for (long i = 0; i < WRITERS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, writer, (void *)i), 0);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(th[i], NULL);

    int seen[WRITERS] = {0};
    const char *p = captured();
    int lines = 0;
    for (const char *nl; (nl = strchr(p, '\n')) != NULL; p = nl + 1, lines++) {
        json_t *o = json_loadb(p, (size_t)(nl - p), 0, NULL);
        ck_assert_msg(o != NULL, "line %d is not JSON", lines);
        long w = (long)json_integer_value(json_object_get(o, "writer"));
        char tenant[16];
        snprintf(tenant, sizeof(tenant), "t%ld", w);
        ck_assert_str_eq(str_field(o, "tenant_id"), tenant);
        ck_assert_int_eq(json_integer_value(json_object_get(o, "i")), seen[w]++);
        json_decref(o);
    }
    ck_assert_str_eq(p, "");
    ck_assert_int_eq(lines, WRITERS * LINES_EACH);
    for (int i = 0; i < WRITERS; i++)
        ck_assert_int_eq(seen[i], LINES_EACH);
    capture_stop();
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("format");
    tcase_add_test(tc, line_shape_and_types);
    tcase_add_test(tc, timestamp_format);
    tcase_add_test(tc, no_fields);
    tcase_add_test(tc, context_fields);
    tcase_add_test(tc, context_is_per_thread);
    tcase_add_test(tc, escaping);
    tcase_add_test(tc, invalid_utf8_is_replaced);
    tcase_add_test(tc, long_line);
    tcase_add_test(tc, non_finite_doubles);
    tcase_add_test(tc, error_fields);
    suite_add_tcase(s, tc);

    tc = tcase_create("levels");
    tcase_add_test(tc, level_filter_skips_formatting);
    tcase_add_test(tc, every_level_at_debug);
    tcase_add_test(tc, level_names);
    tcase_add_test(tc, concurrent_lines_do_not_interleave);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(log_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
