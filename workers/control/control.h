/* imperium-control's internal interfaces: the commands it applies (data, validation,
 * handlers), channel secrets, the tenant snapshot, and the command-line client that submits
 * commands and waits for their outcome (docs/tenants.md). */
#ifndef CONTROL_H
#define CONTROL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "imp/crypto.h"
#include "imp/envelope.h"
#include "imp/error.h"
#include "imp/opid.h"
#include "imp/pg.h"
#include "imp/worker.h"

#define CONTROL_BINARY "imperium-control"
#define CONTROL_WORKER "control"
#define CONTROL_SOURCE "imperium/control"

#define CONTROL_TOPIC_COMMANDS "imp.commands.v1"
#define CONTROL_TOPIC_TENANTS "imp.tenants.v1"
#define CONTROL_TOPIC_CONTROL "imp.control.v1"

#define CONTROL_TYPE_SNAPSHOT "imp.tenant.snapshot.v1"
#define CONTROL_TYPE_CHANGED "imp.control.changed.v1"

/* The one channel name the commands manage (channels are unique per tenant, kind, name). */
#define CONTROL_CHANNEL_NAME "default"

/* Rotation grace: default and bound, seconds. */
#define CONTROL_GRACE_DEFAULT_S 86400
#define CONTROL_GRACE_MAX_S (30LL * 86400)

/* Associated data of the sealed tokens, beyond the tenant UUID used at rest:
 *   a command's secrets     "imp.command|<tenant_id>|<operation_id>"
 *   generated secrets       "imp.operation|<tenant_id>|<operation_id>" (operations.secrets_enc)
 * so a token made for one purpose, tenant or operation opens nowhere else. */
#define CONTROL_AAD_MAX 128
void control_aad_command(const char *tenant_id, const char *operation_id,
                         char out[CONTROL_AAD_MAX]);
void control_aad_operation(const char *tenant_id, const char *operation_id,
                           char out[CONTROL_AAD_MAX]);

/* Exit statuses of the client (docs/tenants.md). */
enum {
    CONTROL_EXIT_OK = 0,
    CONTROL_EXIT_FAILED = 1,  /* the command failed or was rejected (dead-lettered) */
    CONTROL_EXIT_USAGE = 2,   /* bad arguments or configuration */
    CONTROL_EXIT_UNKNOWN = 3, /* no outcome: timed out, or Kafka/Postgres unreachable */
};

/* ---- commands and their data (validate.c) ---------------------------------------------- */

typedef enum {
    CONTROL_CMD_TENANT_CREATE,
    CONTROL_CMD_TENANT_STATUS,
    CONTROL_CMD_CHANNEL_SET,
    CONTROL_CMD_SECRET_ROTATE,
    CONTROL_CMD_TENANT_PUBLISH,
    CONTROL_CMD_COUNT,
} control_cmd_t;

/* The envelope type of a command ("imp.command.tenant.create.v1"). */
const char *control_cmd_type(control_cmd_t cmd);
/* The command of an envelope type; -1 when it is not one. */
int control_cmd_of_type(const char *type);

/* A command's data, validated. Strings and settings are borrowed from the JSON. */
typedef struct {
    const char *slug;
    const char *actor;       /* "unknown" when absent */
    const char *name;        /* tenant.create */
    const char *plan;        /* tenant.create; "free" when absent */
    const char *status;      /* tenant.status: "active" | "disabled" */
    const char *kind;        /* channel.set, secret.rotate */
    int enabled;             /* channel.set: 1, 0, or -1 when absent */
    const json_t *settings;  /* channel.set: NULL when absent; null values remove keys */
    const char *secrets_enc; /* channel.set, secret.rotate: NULL when absent */
    long long grace_s;       /* secret.rotate */
} control_data_t;

/* Validate data (borrowed) as the data of cmd (schemas/events/<type>.json). A poison error
 * (code "bad_command") names the member at fault ("data.slug: ...") and never quotes a
 * secret. */
