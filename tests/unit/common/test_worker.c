/* Unit tests of the worker runtime's pure parts: backoff, array literals, batch forming. */
#include "worker_batch.c"
#include "worker_outbox.c"

#include <check.h>
#include <stdlib.h>

START_TEST(backoff_doubles_caps_and_jitters_in_upper_half)
{
    srandom(1);
    for (int attempt = 1; attempt <= 12; attempt++) {
        long long nominal = 1000LL << (attempt - 1);
        if (nominal > 60000)
            nominal = 60000;
        for (int i = 0; i < 200; i++) {
            long long d = imp_worker_backoff_ms(1000, 60000, attempt);
            ck_assert_int_ge(d, nominal / 2);
            ck_assert_int_le(d, nominal);
        }
    }
    ck_assert_int_eq(imp_worker_backoff_ms(1, 1, 1), 1);
    ck_assert_int_le(imp_worker_backoff_ms(100, 500, 1000), 500);
}
END_TEST

START_TEST(array_literal_escapes_and_nulls)
{
    worker_arr_t a;
    worker_arr_init(&a);
    worker_arr_add(&a, "plain", 5);
    worker_arr_add(&a, NULL, 0);
    worker_arr_add(&a, "q\"u\\o,te{}", 10);
    worker_arr_add(&a, "", 0);
    ck_assert_str_eq(worker_arr_finish(&a), "{\"plain\",NULL,\"q\\\"u\\\\o,te{}\",\"\"}");
    ck_assert_uint_eq(a.count, 4);
    worker_arr_dispose(&a);

    worker_arr_init(&a);
    ck_assert_str_eq(worker_arr_finish(&a), "{}");
    worker_arr_dispose(&a);
}
END_TEST

START_TEST(array_literal_grows)
{
    worker_arr_t a;
    worker_arr_init(&a);
    char big[5000];
    memset(big, 'x', sizeof(big));
    for (int i = 0; i < 50; i++)
        worker_arr_add(&a, big, sizeof(big));
    const char *s = worker_arr_finish(&a);
    ck_assert_uint_eq(strlen(s), 2 + 50 * (sizeof(big) + 2) + 49);
    worker_arr_dispose(&a);
}
END_TEST

START_TEST(uuid_shape)
{
    ck_assert(worker_is_uuid("07da5cec-ed2a-4cf7-a0ae-43edb714bc16"));
    ck_assert(worker_is_uuid("07DA5CEC-ED2A-4CF7-A0AE-43EDB714BC16"));
    ck_assert(!worker_is_uuid("07da5cec-ed2a-4cf7-a0ae-43edb714bc1"));
    ck_assert(!worker_is_uuid("07da5cec-ed2a-4cf7-a0ae-43edb714bc16x"));
    ck_assert(!worker_is_uuid("07da5cec_ed2a-4cf7-a0ae-43edb714bc16"));
    ck_assert(!worker_is_uuid("g7da5cec-ed2a-4cf7-a0ae-43edb714bc16"));
    ck_assert(!worker_is_uuid(""));
    ck_assert(!worker_is_uuid(NULL));
}
END_TEST

START_TEST(outs_keep_only_uuid_ids)
{
    worker_outs_t o = {0};
    worker_outs_push(&o, "t", NULL, "payload", 7, NULL, "not-a-uuid",
                     "07da5cec-ed2a-4cf7-a0ae-43edb714bc16");
    ck_assert_uint_eq(o.n, 1);
    ck_assert_str_eq(o.v[0].tenant, "");
    ck_assert_str_eq(o.v[0].opid, "07da5cec-ed2a-4cf7-a0ae-43edb714bc16");
    ck_assert_ptr_null(o.v[0].key);
    ck_assert_uint_eq(o.v[0].payload_len, 7);
    worker_outs_clear(&o);
    ck_assert_uint_eq(o.n, 0);
    free(o.v);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("worker");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, backoff_doubles_caps_and_jitters_in_upper_half);
    tcase_add_test(tc, array_literal_escapes_and_nulls);
    tcase_add_test(tc, array_literal_grows);
    tcase_add_test(tc, uuid_shape);
    tcase_add_test(tc, outs_keep_only_uuid_ids);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
