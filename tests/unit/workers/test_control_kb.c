/* Unit tests for imperium-control's knowledge-base commands: their data rules (shared by the
 * worker and the client) and the `kb` command line. */
#include "../../../workers/control/cli_kb_args.c"
#include "../../../workers/control/cli_options.c"
#include "../../../workers/control/kb_validate.c"
#include "../../../workers/control/validate.c"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static json_t *data;

/* Parse JSON text as the data of cmd; the error message or NULL (static buffer). */
static const char *parse(control_kb_cmd_t cmd, const char *text, control_kb_data_t *d)
{
    static char msg[512];
    json_decref(data);
    data = json_loads(text, 0, NULL);
    ck_assert_msg(data != NULL, "not JSON: %s", text);
    imp_error_t *err = control_kb_data_parse(cmd, data, d);
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
        control_kb_data_t d_;                                                                      \
        const char *m_ = parse((cmd), (text), &d_);                                                \
        ck_assert_msg(m_ != NULL, "accepted: %s", (text));                                         \
        ck_assert_msg(strstr(m_, (needle)) != NULL, "\"%s\" lacks \"%s\"", m_, (needle));          \
    } while (0)

#define ck_accepts(cmd, text, d)                                                                   \
    do {                                                                                           \
        const char *m_ = parse((cmd), (text), (d));                                                \
        ck_assert_msg(m_ == NULL, "refused %s: %s", (text), m_);                                   \
    } while (0)

/* A JSON string of n copies of the UTF-8 character c. */
static char *repeat(const char *c, size_t n)
{
    size_t len = strlen(c);
    char *s = imp_malloc(n * len + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * len, c, len);
    s[n * len] = '\0';
    return s;
}

START_TEST(kb_types)
{
    ck_assert_int_eq(control_kb_cmd_of_type("imp.command.kb.source.put.v1"), CONTROL_KB_SOURCE_PUT);
    ck_assert_int_eq(control_kb_cmd_of_type("imp.command.kb.eval.v1"), CONTROL_KB_EVAL);
    ck_assert_int_eq(control_kb_cmd_of_type("imp.command.tenant.create.v1"), -1);
    ck_assert_int_eq(control_cmd_of_type("imp.command.kb.build.v1"), -1);
    ck_assert_ptr_null(control_kb_event_type(CONTROL_KB_SOURCE_PUT));
    ck_assert_ptr_null(control_kb_event_type(CONTROL_KB_SETTINGS));
    ck_assert_str_eq(control_kb_event_type(CONTROL_KB_BUILD), "imp.kb.build.v1");
    ck_assert_str_eq(control_kb_event_type(CONTROL_KB_ROLLBACK), "imp.kb.rollback.v1");
    ck_assert_str_eq(control_kb_forward_step(CONTROL_KB_PROMOTE), "kb.promote");
    ck_assert_str_eq(control_kb_cmd_type(CONTROL_KB_QUESTIONS_SET),
                     "imp.command.kb.questions.set.v1");
}
END_TEST

START_TEST(source_names)
{
    ck_assert(control_kb_source_name_valid("faq_ru.md"));
    ck_assert(control_kb_source_name_valid("Прайс 2025.md"));
    ck_assert(control_kb_source_name_valid("a b"));
    ck_assert(!control_kb_source_name_valid(""));
    ck_assert(!control_kb_source_name_valid(" faq.md"));
    ck_assert(!control_kb_source_name_valid("faq.md "));
    ck_assert(!control_kb_source_name_valid("docs/faq.md"));
    ck_assert(!control_kb_source_name_valid("faq\t.md"));
    ck_assert(!control_kb_source_name_valid("faq\xc2\x85.md")); /* U+0085, a C1 control */
    ck_assert(!control_kb_source_name_valid("faq\xff.md"));
    char *name = repeat("ж", 200);
    ck_assert(control_kb_source_name_valid(name)); /* 200 characters, 400 bytes */
    free(name);
    name = repeat("ж", 201);
    ck_assert(!control_kb_source_name_valid(name));
    free(name);
}
END_TEST

