/* Unit tests for usage events (imp/usage.h). */
#include "imp/usage.h"

#include "imp/opid.h"

#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define TENANT "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
#define CAUSE "0b7c4a52-2d7e-5a0f-9a63-4f1d2e3c4b5a"
#define CONV "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

static void cause_init(imp_envelope_t *c)
{
    ck_assert_ptr_null(
        imp_envelope_new_event(c, CAUSE, "imperium/qc", "imp.outbound.message.v1", TENANT, NULL));
    c->subject = strdup("telegram:12345");
    strcpy(c->traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
}

START_TEST(message_event)
{
    imp_envelope_t cause, ev;
    cause_init(&cause);
    imp_usage_counter_t c[] = {{"messages", 1}, {"characters", 148}};
    imp_usage_t u = {.kind = "message",
                     .ref = CAUSE,
                     .channel = "whatsapp",
                     .purpose = "answer",
                     .counters = c,
                     .ncounters = 2};
    ck_assert_ptr_null(imp_usage_event(&cause, "imperium/send", &u, &ev));
    char want[IMP_UUID_STR_SIZE];
    ck_assert_ptr_null(imp_opid_derive(CAUSE, "usage:message", want));
    ck_assert_str_eq(ev.id, want);
    ck_assert_str_eq(ev.type, IMP_TYPE_USAGE);
    ck_assert_str_eq(ev.source, "imperium/send");
    ck_assert_str_eq(ev.tenantid, TENANT);
    ck_assert_str_eq(ev.causationid, CAUSE);
    ck_assert_str_eq(ev.subject, "telegram:12345");
    ck_assert_str_eq(ev.traceparent, cause.traceparent);
    ck_assert_str_eq(json_string_value(json_object_get(ev.data, "kind")), "message");
    ck_assert_str_eq(json_string_value(json_object_get(ev.data, "ref")), CAUSE);
    ck_assert(json_is_null(json_object_get(ev.data, "conversation_id")));
    ck_assert(json_is_null(json_object_get(ev.data, "model")));
    json_t *counters = json_object_get(ev.data, "counters");
    ck_assert_int_eq(json_object_size(counters), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(counters, "characters")), 148);
    /* It serializes and parses back as a valid envelope. */
    char *text = NULL;
    ck_assert_ptr_null(imp_envelope_serialize(&ev, &text));
    imp_envelope_t back;
    ck_assert_ptr_null(imp_envelope_parse(text, strlen(text), &back));
    ck_assert_str_eq(back.id, ev.id);
    ck_assert(json_equal(back.data, ev.data));
    imp_envelope_dispose(&back);
    free(text);
    imp_envelope_dispose(&ev);
    imp_envelope_dispose(&cause);
}
END_TEST

START_TEST(same_cause_same_id)
{
    imp_envelope_t cause, a, b, t;
    cause_init(&cause);
    imp_usage_counter_t c[] = {{"turns", 1}};
    imp_usage_t u = {
        .kind = "turn", .ref = CAUSE, .conversation_id = CONV, .counters = c, .ncounters = 1};
    ck_assert_ptr_null(imp_usage_event(&cause, "imperium/rag", &u, &a));
    ck_assert_ptr_null(imp_usage_event(&cause, "imperium/rag", &u, &b));
    ck_assert_str_eq(a.id, b.id);
    ck_assert_str_eq(json_string_value(json_object_get(a.data, "conversation_id")), CONV);
    /* Another kind from the same cause is another event. */
    u.kind = "message";
    ck_assert_ptr_null(imp_usage_event(&cause, "imperium/rag", &u, &t));
    ck_assert_str_ne(a.id, t.id);
    imp_envelope_dispose(&a);
    imp_envelope_dispose(&b);
    imp_envelope_dispose(&t);
    imp_envelope_dispose(&cause);
}
END_TEST

START_TEST(bad_usage_refused)
{
    imp_envelope_t cause, ev;
    cause_init(&cause);
    imp_usage_counter_t neg[] = {{"messages", -1}};
    imp_usage_counter_t name[] = {{"Messages", 1}};
    imp_usage_t cases[] = {
        {.kind = "tokens", .ref = CAUSE},
        {.kind = NULL, .ref = CAUSE},
        {.kind = "turn", .ref = ""},
        {.kind = "turn", .ref = CAUSE, .counters = neg, .ncounters = 1},
        {.kind = "turn", .ref = CAUSE, .counters = name, .ncounters = 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        imp_error_t *err = imp_usage_event(&cause, "imperium/rag", &cases[i], &ev);
        ck_assert_msg(err != NULL, "case %zu accepted", i);
        ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
        ck_assert_str_eq(imp_error_code(err), "bad_usage");
        ck_assert_ptr_null(ev.data);
        imp_error_free(err);
    }
    imp_envelope_dispose(&cause);
}
END_TEST

START_TEST(chars_count_code_points)
{
    ck_assert_uint_eq(imp_usage_chars(""), 0);
    ck_assert_uint_eq(imp_usage_chars("hello"), 5);
    ck_assert_uint_eq(imp_usage_chars("привет"), 6); /* 12 bytes */
    ck_assert_uint_eq(imp_usage_chars("a\xF0\x9F\x98\x80"
                                      "b"),
                      3); /* an emoji is one */
    ck_assert_uint_eq(imp_usage_chars(NULL), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("usage");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, message_event);
    tcase_add_test(tc, same_cause_same_id);
    tcase_add_test(tc, bad_usage_refused);
    tcase_add_test(tc, chars_count_code_points);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
