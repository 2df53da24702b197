/* Table-driven IMP_* configuration: parse, validate, --help. */
#include "imp/config.h"

#include "imp/mem.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const type_names[] = {
    [IMP_CFG_STRING] = "string",     [IMP_CFG_INT] = "integer", [IMP_CFG_BOOL] = "bool",
    [IMP_CFG_DURATION] = "duration", [IMP_CFG_SIZE] = "size",   [IMP_CFG_DOUBLE] = "number",
};

/* A number followed by an optional unit from units[]; out = number * multiplier. */
typedef struct {
    const char *suffix;
    long long mult;
} unit_t;

static int parse_with_units(const char *text, const unit_t *units, size_t nunits, long long *out)
{
    if (text == NULL || *text == '\0')
        return -1;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || v < 0)
        return -1;
    if (*end == '\0') {
        *out = v;
        return 0;
    }
    for (size_t i = 0; i < nunits; i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            if (v > LLONG_MAX / units[i].mult)
                return -1;
            *out = v * units[i].mult;
            return 0;
        }
    }
    return -1;
}

int imp_config_parse_duration_ms(const char *text, long long *out)
{
    static const unit_t units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    return parse_with_units(text, units, IMP_ARRAY_LEN(units), out);
}

int imp_config_parse_size(const char *text, long long *out)
{
    static const unit_t units[] = {{"B", 1},           {"KiB", 1LL << 10}, {"MiB", 1LL << 20},
                                   {"GiB", 1LL << 30}, {"k", 1000},        {"K", 1LL << 10},
                                   {"M", 1LL << 20},   {"G", 1LL << 30}};
    return parse_with_units(text, units, IMP_ARRAY_LEN(units), out);
}

int imp_config_parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < IMP_ARRAY_LEN(yes); i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

static bool bounded(const imp_config_entry_t *e)
{
    return !(e->min == 0 && e->max == 0);
}

static imp_error_t *out_of_bounds(const imp_config_entry_t *e)
{
    return imp_error_new(IMP_ERR_FATAL, "config", "%s must be between %.15g and %.15g", e->name,
                         e->min, e->max);
}

/* The value as it may be echoed in the one-line error: control characters and non-ASCII
 * bytes become '?', and long values are cut, so the message stays one readable line. */
static char *printable(const char *text)
{
    enum { MAX_ECHO = 64 };
    size_t n = strlen(text);
    size_t keep = n > MAX_ECHO ? MAX_ECHO : n;
    char *out = imp_malloc(keep + 4);
    for (size_t i = 0; i < keep; i++) {
        unsigned char c = (unsigned char)text[i];
        out[i] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
    }
    strcpy(out + keep, n > keep ? "..." : "");
    return out;
}

static imp_error_t *malformed(const imp_config_entry_t *e, const char *text)
{
    if (e->flags & IMP_CFG_SECRET)
        return imp_error_new(IMP_ERR_FATAL, "config", "%s is not a valid %s", e->name,
                             type_names[e->type]);
    char *shown = printable(text);
    imp_error_t *err = imp_error_new(IMP_ERR_FATAL, "config", "%s is not a valid %s: \"%s\"",
                                     e->name, type_names[e->type], shown);
    free(shown);
    return err;
}

