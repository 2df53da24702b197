/* What the command groups' argument parsers (cli_args.c, cli_bot_args.c, cli_kb_args.c)
 * share: the option lookup, the problem line, whole numbers, and the options every command
 * that sends takes (--operation-id, --timeout). */
#include "control.h"

#include "imp/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLI_TIMEOUT_MIN_MS 100
#define CLI_TIMEOUT_MAX_MS (3600LL * 1000)

int cli_problem(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -1;
}

int cli_whole_number(const char *text, long long lo, long long hi, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '+' || text[0] == '-' || n < lo ||
        n > hi)
        return -1;
    *out = n;
    return 0;
}

const cli_option_t *cli_option_take(const cli_option_t *opts, size_t n, int cmd,
                                    const char *command, int argc, char **argv, int *i,
                                    const char **value, char *err, size_t cap)
{
    const char *word = argv[*i], *eq = strchr(word, '=');
    size_t len = eq ? (size_t)(eq - word) : strlen(word);
    *value = NULL;
    for (size_t k = 0; k < n; k++) {
        const cli_option_t *o = &opts[k];
        if (strlen(o->name) != len || strncmp(o->name, word, len) != 0)
            continue;
        if (!(o->on & (1 << cmd))) {
            cli_problem(err, cap, "%s does not apply to %s", o->name, command);
        } else if (o->value && eq == NULL && *i + 1 >= argc) {
            cli_problem(err, cap, "%s needs a value", o->name);
        } else if (!o->value && eq != NULL) {
            cli_problem(err, cap, "%s takes no value", o->name);
        } else {
            if (o->value)
                *value = eq != NULL ? eq + 1 : argv[++*i];
            return o;
        }
        return NULL;
    }
    cli_problem(err, cap, "unknown option %.*s", (int)len, word);
    return NULL;
}

int cli_operation_id_option(const char *v, const char **out, char *err, size_t cap)
{
    if (!control_uuid_valid(v))
        return cli_problem(err, cap, "--operation-id wants a lowercase UUID");
    *out = v;
    return 0;
}

int cli_timeout_option(const char *v, long long *out_ms, char *err, size_t cap)
{
    long long ms = 0;
    if (imp_config_parse_duration_ms(v, &ms) != 0 || ms < CLI_TIMEOUT_MIN_MS ||
        ms > CLI_TIMEOUT_MAX_MS)
        return cli_problem(err, cap, "--timeout wants a duration from 100ms to 1h (30s, 5m)");
    *out_ms = ms;
    return 0;
}
