/* Unit tests for UUIDs and operation ids. */
#include "imp/opid.h"

#include "imp/mem.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t ns_dns[16] = {0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1,
                                   0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};
static const uint8_t ns_url[16] = {0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1,
                                   0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};

static const char *fmt(const uint8_t u[16])
{
    static char buf[IMP_UUID_STR_SIZE];
    imp_uuid_format(u, buf);
    return buf;
}

/* RFC 9562 Appendix A.4 (RFC 4122 errata 1352): DNS namespace, "www.example.com". */
START_TEST(v5_rfc_vector)
{
    uint8_t u[16];
    imp_uuid_v5(ns_dns, "www.example.com", 15, u);
    ck_assert_str_eq(fmt(u), "2ed6657d-e927-568b-95e1-2665a8aea6a2");
    /* Cross-checked with Python's uuid.uuid5(uuid.NAMESPACE_URL, ...). */
    imp_uuid_v5(ns_url, "http://www.example.com/", 23, u);
    ck_assert_str_eq(fmt(u), "fcde3c85-2270-590f-9e7c-ee003d65e0e2");
}
END_TEST

START_TEST(v5_version_and_variant)
{
    uint8_t u[16];
    for (int i = 0; i < 64; i++) {
        char name[16];
        int n = snprintf(name, sizeof(name), "n%d", i);
        imp_uuid_v5(IMP_OPID_NAMESPACE, name, (size_t)n, u);
        ck_assert_uint_eq(u[6] >> 4, 5);
        ck_assert_uint_eq(u[8] & 0xc0, 0x80);
    }
    /* The same name twice, the same id; a different namespace, a different id. */
    uint8_t a[16], b[16];
    imp_uuid_v5(IMP_OPID_NAMESPACE, "x", 1, a);
    imp_uuid_v5(IMP_OPID_NAMESPACE, "x", 1, b);
    ck_assert_mem_eq(a, b, 16);
    imp_uuid_v5(ns_dns, "x", 1, b);
    ck_assert(memcmp(a, b, 16) != 0);
}
END_TEST

START_TEST(namespace_is_fixed)
{
    ck_assert_str_eq(fmt(IMP_OPID_NAMESPACE), "07da5cec-ed2a-4cf7-a0ae-43edb714bc16");
}
END_TEST

START_TEST(v4_random)
{
    uint8_t a[16], b[16];
    imp_uuid_v4(a);
    imp_uuid_v4(b);
    ck_assert(memcmp(a, b, 16) != 0);
    ck_assert_uint_eq(a[6] >> 4, 4);
    ck_assert_uint_eq(a[8] & 0xc0, 0x80);

    char s[IMP_UUID_STR_SIZE];
    imp_uuid_v4_str(s);
    ck_assert_uint_eq(strlen(s), 36);
    ck_assert_int_eq(s[14], '4');
    ck_assert(strchr("89ab", s[19]) != NULL);
    uint8_t back[16];
    ck_assert_int_eq(imp_uuid_parse(s, 36, back), 0);
    ck_assert_str_eq(fmt(back), s);
}
END_TEST

START_TEST(format_parse)
{
    uint8_t u[16];
    const char *text = "2ed6657d-e927-568b-95e1-2665a8aea6a2";
    ck_assert_int_eq(imp_uuid_parse(text, 36, u), 0);
    ck_assert_str_eq(fmt(u), text);
    ck_assert_int_eq(imp_uuid_parse("2ED6657D-E927-568B-95E1-2665A8AEA6A2", 36, u), 0);
    ck_assert_str_eq(fmt(u), text); /* always formatted lowercase */

    static const uint8_t edge[16] = {0x00, 0xff, 0x10, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff};
    ck_assert_str_eq(fmt(edge), "00ff1001-0000-0000-0000-0000000000ff");
    /* Not NUL-terminated input (a header value) is fine: the length is given. */
    char buf[40];
    memcpy(buf, text, 36);
    memcpy(buf + 36, "XYZ", 3);
    ck_assert_int_eq(imp_uuid_parse(buf, 36, u), 0);
}
END_TEST

static const char *const bad_uuids[] = {
    "",
    "2ed6657d-e927-568b-95e1-2665a8aea6a",   /* 35 */
    "2ed6657d-e927-568b-95e1-2665a8aea6a2a", /* 37 */
    "2ed6657de927568b95e12665a8aea6a2",      /* no hyphens */
    "2ed6657d-e927-568b-95e12665a8aea6a2-",  /* hyphen misplaced */
    "2ed6657-de927-568b-95e1-2665a8aea6a2",  /* hyphen misplaced */
    "{ed6657d-e927-568b-95e1-2665a8aea6a}",  /* braces */
    "2ed6657d-e927-568b-95e1-2665a8aea6g2",  /* not hex */
    "2ed6657d-e927-568b-95e1-2665a8aea6 2",  /* space */
    "2ed6657d+e927-568b-95e1-2665a8aea6a2",  /* wrong separator */
};

START_TEST(parse_rejects)
{
    uint8_t u[16];
    const char *t = bad_uuids[_i];
    ck_assert_msg(imp_uuid_parse(t, strlen(t), u) == -1, "accepted \"%s\"", t);
}
END_TEST

START_TEST(parse_rejects_null)
{
    uint8_t u[16];
    ck_assert_int_eq(imp_uuid_parse(NULL, 36, u), -1);
    ck_assert_int_eq(imp_uuid_parse("2ed6657d-e927-568b-95e1-2665a8aea6a2", 35, u), -1);
}
END_TEST

