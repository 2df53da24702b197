/* Command-line arguments of the client: the command, its operands and options, validated. */
#include "control.h"

#include "imp/config.h"
#include "imp/mem.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET_FILE_MAX (64 * 1024)
#define TIMEOUT_DEFAULT_MS 30000

const char *const cli_setting_names[4] = {"api_url", "phone_number_id", "manager_chat_id",
                                          "callback_url"};

static const struct {
    const char *group;
    const char *verb;
    cli_cmd_t cmd;
    int operands; /* SLUG, or SLUG KIND */
} commands[] = {
    {"tenant", "create", CLI_TENANT_CREATE, 1},   {"tenant", "disable", CLI_TENANT_DISABLE, 1},
    {"tenant", "enable", CLI_TENANT_ENABLE, 1},   {"tenant", "show", CLI_TENANT_SHOW, 1},
    {"channel", "set", CLI_CHANNEL_SET, 2},       {"secret", "rotate", CLI_SECRET_ROTATE, 2},
    {"tenant", "publish", CLI_TENANT_PUBLISH, 1},
};

enum {
    ON_CREATE = 1 << CLI_TENANT_CREATE,
    ON_STATUS = 1 << CLI_TENANT_DISABLE | 1 << CLI_TENANT_ENABLE,
    ON_SHOW = 1 << CLI_TENANT_SHOW,
    ON_SET = 1 << CLI_CHANNEL_SET,
    ON_ROTATE = 1 << CLI_SECRET_ROTATE,
    ON_PUBLISH = 1 << CLI_TENANT_PUBLISH,
    ON_SUBMIT = ON_CREATE | ON_STATUS | ON_SET | ON_ROTATE | ON_PUBLISH,
};

typedef enum {
    OPT_NAME,
    OPT_PLAN,
    OPT_ENABLED,
    OPT_SETTING, /* index in cli_setting_names: arg */
    OPT_SECRET,
    OPT_GRACE,
    OPT_OPERATION_ID,
    OPT_NO_WAIT,
    OPT_TIMEOUT,
    OPT_JSON,
} opt_id_t;

static const cli_option_t options[] = {
    {"--name", OPT_NAME, 0, true, ON_CREATE},
    {"--plan", OPT_PLAN, 0, true, ON_CREATE},
    {"--enabled", OPT_ENABLED, 0, true, ON_SET},
    {"--api-url", OPT_SETTING, 0, true, ON_SET},
    {"--phone-number-id", OPT_SETTING, 1, true, ON_SET},
    {"--manager-chat-id", OPT_SETTING, 2, true, ON_SET},
    {"--callback-url", OPT_SETTING, 3, true, ON_SET},
    {"--secret", OPT_SECRET, 0, true, ON_SET | ON_ROTATE},
    {"--grace", OPT_GRACE, 0, true, ON_ROTATE},
    {"--operation-id", OPT_OPERATION_ID, 0, true, ON_SUBMIT},
    {"--no-wait", OPT_NO_WAIT, 0, false, ON_SUBMIT},
    {"--timeout", OPT_TIMEOUT, 0, true, ON_SUBMIT},
    {"--json", OPT_JSON, 0, false, ON_SHOW},
};

static const char usage_text[] =
    "usage: " CONTROL_BINARY " [serve]                      run the worker\n"
    "       " CONTROL_BINARY " tenant create SLUG --name NAME [--plan PLAN]\n"
    "       " CONTROL_BINARY " tenant disable|enable SLUG\n"
    "       " CONTROL_BINARY " tenant show SLUG [--json]\n"
    "       " CONTROL_BINARY " tenant publish SLUG         its snapshot again (a lost directory)\n"
    "       " CONTROL_BINARY " channel set SLUG KIND [--enabled true|false] [--api-url URL]\n"
    "                 [--phone-number-id ID] [--manager-chat-id ID] [--callback-url URL]\n"
    "                 [--secret NAME=VALUE|NAME=@FILE]...\n"
    "       " CONTROL_BINARY " secret rotate SLUG KIND [--grace DURATION]\n"
    "                 [--secret NAME=VALUE|NAME=@FILE]...\n"
    "Every command but show also takes [--operation-id UUID] [--no-wait] [--timeout DURATION].\n"
    "KIND: chatflow, whatsapp, telegram, generic, test. DURATION: 0, or a number with ms, s, m,\n"
    "h or d (30s, 24h, 7d). An empty setting (--api-url '') removes it.\n"
    "Exit status: 0 succeeded; 1 failed or rejected; 2 bad usage or configuration;\n"
    "3 no outcome (timed out, or Kafka or Postgres unreachable): retry with the same\n"
    "--operation-id.\n";

void cli_print_usage(FILE *out)
{
    fputs(usage_text, out);
}

