/* Command-line arguments of imperium-dlq: the command, its options and ids, validated. */
#include "dlq.h"

#include "imp/mem.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum {
    ON_LIST = 1 << DLQ_CMD_LIST,
    ON_SHOW = 1 << DLQ_CMD_SHOW,
    ON_REPLAY = 1 << DLQ_CMD_REPLAY,
    ON_PURGE = 1 << DLQ_CMD_PURGE,
};

typedef enum {
    OPT_WORKER,
    OPT_TENANT,
    OPT_CLASS,
    OPT_SINCE,
    OPT_BEFORE,
    OPT_LIMIT,
    OPT_ALL,
    OPT_REPLAYED_ONLY,
    OPT_JSON,
    OPT_YES,
    OPT_DRY_RUN,
    OPT_AGAIN,
} opt_id_t;

static const struct {
    const char *name;
    opt_id_t id;
    bool value;
    int on;
} options[] = {
    {"--worker", OPT_WORKER, true, ON_LIST | ON_REPLAY | ON_PURGE},
    {"--tenant", OPT_TENANT, true, ON_LIST | ON_REPLAY | ON_PURGE},
    {"--class", OPT_CLASS, true, ON_LIST | ON_REPLAY | ON_PURGE},
    {"--since", OPT_SINCE, true, ON_LIST | ON_REPLAY},
    {"--before", OPT_BEFORE, true, ON_LIST | ON_PURGE},
    {"--limit", OPT_LIMIT, true, ON_LIST},
    {"--all", OPT_ALL, false, ON_LIST},
    {"--replayed-only", OPT_REPLAYED_ONLY, false, ON_LIST | ON_PURGE},
    {"--json", OPT_JSON, false, ON_LIST | ON_SHOW},
    {"--yes", OPT_YES, false, ON_PURGE},
    {"--dry-run", OPT_DRY_RUN, false, ON_REPLAY},
    {"--again", OPT_AGAIN, false, ON_REPLAY},
};

static const char *const commands[] = {"list", "show", "replay", "purge"};

static const char *const usage_lines[] = {
    "list [--worker W] [--tenant T] [--class C] [--since TIME] [--before TIME]\n"
    "                         [--limit N] [--all | --replayed-only] [--json]",
    "show ID [--json]",
    "replay ID... [--again] [--dry-run]\n"
    "       " DLQ_BINARY " replay --worker W [--tenant T] [--class C] [--since TIME] [--dry-run]",
    "purge [--worker W] [--tenant T] [--class C] [--before TIME] [--replayed-only]\n"
    "                          --yes",
};

void dlq_print_usage(FILE *out)
{
    for (size_t i = 0; i < IMP_ARRAY_LEN(usage_lines); i++)
        fprintf(out, "%s %s %s\n", i == 0 ? "usage:" : "      ", DLQ_BINARY, usage_lines[i]);
}

void dlq_print_command_usage(FILE *out, dlq_cmd_t cmd)
{
    fprintf(out, "usage: %s %s\n", DLQ_BINARY, usage_lines[cmd]);
}

static int problem(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int problem(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -1;
}

/* ^[a-z0-9][a-z0-9_-]{0,62}$: a worker name (the envelope's rule for names). */
static bool valid_name(const char *s, const char *extra)
{
    size_t len = strlen(s);
    if (len == 0 || len > 63 || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) &&
            strchr(extra, s[i]) == NULL)
            return false;
    return true;
}

static int set_value(dlq_args_t *a, opt_id_t id, const char *name, const char *v, int64_t now,
                     char *err, size_t cap)
{
    dlq_filter_t *f = &a->filter;
    const char *cmd = commands[a->cmd];
    imp_err_class_t cls;
    switch (id) {
    case OPT_WORKER:
        if (!valid_name(v, "_-"))
            return problem(err, cap, "%s: %s: \"%s\" is not a worker name", cmd, name, v);
        f->worker = v;
        return 0;
    case OPT_TENANT:
        if (!dlq_is_uuid(v) && !valid_name(v, "-"))
            return problem(err, cap, "%s: %s: \"%s\" is neither a tenant id nor a slug", cmd, name,
                           v);
        f->tenant = v;
        return 0;
    case OPT_CLASS:
        if (imp_err_class_parse(v, &cls) != 0)
            return problem(err, cap, "%s: %s: \"%s\" is not one of infra, retriable, poison, fatal",
                           cmd, name, v);
        f->cls = v;
        return 0;
    case OPT_SINCE:
    case OPT_BEFORE:
        if (dlq_parse_time(v, now, id == OPT_SINCE ? &f->since_ms : &f->before_ms) != 0)
            return problem(err, cap,
                           "%s: %s: \"%s\" is not a time (RFC 3339 like 2026-05-01T03:00:00Z, a "
                           "date, or an age like 15m, 2h, 7d)",
                           cmd, name, v);
        return 0;
    case OPT_LIMIT:
        if (dlq_parse_id(v, &f->limit) != 0 || f->limit > 100000)
            return problem(err, cap, "%s: %s: \"%s\" is not a number from 1 to 100000", cmd, name,
                           v);
        return 0;
    default:
        return problem(err, cap, "%s: %s takes no value", cmd, name);
    }
}

