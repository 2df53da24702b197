/* Unit tests of the Postgres module's parts that need no server: error classification, name
 * and UUID validation, misuse without a connection, bytea text form. The rest runs against
 * a real server in tests/integration/it_pg.sh. */
#include "pg.c"

#include <check.h>
#include <stdlib.h>

START_TEST(sqlstates_map_to_classes)
{
    static const struct {
        const char *state;
        imp_err_class_t cls;
    } cases[] = {
        {"08006", IMP_ERR_INFRA},     {"08001", IMP_ERR_INFRA},     {"57P01", IMP_ERR_INFRA},
        {"57P03", IMP_ERR_INFRA},     {"53300", IMP_ERR_INFRA},     {"53100", IMP_ERR_INFRA},
        {"58030", IMP_ERR_INFRA},     {"XX001", IMP_ERR_INFRA},     {"25006", IMP_ERR_INFRA},
        {"40001", IMP_ERR_RETRIABLE}, {"40P01", IMP_ERR_RETRIABLE}, {"55P03", IMP_ERR_RETRIABLE},
        {"57014", IMP_ERR_RETRIABLE}, {"23505", IMP_ERR_POISON},    {"23503", IMP_ERR_POISON},
        {"22P02", IMP_ERR_POISON},    {"42P01", IMP_ERR_POISON},    {"42501", IMP_ERR_POISON},
        {"XX000", IMP_ERR_POISON},    {"", IMP_ERR_POISON},         {"0800", IMP_ERR_POISON},
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++)
        ck_assert_msg(classify_sqlstate(cases[i].state) == cases[i].cls, "%s", cases[i].state);
    ck_assert(classify_sqlstate(NULL) == IMP_ERR_POISON);
    ck_assert(state_ends_session("08006"));
    ck_assert(state_ends_session("57P01"));
    ck_assert(!state_ends_session("23505"));
    ck_assert(!state_ends_session(NULL));
}
END_TEST

START_TEST(savepoint_names)
{
    ck_assert(valid_savepoint("imp_event"));
    ck_assert(valid_savepoint("_a1"));
    ck_assert(!valid_savepoint("1a"));
    ck_assert(!valid_savepoint("Upper"));
    ck_assert(!valid_savepoint("a; DROP TABLE x"));
    ck_assert(!valid_savepoint(""));
    ck_assert(!valid_savepoint(NULL));
    char long_name[65];
    memset(long_name, 'a', 64);
    long_name[64] = '\0';
    ck_assert(!valid_savepoint(long_name));
    long_name[63] = '\0';
    ck_assert(valid_savepoint(long_name));
}
END_TEST

START_TEST(uuids)
{
    ck_assert(valid_uuid("07da5cec-ed2a-4cf7-a0ae-43edb714bc16"));
    ck_assert(!valid_uuid("07da5cec-ed2a-4cf7-a0ae-43edb714bc1"));
    ck_assert(!valid_uuid("07da5cec-ed2a-4cf7-a0ae_43edb714bc16"));
    ck_assert(!valid_uuid("'; select 1; --------------------------"));
}
END_TEST

START_TEST(line_numbers_of_positions)
{
    ck_assert_int_eq(line_of_position("select 1;\nselect x;\n", 11), 2);
    ck_assert_int_eq(line_of_position("a\nb\nc", 5), 3);
    ck_assert_int_eq(line_of_position("abc", 1), 1);
    /* Positions count characters, not bytes. */
    ck_assert_int_eq(line_of_position("\xd0\xb6\xd0\xb6\nx", 4), 2);
}
END_TEST

START_TEST(misuse_without_a_server)
{
    imp_pg_options_t o = {.dsn = "postgresql://127.0.0.1:1/none"};
    imp_pg_t *pg = imp_pg_new(&o);
    ck_assert(!imp_pg_in_tx(pg));
    imp_error_t *err = imp_pg_set_tenant(pg, "07da5cec-ed2a-4cf7-a0ae-43edb714bc16");
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
    imp_error_free(err);
    err = imp_pg_savepoint(pg, "sp");
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
    imp_error_free(err);
    /* No server on port 1: connecting is infra, never poison. */
    err = imp_pg_ping(pg);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_INFRA);
    imp_error_free(err);
    imp_pg_tx_rollback(pg); /* a no-op outside a transaction */
    imp_pg_free(pg);
    imp_pg_free(NULL);
}
END_TEST

START_TEST(bytea_hex)
{
    char *hex = imp_pg_bytea_hex("\x00\xff\x10", 3);
    ck_assert_str_eq(hex, "\\x00ff10");
    free(hex);
    hex = imp_pg_bytea_hex("", 0);
    ck_assert_str_eq(hex, "\\x");
    free(hex);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pg");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, sqlstates_map_to_classes);
    tcase_add_test(tc, savepoint_names);
    tcase_add_test(tc, uuids);
    tcase_add_test(tc, line_numbers_of_positions);
    tcase_add_test(tc, misuse_without_a_server);
    tcase_add_test(tc, bytea_hex);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
