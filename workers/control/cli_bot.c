/* The client's bot commands: read and check the instruction and settings (a version that the
 * worker would refuse never leaves the machine), send the command to imp.commands.v1, wait
 * for its outcome and print it. docs/bot-versions.md. */
#include "bot.h"

#include "imp/kb.h"
#include "imp/mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BOT_FILE_MAX (256 * 1024)

static const control_bot_cmd_t bot_command_of[] = {
    [BOT_CLI_DRAFT] = CONTROL_BOT_DRAFT,
    [BOT_CLI_PUBLISH] = CONTROL_BOT_PUBLISH,
    [BOT_CLI_ROLLBACK] = CONTROL_BOT_ROLLBACK,
    [BOT_CLI_CHANNEL] = CONTROL_BOT_CHANNEL,
};

/* ---- option values ----------------------------------------------------------------------------
 */

/* The contents of path, at most BOT_FILE_MAX bytes; NULL after printing why not. */
static char *slurp(const char *option, const char *path, size_t *len)
{
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: %s: cannot read %s: %s\n", CONTROL_BINARY, option, path,
                strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > BOT_FILE_MAX) {
        fprintf(stderr, "%s: %s: %s is %lld bytes, more than %d\n", CONTROL_BINARY, option, path,
                (long long)st.st_size, BOT_FILE_MAX);
        fclose(f);
        return NULL;
    }
    char *buf = imp_malloc(BOT_FILE_MAX + 2);
    size_t n = fread(buf, 1, BOT_FILE_MAX + 1, f);
    bool failed = ferror(f);
    fclose(f);
    if (failed || n > BOT_FILE_MAX) {
        fprintf(stderr, "%s: %s: cannot read %s%s\n", CONTROL_BINARY, option, path,
                failed ? "" : ": it is too large");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* The text of an option: the value itself, or the contents of @FILE with its trailing line
 * breaks dropped. A new heap string, or NULL after printing why not. */
static char *option_value(const char *option, const char *v, size_t *len)
{
    if (v[0] != '@') {
        *len = strlen(v);
        return imp_strdup(v);
    }
    char *text = slurp(option, v + 1, len);
    while (text != NULL && *len > 0 && (text[*len - 1] == '\n' || text[*len - 1] == '\r'))
        text[--*len] = '\0';
    return text;
}

static int instruction_data(const bot_args_t *a, json_t *d)
{
    size_t len = 0, bad = 0;
    if (a->instruction == NULL)
        return 0;
    if (a->instruction[0] == '\0') {
        json_object_set_new(d, "instruction", json_null());
        return 0;
    }
    char *text = option_value("--instruction", a->instruction, &len);
    if (text == NULL)
        return -1;
    int rc = -1;
    if (memchr(text, '\0', len) != NULL || !imp_kb_utf8_valid(text, len, &bad))
        fprintf(stderr, "%s: --instruction is not UTF-8 text (byte %zu)\n", CONTROL_BINARY, bad);
    else if (imp_kb_utf8_count(text, len) > CONTROL_BOT_INSTRUCTION_MAX_CHARS)
        fprintf(stderr, "%s: --instruction is %zu characters; an instruction holds at most %d\n",
                CONTROL_BINARY, imp_kb_utf8_count(text, len), CONTROL_BOT_INSTRUCTION_MAX_CHARS);
    else if (!control_bot_instruction_valid(text, len))
        fprintf(stderr,
                "%s: --instruction is blank or holds control characters (line breaks and tabs "
                "are fine)\n",
                CONTROL_BINARY);
    else
        rc = 0;
    if (rc == 0)
        json_object_set_new(d, "instruction", json_stringn(text, len));
    free(text);
    return rc;
}

static int settings_data(const bot_args_t *a, json_t *d)
{
    size_t len = 0;
    if (a->settings == NULL)
        return 0;
    char *text = option_value("--settings", a->settings, &len);
    if (text == NULL)
        return -1;
    json_error_t jerr;
    json_t *settings = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (settings == NULL) {
        fprintf(stderr, "%s: --settings is not JSON: %s (line %d, column %d)\n", CONTROL_BINARY,
                jerr.text, jerr.line, jerr.column);
        return -1;
    }
    imp_error_t *err = control_bot_settings_check(settings, "settings");
    if (err != NULL) {
        cli_report("invalid --settings", err);
        imp_error_free(err);
        json_decref(settings);
        return -1;
    }
    json_object_set_new(d, "settings", settings);
    return 0;
}

/* The command's data (*out: new reference), checked by the rules the worker applies; -1 after
 * printing why not. */
static int command_data(void *args, const cli_settings_t *s, json_t **out)
{
    const bot_args_t *a = args;
    json_t *d = json_pack("{s:s, s:s}", "slug", a->slug, "actor", s->actor);
    int rc = 0;
    switch (a->cmd) {
    case BOT_CLI_DRAFT:
        rc = instruction_data(a, d);
        if (rc == 0)
            rc = settings_data(a, d);
        if (a->kb_version > 0)
            json_object_set_new(d, "kb_version", json_integer(a->kb_version));
        if (a->if_changed)
            json_object_set_new(d, "if_changed", json_true());
        break;
    case BOT_CLI_PUBLISH:
        json_object_set_new(d, "version", json_integer(a->version));
        json_object_set_new(d, "channel", json_string(a->channel));
        break;
    case BOT_CLI_CHANNEL:
        json_object_set_new(d, "channel", json_string(a->channel));
        break;
    default:
        break;
    }
    control_bot_data_t parsed;
    imp_error_t *err = rc == 0 ? control_bot_data_parse(bot_command_of[a->cmd], d, &parsed) : NULL;
    if (err != NULL) {
        cli_report("invalid command", err);
        imp_error_free(err);
        rc = -1;
    }
    if (rc != 0) {
        json_decref(d);
        return -1;
    }
    *out = d;
    return 0;
}

/* ---- sending ----------------------------------------------------------------------------------
 */

static void print_result(const json_t *result, const char *status, void *arg)
{
    const bot_args_t *a = arg;
    const json_t *version = json_object_get(result, "version");
    if (a->cmd == BOT_CLI_DRAFT && strcmp(status, "succeeded") == 0 && json_is_integer(version))
        printf("version %lld\n", (long long)json_integer_value(version));
}

static int wait_outcome(imp_pg_t *pg, const cli_settings_t *s, const char *tenant_id,
                        const char *opid, void *arg)
{
    const bot_args_t *a = arg;
    cli_wait_opts_t o = {.print = print_result, .arg = arg};
    return cli_wait_opts(pg, s, tenant_id, opid, a->timeout_ms, &o);
}

static int versions(imp_pg_t *pg, const cli_settings_t *s, void *args)
{
    (void)s;
    const bot_args_t *a = args;
    return cli_bot_versions(pg, a->slug, a->json);
}

int control_cli_bot(int argc, char **argv)
{
    bot_args_t a;
    char problem[512];
    if (cli_bot_args_parse(argc, argv, &a, problem, sizeof(problem)) != 0) {
        fprintf(stderr, "%s: %s\n", CONTROL_BINARY, problem);
        cli_bot_print_usage(stderr);
        return CONTROL_EXIT_USAGE;
    }
    bool reads = a.cmd == BOT_CLI_VERSIONS;
    cli_command_t c = {.reads = reads,
                       .read = versions,
                       .prepare = reads ? NULL : command_data,
                       .sub = {
                           .slug = a.slug,
                           .type = reads ? NULL : control_bot_cmd_type(bot_command_of[a.cmd]),
                           .operation_id = a.operation_id,
                           .no_wait = a.no_wait,
                           .timeout_ms = a.timeout_ms,
                           .wait = wait_outcome,
                           .arg = &a,
                       }};
    return cli_run(&c, &a);
}