START_TEST(data_accepted)
{
    control_kb_data_t d;
    ck_accepts(CONTROL_KB_SOURCE_PUT,
               "{\"slug\":\"demo\",\"name\":\"faq.md\",\"format\":\"markdown\",\"content\":\"# "
               "Hours\\n9-21\"}",
               &d);
    ck_assert_str_eq(d.actor, "unknown");
    ck_assert_str_eq(d.format, "markdown");
    ck_assert_uint_eq(d.content_len, 12);
    ck_accepts(CONTROL_KB_SOURCE_PUT,
               "{\"slug\":\"demo\",\"name\":\"empty.txt\",\"format\":\"text\",\"content\":\"\"}",
               &d);
    ck_accepts(CONTROL_KB_SOURCE_REMOVE,
               "{\"slug\":\"demo\",\"name\":\"faq.md\",\"actor\":\"ops\"}", &d);
    ck_assert_str_eq(d.actor, "ops");
    ck_accepts(CONTROL_KB_QUESTIONS_SET,
               "{\"slug\":\"demo\",\"questions\":[{\"question\":\"Когда открыто?\",\"source\":"
               "\"faq.md\"},{\"question\":\"Price?\",\"fragment\":\"Prices\\nHaircuts\"}]}",
               &d);
    ck_assert_uint_eq(json_array_size(d.questions), 2);
    ck_accepts(CONTROL_KB_QUESTIONS_SET, "{\"slug\":\"demo\",\"questions\":[]}", &d);
    ck_accepts(
        CONTROL_KB_SETTINGS,
        "{\"slug\":\"demo\",\"min_hit_rate\":0.9,\"eval_k\":5,\"chunk\":{\"max_chars\":2000}}", &d);
    ck_assert(json_is_real(d.min_hit_rate) && json_is_integer(d.eval_k) && json_is_object(d.chunk));
    ck_accepts(CONTROL_KB_SETTINGS, "{\"slug\":\"demo\",\"min_hit_rate\":1}", &d);
    ck_accepts(CONTROL_KB_SETTINGS,
               "{\"slug\":\"demo\",\"min_hit_rate\":null,\"eval_k\":null,\"chunk\":null}", &d);
    ck_assert(json_is_null(d.min_hit_rate) && json_is_null(d.chunk));
    ck_accepts(CONTROL_KB_BUILD, "{\"slug\":\"demo\"}", &d);
    ck_assert(!d.if_changed);
    ck_accepts(CONTROL_KB_BUILD, "{\"slug\":\"demo\",\"if_changed\":true}", &d);
    ck_assert(d.if_changed);
    ck_accepts(CONTROL_KB_PROMOTE, "{\"slug\":\"demo\",\"version\":3}", &d);
    ck_assert_int_eq(d.version, 3);
    ck_accepts(CONTROL_KB_ROLLBACK, "{\"slug\":\"demo\"}", &d);
    ck_accepts(CONTROL_KB_EVAL, "{\"slug\":\"demo\",\"version\":2,\"k\":50}", &d);
    ck_assert_int_eq(d.k, 50);
}
END_TEST

