/* Unit tests for imperium-control's bot commands: the settings of a bot version, the data
 * rules of every bot command (shared by the worker and the client, and in step with the
 * schemas' examples) and the `bot` command line. */
#include "../../../workers/control/bot_validate.c"
#include "../../../workers/control/cli_bot_args.c"
#include "../../../workers/control/cli_options.c"
#include "../../../workers/control/validate.c"

#include <check.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

static json_t *data;

/* Check settings given as JSON text; the error message or NULL (static buffer). */
static const char *check_settings(const char *text)
{
    static char msg[512];
    json_error_t jerr;
    json_t *s = json_loads(text, 0, &jerr);
    ck_assert_msg(s != NULL, "not JSON: %s (%s)", text, jerr.text);
    imp_error_t *err = control_bot_settings_check(s, "settings");
    json_decref(s);
    if (err == NULL)
        return NULL;
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
    ck_assert_str_eq(imp_error_code(err), "bad_command");
    snprintf(msg, sizeof(msg), "%s", imp_error_message(err));
    imp_error_free(err);
    return msg;
}

#define ck_settings_ok(text)                                                                       \
    do {                                                                                           \
        const char *m_ = check_settings(text);                                                     \
        ck_assert_msg(m_ == NULL, "refused %s: %s", (text), m_);                                   \
    } while (0)

#define ck_settings_bad(text, needle)                                                              \
    do {                                                                                           \
        const char *m_ = check_settings(text);                                                     \
        ck_assert_msg(m_ != NULL, "accepted: %s", (text));                                         \
        ck_assert_msg(strstr(m_, (needle)) != NULL, "\"%s\" lacks \"%s\"", m_, (needle));          \
    } while (0)

/* Parse JSON text as the data of cmd; the error message or NULL (static buffer). */
static const char *parse(control_bot_cmd_t cmd, const char *text, control_bot_data_t *d)
{
    static char msg[512];
    json_decref(data);
    data = json_loads(text, 0, NULL);
    ck_assert_msg(data != NULL, "not JSON: %s", text);
    imp_error_t *err = control_bot_data_parse(cmd, data, d);
    if (err == NULL)
        return NULL;
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
    ck_assert_str_eq(imp_error_code(err), "bad_command");
    snprintf(msg, sizeof(msg), "%s", imp_error_message(err));
    imp_error_free(err);
    return msg;
}

#define ck_rejects(cmd, text, needle)                                                              \
    do {                                                                                           \
        control_bot_data_t d_;                                                                     \
        const char *m_ = parse((cmd), (text), &d_);                                                \
        ck_assert_msg(m_ != NULL, "accepted: %s", (text));                                         \
        ck_assert_msg(strstr(m_, (needle)) != NULL, "\"%s\" lacks \"%s\"", m_, (needle));          \
    } while (0)

#define ck_accepts(cmd, text, d)                                                                   \
    do {                                                                                           \
        const char *m_ = parse((cmd), (text), (d));                                                \
        ck_assert_msg(m_ == NULL, "refused %s: %s", (text), m_);                                   \
    } while (0)

/* A string of n copies of the UTF-8 character c. */
static char *repeat(const char *c, size_t n)
{
    size_t len = strlen(c);
    char *s = imp_malloc(n * len + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * len, c, len);
    s[n * len] = '\0';
    return s;
}

START_TEST(bot_types)
{
    ck_assert_int_eq(control_bot_cmd_of_type("imp.command.bot.draft.v1"), CONTROL_BOT_DRAFT);
    ck_assert_int_eq(control_bot_cmd_of_type("imp.command.bot.publish.v1"), CONTROL_BOT_PUBLISH);
    ck_assert_int_eq(control_bot_cmd_of_type("imp.command.bot.rollback.v1"), CONTROL_BOT_ROLLBACK);
    ck_assert_int_eq(control_bot_cmd_of_type("imp.command.bot.channel.v1"), CONTROL_BOT_CHANNEL);
    ck_assert_int_eq(control_bot_cmd_of_type("imp.command.kb.promote.v1"), -1);
    ck_assert_int_eq(control_cmd_of_type("imp.command.bot.draft.v1"), -1);
    ck_assert_str_eq(control_bot_cmd_type(CONTROL_BOT_CHANNEL), "imp.command.bot.channel.v1");
}
END_TEST