static void set_flag(dlq_args_t *a, opt_id_t id)
{
    switch (id) {
    case OPT_ALL:
        a->filter.with_replayed = true;
        break;
    case OPT_REPLAYED_ONLY:
        a->filter.replayed_only = true;
        a->filter.with_replayed = true;
        break;
    case OPT_JSON:
        a->json = true;
        break;
    case OPT_YES:
        a->yes = true;
        break;
    case OPT_DRY_RUN:
        a->dry_run = true;
        break;
    case OPT_AGAIN:
        a->again = true;
        break;
    default:
        break;
    }
}

static int add_id(dlq_args_t *a, const char *text, char *err, size_t cap)
{
    long long id;
    if (dlq_parse_id(text, &id) != 0)
        return problem(err, cap, "%s: \"%s\" is not a dead letter id (a positive number)",
                       commands[a->cmd], text);
    for (size_t i = 0; i < a->nids; i++)
        if (a->ids[i] == id)
            return 0;
    a->ids = imp_realloc(a->ids, (a->nids + 1) * sizeof(*a->ids));
    a->ids[a->nids++] = id;
    return 0;
}

/* One "--name", "--name value" or "--name=value" at argv[*i]. */
static int parse_option(dlq_args_t *a, int argc, char **argv, int *i, int64_t now, char *err,
                        size_t cap)
{
    const char *arg = argv[*i];
    const char *eq = strchr(arg, '=');
    size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
    for (size_t k = 0; k < IMP_ARRAY_LEN(options); k++) {
        if (strlen(options[k].name) != nlen || strncmp(options[k].name, arg, nlen) != 0)
            continue;
        if (!(options[k].on & (1 << a->cmd)))
            return problem(err, cap, "%s: %s does not apply to this command", commands[a->cmd],
                           options[k].name);
        if (!options[k].value) {
            if (eq != NULL)
                return problem(err, cap, "%s: %s takes no value", commands[a->cmd],
                               options[k].name);
            set_flag(a, options[k].id);
            return 0;
        }
        const char *v = eq ? eq + 1 : (*i + 1 < argc ? argv[++*i] : NULL);
        if (v == NULL || *v == '\0')
            return problem(err, cap, "%s: %s needs a value", commands[a->cmd], options[k].name);
        return set_value(a, options[k].id, options[k].name, v, now, err, cap);
    }
    return problem(err, cap, "%s: unknown option %.*s", commands[a->cmd], (int)nlen, arg);
}

static bool has_filter(const dlq_filter_t *f)
{
    return f->worker || f->tenant || f->cls || f->since_ms || f->before_ms;
}

/* Rules that involve several arguments. */
static int check_combination(const dlq_args_t *a, char *err, size_t cap)
{
    const dlq_filter_t *f = &a->filter;
    switch (a->cmd) {
    case DLQ_CMD_SHOW:
        if (a->nids != 1)
            return problem(err, cap, "show: needs exactly one dead letter id");
        return 0;
    case DLQ_CMD_REPLAY:
        if (a->nids > 0 && has_filter(f))
            return problem(err, cap, "replay: give dead letter ids or filters, not both");
        if (a->nids == 0 && f->worker == NULL)
            return problem(err, cap,
                           "replay: give dead letter ids, or --worker W to replay "
                           "every unreplayed dead letter of a worker");
        if (a->nids == 0 && a->again)
            return problem(err, cap, "replay: --again needs explicit dead letter ids");
        return 0;
    default:
        return 0;
    }
}

int dlq_args_parse(int argc, char **argv, int64_t now_ms, dlq_args_t *out, char *err, size_t cap)
{
    memset(out, 0, sizeof(*out));
    out->filter.limit = 100;
    if (argc < 2)
        return problem(err, cap, "no command given");
    size_t c = 0;
    while (c < IMP_ARRAY_LEN(commands) && strcmp(argv[1], commands[c]) != 0)
        c++;
    if (c == IMP_ARRAY_LEN(commands))
        return problem(err, cap, "unknown command \"%s\"", argv[1]);
    out->cmd = (dlq_cmd_t)c;
    out->have_cmd = true;
    /* Purge and replay look at every row their filters match; list hides replayed ones. */
    out->filter.with_replayed = out->cmd == DLQ_CMD_PURGE;
    for (int i = 2; i < argc; i++) {
        int rc;
        if (strncmp(argv[i], "--", 2) == 0)
            rc = parse_option(out, argc, argv, &i, now_ms, err, cap);
        else if (out->cmd == DLQ_CMD_SHOW || out->cmd == DLQ_CMD_REPLAY)
            rc = add_id(out, argv[i], err, cap);
        else
            rc = problem(err, cap, "%s: unexpected argument \"%s\"", commands[c], argv[i]);
        if (rc != 0)
            return rc;
    }
    return check_combination(out, err, cap);
}

void dlq_args_dispose(dlq_args_t *a)
{
    free(a->ids);
    a->ids = NULL;
    a->nids = 0;
}
