/* Bot versions and release channels in imperium-control (docs/bot-versions.md): the command
 * data and the settings of a version (bot_validate.c), the worker's handler
 * (bot_commands.c), and the `imperium-control bot …` client (cli_bot*.c). */
#ifndef CONTROL_BOT_H
#define CONTROL_BOT_H

#include "control.h"

/* The one bot a tenant has for now (bots.name). */
#define CONTROL_BOT_NAME "default"

/* Bounds of a version's instruction and settings. */
#define CONTROL_BOT_INSTRUCTION_MAX_CHARS 16000
#define CONTROL_BOT_SAFE_REPLY_MAX_CHARS 2000
#define CONTROL_BOT_TOPICS_MAX 256
#define CONTROL_BOT_TOPIC_MAX_CHARS 200
#define CONTROL_BOT_MAX_LENGTH_MAX 100000

typedef enum {
    CONTROL_BOT_DRAFT,
    CONTROL_BOT_PUBLISH,
    CONTROL_BOT_ROLLBACK,
    CONTROL_BOT_CHANNEL,
    CONTROL_BOT_COUNT,
} control_bot_cmd_t;

/* The command's envelope type ("imp.command.bot.draft.v1"). */
const char *control_bot_cmd_type(control_bot_cmd_t cmd);
/* The command of an envelope type; -1 when it is not a bot command. */
int control_bot_cmd_of_type(const char *type);

/* A bot command's data, validated. Strings and JSON are borrowed from the data. */
typedef struct {
    const char *slug;
    const char *actor;         /* "unknown" when absent */
    const json_t *instruction; /* draft: a string, null (the default), or NULL (absent) */
    const json_t *settings;    /* draft: an object, or NULL (absent) */
    long long kb_version;      /* draft: kb_versions.number the version pins, 0 for none */
    bool if_changed;           /* draft */
    long long version;         /* publish: bot_versions.number */
    const char *channel;       /* publish, channel: "stable" | "canary" */
} control_bot_data_t;

/* Validate data (borrowed) as the data of cmd (schemas/events/imp.command.bot.*.v1.json).
 * Poison "bad_command" naming the member at fault. */
imp_error_t *control_bot_data_parse(control_bot_cmd_t cmd, const json_t *data,
                                    control_bot_data_t *out);

/* Check a bot version's settings: an object of known members only, each of its type,
 *   {"qc": {"min_confidence": 0..1, "max_length": 1..100000, "must_cite": bool,
 *           "forbidden_topics": ["pattern", …]},
 *    "safe_reply": "text"}
 * field names the object in messages ("data.settings"). Poison "bad_command" naming the
 * member at fault and what it should be. */
imp_error_t *control_bot_settings_check(const json_t *settings, const char *field);

/* A version's instruction: 1 to CONTROL_BOT_INSTRUCTION_MAX_CHARS characters, not blank, no
 * NUL. */
bool control_bot_instruction_valid(const char *s, size_t len);

/* The worker's handler for bot commands (called by control_handle). */
imp_error_t *control_bot_handle(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, void *user);

/* ---- the client (cli_bot_args.c, cli_bot.c, cli_bot_show.c) ------------------------------ */

typedef enum {
    BOT_CLI_DRAFT,
    BOT_CLI_PUBLISH,
    BOT_CLI_ROLLBACK,
    BOT_CLI_CHANNEL,
    BOT_CLI_VERSIONS,
} bot_cli_cmd_t;

/* Parsed arguments; strings are borrowed from argv. */
typedef struct {
    bot_cli_cmd_t cmd;
    int operands;
    const char *slug;
    const char *instruction; /* draft: TEXT or @FILE; "" the default; NULL not given */
    const char *settings;    /* draft: JSON or @FILE; NULL not given */
    long long kb_version;    /* draft: 0 not given */
    bool if_changed;         /* draft */
    long long version;       /* publish */
    const char *channel;     /* publish (--canary / --stable), channel */
    const char *operation_id;
    bool no_wait;
    long long timeout_ms;
    bool json;
} bot_args_t;

/* Parse argv[1..argc) (argv[1] is "bot"). 0, or -1 with a one-line problem in err. */
int cli_bot_args_parse(int argc, char **argv, bot_args_t *out, char *err, size_t cap);
void cli_bot_print_usage(FILE *out);

/* `imperium-control bot …`: returns the exit status. */
int control_cli_bot(int argc, char **argv);

/* `bot versions`: the tenant's bot versions, release channel and what answers now. */
int cli_bot_versions(imp_pg_t *pg, const char *slug, bool json);

#endif