START_TEST(opid_inbound)
{
    char a[IMP_UUID_STR_SIZE], b[IMP_UUID_STR_SIZE];
    ck_assert_ptr_null(imp_opid_inbound("t1", "telegram", "42", a));
    /* UUIDv5(project ns, "t1|telegram|42"), cross-checked with Python's uuid.uuid5. */
    ck_assert_str_eq(a, "38ba8c08-dc05-5928-b4fe-5b282ede93e0");
    ck_assert_ptr_null(imp_opid_inbound("t1", "telegram", "42", b));
    ck_assert_str_eq(a, b); /* a redelivered webhook gets the same id */

    ck_assert_ptr_null(
        imp_opid_inbound("11111111-2222-4333-8444-555555555555", "whatsapp", "wamid.HBgM==", a));
    ck_assert_str_eq(a, "a3105531-1388-5646-9550-11c1bbeded93");

    /* Each component matters. */
    ck_assert_ptr_null(imp_opid_inbound("t1", "telegram", "43", b));
    ck_assert_str_ne(b, "38ba8c08-dc05-5928-b4fe-5b282ede93e0");
    ck_assert_ptr_null(imp_opid_inbound("t2", "telegram", "42", b));
    ck_assert_str_ne(b, "38ba8c08-dc05-5928-b4fe-5b282ede93e0");
    ck_assert_ptr_null(imp_opid_inbound("t1", "generic", "42", b));
    ck_assert_str_ne(b, "38ba8c08-dc05-5928-b4fe-5b282ede93e0");
    /* A '|' inside the provider's id is fine: it is the last component. */
    ck_assert_ptr_null(imp_opid_inbound("t1", "generic", "a|b", b));
    ck_assert_uint_eq(strlen(b), 36);
}
END_TEST

static void inbound_rejected(const char *tenant, const char *channel, const char *event)
{
    char out[IMP_UUID_STR_SIZE] = "unchanged";
    imp_error_t *err = imp_opid_inbound(tenant, channel, event, out);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
    ck_assert_str_eq(imp_error_code(err), "opid_name");
    ck_assert_str_eq(out, "");
    imp_error_free(err);
}

START_TEST(opid_inbound_rejects)
{
    inbound_rejected("", "telegram", "42");
    inbound_rejected(NULL, "telegram", "42");
    inbound_rejected("t|1", "telegram", "42"); /* would collide with ("t", "1|telegram", ...) */
    inbound_rejected("t1", "", "42");
    inbound_rejected("t1", NULL, "42");
    inbound_rejected("t1", "tele|gram", "42");
    inbound_rejected("t1", "telegram", "");
    inbound_rejected("t1", "telegram", NULL);
}
END_TEST

START_TEST(opid_derive)
{
    char turn[IMP_UUID_STR_SIZE], again[IMP_UUID_STR_SIZE];
    ck_assert_ptr_null(imp_opid_derive("38ba8c08-dc05-5928-b4fe-5b282ede93e0", "turn", turn));
    /* UUIDv5(project ns, "<parent>|turn"), cross-checked with Python. */
    ck_assert_str_eq(turn, "10a4505b-1cf5-5071-86af-afae14e3aebb");
    /* Case of the parent does not matter: the canonical lowercase form is hashed. */
    ck_assert_ptr_null(imp_opid_derive("38BA8C08-DC05-5928-B4FE-5B282EDE93E0", "turn", again));
    ck_assert_str_eq(turn, again);
    ck_assert_ptr_null(imp_opid_derive("38ba8c08-dc05-5928-b4fe-5b282ede93e0", "draft", again));
    ck_assert_str_ne(turn, again);
    /* Chains are deterministic too. */
    char d1[IMP_UUID_STR_SIZE], d2[IMP_UUID_STR_SIZE];
    ck_assert_ptr_null(imp_opid_derive(turn, "draft", d1));
    ck_assert_ptr_null(imp_opid_derive(turn, "draft", d2));
    ck_assert_str_eq(d1, d2);
}
END_TEST

START_TEST(opid_derive_rejects)
{
    char out[IMP_UUID_STR_SIZE] = "unchanged";
    const char *bad[][2] = {
        {NULL, "turn"},
        {"", "turn"},
        {"not-a-uuid", "turn"},
        {"38ba8c08-dc05-5928-b4fe-5b282ede93e0 ", "turn"},
        {"38ba8c08-dc05-5928-b4fe-5b282ede93e0", ""},
        {"38ba8c08-dc05-5928-b4fe-5b282ede93e0", NULL},
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(bad); i++) {
        imp_error_t *err = imp_opid_derive(bad[i][0], bad[i][1], out);
        ck_assert_msg(err != NULL, "case %zu accepted", i);
        ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
        ck_assert_str_eq(imp_error_code(err), "opid_name");
        ck_assert_str_eq(out, "");
        imp_error_free(err);
    }
}
END_TEST

static Suite *opid_suite(void)
{
    Suite *s = suite_create("opid");
    TCase *tc = tcase_create("uuid");
    tcase_add_test(tc, v5_rfc_vector);
    tcase_add_test(tc, v5_version_and_variant);
    tcase_add_test(tc, namespace_is_fixed);
    tcase_add_test(tc, v4_random);
    tcase_add_test(tc, format_parse);
    tcase_add_loop_test(tc, parse_rejects, 0, (int)IMP_ARRAY_LEN(bad_uuids));
    tcase_add_test(tc, parse_rejects_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("opid");
    tcase_add_test(tc, opid_inbound);
    tcase_add_test(tc, opid_inbound_rejects);
    tcase_add_test(tc, opid_derive);
    tcase_add_test(tc, opid_derive_rejects);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(opid_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