START_TEST(data_rejected)
{
    ck_rejects(CONTROL_KB_BUILD, "[]", "data is not an object");
    ck_rejects(CONTROL_KB_BUILD, "{\"slug\":\"Demo\"}", "data.slug");
    ck_rejects(CONTROL_KB_BUILD, "{\"slug\":\"demo\",\"if_changed\":\"yes\"}", "data.if_changed");
    ck_rejects(CONTROL_KB_BUILD, "{\"slug\":\"demo\",\"force\":true}",
               "data.force is not a member of imp.command.kb.build.v1");
    ck_rejects(CONTROL_KB_ROLLBACK, "{\"slug\":\"demo\",\"version\":1}",
               "data.version is not a member");
    ck_rejects(CONTROL_KB_BUILD, "{\"slug\":\"demo\",\"actor\":\"a\\nb\"}", "data.actor");
    ck_rejects(CONTROL_KB_SOURCE_PUT,
               "{\"slug\":\"demo\",\"name\":\"f.docx\",\"format\":\"docx\",\"content\":\"x\"}",
               "data.format");
    ck_rejects(CONTROL_KB_SOURCE_PUT,
               "{\"slug\":\"demo\",\"name\":\"a/b\",\"format\":\"text\",\"content\":\"x\"}",
               "data.name");
    ck_rejects(CONTROL_KB_SOURCE_PUT, "{\"slug\":\"demo\",\"name\":\"a\",\"format\":\"text\"}",
               "data.content is required");
    ck_rejects(CONTROL_KB_SOURCE_PUT,
               "{\"slug\":\"demo\",\"name\":\"a\",\"format\":\"text\",\"content\":7}",
               "data.content is not a string");
    char *big = repeat("я", IMP_KB_SOURCE_MAX / 2 + 1);
    char *text = imp_asprintf(
        "{\"slug\":\"demo\",\"name\":\"a\",\"format\":\"text\",\"content\":\"%s\"}", big);
    ck_rejects(CONTROL_KB_SOURCE_PUT, text,
               "data.content is 524290 bytes; a source holds at most 524288");
    free(text);
    free(big);
    ck_rejects(CONTROL_KB_SOURCE_REMOVE, "{\"slug\":\"demo\"}", "data.name is required");
    ck_rejects(CONTROL_KB_QUESTIONS_SET, "{\"slug\":\"demo\"}", "data.questions is required");
    ck_rejects(CONTROL_KB_QUESTIONS_SET, "{\"slug\":\"demo\",\"questions\":{}}", "is not an array");
    ck_rejects(CONTROL_KB_QUESTIONS_SET, "{\"slug\":\"demo\",\"questions\":[\"q\"]}",
               "data.questions[0] is not an object");
    ck_rejects(CONTROL_KB_QUESTIONS_SET, "{\"slug\":\"demo\",\"questions\":[{\"question\":\"q\"}]}",
               "names neither a source nor a fragment");
    ck_rejects(
        CONTROL_KB_QUESTIONS_SET,
        "{\"slug\":\"demo\",\"questions\":[{\"question\":\"q\",\"source\":\"a\",\"rank\":1}]}",
        "data.questions[0].rank is not a member");
    ck_rejects(CONTROL_KB_QUESTIONS_SET,
               "{\"slug\":\"demo\",\"questions\":[{\"question\":\"\",\"source\":\"a\"}]}",
               "data.questions[0].question must be 1 to 2000 characters");
    ck_rejects(CONTROL_KB_QUESTIONS_SET,
               "{\"slug\":\"demo\",\"questions\":[{\"question\":\"q\",\"source\":\"a/b\"}]}",
               "data.questions[0].source is not a source name");
    ck_rejects(CONTROL_KB_QUESTIONS_SET,
               "{\"slug\":\"demo\",\"questions\":[{\"question\":\"q\",\"fragment\":\"\"}]}",
               "data.questions[0].fragment must be 1 to 2000 characters");
    ck_rejects(CONTROL_KB_QUESTIONS_SET,
               "{\"slug\":\"demo\",\"questions\":[{\"question\":\"q\",\"source\":\"a\"},"
               "{\"question\":\"q\",\"fragment\":\"b\"}]}",
               "data.questions[1] repeats question 0");
    char *q = repeat("ы", 2001);
    text = imp_asprintf(
        "{\"slug\":\"demo\",\"questions\":[{\"question\":\"%s\",\"source\":\"a\"}]}", q);
    ck_rejects(CONTROL_KB_QUESTIONS_SET, text, "must be 1 to 2000 characters");
    free(text);
    free(q);
    json_t *many = json_array();
    for (int i = 0; i <= CONTROL_KB_QUESTIONS_MAX; i++)
        json_array_append_new(many, json_pack("{s:s, s:s}", "question", "q", "source", "a"));
    char *list = json_dumps(many, JSON_COMPACT);
    text = imp_asprintf("{\"slug\":\"demo\",\"questions\":%s}", list);
    ck_rejects(CONTROL_KB_QUESTIONS_SET, text, "at most 1000 questions");
    free(text);
    free(list);
    json_decref(many);
    ck_rejects(CONTROL_KB_SETTINGS, "{\"slug\":\"demo\"}", "names no setting");
    ck_rejects(CONTROL_KB_SETTINGS, "{\"slug\":\"demo\",\"min_hit_rate\":1.5}",
               "data.min_hit_rate");
    ck_rejects(CONTROL_KB_SETTINGS, "{\"slug\":\"demo\",\"min_hit_rate\":\"0.5\"}",
               "data.min_hit_rate");
    ck_rejects(CONTROL_KB_SETTINGS, "{\"slug\":\"demo\",\"eval_k\":0}", "data.eval_k");
    ck_rejects(CONTROL_KB_SETTINGS, "{\"slug\":\"demo\",\"chunk\":{}}", "data.chunk");
    ck_rejects(CONTROL_KB_SETTINGS, "{\"slug\":\"demo\",\"chunk\":{\"size\":100}}",
               "data.chunk.size");
    ck_rejects(CONTROL_KB_SETTINGS, "{\"slug\":\"demo\",\"chunk\":{\"max_chars\":100}}",
               "data.chunk:");
    ck_rejects(CONTROL_KB_PROMOTE, "{\"slug\":\"demo\"}", "data.version is required");
    ck_rejects(CONTROL_KB_PROMOTE, "{\"slug\":\"demo\",\"version\":0}", "data.version");
    ck_rejects(CONTROL_KB_PROMOTE, "{\"slug\":\"demo\",\"version\":\"3\"}", "data.version");
    ck_rejects(CONTROL_KB_EVAL, "{\"slug\":\"demo\",\"version\":1,\"k\":51}", "data.k");
}
END_TEST

