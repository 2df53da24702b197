/* Command-line arguments of `imperium-control kb …`: the command, its operands and options,
 * checked before anything is read or sent. */
#include "cli_kb.h"

#include "imp/config.h"
#include "imp/mem.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *group;
    const char *verb; /* NULL: the group is the command */
    kb_cli_cmd_t cmd;
    int operands;      /* SLUG, then NAME or VERSION */
    long long timeout; /* default --timeout, ms */
} commands[] = {
    {"source", "put", KB_CLI_SOURCE_PUT, 2, 30000},
    {"source", "rm", KB_CLI_SOURCE_RM, 2, 30000},
    {"questions", "set", KB_CLI_QUESTIONS_SET, 1, 30000},
    {"settings", NULL, KB_CLI_SETTINGS, 1, 30000},
    {"build", NULL, KB_CLI_BUILD, 1, 300000},
    {"promote", NULL, KB_CLI_PROMOTE, 2, 300000},
    {"rollback", NULL, KB_CLI_ROLLBACK, 1, 300000},
    {"eval", NULL, KB_CLI_EVAL, 2, 300000},
    {"versions", NULL, KB_CLI_VERSIONS, 1, 0},
};

enum {
    ON_PUT = 1 << KB_CLI_SOURCE_PUT,
    ON_QSET = 1 << KB_CLI_QUESTIONS_SET,
    ON_SETTINGS = 1 << KB_CLI_SETTINGS,
    ON_BUILD = 1 << KB_CLI_BUILD,
    ON_EVAL = 1 << KB_CLI_EVAL,
    ON_VERSIONS = 1 << KB_CLI_VERSIONS,
    ON_SUBMIT = ~ON_VERSIONS,
};

typedef enum {
    OPT_FORMAT,
    OPT_FILE,
    OPT_IF_CHANGED,
    OPT_K,
    OPT_MIN_HIT_RATE,
    OPT_EVAL_K,
    OPT_CHUNK, /* arg: 0 target, 1 max, 2 overlap */
    OPT_CHUNK_DEFAULTS,
    OPT_OPERATION_ID,
    OPT_NO_WAIT,
    OPT_TIMEOUT,
    OPT_JSON,
} opt_id_t;

static const cli_option_t options[] = {
    {"--format", OPT_FORMAT, 0, true, ON_PUT},
    {"--file", OPT_FILE, 0, true, ON_PUT | ON_QSET},
    {"--if-changed", OPT_IF_CHANGED, 0, false, ON_BUILD},
    {"--k", OPT_K, 0, true, ON_EVAL},
    {"--min-hit-rate", OPT_MIN_HIT_RATE, 0, true, ON_SETTINGS},
    {"--eval-k", OPT_EVAL_K, 0, true, ON_SETTINGS},
    {"--chunk-target", OPT_CHUNK, 0, true, ON_SETTINGS},
    {"--chunk-max", OPT_CHUNK, 1, true, ON_SETTINGS},
    {"--chunk-overlap", OPT_CHUNK, 2, true, ON_SETTINGS},
    {"--chunk-defaults", OPT_CHUNK_DEFAULTS, 0, false, ON_SETTINGS},
    {"--operation-id", OPT_OPERATION_ID, 0, true, ON_SUBMIT},
    {"--no-wait", OPT_NO_WAIT, 0, false, ON_SUBMIT},
    {"--timeout", OPT_TIMEOUT, 0, true, ON_SUBMIT},
    {"--json", OPT_JSON, 0, false, ON_VERSIONS},
};

