/* Command-line arguments of `imperium-control bot …`: the command, its operands and options,
 * checked before anything is read or sent. */
#include "bot.h"

#include "imp/config.h"
#include "imp/mem.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BOT_TIMEOUT_DEFAULT_MS 30000LL

static const struct {
    const char *verb;
    bot_cli_cmd_t cmd;
    int operands; /* SLUG, then VERSION or CHANNEL */
} bot_commands[] = {
    {"draft", BOT_CLI_DRAFT, 1},       {"publish", BOT_CLI_PUBLISH, 2},
    {"rollback", BOT_CLI_ROLLBACK, 1}, {"channel", BOT_CLI_CHANNEL, 2},
    {"versions", BOT_CLI_VERSIONS, 1},
};

enum {
    ON_DRAFT = 1 << BOT_CLI_DRAFT,
    ON_PUBLISH = 1 << BOT_CLI_PUBLISH,
    ON_VERSIONS = 1 << BOT_CLI_VERSIONS,
    ON_SUBMIT = ~ON_VERSIONS,
};

typedef enum {
    BOPT_INSTRUCTION,
    BOPT_SETTINGS,
    BOPT_KB_VERSION,
    BOPT_IF_CHANGED,
    BOPT_CANARY,
    BOPT_STABLE,
    BOPT_OPERATION_ID,
    BOPT_NO_WAIT,
    BOPT_TIMEOUT,
    BOPT_JSON,
} bot_opt_t;

static const cli_option_t bot_options[] = {
    {"--instruction", BOPT_INSTRUCTION, 0, true, ON_DRAFT},
    {"--settings", BOPT_SETTINGS, 0, true, ON_DRAFT},
    {"--kb-version", BOPT_KB_VERSION, 0, true, ON_DRAFT},
    {"--if-changed", BOPT_IF_CHANGED, 0, false, ON_DRAFT},
    {"--canary", BOPT_CANARY, 0, false, ON_PUBLISH},
    {"--stable", BOPT_STABLE, 0, false, ON_PUBLISH},
    {"--operation-id", BOPT_OPERATION_ID, 0, true, ON_SUBMIT},
    {"--no-wait", BOPT_NO_WAIT, 0, false, ON_SUBMIT},
    {"--timeout", BOPT_TIMEOUT, 0, true, ON_SUBMIT},
    {"--json", BOPT_JSON, 0, false, ON_VERSIONS},
};

static const char bot_usage_text[] =
    "Bot versions and release channels (docs/bot-versions.md):\n"
    "  " CONTROL_BINARY " bot draft SLUG [--instruction TEXT|@FILE] [--settings JSON|@FILE]\n"
    "        [--kb-version N] [--if-changed]     (prints the version it drafted)\n"
    "  " CONTROL_BINARY " bot publish SLUG VERSION --canary|--stable\n"
    "  " CONTROL_BINARY " bot rollback SLUG\n"
    "  " CONTROL_BINARY " bot channel SLUG stable|canary\n"
    "  " CONTROL_BINARY " bot versions SLUG [--json]\n"
    "Every bot command but versions also takes [--operation-id UUID] [--no-wait]\n"
    "[--timeout DURATION] (30s). A draft copies what it is not given from the stable version\n"
    "(else the newest; a first version from tenants.settings); --instruction '' is the default\n"
    "instruction. JSON: {\"qc\": {\"min_confidence\": 0.3, \"max_length\": 1000, \"must_cite\":\n"
    "true, \"forbidden_topics\": [...]}, \"safe_reply\": \"...\"}. --kb-version pins the\n"
    "knowledge-base version the version answers from while it is the canary.\n"
    "Exit status: 0 succeeded, 1 failed or rejected, 2 bad usage, 3 no outcome.\n";

void cli_bot_print_usage(FILE *out)
{
    fputs(bot_usage_text, out);
}

static int set_channel(bot_args_t *a, const char *channel, char *err, size_t cap)
{
    if (a->channel != NULL && strcmp(a->channel, channel) != 0)
        return cli_problem(err, cap, "--canary and --stable exclude each other");
    a->channel = channel;
    return 0;
}

