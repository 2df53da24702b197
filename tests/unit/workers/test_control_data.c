/* Unit tests for imperium-control's command data, channel secrets and command line. */
#include "../../../workers/control/cli_args.c"
#include "../../../workers/control/cli_options.c"
#include "../../../workers/control/secrets.c"
#include "../../../workers/control/validate.c"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t key[IMP_CRYPTO_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

/* The data last parsed: control_data_t borrows from it. */
static json_t *data;

/* Parse JSON text as the data of cmd; returns the error message or NULL (static buffer). */
static const char *parse_data(control_cmd_t cmd, const char *text, control_data_t *d)
{
    static char msg[512];
    json_decref(data);
    data = json_loads(text, 0, NULL);
    ck_assert_ptr_nonnull(data);
    imp_error_t *err = control_data_parse(cmd, data, d);
    if (err == NULL)
        return NULL;
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
    snprintf(msg, sizeof(msg), "%s", imp_error_message(err));
    imp_error_free(err);
    return msg;
}

#define ck_assert_rejects(cmd, text, needle)                                                       \
    do {                                                                                           \
        control_data_t d_;                                                                         \
        const char *m_ = parse_data((cmd), (text), &d_);                                           \
        ck_assert_msg(m_ != NULL, "accepted: %s", (text));                                         \
        ck_assert_msg(strstr(m_, (needle)) != NULL, "\"%s\" lacks \"%s\"", m_, (needle));          \
    } while (0)

START_TEST(names)
{
    ck_assert(control_slug_valid("demo") && control_slug_valid("a") && control_slug_valid("0-x"));
    ck_assert(!control_slug_valid("") && !control_slug_valid("-a") && !control_slug_valid("Demo"));
    ck_assert(!control_slug_valid("a_b") && !control_slug_valid("a b"));
    char long_slug[65];
    memset(long_slug, 'a', 64);
    long_slug[64] = '\0';
    ck_assert(!control_slug_valid(long_slug));
    long_slug[63] = '\0';
    ck_assert(control_slug_valid(long_slug));
    ck_assert(control_kind_valid("telegram") && !control_kind_valid("sms"));
    ck_assert(control_uuid_valid("7d2c1a8e-3b4f-5a6c-9d8e-0f1a2b3c4d5e"));
    ck_assert(!control_uuid_valid("7D2C1A8E-3B4F-5A6C-9D8E-0F1A2B3C4D5E"));
    ck_assert(!control_uuid_valid("7d2c1a8e3b4f5a6c9d8e0f1a2b3c4d5e"));
    ck_assert_int_eq(control_cmd_of_type("imp.command.secret.rotate.v1"),
                     CONTROL_CMD_SECRET_ROTATE);
    ck_assert_int_eq(control_cmd_of_type("imp.command.tenant.delete.v1"), -1);
}
END_TEST

START_TEST(data_accepted)
{
    control_data_t d;
    ck_assert_ptr_null(
        parse_data(CONTROL_CMD_TENANT_CREATE, "{\"slug\":\"demo\",\"name\":\"Demo\"}", &d));
    ck_assert_str_eq(d.plan, "free");
    ck_assert_str_eq(d.actor, "unknown");
    ck_assert_ptr_null(parse_data(CONTROL_CMD_CHANNEL_SET,
                                  "{\"slug\":\"demo\",\"kind\":\"whatsapp\",\"enabled\":false,"
                                  "\"settings\":{\"api_url\":\"https://x.test/v1\","
                                  "\"phone_number_id\":\"123\",\"manager_chat_id\":\"-100\","
                                  "\"callback_url\":null},\"secrets_enc\":\"v1:AAAA\"}",
                                  &d));
    ck_assert_int_eq(d.enabled, 0);
    ck_assert_uint_eq(json_object_size(d.settings), 4);
    ck_assert_ptr_null(
        parse_data(CONTROL_CMD_SECRET_ROTATE, "{\"slug\":\"demo\",\"kind\":\"test\"}", &d));
    ck_assert_int_eq(d.grace_s, 86400);
    ck_assert_int_eq(d.enabled, -1);
    ck_assert_ptr_null(d.secrets_enc);
}
END_TEST