imp_error_t *control_data_parse(control_cmd_t cmd, const json_t *data, control_data_t *out);

bool control_slug_valid(const char *s);
bool control_kind_valid(const char *s);
bool control_uuid_valid(const char *s); /* lowercase canonical text */

/* ---- channel secrets (secrets.c) --------------------------------------------------------- */

/* Check a plaintext secrets object for kind: every name known for the kind, every value a
 * well-formed string. field prefixes the messages ("secrets"). Poison "bad_command"; the
 * message names the secret, never its value. */
imp_error_t *control_secrets_check(const char *kind, const json_t *secrets, const char *field);

/* Channel creation or update: set a new random value in secrets (and in generated, when not
 * NULL) for every secret of kind that we issue and that secrets lacks. Returns how many. */
int control_secrets_fill_missing(const char *kind, json_t *secrets, json_t *generated);

/* Rotation: set a new random value in secrets (and generated) for every verification secret
 * of kind that we issue and that given (may be NULL) does not hold. Returns how many.
 * Secrets the provider issues (WhatsApp's app_secret) change only when given. */
int control_secrets_regenerate(const char *kind, json_t *secrets, const json_t *given,
                               json_t *generated);

/* The first verification secret of kind missing from secrets, or NULL when none is. */
const char *control_secrets_missing(const char *kind, const json_t *secrets);

/* The verification secrets of secrets (what the ingress needs): new reference. */
json_t *control_secrets_verification(const char *kind, const json_t *secrets);

/* The sorted names of secrets, as a new JSON array (audit rows and `tenant show`). */
json_t *control_secrets_names(const json_t *secrets);

/* Seal a JSON object (compact text) under key with aad; *token is a new heap string. */
imp_error_t *control_seal_json(const uint8_t *key, const json_t *obj, const char *aad,
                               char **token);
/* Open a token sealed by control_seal_json; *out is a new JSON object. Poison on a token that
 * does not open or is not a JSON object. */
imp_error_t *control_open_json(const uint8_t *key, const char *token, const char *aad,
                               json_t **out);

/* ---- the worker (commands.c, snapshot.c, records.c, serve.c) ----------------------------- */

typedef struct {
    uint8_t key[IMP_CRYPTO_KEY_LEN]; /* IMP_SECRET_KEY */
} control_t;

/* One command being applied, inside the runtime's transaction. */
typedef struct {
    imp_worker_ctx_t *ctx;
    const imp_envelope_t *ev;
    const control_t *c;
    imp_pg_t *pg; /* app.tenant_id = ev->tenantid */
    control_cmd_t cmd;
    control_data_t d;
} control_op_t;

/* What a command came to. failed: it was well formed but could not be applied (error says
 * why); nothing else was changed. */
typedef struct {
    bool failed;
    char *error;       /* heap; failed only */
    json_t *result;    /* owned; "message" is the one-line summary the client prints */
    json_t *generated; /* owned or NULL: secrets generated by the command (plaintext) */
} control_outcome_t;

/* The runtime's handler: validate, apply, audit, record the outcome, publish. */
imp_error_t *control_handle(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, void *user);

/* Publish the tenant's snapshot to imp.tenants.v1 (key: slug) and an invalidation event
 * {tenant_id, what} to imp.control.v1, through the outbox of op's transaction. *version gets
 * the snapshot's version. */
imp_error_t *control_publish_tenant(control_op_t *op, const char *what, long long *version);

/* Build a tenant snapshot's data from the tenant and channel rows visible in pg's transaction
 * (exposed for the tests). New reference in *out. */
imp_error_t *control_snapshot_build(imp_pg_t *pg, const uint8_t *key, const char *tenant_id,
                                    json_t **out);

/* Append an audit_log row (before/after: borrowed, may be NULL; never holding secrets). */
imp_error_t *control_audit(control_op_t *op, const char *action, const char *target,
                           const json_t *before, const json_t *after);