static imp_error_t *parse_entry(const imp_config_entry_t *e, const char *text, void *settings)
{
    char *slot = (char *)settings + e->offset;
    long long ll = 0;
    double d = 0;
    bool b = false;
    char *end = NULL;

    switch (e->type) {
    case IMP_CFG_STRING:
        *(char **)slot = imp_strdup(text);
        return NULL;
    case IMP_CFG_INT:
        errno = 0;
        ll = strtoll(text, &end, 10);
        if (errno != 0 || end == text || *end != '\0')
            return malformed(e, text);
        if (bounded(e) && (ll < e->min || ll > e->max))
            return out_of_bounds(e);
        *(long long *)slot = ll;
        return NULL;
    case IMP_CFG_DURATION:
    case IMP_CFG_SIZE:
        if ((e->type == IMP_CFG_DURATION ? imp_config_parse_duration_ms(text, &ll)
                                         : imp_config_parse_size(text, &ll)) != 0)
            return malformed(e, text);
        if (bounded(e) && (ll < e->min || ll > e->max))
            return out_of_bounds(e);
        *(long long *)slot = ll;
        return NULL;
    case IMP_CFG_BOOL:
        if (imp_config_parse_bool(text, &b) != 0)
            return malformed(e, text);
        *(bool *)slot = b;
        return NULL;
    case IMP_CFG_DOUBLE:
        errno = 0;
        d = strtod(text, &end);
        if (errno != 0 || end == text || *end != '\0' || !isfinite(d))
            return malformed(e, text);
        if (bounded(e) && (d < e->min || d > e->max))
            return out_of_bounds(e);
        *(double *)slot = d;
        return NULL;
    }
    return imp_error_new(IMP_ERR_FATAL, "config", "%s has an unknown type", e->name);
}

/* String slots start NULL, so imp_config_dispose is safe whichever entry load stops at. */
static void clear_strings(const imp_config_entry_t *table, size_t n, void *settings)
{
    for (size_t i = 0; i < n; i++) {
        if (table[i].type == IMP_CFG_STRING)
            *(char **)((char *)settings + table[i].offset) = NULL;
    }
}

imp_error_t *imp_config_load(const imp_config_entry_t *table, size_t n, void *settings)
{
    clear_strings(table, n, settings);
    for (size_t i = 0; i < n; i++) {
        const imp_config_entry_t *e = &table[i];
        const char *text = getenv(e->name);
        if (text == NULL)
            text = e->def;
        if (text == NULL)
            return imp_error_new(IMP_ERR_FATAL, "config", "%s is required but not set", e->name);
        /* "X=" (a compose file substituting an unset variable) is not a value for a required
         * variable. */
        if (*text == '\0' && e->def == NULL)
            return imp_error_new(IMP_ERR_FATAL, "config", "%s is required but empty", e->name);
        imp_error_t *err = parse_entry(e, text, settings);
        if (err != NULL)
            return err;
    }
    return NULL;
}

void imp_config_dispose(const imp_config_entry_t *table, size_t n, void *settings)
{
    for (size_t i = 0; i < n; i++) {
        if (table[i].type != IMP_CFG_STRING)
            continue;
        char **slot = (char **)((char *)settings + table[i].offset);
        free(*slot);
        *slot = NULL;
    }
}

void imp_config_print_help(FILE *out, const char *binary, const char *summary,
                           const imp_config_entry_t *table, size_t n)
{
    fprintf(out, "usage: %s [--help]\n\n%s\n\nEnvironment:\n", binary, summary);
    for (size_t i = 0; i < n; i++) {
        const imp_config_entry_t *e = &table[i];
        fprintf(out, "  %s (%s", e->name, type_names[e->type]);
        if (bounded(e))
            fprintf(out, ", %.15g..%.15g", e->min, e->max);
        if (e->def == NULL)
            fprintf(out, ", required");
        else if (e->flags & IMP_CFG_SECRET)
            fprintf(out, ", secret");
        else
            fprintf(out, ", default \"%s\"", e->def);
        fprintf(out, ")\n      %s\n", e->description);
    }
}

void imp_config_init_or_exit(int argc, char **argv, const char *binary, const char *summary,
                             const imp_config_entry_t *table, size_t n, void *settings)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            imp_config_print_help(stdout, binary, summary, table, n);
            exit(0);
        }
    }
    imp_error_t *err = imp_config_load(table, n, settings);
    if (err != NULL) {
        fprintf(stderr, "%s: %s\n", binary, imp_error_message(err));
        imp_error_free(err);
        imp_config_dispose(table, n, settings);
        exit(2);
    }
}
