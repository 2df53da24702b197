/* Unit tests for the envelope (imp/envelope.h) and traceparent (imp/trace.h) modules. */
#include "imp/envelope.h"
#include "imp/mem.h"
#include "imp/trace.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID "6f1d4c2a-8b3e-5f70-9a12-3c4d5e6f7a8b"
#define CAUSE "0b6e7c3a-1f2d-5e4c-8a9b-7c6d5e4f3a2b"
#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

/* Every attribute, in canonical form: serialize writes exactly this text back. */
static const char full[] =
    "{\"specversion\":\"1.0\",\"id\":\"" ID "\",\"source\":\"imperium/dialog\","
    "\"type\":\"imp.test.v1\",\"time\":\"2026-01-02T03:04:05.678Z\","
    "\"subject\":\"demo:telegram:42\",\"datacontenttype\":\"application/json\","
    "\"tenantid\":\"demo\",\"traceparent\":\"" TP "\",\"causationid\":\"" CAUSE "\","
    "\"attempt\":2,\"notbefore\":\"2026-01-02T03:05:05.678Z\","
    "\"dlq\":{\"worker\":\"send\",\"class\":\"retriable\",\"reason\":\"provider timeout\","
    "\"topic\":\"imp.outbound.v1\",\"partition\":3,\"offset\":12345,"
    "\"at\":\"2026-01-02T03:06:05.678Z\"},"
    "\"data\":{\"seq\":7,\"payload\":\"h\xc3\xa9llo\",\"fail\":\"none\"}}";

static const char minimal[] =
    "{\"specversion\":\"1.0\",\"id\":\"" ID "\",\"source\":\"imperium/dialog\","
    "\"type\":\"imp.test.v1\",\"time\":\"2026-01-02T03:04:05Z\",\"tenantid\":\"demo\","
    "\"data\":{}}";

static imp_error_t *parse_str(const char *text, imp_envelope_t *e)
{
    return imp_envelope_parse(text, strlen(text), e);
}

/* Parse text expecting failure; check class, code and the exact message. */
static void expect_reject(const char *text, size_t len, const char *message)
{
    imp_envelope_t e;
    imp_error_t *err = imp_envelope_parse(text, len, &e);
    ck_assert_msg(err != NULL, "accepted: %s", text);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
    ck_assert_str_eq(imp_error_code(err), "bad_envelope");
    if (message != NULL)
        ck_assert_str_eq(imp_error_message(err), message);
    ck_assert_ptr_null(e.data);
    ck_assert_ptr_null(e.subject);
    imp_error_free(err);
}

static void expect_reject_prefix(const char *text, size_t len, const char *prefix)
{
    imp_envelope_t e;
    imp_error_t *err = imp_envelope_parse(text, len, &e);
    ck_assert_msg(err != NULL, "accepted");
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
    ck_assert_msg(strncmp(imp_error_message(err), prefix, strlen(prefix)) == 0,
                  "message \"%s\" does not start with \"%s\"", imp_error_message(err), prefix);
    imp_error_free(err);
}

/* The full envelope with one member changed: path "attempt" or "dlq.partition"; value is
 * JSON text, or NULL to delete the member. New heap string. */
static char *with(const char *path, const char *value)
{
    json_t *root = json_loads(full, 0, NULL), *obj = root;
    const char *dot = strchr(path, '.');
    if (dot != NULL && strncmp(path, "dlq.", 4) == 0) {
        obj = json_object_get(root, "dlq");
        path = dot + 1;
    }
    if (value == NULL) {
        json_object_del(obj, path);
    } else {
        json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);
        ck_assert_msg(v != NULL, "bad test value %s", value);
        json_object_set_new(obj, path, v);
    }
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

START_TEST(parse_full_fields)
{
    imp_envelope_t e;
    ck_assert_ptr_null(parse_str(full, &e));
    ck_assert_str_eq(e.id, ID);
    ck_assert_str_eq(e.source, "imperium/dialog");
    ck_assert_str_eq(e.type, "imp.test.v1");
    ck_assert_int_eq(e.time_ms, 1767323045678);
    ck_assert_str_eq(e.subject, "demo:telegram:42");
    ck_assert_str_eq(e.tenantid, "demo");
    ck_assert_str_eq(e.traceparent, TP);
    ck_assert_str_eq(e.causationid, CAUSE);
    ck_assert_int_eq(e.attempt, 2);
    ck_assert_int_eq(e.notbefore_ms, 1767323105678);
    ck_assert(e.has_dlq);
    ck_assert_str_eq(e.dlq.worker, "send");
    ck_assert_int_eq(e.dlq.cls, IMP_ERR_RETRIABLE);
    ck_assert_str_eq(e.dlq.reason, "provider timeout");
    ck_assert_str_eq(e.dlq.topic, "imp.outbound.v1");
    ck_assert_int_eq(e.dlq.partition, 3);
    ck_assert_int_eq(e.dlq.offset, 12345);
    ck_assert_int_eq(e.dlq.at_ms, 1767323165678);
    ck_assert(json_is_object(e.data));
    ck_assert_int_eq(json_integer_value(json_object_get(e.data, "seq")), 7);
    ck_assert_str_eq(json_string_value(json_object_get(e.data, "payload")), "h\xc3\xa9llo");
    imp_envelope_dispose(&e);
    ck_assert_ptr_null(e.data);
    imp_envelope_dispose(&e); /* twice is harmless */
}
END_TEST

START_TEST(parse_minimal_defaults)
{
    imp_envelope_t e;
    ck_assert_ptr_null(parse_str(minimal, &e));
    ck_assert_ptr_null(e.subject);
    ck_assert_str_eq(e.traceparent, "");
    ck_assert_str_eq(e.causationid, "");
    ck_assert_int_eq(e.attempt, 0);
    ck_assert_int_eq(e.notbefore_ms, 0);
    ck_assert(!e.has_dlq);
    ck_assert_int_eq(json_object_size(e.data), 0);
    ck_assert_int_eq(e.time_ms, 1767323045000);

    char *text = NULL;
    ck_assert_ptr_null(imp_envelope_serialize(&e, &text));
    ck_assert_str_eq(text,
                     "{\"specversion\":\"1.0\",\"id\":\"" ID "\",\"source\":\"imperium/dialog\","
                     "\"type\":\"imp.test.v1\",\"time\":\"2026-01-02T03:04:05.000Z\","
                     "\"datacontenttype\":\"application/json\",\"tenantid\":\"demo\","
                     "\"attempt\":0,\"data\":{}}");
    free(text);
    imp_envelope_dispose(&e);
}
END_TEST

START_TEST(roundtrip_exact)
{
    imp_envelope_t e, again;
    char *text = NULL, *text2 = NULL;
    ck_assert_ptr_null(parse_str(full, &e));
    ck_assert_ptr_null(imp_envelope_serialize(&e, &text));
    ck_assert_str_eq(text, full);
    ck_assert_ptr_null(parse_str(text, &again));
    ck_assert_ptr_null(imp_envelope_serialize(&again, &text2));
    ck_assert_str_eq(text2, full);
    ck_assert(json_equal(e.data, again.data));
    free(text);
    free(text2);
    imp_envelope_dispose(&e);
    imp_envelope_dispose(&again);
}
END_TEST