/* Upsert the operations row of op from out. */
imp_error_t *control_record_outcome(control_op_t *op, const control_outcome_t *out);

/* The command failed: its reason, also as the result's message. */
void control_fail(control_outcome_t *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The command succeeded: result (taken over) gets the message. */
void control_succeed(control_outcome_t *out, json_t *result, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void control_outcome_dispose(control_outcome_t *out);

/* `imperium-control [serve]`: the worker's main; its configuration help. */
int control_serve(int argc, char **argv);
void control_serve_help(FILE *out);

/* ---- the client (cli_args.c, cli_options.c, cli.c, cli_submit.c, cli_wait.c, cli_show.c)  */

typedef enum {
    CLI_TENANT_CREATE,
    CLI_TENANT_DISABLE,
    CLI_TENANT_ENABLE,
    CLI_TENANT_SHOW,
    CLI_CHANNEL_SET,
    CLI_SECRET_ROTATE,
    CLI_TENANT_PUBLISH,
} cli_cmd_t;

/* Parsed arguments. Strings are borrowed from argv; secrets is owned. */
typedef struct {
    cli_cmd_t cmd;
    const char *slug;
    const char *kind;
    const char *name;
    const char *plan;
    int enabled;             /* -1: not given */
    const char *settings[4]; /* api_url, phone_number_id, manager_chat_id, callback_url */
    json_t *secrets;         /* --secret name=value…; NULL when none */
    long long grace_s;       /* -1: not given */
    const char *operation_id;
    bool no_wait;
    long long timeout_ms;
    bool json;
} cli_args_t;

/* What the command groups' parsers share (cli_options.c). An option of a group's table: */
typedef struct {
    const char *name; /* "--name" */
    int id;           /* the group's own */
    int arg;          /* handed back with id */
    bool value;       /* takes a value (--name VALUE or --name=VALUE) */
    int on;           /* the commands it applies to: bit 1 << command */
} cli_option_t;

/* The option argv[*i] names among opts[0..n) for command cmd, its value in *value (NULL for a
 * flag; *i moves past a separate value); NULL with a problem line in err when it is unknown,
 * does not apply ("--x does not apply to <command>"), lacks its value or is a flag given one. */
const cli_option_t *cli_option_take(const cli_option_t *opts, size_t n, int cmd,
                                    const char *command, int argc, char **argv, int *i,
                                    const char **value, char *err, size_t cap);

/* Format the problem into err; returns -1. */
int cli_problem(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Digits only (no sign), lo..hi: 0, else -1. */
int cli_whole_number(const char *text, long long lo, long long hi, long long *out);

/* --operation-id (a lowercase UUID) and --timeout (100ms to 1h): 0, or -1 with the problem. */
int cli_operation_id_option(const char *v, const char **out, char *err, size_t cap);
int cli_timeout_option(const char *v, long long *out_ms, char *err, size_t cap);

/* Names of the settings in cli_args_t.settings, in order. */
extern const char *const cli_setting_names[4];

/* Parse argv[1..argc) (argv[1] is "tenant", "channel" or "secret"). 0, or -1 with a
 * one-line problem in err. Dispose in both cases. */
int cli_args_parse(int argc, char **argv, cli_args_t *out, char *err, size_t cap);
void cli_args_dispose(cli_args_t *a);
void cli_print_usage(FILE *out);

typedef struct {
    char *kafka_brokers;
    char *pg_dsn;
    char *secret_key;
    char *log_level;
    char *actor;
    char *producer_props;
    bool have_key;
    uint8_t key[IMP_CRYPTO_KEY_LEN];
} cli_settings_t;

/* `imperium-control tenant|channel|secret …`: returns the exit status. */
int control_cli(int argc, char **argv);
void control_cli_help(FILE *out);

/* Wait for the outcome of operation_id of tenant_id (polling Postgres), print it, and
 * return the exit status. */
int cli_wait(imp_pg_t *pg, const cli_settings_t *s, const char *tenant_id, const char *operation_id,
             long long timeout_ms);

/* `tenant show`: the tenant and its channels (never a secret value). */
int cli_show(imp_pg_t *pg, const cli_settings_t *s, const char *slug, bool json);

/* Print an error's message (and detail) to stderr as "imperium-control: …". */
void cli_report(const char *what, const imp_error_t *err);

/* Pieces of the client shared by its command groups (cli.c): settings from the environment
 * (0, or -1 after printing why), the application role's connection, the tenant id a command
 * of slug goes to, and a durable produce to imp.commands.v1. */
int cli_load_settings(cli_settings_t *s);
void cli_settings_dispose(cli_settings_t *s);
imp_error_t *cli_connect_pg(const cli_settings_t *s, imp_pg_t **out);
imp_error_t *cli_tenant_id(imp_pg_t *pg, const char *slug, char out[IMP_UUID_STR_SIZE]);
imp_error_t *cli_produce(const cli_settings_t *s, const char *tenant_id, const char *payload);

/* Waiting for commands that another worker finishes (cli_wait.c). */
typedef struct {
    /* A dead letter of this worker for this operation id also ends the wait (the command was
     * forwarded there under a derived id); NULL: only control's own. */
    const char *worker;
    const char *operation_id;
    const char *finisher; /* who completes a pending command ("imperium-indexer") */
    /* Called after the outcome line with the outcome's result (may be NULL) and status. */
    void (*print)(const json_t *result, const char *status, void *arg);
    void *arg;
} cli_wait_opts_t;

/* cli_wait with options (NULL: none). */
int cli_wait_opts(imp_pg_t *pg, const cli_settings_t *s, const char *tenant_id,
                  const char *operation_id, long long timeout_ms, const cli_wait_opts_t *o);

/* Sending a command (cli_submit.c). */
typedef struct {
    const char *slug;         /* the tenant's */
    const char *type;         /* the envelope's type */
    const char *operation_id; /* NULL: a new one */
    bool no_wait;             /* print the operation id instead of waiting */
    long long timeout_ms;     /* of the wait */
    json_t *data; /* the command's data (borrowed) when it does not depend on the ids … */
    /* … else built for the tenant and operation id (a new reference in *out). An error is
     * the command's fault: exit status usage. */
    imp_error_t *(*build)(void *arg, const cli_settings_t *s, const char *tenant_id,
                          const char *operation_id, json_t **out);
    /* How to wait for the outcome (NULL: cli_wait); returns the exit status. */
    int (*wait)(imp_pg_t *pg, const cli_settings_t *s, const char *tenant_id,
                const char *operation_id, void *arg);
    void *arg;                  /* of build and wait */
    const char *too_large_hint; /* appended to the error of a command over the size limit */
} cli_submission_t;

/* Find the tenant, build and check the envelope, produce it, and print the operation id
 * (no_wait) or wait for its outcome. Returns the exit status; Kafka unreachable prints the
 * operation id to retry with. */
int cli_submit(imp_pg_t *pg, const cli_settings_t *s, const cli_submission_t *sub);

/* A command of a group (tenant, bot, kb) once its arguments are parsed. */
typedef struct {
    /* A command that only reads Postgres (`tenant show`, `… versions`): it needs no Kafka and
     * runs read instead of being sent. */
    bool reads;
    int (*read)(imp_pg_t *pg, const cli_settings_t *s, void *args);
    /* Called before anything connects (NULL: nothing to do): checks what the command needs
     * of the settings and reads its local files into *data (the submission's data); 0, or -1
     * after printing why (exit status usage). */
    int (*prepare)(void *args, const cli_settings_t *s, json_t **data);
    cli_submission_t sub; /* what to send, when it does not only read */
} cli_command_t;

/* Load the settings, prepare, connect, then read or submit. Returns the exit status. */
int cli_run(const cli_command_t *c, void *args);

/* ---- knowledge-base commands (kb_validate.c, kb_commands.c, cli_kb*.c) -------------------
 * docs/knowledge-base-operations.md. Sources, test questions and settings are applied by the
 * worker here; build, promote, rollback and eval are recorded as pending and forwarded to
 * imperium-indexer on imp.kb.v1, which records their outcome. */

#define CONTROL_TOPIC_KB "imp.kb.v1"
#define CONTROL_INDEXER_WORKER "indexer"

/* Test questions per tenant, and the size of one question, source name or fragment. */
#define CONTROL_KB_QUESTIONS_MAX 1000
#define CONTROL_KB_QUESTION_MAX_CHARS 2000
#define CONTROL_KB_NAME_MAX_CHARS 200
#define CONTROL_KB_EVAL_K_MAX 50

/* The largest command the client produces (envelope bytes): Kafka's default message.max.bytes
 * is 1000000, and a source of 512 KiB grows when its quotes, backslashes and line breaks are
 * escaped as JSON. */
#define CONTROL_COMMAND_MAX_BYTES 960000

typedef enum {
    CONTROL_KB_SOURCE_PUT,
    CONTROL_KB_SOURCE_REMOVE,
    CONTROL_KB_QUESTIONS_SET,
    CONTROL_KB_SETTINGS,
    CONTROL_KB_BUILD,
    CONTROL_KB_PROMOTE,
    CONTROL_KB_ROLLBACK,
    CONTROL_KB_EVAL,
    CONTROL_KB_COUNT,
} control_kb_cmd_t;

/* The command's envelope type ("imp.command.kb.build.v1"). */
const char *control_kb_cmd_type(control_kb_cmd_t cmd);
/* The command of an envelope type; -1 when it is not a kb command. */
int control_kb_cmd_of_type(const char *type);
/* For the commands imperium-indexer applies: the imp.kb.v1 event type ("imp.kb.build.v1")
 * and the step its operation id is derived with ("kb.build"); NULL for the others. */
const char *control_kb_event_type(control_kb_cmd_t cmd);
const char *control_kb_forward_step(control_kb_cmd_t cmd);

/* A kb command's data, validated. Strings and JSON are borrowed from the data. */
typedef struct {
    const char *slug;
    const char *actor;          /* "unknown" when absent */
    const char *name;           /* source put, remove */
    const char *format;         /* source put: markdown | text | qa_csv | qa_json */
    const char *content;        /* source put (at most IMP_KB_SOURCE_MAX bytes) */
    size_t content_len;         /* bytes */
    const json_t *questions;    /* questions set: [{question, source?, fragment?}] */
    const json_t *min_hit_rate; /* settings: number, null (remove) or NULL (absent) */
    const json_t *eval_k;       /* settings: integer, null or NULL */
    const json_t *chunk;        /* settings: {target_chars, max_chars, overlap_chars}, null, NULL */
    long long version;          /* promote, eval */
    bool if_changed;            /* build */
    long long k;                /* eval: 0 when absent */
} control_kb_data_t;

/* Validate data (borrowed) as the data of cmd (schemas/events/<type>.json). Poison
 * "bad_command" naming the member at fault. */
imp_error_t *control_kb_data_parse(control_kb_cmd_t cmd, const json_t *data,
                                   control_kb_data_t *out);

/* A kb_sources.name: 1 to 200 characters, no control characters or '/', no leading or
 * trailing blank. */
bool control_kb_source_name_valid(const char *s);

/* The worker's handler for kb commands (called by control_handle). */
imp_error_t *control_kb_handle(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, void *user);

/* `imperium-control kb …`: returns the exit status. */
int control_cli_kb(int argc, char **argv);
void cli_kb_print_usage(FILE *out);

#endif