START_TEST(settings_accepted)
{
    ck_settings_ok("{}");
    ck_settings_ok("{\"qc\": {}}");
    ck_settings_ok(
        "{\"qc\": {\"min_confidence\": 0.3, \"max_length\": 1000, \"must_cite\": true, "
        "\"forbidden_topics\": [\"оружие\", \"refund\"]}, \"safe_reply\": \"Спасибо!\"}");
    ck_settings_ok("{\"qc\": {\"min_confidence\": 0}}");
    ck_settings_ok("{\"qc\": {\"min_confidence\": 1}}");
    ck_settings_ok("{\"qc\": {\"max_length\": 1}}");
    ck_settings_ok("{\"qc\": {\"max_length\": 100000}}");
    ck_settings_ok("{\"qc\": {\"forbidden_topics\": []}}");
    ck_settings_ok("{\"safe_reply\": \"Спасибо!\\nМенеджер скоро ответит.\"}");
    char *topics = imp_strdup("{\"qc\": {\"forbidden_topics\": [");
    for (int i = 0; i < CONTROL_BOT_TOPICS_MAX; i++) {
        char *next = imp_asprintf("%s%s\"t%d\"", topics, i ? ", " : "", i);
        free(topics);
        topics = next;
    }
    char *text = imp_asprintf("%s]}}", topics);
    ck_settings_ok(text);
    free(text);
    free(topics);
    char *topic = repeat("ё", CONTROL_BOT_TOPIC_MAX_CHARS);
    text = imp_asprintf("{\"qc\": {\"forbidden_topics\": [\"%s\"]}}", topic);
    ck_settings_ok(text);
    free(text);
    free(topic);
}
END_TEST