START_TEST(data_rejected)
{
    ck_assert_rejects(CONTROL_CMD_TENANT_CREATE, "{\"slug\":\"demo\"}", "data.name is required");
    ck_assert_rejects(CONTROL_CMD_TENANT_CREATE, "{\"slug\":\"De mo\",\"name\":\"x\"}",
                      "data.slug: \"De mo\" is not a tenant slug");
    ck_assert_rejects(CONTROL_CMD_TENANT_CREATE, "{\"slug\":\"demo\",\"name\":\"   \"}",
                      "data.name must be");
    ck_assert_rejects(CONTROL_CMD_TENANT_CREATE, "{\"slug\":\"demo\",\"name\":\"a\\nb\"}",
                      "data.name must be");
    ck_assert_rejects(CONTROL_CMD_TENANT_CREATE,
                      "{\"slug\":\"demo\",\"name\":\"x\",\"plan\":\"P\"}", "data.plan");
    ck_assert_rejects(CONTROL_CMD_TENANT_CREATE, "{\"slug\":\"demo\",\"name\":\"x\",\"owner\":1}",
                      "data.owner is not a member of imp.command.tenant.create.v1");
    ck_assert_rejects(CONTROL_CMD_TENANT_STATUS, "{\"slug\":\"demo\",\"status\":\"paused\"}",
                      "data.status: \"paused\" is neither active nor disabled");
    ck_assert_rejects(CONTROL_CMD_CHANNEL_SET, "{\"slug\":\"demo\",\"kind\":\"sms\"}",
                      "data.kind: \"sms\" is not a channel kind");
    ck_assert_rejects(CONTROL_CMD_CHANNEL_SET,
                      "{\"slug\":\"demo\",\"kind\":\"generic\",\"enabled\":\"yes\"}",
                      "data.enabled is not true or false");
    ck_assert_rejects(CONTROL_CMD_CHANNEL_SET,
                      "{\"slug\":\"demo\",\"kind\":\"generic\",\"settings\":{\"token\":\"x\"}}",
                      "data.settings.token is not a channel setting");
    ck_assert_rejects(
        CONTROL_CMD_CHANNEL_SET,
        "{\"slug\":\"demo\",\"kind\":\"generic\",\"settings\":{\"api_url\":\"ftp://x\"}}",
        "data.settings.api_url is not an http");
    ck_assert_rejects(
        CONTROL_CMD_CHANNEL_SET,
        "{\"slug\":\"demo\",\"kind\":\"generic\",\"settings\":{\"api_url\":\"http://\"}}",
        "data.settings.api_url is not an http");
    ck_assert_rejects(
        CONTROL_CMD_CHANNEL_SET,
        "{\"slug\":\"demo\",\"kind\":\"whatsapp\",\"settings\":{\"phone_number_id\":\"+1\"}}",
        "data.settings.phone_number_id");
    ck_assert_rejects(CONTROL_CMD_CHANNEL_SET,
                      "{\"slug\":\"demo\",\"kind\":\"generic\",\"secrets_enc\":\"whsec_x\"}",
                      "data.secrets_enc is not a sealed token");
    ck_assert_rejects(CONTROL_CMD_CHANNEL_SET,
                      "{\"slug\":\"demo\",\"kind\":\"generic\",\"secrets\":{}}",
                      "data.secrets is not a member");
    ck_assert_rejects(CONTROL_CMD_SECRET_ROTATE,
                      "{\"slug\":\"demo\",\"kind\":\"generic\",\"grace_s\":2592001}",
                      "data.grace_s is not an integer from 0 to 2592000");
    ck_assert_rejects(CONTROL_CMD_SECRET_ROTATE,
                      "{\"slug\":\"demo\",\"kind\":\"generic\",\"actor\":\"\"}", "data.actor");
}
END_TEST

static const char *check_secrets(const char *kind, const char *text)
{
    static char msg[512];
    json_t *s = json_loads(text, 0, NULL);
    ck_assert_ptr_nonnull(s);
    imp_error_t *err = control_secrets_check(kind, s, "secrets");
    json_decref(s);
    if (err == NULL)
        return NULL;
    snprintf(msg, sizeof(msg), "%s", imp_error_message(err));
    imp_error_free(err);
    return msg;
}

START_TEST(secrets_checked)
{
    /* 32 bytes */
    ck_assert_ptr_null(check_secrets(
        "generic", "{\"webhook_secret\":\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw8kbKMeR7H9k=\"}"));
    /* 16 bytes: too short for Standard Webhooks */
    const char *m =
        check_secrets("generic", "{\"webhook_secret\":\"whsec_AAECAwQFBgcICQoLDA0ODw==\"}");
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(strstr(m, "secrets.webhook_secret is not whsec_"));
    ck_assert_ptr_null(strstr(m, "AAECAw"));
    m = check_secrets("telegram", "{\"secret_token\":\"has space\"}");
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_null(strstr(m, "has space"));
    m = check_secrets("telegram", "{\"webhook_secret\":\"whsec_x\"}");
    ck_assert_str_eq(m, "secrets.webhook_secret is not a secret of a telegram channel "
                        "(secret_token, bot_token)");
    ck_assert_ptr_nonnull(
        check_secrets("whatsapp", "{\"app_secret\":\"abc\",\"verify_token\":\"v t\"}"));
    ck_assert_ptr_null(
        check_secrets("whatsapp", "{\"app_secret\":\"abc\",\"verify_token\":\"v\"}"));
    ck_assert_ptr_nonnull(check_secrets("test", "{\"webhook_secret\":1}"));
}
END_TEST

