/* Unit tests for imperium-dlq's command line and the SQL filters built from it. */
#include "../../../workers/dlq-replayer/args.c"
#include "../../../workers/dlq-replayer/format.c"
#include "../../../workers/dlq-replayer/rows.c"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1777604400000LL /* 2026-05-01T03:00:00Z */

static dlq_args_t args;
static char msg[512];

/* Parse a NULL-terminated list of words after "imperium-dlq". */
static int parse(const char *first, ...)
{
    char *argv[32] = {(char *)"imperium-dlq"};
    int argc = 1;
    va_list ap;
    va_start(ap, first);
    for (const char *w = first; w != NULL && argc < 31; w = va_arg(ap, const char *))
        argv[argc++] = (char *)w;
    va_end(ap);
    dlq_args_dispose(&args);
    msg[0] = '\0';
    return dlq_args_parse(argc, argv, NOW, &args, msg, sizeof(msg));
}

static void teardown(void)
{
    dlq_args_dispose(&args);
}

START_TEST(list_defaults_and_filters)
{
    ck_assert_int_eq(parse("list", NULL), 0);
    ck_assert_int_eq(args.cmd, DLQ_CMD_LIST);
    ck_assert_int_eq(args.filter.limit, 100);
    ck_assert(!args.filter.with_replayed && !args.json);
    ck_assert_int_eq(parse("list", "--worker", "send", "--tenant=acme", "--class", "poison",
                           "--since", "2h", "--limit=5", "--all", "--json", NULL),
                     0);
    ck_assert_str_eq(args.filter.worker, "send");
    ck_assert_str_eq(args.filter.tenant, "acme");
    ck_assert_str_eq(args.filter.cls, "poison");
    ck_assert_int_eq(args.filter.since_ms, NOW - 7200000LL);
    ck_assert_int_eq(args.filter.limit, 5);
    ck_assert(args.filter.with_replayed && args.json);
}
END_TEST

START_TEST(list_rejects)
{
    ck_assert_int_eq(parse("list", "--yes", NULL), -1);
    ck_assert_str_eq(msg, "list: --yes does not apply to this command");
    ck_assert_int_eq(parse("list", "--class", "bad", NULL), -1);
    ck_assert_ptr_nonnull(strstr(msg, "--class: \"bad\" is not one of"));
    ck_assert_int_eq(parse("list", "--since", NULL), -1);
    ck_assert_str_eq(msg, "list: --since needs a value");
    ck_assert_int_eq(parse("list", "--since=", NULL), -1);
    ck_assert_int_eq(parse("list", "--since", "soon", NULL), -1);
    ck_assert_int_eq(parse("list", "--limit", "0", NULL), -1);
    ck_assert_int_eq(parse("list", "--limit", "100001", NULL), -1);
    ck_assert_int_eq(parse("list", "--worker", "Bad Name", NULL), -1);
    ck_assert_int_eq(parse("list", "--tenant", "not a slug", NULL), -1);
    ck_assert_int_eq(parse("list", "--all=yes", NULL), -1);
    ck_assert_int_eq(parse("list", "--frob", NULL), -1);
    ck_assert_str_eq(msg, "list: unknown option --frob");
    ck_assert_int_eq(parse("list", "42", NULL), -1);
    ck_assert_int_eq(parse("frob", NULL), -1);
    ck_assert(!args.have_cmd);
    ck_assert_int_eq(parse("list", "--bad", NULL), -1);
    ck_assert(args.have_cmd);
}
END_TEST

START_TEST(show_and_replay)
{
    ck_assert_int_eq(parse("show", "42", "--json", NULL), 0);
    ck_assert_uint_eq(args.nids, 1);
    ck_assert_int_eq(args.ids[0], 42);
    ck_assert_int_eq(parse("show", NULL), -1);
    ck_assert_int_eq(parse("show", "1", "2", NULL), -1);

    ck_assert_int_eq(parse("replay", "7", "3", "7", "5", NULL), 0);
    ck_assert_uint_eq(args.nids, 3); /* the repeated 7 once, order kept */
    ck_assert_int_eq(args.ids[0], 7);
    ck_assert_int_eq(args.ids[1], 3);
    ck_assert_int_eq(args.ids[2], 5);
    ck_assert_int_eq(parse("replay", "--worker", "dialog", "--since", "1d", "--dry-run", NULL), 0);
    ck_assert(args.dry_run);
    ck_assert_int_eq(parse("replay", NULL), -1);
    ck_assert_int_eq(parse("replay", "--tenant", "acme", NULL), -1); /* filters need --worker */
    ck_assert_int_eq(parse("replay", "3", "--worker", "dialog", NULL), -1);
    ck_assert_int_eq(parse("replay", "--worker", "dialog", "--again", NULL), -1);
    ck_assert_int_eq(parse("replay", "abc", NULL), -1);
    ck_assert_str_eq(msg, "replay: \"abc\" is not a dead letter id (a positive number)");
    ck_assert_int_eq(parse("replay", "3", "--json", NULL), -1);
}
END_TEST

START_TEST(purge)
{
    ck_assert_int_eq(parse("purge", NULL), 0);
    ck_assert(!args.yes && args.filter.with_replayed);
    ck_assert_int_eq(parse("purge", "--before", "30d", "--replayed-only", "--yes", NULL), 0);
    ck_assert(args.yes && args.filter.replayed_only);
    ck_assert_int_eq(args.filter.before_ms, NOW - 30 * 86400000LL);
    ck_assert_int_eq(parse("purge", "--since", "1d", NULL), -1);
    ck_assert_int_eq(parse("purge", "12", NULL), -1);
}
END_TEST

START_TEST(where_clauses)
{
    dlq_where_t w;
    ck_assert_int_eq(parse("purge", NULL), 0);
    dlq_where_build(&args.filter, NULL, &w);
    ck_assert_str_eq(w.sql, "true");
    ck_assert_int_eq(w.n, 0);

    ck_assert_int_eq(parse("list", "--worker", "send", "--class", "poison", NULL), 0);
    dlq_where_build(&args.filter, "11111111-1111-4111-8111-111111111111", &w);
    ck_assert_int_eq(w.n, 3);
    ck_assert_str_eq(w.params[0], "send");
    ck_assert_str_eq(w.params[1], "11111111-1111-4111-8111-111111111111");
    ck_assert_str_eq(w.params[2], "poison");
    ck_assert_ptr_nonnull(strstr(w.sql, "d.worker = $1 AND d.tenant_id = $2::uuid AND "
                                        "d.class = $3 AND (d.replayed_at IS NULL OR "));

    ck_assert_int_eq(parse("purge", "--worker", "w", "--tenant", "t", "--class", "fatal",
                           "--before", "1d", "--replayed-only", NULL),
                     0);
    dlq_where_build(&args.filter, "11111111-1111-4111-8111-111111111111", &w);
    ck_assert_int_eq(w.n, 4);
    ck_assert_str_eq(w.params[3], "1777518000000");
    ck_assert_ptr_nonnull(strstr(w.sql, "d.created_at < 'epoch'::timestamptz + $4::bigint"));
    ck_assert_ptr_nonnull(strstr(w.sql, "AND d.replayed_at IS NOT NULL"));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dlq_args");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, list_defaults_and_filters);
    tcase_add_test(tc, list_rejects);
    tcase_add_test(tc, show_and_replay);
    tcase_add_test(tc, purge);
    tcase_add_test(tc, where_clauses);
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