/* Offsets and fractions are normalized to UTC milliseconds on the way through. */
START_TEST(roundtrip_normalizes_time)
{
    char *in = with("time", "\"2026-01-02T08:34:05.678999+05:30\"");
    imp_envelope_t e;
    char *out = NULL;
    ck_assert_ptr_null(parse_str(in, &e));
    ck_assert_int_eq(e.time_ms, 1767323045678);
    ck_assert_ptr_null(imp_envelope_serialize(&e, &out));
    ck_assert_str_eq(out, full);
    free(in);
    free(out);
    imp_envelope_dispose(&e);
}
END_TEST

static const struct {
    const char *path, *value, *message;
} rules[] = {
    {"specversion", NULL, "specversion is missing"},
    {"specversion", "\"0.3\"", "specversion is not \"1.0\""},
    {"specversion", "1.0", "specversion is not a string"},
    {"id", NULL, "id is missing"},
    {"id", "\"\"", "id is not a lowercase uuid"},
    {"id", "\"not-a-uuid\"", "id is not a lowercase uuid"},
    {"id", "\"6F1D4C2A-8B3E-5F70-9A12-3C4D5E6F7A8B\"", "id is not a lowercase uuid"},
    {"id", "\"00000000-0000-0000-0000-000000000000\"", "id is not a lowercase uuid"},
    {"id", "\"6f1d4c2a8b3e5f709a123c4d5e6f7a8b\"", "id is not a lowercase uuid"},
    {"id", "\"6f1d4c2a-8b3e-5f70-9a12-3c4d5e6f7a8bb\"", "id is not a lowercase uuid"},
    {"id", "\"6f1d4c2a-8b3e-5f70-9a12_3c4d5e6f7a8b\"", "id is not a lowercase uuid"},
    {"id", "\"6f1d4c2a-8b3e-5f70-9a12-3c4d5e6f7a8g\"", "id is not a lowercase uuid"},
    {"id", "42", "id is not a string"},
    {"source", NULL, "source is missing"},
    {"source", "\"dialog\"", "source is not imperium/<binary>"},
    {"source", "\"imperium/\"", "source is not imperium/<binary>"},
    {"source", "\"imperium/Dialog\"", "source is not imperium/<binary>"},
    {"source", "\"imperium/-dialog\"", "source is not imperium/<binary>"},
    {"source", "\"imperium/dia log\"", "source is not imperium/<binary>"},
    {"source", "\"imperium/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
     "source is not imperium/<binary>"},
    {"type", NULL, "type is missing"},
    {"type", "\"imp.test\"", "type is not imp.<name>.v<n>"},
    {"type", "\"imp.v1\"", "type is not imp.<name>.v<n>"},
    {"type", "\"imp..test.v1\"", "type is not imp.<name>.v<n>"},
    {"type", "\"imp.test..v1\"", "type is not imp.<name>.v<n>"},
    {"type", "\"imp.Test.v1\"", "type is not imp.<name>.v<n>"},
    {"type", "\"imp.test.v\"", "type is not imp.<name>.v<n>"},
    {"type", "\"imp.test.v1x\"", "type is not imp.<name>.v<n>"},
    {"type", "\"imp.test.v1.\"", "type is not imp.<name>.v<n>"},
    {"type", "\"imp.test-x.v1\"", "type is not imp.<name>.v<n>"},
    {"type", "\"imp.test.v1\\n\"", "type is not imp.<name>.v<n>"},
    {"type", "\"com.test.v1\"", "type is not imp.<name>.v<n>"},
    {"type", "\"imp\"", "type is not imp.<name>.v<n>"},
    {"type", "[]", "type is not a string"},
    {"time", NULL, "time is missing"},
    {"time", "\"2026-01-02 03:04:05Z\"", "time is not an rfc 3339 date-time between 1970 and 9999"},
    {"time", "\"2026-01-02T03:04:05\"", "time is not an rfc 3339 date-time between 1970 and 9999"},
    {"time", "\"2026-13-02T03:04:05Z\"", "time is not an rfc 3339 date-time between 1970 and 9999"},
    {"time", "1767323045678", "time is not a string"},
    {"subject", "\"\"", "subject is empty"},
    {"subject", "42", "subject is not a string"},
    {"datacontenttype", "\"text/plain\"", "datacontenttype is not \"application/json\""},
    {"datacontenttype", "null", "datacontenttype is not a string"},
    {"tenantid", NULL, "tenantid is missing"},
    {"tenantid", "\"\"", "tenantid is not a tenant id ([a-z0-9_-], 1-63)"},
    {"tenantid", "\"Demo\"", "tenantid is not a tenant id ([a-z0-9_-], 1-63)"},
    {"tenantid", "\"de:mo\"", "tenantid is not a tenant id ([a-z0-9_-], 1-63)"},
    {"tenantid", "\"_demo\"", "tenantid is not a tenant id ([a-z0-9_-], 1-63)"},
    {"tenantid", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
     "tenantid is not a tenant id ([a-z0-9_-], 1-63)"},
    {"traceparent", "\"00-00000000000000000000000000000000-00f067aa0ba902b7-01\"",
     "traceparent trace-id is zero"},
    {"traceparent", "\"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01\"",
     "traceparent parent-id is zero"},
    {"traceparent", "\"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01\"",
     "traceparent is not 00-<32 hex>-<16 hex>-<2 hex> in lowercase"},
    {"traceparent", "\"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\"",
     "traceparent is not 00-<32 hex>-<16 hex>-<2 hex> in lowercase"},
    {"traceparent", "\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g\"",
     "traceparent is not 00-<32 hex>-<16 hex>-<2 hex> in lowercase"},
    {"traceparent", "\"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\"",
     "traceparent version is not 00"},
    {"traceparent", "\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7\"",
     "traceparent is not 55 characters (version 00)"},
    {"traceparent", "\"\"", "traceparent is not 55 characters (version 00)"},
    {"traceparent", "1", "traceparent is not a string"},
    {"causationid", "\"x\"", "causationid is not a lowercase uuid"},
    {"causationid", "null", "causationid is not a string"},
    {"attempt", "-1", "attempt is negative"},
    {"attempt", "1.0", "attempt is not an integer"},
    {"attempt", "\"1\"", "attempt is not an integer"},
    {"attempt", "true", "attempt is not an integer"},
    {"attempt", "2147483648", "attempt is too large"},
    {"notbefore", "\"tomorrow\"", "notbefore is not an rfc 3339 date-time between 1970 and 9999"},
    {"dlq", "[]", "dlq is not an object"},
    {"dlq.worker", NULL, "dlq.worker is missing"},
    {"dlq.worker", "\"Send\"", "dlq.worker is not a worker name ([a-z0-9_-], 1-63)"},
    {"dlq.class", NULL, "dlq.class is missing"},
    {"dlq.class", "\"bogus\"", "dlq.class is not one of infra, retriable, poison, fatal"},
    {"dlq.reason", NULL, "dlq.reason is missing"},
    {"dlq.reason", "\"\"", "dlq.reason is empty"},
    {"dlq.topic", NULL, "dlq.topic is missing"},
    {"dlq.topic", "\"imp outbound\"", "dlq.topic is not a kafka topic name"},
    {"dlq.partition", NULL, "dlq.partition is missing"},
    {"dlq.partition", "-1", "dlq.partition is negative"},
    {"dlq.partition", "2147483648", "dlq.partition is too large"},
    {"dlq.offset", NULL, "dlq.offset is missing"},
    {"dlq.offset", "\"5\"", "dlq.offset is not an integer"},
    {"dlq.offset", "-5", "dlq.offset is negative"},
    {"dlq.at", NULL, "dlq.at is missing"},
    {"dlq.at", "\"1969-12-31T23:59:59Z\"",
     "dlq.at is not an rfc 3339 date-time between 1970 and 9999"},
    {"dlq.extra", "1", "dlq has an unknown member \"extra\""},
    {"data", NULL, "data is missing"},
    {"data", "[1]", "data is not an object"},
    {"data", "null", "data is not an object"},
    {"data", "\"{}\"", "data is not an object"},
    {"data_base64", "\"aGk=\"", "unknown attribute \"data_base64\""},
    {"tenantId", "\"demo\"", "unknown attribute \"tenantId\""},
    {"dataschema", "\"urn:x\"", "unknown attribute \"dataschema\""},
};