/* "0", or digits with one of ms, s, m, h, d. */
static int parse_duration_ms(const char *text, long long *out)
{
    static const struct {
        const char *unit;
        long long ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    char *end = NULL;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (errno != 0 || end == text || n < 0 || text[0] == '-' || text[0] == '+' || n > 100000000)
        return -1;
    if (*end == '\0' && n == 0) {
        *out = 0;
        return 0;
    }
    for (size_t i = 0; i < IMP_ARRAY_LEN(units); i++) {
        if (strcmp(end, units[i].unit) == 0) {
            *out = n * units[i].ms;
            return 0;
        }
    }
    return -1;
}

static char *read_secret_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = imp_malloc(SECRET_FILE_MAX + 1);
    size_t n = fread(buf, 1, SECRET_FILE_MAX + 1, f);
    bool bad = ferror(f) || n > SECRET_FILE_MAX || memchr(buf, '\0', n) != NULL;
    fclose(f);
    if (bad) {
        imp_crypto_wipe(buf, SECRET_FILE_MAX + 1);
        free(buf);
        return NULL;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    return buf;
}

/* NAME=VALUE or NAME=@FILE into a->secrets. */
static int add_secret(cli_args_t *a, const char *v, char *err, size_t cap)
{
    const char *eq = strchr(v, '=');
    if (eq == NULL || eq == v)
        return cli_problem(err, cap, "--secret wants NAME=VALUE or NAME=@FILE");
    char *name = imp_strndup(v, (size_t)(eq - v));
    char *value = eq[1] == '@' ? read_secret_file(eq + 2) : imp_strdup(eq + 1);
    int rc = 0;
    if (value == NULL)
        rc = cli_problem(err, cap, "--secret %s: cannot read %s (or it is larger than 64 KiB)",
                         name, eq + 2);
    else if (a->secrets != NULL && json_object_get(a->secrets, name) != NULL)
        rc = cli_problem(err, cap, "--secret %s is given twice", name);
    if (rc == 0) {
        if (a->secrets == NULL)
            a->secrets = json_object();
        json_t *s = json_string(value);
        if (s == NULL)
            rc = cli_problem(err, cap, "--secret %s is not valid UTF-8", name);
        else
            json_object_set_new(a->secrets, name, s);
    }
    if (value != NULL)
        imp_crypto_wipe(value, strlen(value));
    free(value);
    free(name);
    return rc;
}

static int set_option(cli_args_t *a, opt_id_t id, int arg, const char *v, char *err, size_t cap)
{
    long long ms = 0;
    bool b = false;
    switch (id) {
    case OPT_NAME:
        a->name = v;
        return 0;
    case OPT_PLAN:
        a->plan = v;
        return 0;
    case OPT_ENABLED:
        if (imp_config_parse_bool(v, &b) != 0)
            return cli_problem(err, cap, "--enabled wants true or false, not \"%s\"", v);
        a->enabled = b;
        return 0;
    case OPT_SETTING:
        a->settings[arg] = v;
        return 0;
    case OPT_SECRET:
        return add_secret(a, v, err, cap);
    case OPT_GRACE:
        if (parse_duration_ms(v, &ms) != 0 || ms / 1000 > CONTROL_GRACE_MAX_S || ms % 1000 != 0)
            return cli_problem(err, cap,
                               "--grace wants whole seconds up to 30d, as 0, 90s, 30m, 24h or 7d");
        a->grace_s = ms / 1000;
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

static int find_command(int argc, char **argv, cli_args_t *a, char *err, size_t cap)
{
    if (argc < 3)
        return cli_problem(err, cap, "%s: which command?", argv[1]);
    for (size_t i = 0; i < IMP_ARRAY_LEN(commands); i++) {
        if (strcmp(commands[i].group, argv[1]) == 0 && strcmp(commands[i].verb, argv[2]) == 0) {
            a->cmd = commands[i].cmd;
            return commands[i].operands;
        }
    }
    return cli_problem(err, cap, "unknown command \"%s %s\"", argv[1], argv[2]);
}

/* One option at argv[*i] (--name value or --name=value). */
static int take_option(int argc, char **argv, int *i, cli_args_t *a, char *err, size_t cap)
{
    char command[64];
    snprintf(command, sizeof(command), "%s %s", argv[1], argv[2]);
    const char *v = NULL;
    const cli_option_t *o = cli_option_take(options, IMP_ARRAY_LEN(options), a->cmd, command, argc,
                                            argv, i, &v, err, cap);
    return o == NULL ? -1 : set_option(a, o->id, o->arg, v, err, cap);
}

/* What the options cannot say alone. */
static int check(const cli_args_t *a, int want, int got, char *err, size_t cap)
{
    if (got < want)
        return cli_problem(err, cap, "missing %s", got == 0 ? "SLUG" : "KIND");
    if (!control_slug_valid(a->slug))
        return cli_problem(
            err, cap,
            "\"%s\" is not a tenant slug (lowercase letters, digits and '-', 1 to 63 "
            "characters, not starting with '-')",
            a->slug);
    if (want == 2 && !control_kind_valid(a->kind))
        return cli_problem(err, cap,
                           "\"%s\" is not a channel kind (chatflow, whatsapp, telegram, generic, "
                           "test)",
                           a->kind);
    if (a->cmd == CLI_TENANT_CREATE && a->name == NULL)
        return cli_problem(err, cap, "tenant create needs --name");
    if (a->secrets != NULL) {
        imp_error_t *e = control_secrets_check(a->kind, a->secrets, "secret");
        if (e != NULL) {
            cli_problem(err, cap, "%s", imp_error_message(e));
            imp_error_free(e);
            return -1;
        }
    }
    return 0;
}

int cli_args_parse(int argc, char **argv, cli_args_t *out, char *err, size_t cap)
{
    memset(out, 0, sizeof(*out));
    out->enabled = -1;
    out->grace_s = -1;
    out->timeout_ms = TIMEOUT_DEFAULT_MS;
    int want = find_command(argc, argv, out, err, cap), got = 0;
    if (want < 0)
        return -1;
    for (int i = 3; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) == 0 && argv[i][2] != '\0') {
            if (take_option(argc, argv, &i, out, err, cap) != 0)
                return -1;
        } else if (got < want) {
            *(got++ == 0 ? &out->slug : &out->kind) = argv[i];
        } else {
            return cli_problem(err, cap, "unexpected argument \"%s\"", argv[i]);
        }
    }
    return check(out, want, got, err, cap);
}

void cli_args_dispose(cli_args_t *a)
{
    json_decref(a->secrets);
    a->secrets = NULL;
}