static int bot_set_option(bot_args_t *a, bot_opt_t id, const char *v, char *err, size_t cap)
{
    switch (id) {
    case BOPT_INSTRUCTION:
        a->instruction = v;
        return 0;
    case BOPT_SETTINGS:
        if (v[0] == '\0')
            return cli_problem(err, cap, "--settings wants a JSON object or @FILE");
        a->settings = v;
        return 0;
    case BOPT_KB_VERSION:
        if (cli_whole_number(v, 1, INT32_MAX, &a->kb_version) != 0)
            return cli_problem(err, cap, "--kb-version wants a knowledge-base version number");
        return 0;
    case BOPT_IF_CHANGED:
        a->if_changed = true;
        return 0;
    case BOPT_CANARY:
        return set_channel(a, "canary", err, cap);
    case BOPT_STABLE:
        return set_channel(a, "stable", err, cap);
    case BOPT_OPERATION_ID:
        return cli_operation_id_option(v, &a->operation_id, err, cap);
    case BOPT_NO_WAIT:
        a->no_wait = true;
        return 0;
    case BOPT_TIMEOUT:
        return cli_timeout_option(v, &a->timeout_ms, err, cap);
    case BOPT_JSON:
        a->json = true;
        return 0;
    }
    return -1;
}

static int bot_take_option(int argc, char **argv, int *i, bot_args_t *a, char *err, size_t cap)
{
    const char *v = NULL;
    const cli_option_t *o = cli_option_take(bot_options, IMP_ARRAY_LEN(bot_options), a->cmd,
                                            "this bot command", argc, argv, i, &v, err, cap);
    return o == NULL ? -1 : bot_set_option(a, o->id, v, err, cap);
}

static int bot_take_operand(bot_args_t *a, int got, const char *v, char *err, size_t cap)
{
    if (got == 0) {
        a->slug = v;
        return 0;
    }
    if (a->cmd == BOT_CLI_PUBLISH) {
        if (cli_whole_number(v, 1, INT32_MAX, &a->version) != 0)
            return cli_problem(err, cap, "\"%s\" is not a version number", v);
        return 0;
    }
    if (strcmp(v, "stable") != 0 && strcmp(v, "canary") != 0)
        return cli_problem(err, cap, "\"%s\" is not a release channel (stable or canary)", v);
    a->channel = v;
    return 0;
}

static int bot_check(const bot_args_t *a, int got, char *err, size_t cap)
{
    if (got < a->operands)
        return cli_problem(err, cap, "missing %s",
                           got == 0                    ? "SLUG"
                           : a->cmd == BOT_CLI_PUBLISH ? "VERSION"
                                                       : "the channel (stable or canary)");
    if (!control_slug_valid(a->slug))
        return cli_problem(err, cap, "\"%s\" is not a tenant slug", a->slug);
    if (a->cmd == BOT_CLI_PUBLISH && a->channel == NULL)
        return cli_problem(err, cap, "bot publish: --canary or --stable?");
    return 0;
}

int cli_bot_args_parse(int argc, char **argv, bot_args_t *out, char *err, size_t cap)
{
    memset(out, 0, sizeof(*out));
    out->timeout_ms = BOT_TIMEOUT_DEFAULT_MS;
    if (argc < 3)
        return cli_problem(err, cap, "bot: which command?");
    bool found = false;
    for (size_t i = 0; i < IMP_ARRAY_LEN(bot_commands) && !found; i++) {
        if (strcmp(bot_commands[i].verb, argv[2]) == 0) {
            out->cmd = bot_commands[i].cmd;
            out->operands = bot_commands[i].operands;
            found = true;
        }
    }
    if (!found)
        return cli_problem(err, cap, "unknown command \"bot %s\"", argv[2]);
    int got = 0;
    for (int i = 3; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) == 0 && argv[i][2] != '\0') {
            if (bot_take_option(argc, argv, &i, out, err, cap) != 0)
                return -1;
        } else if (got < out->operands) {
            if (bot_take_operand(out, got++, argv[i], err, cap) != 0)
                return -1;
        } else {
            return cli_problem(err, cap, "unexpected argument \"%s\"", argv[i]);
        }
    }
    return bot_check(out, got, err, cap);
}