START_TEST(settings_rejected)
{
    ck_settings_bad("[]", "settings is not an object (qc, safe_reply)");
    ck_settings_bad("{\"tone\": \"friendly\"}",
                    "settings.tone is not a bot setting (qc, safe_reply)");
    ck_settings_bad("{\"bot_instruction\": \"x\"}",
                    "settings.bot_instruction is not a bot setting");
    ck_settings_bad("{\"qc\": []}", "settings.qc is not an object");
    ck_settings_bad("{\"qc\": {\"min_conf\": 0.3}}", "settings.qc.min_conf is not a QC rule");
    ck_settings_bad("{\"qc\": {\"min_confidence\": \"high\"}}",
                    "settings.qc.min_confidence is not a number from 0 to 1");
    ck_settings_bad("{\"qc\": {\"min_confidence\": 1.5}}", "qc.min_confidence is not a number");
    ck_settings_bad("{\"qc\": {\"min_confidence\": -0.1}}", "qc.min_confidence is not a number");
    ck_settings_bad("{\"qc\": {\"max_length\": 0}}",
                    "settings.qc.max_length is not a whole number");
    ck_settings_bad("{\"qc\": {\"max_length\": 100001}}", "qc.max_length is not a whole number");
    ck_settings_bad("{\"qc\": {\"max_length\": 10.5}}", "qc.max_length is not a whole number");
    ck_settings_bad("{\"qc\": {\"max_length\": \"1000\"}}", "qc.max_length is not a whole number");
    ck_settings_bad("{\"qc\": {\"must_cite\": 1}}", "settings.qc.must_cite is not true or false");
    ck_settings_bad("{\"qc\": {\"forbidden_topics\": \"refund\"}}",
                    "settings.qc.forbidden_topics is not an array of at most 256 strings");
    ck_settings_bad("{\"qc\": {\"forbidden_topics\": [\"refund\", 7]}}",
                    "settings.qc.forbidden_topics[1] is not a text");
    ck_settings_bad("{\"qc\": {\"forbidden_topics\": [\"\"]}}",
                    "forbidden_topics[0] is not a text");
    ck_settings_bad("{\"qc\": {\"forbidden_topics\": [\"   \"]}}",
                    "forbidden_topics[0] is not a text");
    ck_settings_bad("{\"qc\": {\"forbidden_topics\": [\"a\\nb\"]}}",
                    "forbidden_topics[0] is not a text");
    ck_settings_bad("{\"qc\": {\"forbidden_topics\": [\"refund\", \"refund\"]}}",
                    "forbidden_topics[1] repeats topic 0");
    char *topic = repeat("ё", CONTROL_BOT_TOPIC_MAX_CHARS + 1);
    char *text = imp_asprintf("{\"qc\": {\"forbidden_topics\": [\"%s\"]}}", topic);
    ck_settings_bad(text, "forbidden_topics[0] is not a text of 1 to 200 characters");
    free(text);
    free(topic);
    char *topics = imp_strdup("{\"qc\": {\"forbidden_topics\": [");
    for (int i = 0; i <= CONTROL_BOT_TOPICS_MAX; i++) {
        char *next = imp_asprintf("%s%s\"t%d\"", topics, i ? ", " : "", i);
        free(topics);
        topics = next;
    }
    text = imp_asprintf("%s]}}", topics);
    ck_settings_bad(text, "forbidden_topics is not an array of at most 256 strings");
    free(text);
    free(topics);
    ck_settings_bad("{\"safe_reply\": \"\"}", "settings.safe_reply is not a text of 1 to 2000");
    ck_settings_bad("{\"safe_reply\": \" \\n \"}", "settings.safe_reply is not a text");
    ck_settings_bad("{\"safe_reply\": 5}", "settings.safe_reply is not a text");
    char *reply = repeat("я", CONTROL_BOT_SAFE_REPLY_MAX_CHARS + 1);
    text = imp_asprintf("{\"safe_reply\": \"%s\"}", reply);
    ck_settings_bad(text, "settings.safe_reply is not a text");
    free(text);
    free(reply);
}
END_TEST

START_TEST(instructions)
{
    ck_assert(control_bot_instruction_valid("Answer briefly.", 15));
    ck_assert(control_bot_instruction_valid("Line one\n\tLine two\r\n", 20));
    ck_assert(!control_bot_instruction_valid("", 0));
    ck_assert(!control_bot_instruction_valid(" \n\t", 3));
    ck_assert(!control_bot_instruction_valid("a\x01z", 3));
    ck_assert(!control_bot_instruction_valid("a\0z", 3));
    ck_assert(!control_bot_instruction_valid("\xff\xfe", 2));
    char *max = repeat("ж", CONTROL_BOT_INSTRUCTION_MAX_CHARS);
    ck_assert(control_bot_instruction_valid(max, strlen(max)));
    free(max);
    char *over = repeat("a", CONTROL_BOT_INSTRUCTION_MAX_CHARS + 1);
    ck_assert(!control_bot_instruction_valid(over, strlen(over)));
    free(over);
}
END_TEST