static kb_args_t args;
static char problem_text[512];

static int parse_args(int argc, const char **argv)
{
    return cli_kb_args_parse(argc, (char **)argv, &args, problem_text, sizeof(problem_text));
}

#define ck_args_ok(...)                                                                            \
    do {                                                                                           \
        const char *argv_[] = {"imperium-control", __VA_ARGS__};                                   \
        ck_assert_msg(parse_args(IMP_ARRAY_LEN(argv_), argv_) == 0, "refused: %s", problem_text);  \
    } while (0)

#define ck_args_bad(needle, ...)                                                                   \
    do {                                                                                           \
        const char *argv_[] = {"imperium-control", __VA_ARGS__};                                   \
        ck_assert_msg(parse_args(IMP_ARRAY_LEN(argv_), argv_) != 0, "accepted");                   \
        ck_assert_msg(strstr(problem_text, (needle)) != NULL, "\"%s\" lacks \"%s\"", problem_text, \
                      (needle));                                                                   \
    } while (0)

START_TEST(command_line)
{
    ck_args_ok("kb", "source", "put", "demo", "faq_ru.md", "--file", "deploy/demo/faq_ru.md");
    ck_assert_int_eq(args.cmd, KB_CLI_SOURCE_PUT);
    ck_assert_str_eq(args.slug, "demo");
    ck_assert_str_eq(args.name, "faq_ru.md");
    ck_assert_str_eq(args.format, "markdown");
    ck_assert_int_eq(args.timeout_ms, 30000);
    ck_args_ok("kb", "source", "put", "demo", "faq", "--format=qa_csv", "--file", "x.md");
    ck_assert_str_eq(args.format, "qa_csv");
    ck_args_ok("kb", "source", "put", "demo", "qa", "--file", "QA.JSON");
    ck_assert_str_eq(args.format, "qa_json");
    ck_args_ok("kb", "source", "rm", "demo", "faq_ru.md", "--no-wait");
    ck_assert(args.no_wait);
    ck_args_ok("kb", "build", "demo", "--if-changed", "--timeout", "90s");
    ck_assert(args.if_changed);
    ck_assert_int_eq(args.timeout_ms, 90000);
    ck_args_ok("kb", "build", "demo");
    ck_assert_int_eq(args.timeout_ms, 300000);
    ck_args_ok("kb", "promote", "demo", "3", "--operation-id",
               "7d2c1a8e-3b4f-5a6c-9d8e-0f1a2b3c4d5e");
    ck_assert_int_eq(args.version, 3);
    ck_args_ok("kb", "eval", "demo", "2", "--k", "5");
    ck_assert_int_eq(args.k, 5);
    ck_args_ok("kb", "settings", "demo", "--min-hit-rate", "");
    ck_assert_str_eq(args.min_hit_rate, "");
    ck_args_ok("kb", "settings", "demo", "--chunk-max", "800");
    ck_assert(args.chunk_given && args.chunk[1] == 800 && args.chunk[0] == -1);
    ck_args_ok("kb", "versions", "demo", "--json");
    ck_assert(args.json);

    ck_args_bad("kb: which command?", "kb");
    ck_args_bad("unknown command \"kb frobnicate\"", "kb", "frobnicate", "demo");
    ck_args_bad("unknown command \"kb source\"", "kb", "source");
    ck_args_bad("unknown command \"kb source add\"", "kb", "source", "add", "demo", "x");
    ck_args_bad("missing SLUG", "kb", "build");
    ck_args_bad("missing NAME", "kb", "source", "rm", "demo");
    ck_args_bad("missing VERSION", "kb", "promote", "demo");
    ck_args_bad("is not a version number", "kb", "promote", "demo", "v3");
    ck_args_bad("is not a version number", "kb", "eval", "demo", "0");
    ck_args_bad("is not a tenant slug", "kb", "build", "Demo");
    ck_args_bad("is not a source name", "kb", "source", "rm", "demo", "a/b");
    ck_args_bad("needs --file", "kb", "source", "put", "demo", "faq.md");
    ck_args_bad("give --format", "kb", "source", "put", "demo", "faq", "--file", "faq");
    ck_args_bad("--format wants", "kb", "source", "put", "demo", "f", "--file", "f", "--format",
                "pdf");
    ck_args_bad("--json does not apply", "kb", "build", "demo", "--json");
    ck_args_bad("--if-changed takes no value", "kb", "build", "demo", "--if-changed=yes");
    ck_args_bad("--k wants", "kb", "eval", "demo", "1", "--k", "0");
    ck_args_bad("--min-hit-rate wants", "kb", "settings", "demo", "--min-hit-rate", "2");
    ck_args_bad("--eval-k wants", "kb", "settings", "demo", "--eval-k", "x");
    ck_args_bad("which setting", "kb", "settings", "demo");
    ck_args_bad("--chunk-defaults goes without", "kb", "settings", "demo", "--chunk-defaults",
                "--chunk-max", "900");
    ck_args_bad("--timeout wants a duration from 100ms to 1h", "kb", "build", "demo", "--timeout",
                "2h");
    ck_args_bad("--file needs a value", "kb", "questions", "set", "demo", "--file");
    ck_args_bad("--operation-id wants a lowercase UUID", "kb", "build", "demo", "--operation-id",
                "ABC");
    ck_args_bad("unexpected argument \"x\"", "kb", "rollback", "demo", "x");
    ck_args_bad("unknown option --force", "kb", "build", "demo", "--force");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("control_kb");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, kb_types);
    tcase_add_test(tc, source_names);
    tcase_add_test(tc, data_accepted);
    tcase_add_test(tc, data_rejected);
    tcase_add_test(tc, command_line);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    json_decref(data);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