START_TEST(each_rule_rejected)
{
    char *text = with(rules[_i].path, rules[_i].value);
    expect_reject(text, strlen(text), rules[_i].message);
    free(text);
}
END_TEST

static const struct {
    const char *path, *value;
} accepted[] = {
    {"type", "\"imp.inbound.message.v12\""},
    {"type", "\"imp.a_b.c.v0\""},
    {"source", "\"imperium/imperium-dlq\""},
    {"source", "\"imperium/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""},
    {"tenantid", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""},
    {"tenantid", "\"3f2504e0-4f89-11d3-9a0c-0305e82c3301\""},
    {"time", "\"2026-01-02t03:04:05.678z\""},
    {"dlq.class", "\"poison\""},
    {"dlq.offset", "9223372036854775807"},
    {"dlq.partition", "2147483647"},
    {"attempt", "2147483647"},
    {"datacontenttype", NULL},
    {"dlq", NULL},
    {"subject", "\"\xe5\xaf\xb9\xe8\xaf\x9d:1\""},
};

START_TEST(each_edge_accepted)
{
    char *text = with(accepted[_i].path, accepted[_i].value);
    imp_envelope_t e;
    imp_error_t *err = parse_str(text, &e);
    ck_assert_msg(err == NULL, "%s=%s: %s", accepted[_i].path,
                  accepted[_i].value ? accepted[_i].value : "(deleted)",
                  err ? imp_error_message(err) : "");
    imp_envelope_dispose(&e);
    free(text);
}
END_TEST

START_TEST(json_level_rejected)
{
    static const char dup[] = "{\"specversion\":\"1.0\",\"tenantid\":\"a\",\"tenantid\":\"b\"}";
    expect_reject(dup, strlen(dup),
                  "invalid json: duplicate object key near '\"tenantid\"' (line 1, column 46)");
    expect_reject("[1]", 3, "invalid json: the envelope is not an object");
    expect_reject("", 0, "invalid json: '[' or '{' expected near end of file (line 1, column 0)");
    expect_reject_prefix("{} x", 4, "invalid json: end of file expected");
    expect_reject_prefix("{\"a\":NaN}", 9, "invalid json: ");
    expect_reject_prefix("{\"a\":1e400}", 11, "invalid json: real number overflow");
    expect_reject_prefix("{\"a\":9223372036854775808}", 25, "invalid json: too big integer");
    expect_reject_prefix("{\"a\":\"\\u0000\"}", 14, "invalid json: \\u0000 is not allowed");
    /* an embedded NUL byte: len covers it, and it is not JSON */
    expect_reject_prefix("{\"a\":1}\0{}", 10, "invalid json: ");
    /* the full envelope cut one byte short */
    expect_reject_prefix(full, strlen(full) - 1, "invalid json: ");
}
END_TEST

START_TEST(non_utf8_rejected)
{
    static const char *const inputs[] = {
        "\"subject\":\"\xff\"",         /* invalid byte */
        "\"subject\":\"\xc0\xaf\"",     /* overlong '/' */
        "\"subject\":\"\xed\xa0\x80\"", /* UTF-16 surrogate encoded in UTF-8 */
        "\"subject\":\"\xe2\x82\"",     /* truncated sequence */
        "\"subject\":\"\\ud800\"",      /* lone surrogate escape */
        "\"data\":{\"k\xfe\":1}",       /* in a key of data */
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(inputs); i++) {
        char *text = imp_asprintf("{%s}", inputs[i]);
        expect_reject_prefix(text, strlen(text), "invalid json: ");
        free(text);
    }
    /* The message itself stays printable ASCII whatever the input held. */
    imp_envelope_t e;
    imp_error_t *err = parse_str("{\"\xff\xfe\":1}", &e);
    for (const char *p = imp_error_message(err); *p; p++)
        ck_assert(*p >= 0x20 && *p < 0x7f);
    imp_error_free(err);
}
END_TEST

START_TEST(rfc3339_parse)
{
    static const struct {
        const char *text;
        int64_t ms; /* -1: rejected */
    } cases[] = {
        {"2026-01-02T03:04:05.678Z", 1767323045678},
        {"2026-01-02T08:34:05.678+05:30", 1767323045678},
        {"2026-01-01T19:04:05.678-08:00", 1767323045678},
        {"2026-01-02T03:04:05.678-00:00", 1767323045678},
        {"2026-01-02t03:04:05.678z", 1767323045678},
        {"2026-01-02T03:04:05.6789999Z", 1767323045678},
        {"2025-06-01T12:00:00.5Z", 1748779200500},
        {"2025-06-01T12:00:00.05Z", 1748779200050},
        {"2024-02-29T12:34:56.789Z", 1709210096789},
        {"2000-02-29T00:00:00Z", 951782400000},
        {"2016-12-31T23:59:60Z", 1483228800000}, /* leap second: the next instant */
        {"1970-01-01T00:00:00Z", 0},
        {"1970-01-01T00:00:00.001Z", 1},
        {"9999-12-31T23:59:59.999Z", 253402300799999},
        {"1969-12-31T23:59:59.999Z", -1},
        {"1970-01-01T00:30:00+01:00", -1},
        {"9999-12-31T23:59:60Z", -1},
        {"2023-02-29T00:00:00Z", -1},
        {"1900-02-29T00:00:00Z", -1},
        {"2026-04-31T00:00:00Z", -1},
        {"2026-00-10T00:00:00Z", -1},
        {"2026-01-00T00:00:00Z", -1},
        {"2026-01-02T24:00:00Z", -1},
        {"2026-01-02T23:60:00Z", -1},
        {"2026-01-02T23:59:61Z", -1},
        {"2026-01-02T03:04:05+24:00", -1},
        {"2026-01-02T03:04:05+05:60", -1},
        {"2026-01-02T03:04:05+0530", -1},
        {"2026-01-02T03:04:05.Z", -1},
        {"2026-01-02T03:04:05", -1},
        {"2026-01-02T03:04:05ZZ", -1},
        {"2026-01-02T03:04:05Z ", -1},
        {"2026-01-02 03:04:05Z", -1},
        {"2026-1-02T03:04:05Z", -1},
        {"+2026-01-02T03:04:05Z", -1},
        {"2026-01-02T03:04:05.678", -1},
        {"", -1},
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++) {
        int64_t ms = -1;
        int rc = imp_envelope_time_parse(cases[i].text, strlen(cases[i].text), &ms);
        ck_assert_msg(rc == (cases[i].ms < 0 ? -1 : 0), "%s: rc %d", cases[i].text, rc);
        if (rc == 0)
            ck_assert_msg(ms == cases[i].ms, "%s: %lld", cases[i].text, (long long)ms);
    }
}
END_TEST

START_TEST(rfc3339_format)
{
    char out[IMP_ENVELOPE_TIME_LEN + 1];
    ck_assert_int_eq(imp_envelope_time_format(0, out), 0);
    ck_assert_str_eq(out, "1970-01-01T00:00:00.000Z");
    ck_assert_int_eq(imp_envelope_time_format(1709210096789, out), 0);
    ck_assert_str_eq(out, "2024-02-29T12:34:56.789Z");
    ck_assert_int_eq(imp_envelope_time_format(253402300799999, out), 0);
    ck_assert_str_eq(out, "9999-12-31T23:59:59.999Z");
    ck_assert_int_eq(imp_envelope_time_format(-1, out), -1);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(imp_envelope_time_format(253402300800000, out), -1);

    /* format and parse are inverses across the range */
    unsigned long long x = 88172645463325252ULL;
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t ms = (int64_t)(x % 253402300800000ULL), back = -1;
        ck_assert_int_eq(imp_envelope_time_format(ms, out), 0);
        ck_assert_int_eq(imp_envelope_time_parse(out, strlen(out), &back), 0);
        ck_assert_int_eq(back, ms);
    }

    int64_t now = imp_envelope_time_now_ms();
    ck_assert(now > 1767225600000); /* after 2026-01-01 */
    ck_assert(now < 4102444800000); /* before 2100-01-01 */
}
END_TEST