START_TEST(secrets_generated)
{
    json_t *s = json_object(), *gen = json_object();
    ck_assert_int_eq(control_secrets_fill_missing("generic", s, gen), 2);
    ck_assert(json_equal(s, gen));
    imp_error_t *err = control_secrets_check("generic", s, "secrets");
    ck_assert_ptr_null(err);
    const char *w = json_string_value(json_object_get(s, "webhook_secret"));
    ck_assert_uint_eq(strlen(w), 6 + 44);
    ck_assert(whsec_valid(w));
    ck_assert_ptr_nonnull(json_object_get(s, "callback_secret"));
    ck_assert_ptr_null(control_secrets_missing("generic", s));
    ck_assert_int_eq(control_secrets_fill_missing("generic", s, NULL), 0);
    json_decref(s);
    json_decref(gen);

    s = json_object();
    ck_assert_int_eq(control_secrets_fill_missing("whatsapp", s, NULL), 1);
    ck_assert_ptr_nonnull(json_object_get(s, "verify_token"));
    ck_assert_str_eq(control_secrets_missing("whatsapp", s), "app_secret");
    json_decref(s);

    s = json_pack("{s:s, s:s}", "secret_token", "old", "bot_token", "1:x");
    gen = json_object();
    ck_assert_int_eq(control_secrets_regenerate("telegram", s, NULL, gen), 1);
    const char *t = json_string_value(json_object_get(s, "secret_token"));
    ck_assert_str_ne(t, "old");
    ck_assert_uint_eq(strlen(t), 43);
    ck_assert(charset_valid(t, 256, true));
    ck_assert_str_eq(json_string_value(json_object_get(s, "bot_token")), "1:x");
    json_t *given = json_pack("{s:s}", "secret_token", "given");
    json_object_update(s, given);
    ck_assert_int_eq(control_secrets_regenerate("telegram", s, given, NULL), 0);
    ck_assert_str_eq(json_string_value(json_object_get(s, "secret_token")), "given");
    json_t *v = control_secrets_verification("telegram", s);
    ck_assert_uint_eq(json_object_size(v), 1);
    ck_assert_ptr_null(json_object_get(v, "bot_token"));
    json_decref(v);
    json_decref(given);
    json_decref(gen);
    json_decref(s);
}
END_TEST

START_TEST(sealing)
{
    json_t *obj = json_pack("{s:s}", "webhook_secret", "whsec_x"), *back = NULL;
    char *token = NULL;
    ck_assert_ptr_null(control_seal_json(key, obj, "tenant-a", &token));
    ck_assert_ptr_null(control_open_json(key, token, "tenant-a", &back));
    ck_assert(json_equal(obj, back));
    json_decref(back);
    imp_error_t *err = control_open_json(key, token, "tenant-b", &back);
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(imp_error_code(err), "secret_auth");
    ck_assert_ptr_null(back);
    imp_error_free(err);
    free(token);
    ck_assert_ptr_null(imp_crypto_seal(key, "[1]", 3, "a", 1, &token));
    err = control_open_json(key, token, "a", &back);
    ck_assert_str_eq(imp_error_code(err), "secret_malformed");
    imp_error_free(err);
    free(token);
    json_decref(obj);

    char aad[CONTROL_AAD_MAX];
    control_aad_command("t", "o", aad);
    ck_assert_str_eq(aad, "imp.command|t|o");
    control_aad_operation("t", "o", aad);
    ck_assert_str_eq(aad, "imp.operation|t|o");
}
END_TEST

static cli_args_t args;
static char problem_text[512];

static int cli(const char *first, ...)
{
    char *argv[32] = {(char *)"imperium-control"};
    int argc = 1;
    va_list ap;
    va_start(ap, first);
    for (const char *w = first; w != NULL && argc < 31; w = va_arg(ap, const char *))
        argv[argc++] = (char *)w;
    va_end(ap);
    cli_args_dispose(&args);
    problem_text[0] = '\0';
    return cli_args_parse(argc, argv, &args, problem_text, sizeof(problem_text));
}

static void teardown(void)
{
    cli_args_dispose(&args);
    json_decref(data);
    data = NULL;
}