START_TEST(data_accepted)
{
    control_bot_data_t d;
    ck_accepts(
        CONTROL_BOT_DRAFT,
        "{\"slug\": \"demo\", \"instruction\": \"Be brief.\", \"settings\": {\"qc\": "
        "{\"max_length\": 500}}, \"kb_version\": 3, \"if_changed\": true, \"actor\": \"op\"}",
        &d);
    ck_assert_str_eq(d.slug, "demo");
    ck_assert_str_eq(d.actor, "op");
    ck_assert_str_eq(json_string_value(d.instruction), "Be brief.");
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(d.settings, "qc"), "max_length")), 500);
    ck_assert_int_eq(d.kb_version, 3);
    ck_assert(d.if_changed);
    ck_accepts(CONTROL_BOT_DRAFT, "{\"slug\": \"demo\"}", &d);
    ck_assert_ptr_null(d.instruction);
    ck_assert_ptr_null(d.settings);
    ck_assert_int_eq(d.kb_version, 0);
    ck_assert(!d.if_changed);
    ck_assert_str_eq(d.actor, "unknown");
    ck_accepts(CONTROL_BOT_DRAFT,
               "{\"slug\": \"demo\", \"instruction\": null, \"kb_version\": null}", &d);
    ck_assert(json_is_null(d.instruction));
    ck_assert_int_eq(d.kb_version, 0);
    ck_accepts(CONTROL_BOT_PUBLISH, "{\"slug\": \"demo\", \"version\": 2, \"channel\": \"canary\"}",
               &d);
    ck_assert_int_eq(d.version, 2);
    ck_assert_str_eq(d.channel, "canary");
    ck_accepts(CONTROL_BOT_ROLLBACK, "{\"slug\": \"demo\"}", &d);
    ck_accepts(CONTROL_BOT_CHANNEL, "{\"slug\": \"demo\", \"channel\": \"stable\"}", &d);
    ck_assert_str_eq(d.channel, "stable");
}
END_TEST

START_TEST(data_rejected)
{
    ck_rejects(CONTROL_BOT_DRAFT, "[]", "data is not an object");
    ck_rejects(CONTROL_BOT_DRAFT, "{\"instruction\": \"x\"}", "data.slug is required");
    ck_rejects(CONTROL_BOT_DRAFT, "{\"slug\": \"Demo\"}", "is not a tenant slug");
    ck_rejects(CONTROL_BOT_DRAFT, "{\"slug\": \"demo\", \"version\": 1}",
               "data.version is not a member of imp.command.bot.draft.v1");
    ck_rejects(CONTROL_BOT_DRAFT, "{\"slug\": \"demo\", \"instruction\": \"\"}",
               "data.instruction is neither null nor a text");
    ck_rejects(CONTROL_BOT_DRAFT, "{\"slug\": \"demo\", \"instruction\": 7}",
               "data.instruction is neither null nor a text");
    ck_rejects(CONTROL_BOT_DRAFT, "{\"slug\": \"demo\", \"settings\": {\"qc\": {\"x\": 1}}}",
               "data.settings.qc.x is not a QC rule");
    ck_rejects(CONTROL_BOT_DRAFT, "{\"slug\": \"demo\", \"settings\": null}",
               "data.settings is not an object");
    ck_rejects(CONTROL_BOT_DRAFT, "{\"slug\": \"demo\", \"kb_version\": 0}",
               "data.kb_version is neither null nor a version number");
    ck_rejects(CONTROL_BOT_DRAFT, "{\"slug\": \"demo\", \"kb_version\": \"3\"}",
               "data.kb_version is neither null nor a version number");
    ck_rejects(CONTROL_BOT_DRAFT, "{\"slug\": \"demo\", \"if_changed\": \"yes\"}",
               "data.if_changed is not true or false");
    ck_rejects(CONTROL_BOT_DRAFT, "{\"slug\": \"demo\", \"actor\": \"\"}", "data.actor must be");
    ck_rejects(CONTROL_BOT_PUBLISH, "{\"slug\": \"demo\", \"channel\": \"stable\"}",
               "data.version is required");
    ck_rejects(CONTROL_BOT_PUBLISH, "{\"slug\": \"demo\", \"version\": 0, \"channel\": \"stable\"}",
               "data.version is not an integer from 1");
    ck_rejects(CONTROL_BOT_PUBLISH, "{\"slug\": \"demo\", \"version\": 1}",
               "data.channel is required");
    ck_rejects(CONTROL_BOT_PUBLISH, "{\"slug\": \"demo\", \"version\": 1, \"channel\": \"beta\"}",
               "data.channel: \"beta\" is not stable or canary");
    ck_rejects(CONTROL_BOT_ROLLBACK, "{\"slug\": \"demo\", \"version\": 1}",
               "data.version is not a member of imp.command.bot.rollback.v1");
    ck_rejects(CONTROL_BOT_CHANNEL, "{\"slug\": \"demo\"}", "data.channel is required");
    ck_rejects(CONTROL_BOT_CHANNEL, "{\"slug\": \"demo\", \"channel\": 1}",
               "data.channel is not a string");
}
END_TEST