START_TEST(trace_parse_and_format)
{
    imp_trace_t t;
    char text[IMP_TRACEPARENT_LEN + 1];
    ck_assert_ptr_null(imp_trace_parse(TP, strlen(TP), &t));
    ck_assert_str_eq(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    ck_assert_str_eq(t.parent_id, "00f067aa0ba902b7");
    ck_assert_int_eq(t.flags, 0x01);
    imp_trace_format(&t, text);
    ck_assert_str_eq(text, TP);

    static const char ff[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe";
    ck_assert_ptr_null(imp_trace_parse(ff, strlen(ff), &t));
    ck_assert_int_eq(t.flags, 0xfe);
    imp_trace_format(&t, text);
    ck_assert_str_eq(text, ff);

    /* a longer string (a future version's extra fields) is not version 00 */
    static const char longer[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x";
    imp_error_t *err = imp_trace_parse(longer, strlen(longer), &t);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
    ck_assert_str_eq(imp_error_code(err), "bad_traceparent");
    ck_assert_str_eq(imp_error_message(err), "traceparent is not 55 characters (version 00)");
    imp_error_free(err);
    err = imp_trace_parse("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 55, &t);
    ck_assert_str_eq(imp_error_message(err), "traceparent version is not 00");
    imp_error_free(err);
}
END_TEST

static void assert_valid_trace(const imp_trace_t *t)
{
    char text[IMP_TRACEPARENT_LEN + 1];
    imp_trace_t back;
    imp_trace_format(t, text);
    ck_assert_int_eq(strlen(text), IMP_TRACEPARENT_LEN);
    ck_assert_ptr_null(imp_trace_parse(text, strlen(text), &back));
    ck_assert_str_eq(back.trace_id, t->trace_id);
    ck_assert_str_eq(back.parent_id, t->parent_id);
    ck_assert_int_eq(back.flags, t->flags);
}

START_TEST(trace_new_and_child)
{
    imp_trace_t a, b, child;
    imp_trace_new(&a);
    imp_trace_new(&b);
    assert_valid_trace(&a);
    assert_valid_trace(&b);
    ck_assert_int_eq(a.flags, IMP_TRACE_FLAG_SAMPLED);
    ck_assert_str_ne(a.trace_id, b.trace_id);
    ck_assert_str_ne(a.parent_id, b.parent_id);

    imp_trace_child(&a, &child);
    assert_valid_trace(&child);
    ck_assert_str_eq(child.trace_id, a.trace_id);
    ck_assert_str_ne(child.parent_id, a.parent_id);
    ck_assert_int_eq(child.flags, a.flags);

    imp_trace_t inplace = a;
    imp_trace_child(&inplace, &inplace);
    ck_assert_str_eq(inplace.trace_id, a.trace_id);
    ck_assert_str_ne(inplace.parent_id, a.parent_id);

    /* 1,000 new traces: all distinct trace ids, every one valid */
    enum { N = 1000 };
    static imp_trace_t many[N];
    for (int i = 0; i < N; i++) {
        imp_trace_new(&many[i]);
        assert_valid_trace(&many[i]);
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(many[i].trace_id, many[j].trace_id);
    }
}
END_TEST

START_TEST(new_event_and_derive)
{
    imp_envelope_t cause, ev;
    int64_t before = imp_envelope_time_now_ms();
    ck_assert_ptr_null(parse_str(full, &cause));

    json_t *data = json_pack("{s:i, s:s}", "seq", 8, "payload", "next");
    ck_assert_ptr_null(
        imp_envelope_derive(&ev, &cause, CAUSE, "imperium/rag", "imp.draft.v1", data));
    ck_assert_str_eq(ev.id, CAUSE);
    ck_assert_str_eq(ev.source, "imperium/rag");
    ck_assert_str_eq(ev.type, "imp.draft.v1");
    ck_assert_str_eq(ev.tenantid, "demo");
    ck_assert_str_eq(ev.subject, "demo:telegram:42");
    ck_assert_ptr_ne(ev.subject, cause.subject);
    ck_assert_str_eq(ev.traceparent, TP);
    ck_assert_str_eq(ev.causationid, ID);
    ck_assert_int_eq(ev.attempt, 0);      /* the cause was on attempt 2 */
    ck_assert_int_eq(ev.notbefore_ms, 0); /* and had a notbefore */
    ck_assert(!ev.has_dlq);               /* and a dlq */
    ck_assert_ptr_eq(ev.data, data);
    ck_assert(ev.time_ms >= before && ev.time_ms <= imp_envelope_time_now_ms());

    char *text = NULL;
    ck_assert_ptr_null(imp_envelope_serialize(&ev, &text));
    char t[IMP_ENVELOPE_TIME_LEN + 1];
    imp_envelope_time_format(ev.time_ms, t);
    char *expect =
        imp_asprintf("{\"specversion\":\"1.0\",\"id\":\"" CAUSE "\",\"source\":\"imperium/rag\","
                     "\"type\":\"imp.draft.v1\",\"time\":\"%s\",\"subject\":\"demo:telegram:42\","
                     "\"datacontenttype\":\"application/json\",\"tenantid\":\"demo\","
                     "\"traceparent\":\"" TP "\",\"causationid\":\"" ID "\",\"attempt\":0,"
                     "\"data\":{\"seq\":8,\"payload\":\"next\"}}",
                     t);
    ck_assert_str_eq(text, expect);
    free(text);
    free(expect);
    imp_envelope_dispose(&ev);

    /* a cause without subject or traceparent gives an event without them */
    imp_envelope_t bare;
    ck_assert_ptr_null(parse_str(minimal, &bare));
    ck_assert_ptr_null(imp_envelope_derive(&ev, &bare, CAUSE, "imperium/rag", "imp.x.v1", NULL));
    ck_assert_ptr_null(ev.subject);
    ck_assert_str_eq(ev.traceparent, "");
    ck_assert_int_eq(json_object_size(ev.data), 0);
    imp_envelope_dispose(&ev);
    imp_envelope_dispose(&bare);
    imp_envelope_dispose(&cause);
}
END_TEST

START_TEST(new_event_rejects_bad_arguments)
{
    static const struct {
        const char *id, *source, *type, *tenantid, *message;
        int data_kind; /* 0 object, 1 array */
    } cases[] = {
        {"nope", "imperium/x", "imp.x.v1", "t", "id is not a lowercase uuid", 0},
        {NULL, "imperium/x", "imp.x.v1", "t", "id is missing", 0},
        {ID, "x", "imp.x.v1", "t", "source is not imperium/<binary>", 0},
        {ID, "imperium/x", "imp.x", "t", "type is not imp.<name>.v<n>", 0},
        {ID, "imperium/x", "imp.x.v1", "", "tenantid is missing", 0},
        {ID, "imperium/x", "imp.x.v1", "T", "tenantid is not a tenant id ([a-z0-9_-], 1-63)", 0},
        {ID, "imperium/x",
         "imp."
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.v1",
         "t", "type is not imp.<name>.v<n>", 0},
        {ID, "imperium/x", "imp.x.v1", "t", "data is not an object", 1},
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++) {
        imp_envelope_t e;
        json_t *data = cases[i].data_kind ? json_array() : json_object();
        imp_error_t *err = imp_envelope_new_event(&e, cases[i].id, cases[i].source, cases[i].type,
                                                  cases[i].tenantid, data);
        ck_assert_ptr_nonnull(err);
        ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
        ck_assert_str_eq(imp_error_message(err), cases[i].message);
        ck_assert_ptr_null(e.data); /* released: ASan would report a leak otherwise */
        imp_error_free(err);
    }
}
END_TEST

START_TEST(set_dlq_and_serialize)
{
    imp_envelope_t e;
    char *text = NULL;
    ck_assert_ptr_null(parse_str(minimal, &e));
    ck_assert_ptr_null(imp_envelope_set_dlq(&e, "send", IMP_ERR_RETRIABLE, "first", "imp.a.v1", 0,
                                            0, 1767323045678));
    ck_assert_ptr_null(imp_envelope_set_dlq(&e, "qc", IMP_ERR_POISON, "bad \"draft\"\n",
                                            "imp.draft.v1", 11, 9000000000, 1767323045679));
    ck_assert_str_eq(e.dlq.worker, "qc");
    ck_assert_int_eq(e.dlq.cls, IMP_ERR_POISON);
    ck_assert_ptr_null(imp_envelope_serialize(&e, &text));
    ck_assert_ptr_nonnull(strstr(text,
                                 "\"attempt\":0,\"dlq\":{\"worker\":\"qc\",\"class\":\"poison\","
                                 "\"reason\":\"bad \\\"draft\\\"\\n\",\"topic\":"
                                 "\"imp.draft.v1\",\"partition\":11,\"offset\":9000000000,"
                                 "\"at\":\"2026-01-02T03:04:05.679Z\"},\"data\":{}}"));
    free(text);

    static const struct {
        const char *worker, *reason, *topic, *message;
        int32_t partition;
        int64_t offset, at;
    } bad[] = {
        {"Send", "r", "t", "dlq.worker is not a worker name ([a-z0-9_-], 1-63)", 0, 0, 1},
        {"send", NULL, "t", "dlq.reason is missing", 0, 0, 1},
        {"send", "", "t", "dlq.reason is empty", 0, 0, 1},
        {"send", "r", NULL, "dlq.topic is missing", 0, 0, 1},
        {"send", "r", "a/b", "dlq.topic is not a kafka topic name", 0, 0, 1},
        {"send", "r", "t", "dlq.partition is negative", -1, 0, 1},
        {"send", "r", "t", "dlq.offset is negative", 0, -1, 1},
        {"send", "r", "t", "dlq.at is outside 1970..9999", 0, 0, -1},
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(bad); i++) {
        imp_error_t *err =
            imp_envelope_set_dlq(&e, bad[i].worker, IMP_ERR_POISON, bad[i].reason, bad[i].topic,
                                 bad[i].partition, bad[i].offset, bad[i].at);
        ck_assert_ptr_nonnull(err);
        ck_assert_str_eq(imp_error_message(err), bad[i].message);
        imp_error_free(err);
        ck_assert_str_eq(e.dlq.worker, "qc"); /* unchanged */
    }
    imp_error_t *err = imp_envelope_set_dlq(&e, "send", (imp_err_class_t)9, "r", "t", 0, 0, 1);
    ck_assert_str_eq(imp_error_message(err),
                     "dlq.class is not one of infra, retriable, poison, fatal");
    imp_error_free(err);
    imp_envelope_dispose(&e);
}
END_TEST

/* serialize refuses what parse would refuse: nothing we publish is our own poison. */
START_TEST(serialize_validates)
{
    imp_envelope_t e;
    char *text = (char *)"sentinel";
    imp_error_t *err;

#define EXPECT_SERIALIZE_ERROR(msg)                                                                \
    do {                                                                                           \
        err = imp_envelope_serialize(&e, &text);                                                   \
        ck_assert_ptr_nonnull(err);                                                                \
        ck_assert_ptr_null(text);                                                                  \
        ck_assert_str_eq(imp_error_message(err), (msg));                                           \
        imp_error_free(err);                                                                       \
    } while (0)

    imp_envelope_init(&e);
    EXPECT_SERIALIZE_ERROR("id is missing");

    ck_assert_ptr_null(parse_str(full, &e));
    memset(e.id, 'a', sizeof(e.id)); /* not even terminated */
    EXPECT_SERIALIZE_ERROR("id is not a lowercase uuid");
    imp_envelope_dispose(&e);

    static const char *const messages[] = {
        "time is outside 1970..9999",
        "notbefore is outside 1970..9999",
        "attempt is negative",
        "subject is empty",
        "subject is not valid utf-8",
        "dlq.reason is not valid utf-8",
        "data is missing",
        "data is not an object",
        "traceparent version is not 00",
        "causationid is not a lowercase uuid",
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(messages); i++) {
        ck_assert_ptr_null(parse_str(full, &e));
        switch (i) {
        case 0:
            e.time_ms = -5;
            break;
        case 1:
            e.notbefore_ms = 253402300800000;
            break;
        case 2:
            e.attempt = -1;
            break;
        case 3:
            e.subject[0] = '\0';
            break;
        case 4:
            strcpy(e.subject, "\xff");
            break;
        case 5:
            strcpy(e.dlq.reason, "\xc0\xaf");
            break;
        case 6:
            json_decref(e.data), e.data = NULL;
            break;
        case 7:
            json_decref(e.data), e.data = json_array();
            break;
        case 8:
            e.traceparent[1] = '1';
            break;
        case 9:
            strcpy(e.causationid, "x");
            break;
        }
        EXPECT_SERIALIZE_ERROR(messages[i]);
        imp_envelope_dispose(&e);
    }
#undef EXPECT_SERIALIZE_ERROR
}
END_TEST

/* ---- the trusted serializer: the same bytes as imp_envelope_serialize ---- */

/* Both serializers on e: equal text, which parses back to an envelope that writes the same
 * text again. */
static void expect_same_text(const imp_envelope_t *e, bool parses)
{
    char *slow = NULL, *fast = NULL;
    size_t len = 0;
    imp_error_t *err = imp_envelope_serialize(e, &slow);
    ck_assert_msg(err == NULL, "serialize: %s", err ? imp_error_message(err) : "");
    err = imp_envelope_serialize_trusted(e, &fast, &len);
    ck_assert_msg(err == NULL, "serialize_trusted: %s", err ? imp_error_message(err) : "");
    ck_assert_str_eq(fast, slow);
    ck_assert_uint_eq(len, strlen(slow));
    if (parses) {
        imp_envelope_t back;
        char *again = NULL;
        err = imp_envelope_parse(fast, len, &back);
        ck_assert_msg(err == NULL, "parse: %s", err ? imp_error_message(err) : "");
        ck_assert_ptr_null(imp_envelope_serialize_trusted(&back, &again, NULL));
        ck_assert_str_eq(again, fast);
        free(again);
        imp_envelope_dispose(&back);
    }
    free(slow);
    free(fast);
}

START_TEST(trusted_fixed_texts)
{
    const char *const texts[] = {full, minimal};
    for (size_t i = 0; i < IMP_ARRAY_LEN(texts); i++) {
        imp_envelope_t e;
        ck_assert_ptr_null(parse_str(texts[i], &e));
        expect_same_text(&e, true);
        imp_envelope_dispose(&e);
    }
    /* Every byte that needs an escape, in the free text and in data. */
    imp_envelope_t e;
    ck_assert_ptr_null(parse_str(full, &e));
    char text[160];
    size_t n = 0;
    for (int c = 1; c < 0x20; c++)
        text[n++] = (char)c;
    static const char tail[] = "\"\\/\x7f end";
    memcpy(text + n, tail, sizeof(tail));
    free(e.subject);
    e.subject = imp_strdup(text);
    free(e.dlq.reason);
    e.dlq.reason = imp_strdup(text);
    json_object_set_new(e.data, text, json_stringn("\0a\0", 3));
    json_object_set_new(e.data, "s", json_string(text));
    expect_same_text(&e, false); /* \u0000 in data: parse refuses it */
    imp_envelope_dispose(&e);
}
END_TEST

/* Deterministic pseudo-random numbers (xorshift64), so a failure can be replayed. */
static uint64_t rng_state;

static unsigned rng(unsigned n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state % n);
}

/* Text of 0..~60 bytes from pieces that stress escaping and UTF-8, with long plain runs
 * crossing the 8-byte words the writer scans. */
static void random_text(char *out, size_t cap)
{
    static const char *const pieces[] = {"a",
                                         "Z",
                                         " ",
                                         "lorem ipsum dolor ",
                                         "\"",
                                         "\\",
                                         "/",
                                         "\x7f",
                                         "\n",
                                         "\t",
                                         "\r",
                                         "\b",
                                         "\f",
                                         "\x01",
                                         "\x1f",
                                         "\xc3\xa9",
                                         "\xc2\x80",
                                         "\xdf\xbf",
                                         "\xe2\x82\xac",
                                         "\xe2\x80\xa8",
                                         "\xef\xbf\xbf",
                                         "\xe0\xa0\x80",
                                         "\xf0\x9f\x98\x80",
                                         "\xf4\x8f\xbf\xbf",
                                         "\xf0\x90\x80\x80",
                                         "12345678",
                                         "{\"x\":[1]}"};
    size_t n = 0;
    for (unsigned k = rng(12); k > 0; k--) {
        const char *p = pieces[rng(IMP_ARRAY_LEN(pieces))];
        size_t len = strlen(p);
        if (n + len + 1 > cap)
            break;
        memcpy(out + n, p, len);
        n += len;
    }
    out[n] = '\0';
}

static json_t *random_json(int depth)
{
    static const double reals[] = {0.1, -2.5, 1e300, 5e-324, 123456789.0, -0.0, 1.0 / 3, 1e-7};
    static const json_int_t ints[] = {0, -1, 7, 1000000, INT64_MAX, INT64_MIN, -9000000000};
    char text[128];
    unsigned kind = depth > 4 ? 2 + rng(6) : rng(8);
    switch (kind) {
    case 0: {
        json_t *o = json_object();
        for (unsigned k = rng(5); k > 0; k--) {
            random_text(text, sizeof(text));
            json_object_set_new(o, text, random_json(depth + 1));
        }
        return o;
    }
    case 1: {
        json_t *a = json_array();
        for (unsigned k = rng(5); k > 0; k--)
            json_array_append_new(a, random_json(depth + 1));
        return a;
    }
    case 2:
    case 3:
        random_text(text, sizeof(text));
        return json_string(text);
    case 4:
        return json_integer(ints[rng(IMP_ARRAY_LEN(ints))]);
    case 5:
        return json_real(reals[rng(IMP_ARRAY_LEN(reals))]);
    case 6:
        return rng(2) ? json_true() : json_false();
    default:
        return json_null();
    }
}

static void random_envelope(imp_envelope_t *e)
{
    static const char *const types[] = {"imp.inbound.message.v1", "imp.test.v1", "imp.a_b.c.v12"};
    json_t *data = json_object();
    char text[128];
    for (unsigned k = rng(6); k > 0; k--) {
        random_text(text, sizeof(text));
        json_object_set_new(data, text, random_json(1));
    }
    ck_assert_ptr_null(
        imp_envelope_new_event(e, ID, "imperium/ingress", types[rng(IMP_ARRAY_LEN(types))],
                               rng(2) ? "demo" : "5e5e5e5e-0000-4000-8000-0000000000", data));
    e->time_ms = (int64_t)rng(1000000) * 1000000 + rng(1000);
    random_text(text, sizeof(text));
    if (rng(3) != 0 && text[0] != '\0')
        e->subject = imp_strdup(text);
    if (rng(2))
        strcpy(e->traceparent, TP);
    if (rng(2))
        strcpy(e->causationid, CAUSE);
    e->attempt = rng(3) == 0 ? (int)rng(100000) : 0;
    if (rng(3) == 0)
        e->notbefore_ms = e->time_ms + rng(100000);
    random_text(text, sizeof(text));
    if (rng(3) == 0 && text[0] != '\0')
        ck_assert_ptr_null(imp_envelope_set_dlq(e, "send", (imp_err_class_t)(1 + rng(4)), text,
                                                "imp.outbound.v1", (int32_t)rng(64),
                                                (int64_t)rng(1000000) * 100000, e->time_ms + 1));
}

START_TEST(trusted_random_envelopes)
{
    rng_state = UINT64_C(0x9e3779b97f4a7c15);
    for (int i = 0; i < 3000; i++) {
        imp_envelope_t e;
        random_envelope(&e);
        expect_same_text(&e, true);
        imp_envelope_dispose(&e);
    }
}
END_TEST

/* What the trusted serializer still checks, it refuses with the same message. */
START_TEST(trusted_refuses_like_serialize)
{
    static const char *const messages[] = {
        "time is outside 1970..9999",
        "notbefore is outside 1970..9999",
        "attempt is negative",
        "subject is empty",
        "subject is not valid utf-8",
        "dlq.reason is not valid utf-8",
        "dlq.reason is empty",
        "dlq.at is outside 1970..9999",
        "dlq.partition is negative",
        "dlq.offset is negative",
        "data is missing",
        "data is not an object",
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(messages); i++) {
        imp_envelope_t e;
        ck_assert_ptr_null(parse_str(full, &e));
        switch (i) {
        case 0:
            e.time_ms = -5;
            break;
        case 1:
            e.notbefore_ms = 253402300800000;
            break;
        case 2:
            e.attempt = -1;
            break;
        case 3:
            e.subject[0] = '\0';
            break;
        case 4:
            strcpy(e.subject, "\xff");
            break;
        case 5:
            strcpy(e.dlq.reason, "\xc0\xaf");
            break;
        case 6:
            e.dlq.reason[0] = '\0';
            break;
        case 7:
            e.dlq.at_ms = -1;
            break;
        case 8:
            e.dlq.partition = -1;
            break;
        case 9:
            e.dlq.offset = -1;
            break;
        case 10:
            json_decref(e.data), e.data = NULL;
            break;
        case 11:
            json_decref(e.data), e.data = json_array();
            break;
        }
        char *text = (char *)"sentinel";
        size_t len = 99;
        imp_error_t *err = imp_envelope_serialize_trusted(&e, &text, &len);
        ck_assert_ptr_nonnull(err);
        ck_assert_ptr_null(text);
        ck_assert_uint_eq(len, 0);
        ck_assert_str_eq(imp_error_message(err), messages[i]);
        ck_assert_str_eq(imp_error_code(err), "bad_envelope");
        imp_error_free(err);
        err = imp_envelope_serialize(&e, &text);
        ck_assert_str_eq(imp_error_message(err), messages[i]);
        imp_error_free(err);
        imp_envelope_dispose(&e);
    }
}
END_TEST

/* Data neither can write: invalid UTF-8 and a cycle. Depth: equal up to the limit, refused
 * beyond it. */
static void expect_both_refuse(const imp_envelope_t *e)
{
    char *text = NULL;
    imp_error_t *err = imp_envelope_serialize_trusted(e, &text, NULL);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_null(text);
    ck_assert_str_eq(imp_error_code(err), "bad_envelope");
    imp_error_free(err);
    err = imp_envelope_serialize(e, &text);
    ck_assert_ptr_nonnull(err);
    imp_error_free(err);
}

START_TEST(trusted_unwritable_data)
{
    imp_envelope_t e;
    ck_assert_ptr_null(parse_str(minimal, &e));
    json_object_set_new(e.data, "bad", json_stringn_nocheck("a\xff", 2));
    expect_both_refuse(&e);
    json_object_del(e.data, "bad");

    json_t *a = json_object(), *b = json_object();
    json_object_set(e.data, "a", a);
    json_object_set(a, "b", b);
    json_object_set(b, "a", a);
    expect_both_refuse(&e);
    json_object_del(b, "a"); /* break the cycle so that it can be freed */
    json_decref(a);
    json_decref(b);
    json_object_del(e.data, "a");

    json_t *deep = json_array(), *inner = deep;
    for (int level = 3; level <= IMP_ENVELOPE_DATA_DEPTH_MAX; level++) {
        json_t *next = json_array();
        json_array_append_new(inner, next);
        inner = next;
    }
    json_object_set_new(e.data, "deep", deep); /* data is level 1, deep 2 */
    expect_same_text(&e, false);
    json_array_append_new(inner, json_array());
    char *text = NULL;
    imp_error_t *err = imp_envelope_serialize_trusted(&e, &text, NULL);
    ck_assert_ptr_nonnull(err);
    imp_error_free(err);
    imp_envelope_dispose(&e);
}
END_TEST

START_TEST(large_data)
{
    enum { BLOB = 4 << 20, ITEMS = 100000 };
    char *blob = imp_malloc(BLOB + 1);
    for (size_t i = 0; i < BLOB; i += 2) {
        blob[i] = (char)0xc3; /* é, two bytes at a time */
        blob[i + 1] = (char)0xa9;
    }
    blob[BLOB] = '\0';
    json_t *items = json_array();
    for (int i = 0; i < ITEMS; i++)
        json_array_append_new(items, json_integer(i));
    json_t *data = json_pack("{s:s, s:o}", "blob", blob, "items", items);
    free(blob);

    imp_envelope_t e, back;
    char *text = NULL;
    ck_assert_ptr_null(
        imp_envelope_new_event(&e, ID, "imperium/test", "imp.test.v1", "demo", data));
    ck_assert_ptr_null(imp_envelope_serialize(&e, &text));
    ck_assert_uint_gt(strlen(text), BLOB);
    ck_assert_ptr_null(parse_str(text, &back));
    ck_assert(json_equal(e.data, back.data));
    ck_assert_int_eq(json_array_size(json_object_get(back.data, "items")), ITEMS);
    free(text);
    imp_envelope_dispose(&e);
    imp_envelope_dispose(&back);

    /* nesting beyond jansson's depth limit is refused, not a stack overflow */
    size_t depth = 100000;
    char *deep = imp_malloc(2 * depth + 16);
    size_t n = (size_t)sprintf(deep, "{\"d\":");
    memset(deep + n, '[', depth);
    memset(deep + n + depth, ']', depth);
    strcpy(deep + n + 2 * depth, "}");
    expect_reject_prefix(deep, strlen(deep), "invalid json: maximum parsing depth reached");
    free(deep);
}
END_TEST

/* Whatever parse accepts, serialize writes, parse accepts again, and the text is then a
 * fixed point. Whatever it refuses is refused as poison. */
static void check_one(const char *buf, size_t len, int *ok, int *rejected)
{
    imp_envelope_t e, again;
    char *one = NULL, *two = NULL;
    imp_error_t *err = imp_envelope_parse(buf, len, &e);
    if (err != NULL) {
        ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
        ck_assert_str_eq(imp_error_code(err), "bad_envelope");
        ck_assert_ptr_null(e.data);
        imp_error_free(err);
        (*rejected)++;
        return;
    }
    (*ok)++;
    ck_assert_ptr_null(imp_envelope_serialize(&e, &one));
    ck_assert_ptr_null(imp_envelope_parse(one, strlen(one), &again));
    ck_assert_ptr_null(imp_envelope_serialize(&again, &two));
    ck_assert_str_eq(one, two);
    free(one);
    free(two);
    imp_envelope_dispose(&e);
    imp_envelope_dispose(&again);
}

START_TEST(fuzz_mutations)
{
    static const char subst[] = {0x00, (char)0xff, (char)0x80, '"', '\\', '{', '}', '[', ']',
                                 ',',  ':',        '0',        '9', '-',  '.', 'a', 'Z', ' '};
    size_t len = strlen(full);
    char *buf = imp_malloc(len + 1);
    int ok = 0, rejected = 0;

    for (size_t i = 0; i < len; i++) {
        for (size_t k = 0; k < sizeof(subst); k++) {
            memcpy(buf, full, len);
            buf[i] = subst[k];
            check_one(buf, len, &ok, &rejected);
        }
        memcpy(buf, full, i); /* byte i deleted */
        memcpy(buf + i, full + i + 1, len - i - 1);
        check_one(buf, len - 1, &ok, &rejected);
        check_one(full, i, &ok, &rejected); /* truncated */
    }
    /* several random bytes at once, a fixed seed so a failure replays */
    unsigned long long x = 0x9e3779b97f4a7c15ULL;
    for (int round = 0; round < 20000; round++) {
        memcpy(buf, full, len);
        for (int m = 0; m < 1 + round % 4; m++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[x % len] = (char)(x >> 32);
        }
        check_one(buf, len, &ok, &rejected);
    }
    free(buf);
    printf("fuzz: %d accepted, %d rejected\n", ok, rejected);
    ck_assert_int_gt(ok, 1000);
    ck_assert_int_gt(rejected, 10000);
}
END_TEST

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = imp_malloc((size_t)size + 1);
    ck_assert_int_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    buf[size] = '\0';
    fclose(f);
    *len = (size_t)size;
    return buf;
}

static char *examples_dir(void)
{
    const char *root = getenv("IMP_SOURCE_DIR");
    if (root != NULL)
        return imp_asprintf("%s/schemas/examples", root);
    const char *here = __FILE__; /* .../tests/unit/common/test_envelope.c */
    const char *tail = strstr(here, "/tests/unit/common/");
    ck_assert_msg(tail != NULL, "set IMP_SOURCE_DIR");
    return imp_asprintf("%.*s/schemas/examples", (int)(tail - here), here);
}

/* What parse must say about an example, from its name:
 *   valid-*                accepted
 *   invalid-imp.<type>-*   accepted: the envelope is fine, the data breaks the type's schema
 *   invalid-json-*         refused, "invalid json: ..."
 *   invalid-unknown-*      refused, "unknown attribute ..."
 *   invalid-<attr>-*       refused, the message starts with <attr> */
static void check_example(const char *dir, const char *name, int counts[3])
{
    size_t len;
    char *path = imp_asprintf("%s/%s", dir, name);
    char *buf = read_file(path, &len);
    imp_envelope_t e;
    imp_error_t *err = imp_envelope_parse(buf, len, &e);
    bool want_ok = strncmp(name, "valid-", 6) == 0 || strncmp(name, "invalid-imp.", 12) == 0;

    if (want_ok) {
        ck_assert_msg(err == NULL, "%s: %s", name, err ? imp_error_message(err) : "");
        counts[strncmp(name, "valid-", 6) == 0 ? 0 : 2]++;
        expect_same_text(&e, true);
    } else {
        ck_assert_msg(err != NULL, "%s was accepted", name);
        ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
        const char *attr = name + strlen("invalid-");
        size_t attr_len = strcspn(attr, "-");
        const char *msg = imp_error_message(err);
        if (strncmp(attr, "json-", 5) == 0)
            ck_assert_msg(strncmp(msg, "invalid json", 12) == 0, "%s: %s", name, msg);
        else if (strncmp(attr, "unknown-", 8) == 0)
            ck_assert_msg(strncmp(msg, "unknown attribute", 17) == 0, "%s: %s", name, msg);
        else
            ck_assert_msg(strncmp(msg, attr, attr_len) == 0 &&
                              (msg[attr_len] == ' ' || msg[attr_len] == '.'),
                          "%s: \"%s\" does not name the attribute", name, msg);
        counts[1]++;
    }
    imp_error_free(err);
    imp_envelope_dispose(&e);
    free(buf);
    free(path);
}

START_TEST(schema_examples_agree)
{
    char *dir = examples_dir();
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open %s", dir);
    int counts[3] = {0, 0, 0};
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        size_t n = strlen(ent->d_name);
        if (n > 5 && strcmp(ent->d_name + n - 5, ".json") == 0)
            check_example(dir, ent->d_name, counts);
    }
    closedir(d);
    printf("examples: %d valid accepted, %d invalid rejected, %d with invalid data accepted "
           "(the envelope is fine)\n",
           counts[0], counts[1], counts[2]);
    ck_assert_int_ge(counts[0], 5);
    ck_assert_int_ge(counts[1], 30);
    ck_assert_int_ge(counts[2], 3);
    free(dir);
}
END_TEST

static Suite *envelope_suite(void)
{
    Suite *s = suite_create("envelope");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, parse_full_fields);
    tcase_add_test(tc, parse_minimal_defaults);
    tcase_add_test(tc, roundtrip_exact);
    tcase_add_test(tc, roundtrip_normalizes_time);
    tcase_add_loop_test(tc, each_rule_rejected, 0, (int)IMP_ARRAY_LEN(rules));
    tcase_add_loop_test(tc, each_edge_accepted, 0, (int)IMP_ARRAY_LEN(accepted));
    tcase_add_test(tc, json_level_rejected);
    tcase_add_test(tc, non_utf8_rejected);
    suite_add_tcase(s, tc);

    tc = tcase_create("time");
    tcase_add_test(tc, rfc3339_parse);
    tcase_add_test(tc, rfc3339_format);
    suite_add_tcase(s, tc);

    tc = tcase_create("trace");
    tcase_add_test(tc, trace_parse_and_format);
    tcase_add_test(tc, trace_new_and_child);
    suite_add_tcase(s, tc);

    tc = tcase_create("build");
    tcase_add_test(tc, new_event_and_derive);
    tcase_add_test(tc, new_event_rejects_bad_arguments);
    tcase_add_test(tc, set_dlq_and_serialize);
    tcase_add_test(tc, serialize_validates);
    suite_add_tcase(s, tc);

    tc = tcase_create("trusted");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, trusted_fixed_texts);
    tcase_add_test(tc, trusted_random_envelopes);
    tcase_add_test(tc, trusted_refuses_like_serialize);
    tcase_add_test(tc, trusted_unwritable_data);
    suite_add_tcase(s, tc);

    tc = tcase_create("robustness");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, large_data);
    tcase_add_test(tc, fuzz_mutations);
    tcase_add_test(tc, schema_examples_agree);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(envelope_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
