/* Unit tests for the error type. */
#include "imp/error.h"

#include "imp/mem.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

START_TEST(new_fields)
{
    imp_error_t *err =
        imp_error_new(IMP_ERR_INFRA, "pg_connect", "could not connect to %s:%d", "db.local", 5432);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_INFRA);
    ck_assert_str_eq(imp_error_code(err), "pg_connect");
    ck_assert_str_eq(imp_error_message(err), "could not connect to db.local:5432");
    ck_assert_ptr_null(imp_error_detail(err));
    imp_error_free(err);

    err = imp_error_new(IMP_ERR_POISON, NULL, "no code");
    ck_assert_str_eq(imp_error_code(err), "error");
    imp_error_free(err);
}
END_TEST

START_TEST(message_is_not_a_format)
{
    /* Text from outside goes in as an argument, never as the format. */
    imp_error_t *err = imp_error_new(IMP_ERR_RETRIABLE, "provider", "%s", "100%s %n %d");
    ck_assert_str_eq(imp_error_message(err), "100%s %n %d");
    imp_error_free(err);
}
END_TEST

START_TEST(long_message)
{
    char *big = imp_malloc(10001);
    memset(big, 'x', 10000);
    big[10000] = '\0';
    imp_error_t *err = imp_error_new(IMP_ERR_FATAL, "big", "[%s]", big);
    ck_assert_uint_eq(strlen(imp_error_message(err)), 10002);
    imp_error_free(err);
    free(big);
}
END_TEST

START_TEST(class_names_roundtrip)
{
    static const struct {
        imp_err_class_t cls;
        const char *name;
    } all[] = {
        {IMP_ERR_INFRA, "infra"},
        {IMP_ERR_RETRIABLE, "retriable"},
        {IMP_ERR_POISON, "poison"},
        {IMP_ERR_FATAL, "fatal"},
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(all); i++) {
        ck_assert_str_eq(imp_err_class_name(all[i].cls), all[i].name);
        imp_err_class_t parsed = 0;
        ck_assert_int_eq(imp_err_class_parse(all[i].name, &parsed), 0);
        ck_assert_int_eq(parsed, all[i].cls);
    }
}
END_TEST

START_TEST(class_unknown)
{
    ck_assert_str_eq(imp_err_class_name((imp_err_class_t)0), "unknown");
    ck_assert_str_eq(imp_err_class_name((imp_err_class_t)99), "unknown");
    imp_err_class_t out = IMP_ERR_FATAL;
    ck_assert_int_eq(imp_err_class_parse("Infra", &out), -1);
    ck_assert_int_eq(imp_err_class_parse("", &out), -1);
    ck_assert_int_eq(imp_err_class_parse("unknown", &out), -1);
    ck_assert_int_eq(imp_err_class_parse("poison ", &out), -1);
    ck_assert_int_eq(out, IMP_ERR_FATAL); /* untouched */
}
END_TEST

START_TEST(prefix)
{
    imp_error_t *err = imp_error_new(IMP_ERR_INFRA, "pg_connect", "could not connect");
    ck_assert_ptr_eq(imp_error_prefix(err, "loading tenant %s", "acme"), err);
    ck_assert_str_eq(imp_error_message(err), "loading tenant acme: could not connect");
    imp_error_prefix(err, "handling %d", 7);
    ck_assert_str_eq(imp_error_message(err), "handling 7: loading tenant acme: could not connect");
    /* Prefixing changes neither class nor code. */
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_INFRA);
    ck_assert_str_eq(imp_error_code(err), "pg_connect");
    imp_error_free(err);
}
END_TEST

START_TEST(detail)
{
    imp_error_t *err = imp_error_new(IMP_ERR_RETRIABLE, "provider_5xx", "provider answered 503");
    ck_assert_ptr_null(imp_error_detail(err));
    char body[] = "{\"error\":\"busy\"}";
    imp_error_set_detail(err, body);
    body[0] = 'X'; /* the detail is a copy */
    ck_assert_str_eq(imp_error_detail(err), "{\"error\":\"busy\"}");
    imp_error_set_detail(err, "second");
    ck_assert_str_eq(imp_error_detail(err), "second");
    imp_error_set_detail(err, NULL);
    ck_assert_ptr_null(imp_error_detail(err));
    imp_error_set_detail(err, "kept until free");
    imp_error_free(err);
    imp_error_free(NULL);
}
END_TEST

START_TEST(copy_is_equal_and_independent)
{
    imp_error_t *e = imp_error_new(IMP_ERR_RETRIABLE, "23505", "deferred statement: %s", "dup");
    imp_error_set_detail(e, "Key (id)=(1) already exists.");
    imp_error_set_retry_after_ms(e, 1500);
    imp_error_t *c = imp_error_copy(e);
    imp_error_free(e); /* the copy owns its strings */
    ck_assert_int_eq(imp_error_class(c), IMP_ERR_RETRIABLE);
    ck_assert_str_eq(imp_error_code(c), "23505");
    ck_assert_str_eq(imp_error_message(c), "deferred statement: dup");
    ck_assert_str_eq(imp_error_detail(c), "Key (id)=(1) already exists.");
    ck_assert_int_eq(imp_error_retry_after_ms(c), 1500);
    imp_error_free(c);

    imp_error_t *plain = imp_error_new(IMP_ERR_POISON, "x", "no detail");
    imp_error_t *pc = imp_error_copy(plain);
    ck_assert_ptr_null(imp_error_detail(pc));
    ck_assert_int_eq(imp_error_retry_after_ms(pc), 0);
    imp_error_free(plain);
    imp_error_free(pc);
}
END_TEST

START_TEST(retry_after_hint)
{
    imp_error_t *err = imp_error_new(IMP_ERR_RETRIABLE, "http_429", "slow down");
    ck_assert_int_eq(imp_error_retry_after_ms(err), 0);
    imp_error_set_retry_after_ms(err, 2000);
    ck_assert_int_eq(imp_error_retry_after_ms(err), 2000);
    imp_error_set_retry_after_ms(err, -5);
    ck_assert_int_eq(imp_error_retry_after_ms(err), 0);
    imp_error_free(err);
}
END_TEST

static Suite *error_suite(void)
{
    Suite *s = suite_create("error");
    TCase *tc = tcase_create("error");
    tcase_add_test(tc, new_fields);
    tcase_add_test(tc, retry_after_hint);
    tcase_add_test(tc, message_is_not_a_format);
    tcase_add_test(tc, long_message);
    tcase_add_test(tc, class_names_roundtrip);
    tcase_add_test(tc, class_unknown);
    tcase_add_test(tc, prefix);
    tcase_add_test(tc, detail);
    tcase_add_test(tc, copy_is_equal_and_independent);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(error_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