/* Every schema example of a bot command: valid-* data accepted, invalid-* data refused. */
START_TEST(schema_examples)
{
    const char *root = getenv("IMP_SOURCE_DIR");
    ck_assert_msg(root != NULL, "IMP_SOURCE_DIR is not set");
    char *dir = imp_asprintf("%s/schemas/examples", root);
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open %s", dir);
    struct dirent *e;
    int seen = 0;
    while ((e = readdir(d)) != NULL) {
        bool valid = strncmp(e->d_name, "valid-imp.command.bot.", 22) == 0;
        if (!valid && strncmp(e->d_name, "invalid-imp.command.bot.", 24) != 0)
            continue;
        char *path = imp_asprintf("%s/%s", dir, e->d_name);
        json_t *ev = json_load_file(path, 0, NULL);
        ck_assert_msg(ev != NULL, "%s is not JSON", path);
        int cmd = control_bot_cmd_of_type(json_string_value(json_object_get(ev, "type")));
        ck_assert_msg(cmd >= 0, "%s: not a bot command", e->d_name);
        control_bot_data_t bd;
        imp_error_t *err = control_bot_data_parse(cmd, json_object_get(ev, "data"), &bd);
        ck_assert_msg((err == NULL) == valid, "%s: %s", e->d_name,
                      err ? imp_error_message(err) : "accepted");
        imp_error_free(err);
        json_decref(ev);
        free(path);
        seen++;
    }
    closedir(d);
    free(dir);
    ck_assert_int_ge(seen, 8);
}
END_TEST

/* Parse a command line; the problem or NULL (static buffer). */
static const char *args(bot_args_t *a, int argc, char **argv)
{
    static char err[512];
    if (cli_bot_args_parse(argc, argv, a, err, sizeof(err)) == 0)
        return NULL;
    return err;
}

#define ARGV(...) ((char *[]){"imperium-control", __VA_ARGS__})
#define ARGC(...) ((int)(sizeof((char *[]){"imperium-control", __VA_ARGS__}) / sizeof(char *)))

#define ck_args_ok(a, ...)                                                                         \
    do {                                                                                           \
        const char *m_ = args((a), ARGC(__VA_ARGS__), ARGV(__VA_ARGS__));                          \
        ck_assert_msg(m_ == NULL, "refused: %s", m_);                                              \
    } while (0)

#define ck_args_bad(needle, ...)                                                                   \
    do {                                                                                           \
        bot_args_t a_;                                                                             \
        const char *m_ = args(&a_, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__));                          \
        ck_assert_msg(m_ != NULL, "accepted");                                                     \
        ck_assert_msg(strstr(m_, (needle)) != NULL, "\"%s\" lacks \"%s\"", m_, (needle));          \
    } while (0)