static const char usage_text[] =
    "Knowledge base (docs/knowledge-base-operations.md):\n"
    "  " CONTROL_BINARY " kb source put SLUG NAME --file FILE [--format FORMAT]\n"
    "  " CONTROL_BINARY " kb source rm SLUG NAME\n"
    "  " CONTROL_BINARY " kb questions set SLUG --file QUESTIONS.json\n"
    "  " CONTROL_BINARY " kb settings SLUG [--min-hit-rate R] [--eval-k K]\n"
    "        [--chunk-target N] [--chunk-max N] [--chunk-overlap N] [--chunk-defaults]\n"
    "  " CONTROL_BINARY " kb build SLUG [--if-changed]     (prints the version it built)\n"
    "  " CONTROL_BINARY " kb promote SLUG VERSION\n"
    "  " CONTROL_BINARY " kb rollback SLUG\n"
    "  " CONTROL_BINARY " kb eval SLUG VERSION [--k K]\n"
    "  " CONTROL_BINARY " kb versions SLUG [--json]\n"
    "Every kb command but versions also takes [--operation-id UUID] [--no-wait]\n"
    "[--timeout DURATION] (30s; 5m for build, promote, rollback and eval).\n"
    "FORMAT: markdown, text, qa_csv, qa_json (default: from the extension: .md, .txt, .csv,\n"
    ".json). A source holds at most 512 KiB. QUESTIONS.json: [{\"question\": ..., \"source\":\n"
    "..., \"fragment\": ...}, ...]. An empty --min-hit-rate or --eval-k ('') removes the setting.\n"
    "Exit status: 0 succeeded, 1 failed or rejected, 2 bad usage, 3 no outcome.\n";

void cli_kb_print_usage(FILE *out)
{
    fputs(usage_text, out);
}

static int set_option(kb_args_t *a, opt_id_t id, int arg, const char *name, const char *v,
                      char *err, size_t cap)
{
    long long n = 0;
    switch (id) {
    case OPT_FORMAT:
        a->format = v;
        return 0;
    case OPT_FILE:
        a->file = v;
        return 0;
    case OPT_IF_CHANGED:
        a->if_changed = true;
        return 0;
    case OPT_K:
        if (cli_whole_number(v, 1, CONTROL_KB_EVAL_K_MAX, &a->k) != 0)
            return cli_problem(err, cap, "--k wants a whole number from 1 to %d",
                               CONTROL_KB_EVAL_K_MAX);
        return 0;
    case OPT_MIN_HIT_RATE: {
        char *end = NULL;
        double r = strtod(v, &end);
        if (v[0] != '\0' && (end == v || *end != '\0' || !(r >= 0 && r <= 1)))
            return cli_problem(err, cap, "--min-hit-rate wants a number from 0 to 1, or ''");
        a->min_hit_rate = v;
        return 0;
    }
    case OPT_EVAL_K:
        if (v[0] != '\0' && cli_whole_number(v, 1, CONTROL_KB_EVAL_K_MAX, &n) != 0)
            return cli_problem(err, cap, "--eval-k wants a whole number from 1 to %d, or ''",
                               CONTROL_KB_EVAL_K_MAX);
        a->eval_k = v;
        return 0;
    case OPT_CHUNK:
        if (cli_whole_number(v, 0, 1000000, &a->chunk[arg]) != 0)
            return cli_problem(err, cap, "%s wants a whole number of characters", name);
        a->chunk_given = true;
        return 0;
    case OPT_CHUNK_DEFAULTS:
        a->chunk_defaults = true;
        return 0;
    case OPT_OPERATION_ID:
        return cli_operation_id_option(v, &a->operation_id, err, cap);
    case OPT_NO_WAIT:
        a->no_wait = true;
        return 0;
    case OPT_TIMEOUT:
        return cli_timeout_option(v, &a->timeout_ms, err, cap);
    case OPT_JSON:
        a->json = true;
        return 0;
    }
    return -1;
}

/* The command: "kb GROUP [VERB]"; returns the index of the first operand, or -1. */
static int find_command(int argc, char **argv, kb_args_t *a, char *err, size_t cap)
{
    if (argc < 3)
        return cli_problem(err, cap, "kb: which command?");
    for (size_t i = 0; i < IMP_ARRAY_LEN(commands); i++) {
        if (strcmp(commands[i].group, argv[2]) != 0)
            continue;
        if (commands[i].verb != NULL && (argc < 4 || strcmp(commands[i].verb, argv[3]) != 0))
            continue;
        a->cmd = commands[i].cmd;
        a->timeout_ms = commands[i].timeout;
        a->operands = commands[i].operands;
        return commands[i].verb != NULL ? 4 : 3;
    }
    bool group = false; /* argv[2] names a group of verbs ("source", "questions") */
    for (size_t i = 0; i < IMP_ARRAY_LEN(commands); i++)
        group = group || (commands[i].verb != NULL && strcmp(commands[i].group, argv[2]) == 0);
    return cli_problem(err, cap, "unknown command \"kb %s%s%s\"", argv[2],
                       group && argc > 3 ? " " : "", group && argc > 3 ? argv[3] : "");
}