START_TEST(command_line)
{
    ck_assert_int_eq(cli("tenant", "create", "demo", "--name", "Demo salon", NULL), 0);
    ck_assert_int_eq(args.cmd, CLI_TENANT_CREATE);
    ck_assert_str_eq(args.name, "Demo salon");
    ck_assert_int_eq(args.timeout_ms, 30000);
    ck_assert_int_eq(cli("channel", "set", "demo", "telegram", "--enabled=false",
                         "--manager-chat-id", "-100", "--api-url", "", "--secret", "bot_token=1:x",
                         "--no-wait", NULL),
                     0);
    ck_assert_int_eq(args.enabled, 0);
    ck_assert_str_eq(args.settings[2], "-100");
    ck_assert_str_eq(args.settings[0], "");
    ck_assert_str_eq(json_string_value(json_object_get(args.secrets, "bot_token")), "1:x");
    ck_assert(args.no_wait);
    ck_assert_int_eq(cli("secret", "rotate", "demo", "generic", "--grace", "24h", "--timeout", "5s",
                         "--operation-id", "7d2c1a8e-3b4f-5a6c-9d8e-0f1a2b3c4d5e", NULL),
                     0);
    ck_assert_int_eq(args.grace_s, 86400);
    ck_assert_int_eq(args.timeout_ms, 5000);
    ck_assert_int_eq(cli("secret", "rotate", "demo", "generic", "--grace", "0", NULL), 0);
    ck_assert_int_eq(args.grace_s, 0);
    ck_assert_int_eq(cli("secret", "rotate", "demo", "generic", NULL), 0);
    ck_assert_int_eq(args.grace_s, -1);
}
END_TEST

#define ck_assert_cli_fails(needle, ...)                                                           \
    do {                                                                                           \
        ck_assert_int_eq(cli(__VA_ARGS__, NULL), -1);                                              \
        ck_assert_msg(strstr(problem_text, (needle)) != NULL, "\"%s\" lacks \"%s\"", problem_text, \
                      (needle));                                                                   \
    } while (0)

START_TEST(command_line_rejects)
{
    ck_assert_cli_fails("tenant create needs --name", "tenant", "create", "demo");
    ck_assert_cli_fails("is not a tenant slug", "tenant", "create", "Demo", "--name", "x");
    ck_assert_cli_fails("missing KIND", "channel", "set", "demo");
    ck_assert_cli_fails("\"sms\" is not a channel kind", "channel", "set", "demo", "sms");
    ck_assert_cli_fails("--grace does not apply to channel set", "channel", "set", "demo",
                        "generic", "--grace", "1h");
    ck_assert_cli_fails("--grace wants", "secret", "rotate", "demo", "generic", "--grace", "24");
    ck_assert_cli_fails("--grace wants", "secret", "rotate", "demo", "generic", "--grace", "31d");
    ck_assert_cli_fails("--secret bot_token is given twice", "channel", "set", "demo", "telegram",
                        "--secret", "bot_token=a", "--secret", "bot_token=b");
    ck_assert_cli_fails("secret.api_token is not a secret of a telegram channel", "channel", "set",
                        "demo", "telegram", "--secret", "api_token=a");
    ck_assert_cli_fails("--secret wants NAME=VALUE", "channel", "set", "demo", "telegram",
                        "--secret", "bot_token");
    ck_assert_cli_fails("cannot read", "channel", "set", "demo", "telegram", "--secret",
                        "bot_token=@/nonexistent/file");
    ck_assert_cli_fails("--operation-id wants a lowercase UUID", "tenant", "disable", "demo",
                        "--operation-id", "x");
    ck_assert_cli_fails("unknown option --frob", "tenant", "disable", "demo", "--frob");
    ck_assert_cli_fails("unexpected argument \"extra\"", "tenant", "disable", "demo", "extra");
    ck_assert_cli_fails("unknown command \"tenant delete\"", "tenant", "delete", "demo");
    ck_assert_cli_fails("--json does not apply to tenant disable", "tenant", "disable", "demo",
                        "--json");
    ck_assert_cli_fails("--timeout wants a duration from 100ms to 1h", "tenant", "disable", "demo",
                        "--timeout", "50ms");
    ck_assert_cli_fails("--name needs a value", "tenant", "create", "demo", "--name");
    ck_assert_cli_fails("--no-wait takes no value", "tenant", "enable", "demo", "--no-wait=1");
    ck_assert_cli_fails("--enabled wants true or false", "channel", "set", "demo", "test",
                        "--enabled", "maybe");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("control_data");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, names);
    tcase_add_test(tc, data_accepted);
    tcase_add_test(tc, data_rejected);
    tcase_add_test(tc, secrets_checked);
    tcase_add_test(tc, secrets_generated);
    tcase_add_test(tc, sealing);
    tcase_add_test(tc, command_line);
    tcase_add_test(tc, command_line_rejects);
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