START_TEST(command_line)
{
    bot_args_t a;
    ck_args_ok(&a, "bot", "draft", "demo", "--instruction", "@ins.txt", "--settings={\"qc\": {}}",
               "--kb-version", "3", "--if-changed");
    ck_assert_int_eq(a.cmd, BOT_CLI_DRAFT);
    ck_assert_str_eq(a.slug, "demo");
    ck_assert_str_eq(a.instruction, "@ins.txt");
    ck_assert_str_eq(a.settings, "{\"qc\": {}}");
    ck_assert_int_eq(a.kb_version, 3);
    ck_assert(a.if_changed);
    ck_assert_int_eq(a.timeout_ms, 30000);
    ck_args_ok(&a, "bot", "draft", "demo", "--instruction", "");
    ck_assert_str_eq(a.instruction, "");
    ck_args_ok(&a, "bot", "publish", "demo", "2", "--canary", "--timeout", "5s");
    ck_assert_int_eq(a.cmd, BOT_CLI_PUBLISH);
    ck_assert_int_eq(a.version, 2);
    ck_assert_str_eq(a.channel, "canary");
    ck_assert_int_eq(a.timeout_ms, 5000);
    ck_args_ok(&a, "bot", "publish", "--stable", "demo", "7");
    ck_assert_str_eq(a.channel, "stable");
    ck_args_ok(&a, "bot", "rollback", "demo", "--operation-id",
               "0c8f6a52-1d3e-4b7a-9c2d-5e6f7a8b9c16", "--no-wait");
    ck_assert_int_eq(a.cmd, BOT_CLI_ROLLBACK);
    ck_assert(a.no_wait);
    ck_assert_str_eq(a.operation_id, "0c8f6a52-1d3e-4b7a-9c2d-5e6f7a8b9c16");
    ck_args_ok(&a, "bot", "channel", "demo", "canary");
    ck_assert_int_eq(a.cmd, BOT_CLI_CHANNEL);
    ck_assert_str_eq(a.channel, "canary");
    ck_args_ok(&a, "bot", "versions", "demo", "--json");
    ck_assert_int_eq(a.cmd, BOT_CLI_VERSIONS);
    ck_assert(a.json);

    ck_args_bad("bot: which command?", "bot");
    ck_args_bad("unknown command \"bot promote\"", "bot", "promote", "demo", "1");
    ck_args_bad("missing SLUG", "bot", "draft");
    ck_args_bad("missing VERSION", "bot", "publish", "demo", "--stable");
    ck_args_bad("is not a version number", "bot", "publish", "demo", "v2", "--stable");
    ck_args_bad("--canary or --stable?", "bot", "publish", "demo", "2");
    ck_args_bad("--canary and --stable exclude each other", "bot", "publish", "demo", "2",
                "--canary", "--stable");
    ck_args_bad("missing the channel", "bot", "channel", "demo");
    ck_args_bad("\"beta\" is not a release channel", "bot", "channel", "demo", "beta");
    ck_args_bad("is not a tenant slug", "bot", "rollback", "Demo");
    ck_args_bad("--kb-version wants", "bot", "draft", "demo", "--kb-version", "0");
    ck_args_bad("--settings wants a JSON object", "bot", "draft", "demo", "--settings", "");
    ck_args_bad("--canary does not apply to this bot command", "bot", "draft", "demo", "--canary");
    ck_args_bad("--timeout wants a duration", "bot", "rollback", "demo", "--timeout=0");
    ck_args_bad("--settings needs a value", "bot", "draft", "demo", "--settings");
    ck_args_bad("--json does not apply", "bot", "rollback", "demo", "--json");
    ck_args_bad("--operation-id does not apply", "bot", "versions", "demo", "--operation-id",
                "0c8f6a52-1d3e-4b7a-9c2d-5e6f7a8b9c16");
    ck_args_bad("--if-changed takes no value", "bot", "draft", "demo", "--if-changed=yes");
    ck_args_bad("--timeout wants", "bot", "rollback", "demo", "--timeout", "2h");
    ck_args_bad("unexpected argument \"x\"", "bot", "rollback", "demo", "x");
    ck_args_bad("unknown option --force", "bot", "rollback", "demo", "--force");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("control_bot");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, bot_types);
    tcase_add_test(tc, settings_accepted);
    tcase_add_test(tc, settings_rejected);
    tcase_add_test(tc, instructions);
    tcase_add_test(tc, data_accepted);
    tcase_add_test(tc, data_rejected);
    tcase_add_test(tc, schema_examples);
    tcase_add_test(tc, command_line);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    json_decref(data);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