static int take_option(int argc, char **argv, int *i, kb_args_t *a, char *err, size_t cap)
{
    const char *v = NULL;
    const cli_option_t *o = cli_option_take(options, IMP_ARRAY_LEN(options), a->cmd,
                                            "this kb command", argc, argv, i, &v, err, cap);
    return o == NULL ? -1 : set_option(a, o->id, o->arg, o->name, v, err, cap);
}

static int take_operand(kb_args_t *a, int got, const char *v, char *err, size_t cap)
{
    if (got == 0) {
        a->slug = v;
        return 0;
    }
    if (a->cmd == KB_CLI_PROMOTE || a->cmd == KB_CLI_EVAL) {
        if (cli_whole_number(v, 1, INT32_MAX, &a->version) != 0)
            return cli_problem(err, cap, "\"%s\" is not a version number", v);
        return 0;
    }
    a->name = v;
    return 0;
}

/* The format a file name implies: by its extension. */
static const char *format_of(const char *path)
{
    static const struct {
        const char *ext, *format;
    } exts[] = {{".md", "markdown"},
                {".markdown", "markdown"},
                {".txt", "text"},
                {".csv", "qa_csv"},
                {".json", "qa_json"}};
    size_t len = strlen(path);
    for (size_t i = 0; i < IMP_ARRAY_LEN(exts); i++) {
        size_t e = strlen(exts[i].ext);
        if (len > e && strcasecmp(path + len - e, exts[i].ext) == 0)
            return exts[i].format;
    }
    return NULL;
}

static int check(kb_args_t *a, int got, char *err, size_t cap)
{
    imp_kb_format_t f;
    if (got < a->operands)
        return cli_problem(err, cap, "missing %s",
                           got == 0                                            ? "SLUG"
                           : a->cmd == KB_CLI_PROMOTE || a->cmd == KB_CLI_EVAL ? "VERSION"
                                                                               : "NAME");
    if (!control_slug_valid(a->slug))
        return cli_problem(err, cap, "\"%s\" is not a tenant slug", a->slug);
    if (a->name != NULL && !control_kb_source_name_valid(a->name))
        return cli_problem(err, cap,
                           "\"%s\" is not a source name (1 to %d characters, no '/' or control "
                           "characters, no leading or trailing blank)",
                           a->name, CONTROL_KB_NAME_MAX_CHARS);
    if ((a->cmd == KB_CLI_SOURCE_PUT || a->cmd == KB_CLI_QUESTIONS_SET) && a->file == NULL)
        return cli_problem(err, cap, "this kb command needs --file");
    if (a->cmd == KB_CLI_SOURCE_PUT && a->format == NULL &&
        (a->format = format_of(a->file)) == NULL)
        return cli_problem(err, cap, "cannot tell the format of %s from its name: give --format",
                           a->file);
    if (a->format != NULL && imp_kb_format_parse(a->format, &f) != 0)
        return cli_problem(err, cap, "--format wants markdown, text, qa_csv or qa_json");
    if (a->chunk_given && a->chunk_defaults)
        return cli_problem(err, cap, "--chunk-defaults goes without --chunk-target/-max/-overlap");
    if (a->cmd == KB_CLI_SETTINGS && a->min_hit_rate == NULL && a->eval_k == NULL &&
        !a->chunk_given && !a->chunk_defaults)
        return cli_problem(err, cap, "kb settings: which setting?");
    return 0;
}

int cli_kb_args_parse(int argc, char **argv, kb_args_t *out, char *err, size_t cap)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < 3; i++)
        out->chunk[i] = -1;
    int first = find_command(argc, argv, out, err, cap), got = 0;
    if (first < 0)
        return -1;
    for (int i = first; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) == 0 && argv[i][2] != '\0') {
            if (take_option(argc, argv, &i, out, err, cap) != 0)
                return -1;
        } else if (got < out->operands) {
            if (take_operand(out, got++, argv[i], err, cap) != 0)
                return -1;
        } else {
            return cli_problem(err, cap, "unexpected argument \"%s\"", argv[i]);
        }
    }
    return check(out, got, err, cap);
}
