/* The topics manifest (deploy/topics.conf): parse and validate. */
#include "imp/topics.h"

#include "imp/mem.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS 4
#define MAX_PARTITIONS 10000

int imp_topics_parse_retention(const char *text, int64_t *out_ms)
{
    static const struct {
        const char *suffix;
        int64_t mult;
    } units[] = {{"ms", 1},      {"s", 1000},     {"m", 60000},
                 {"h", 3600000}, {"d", 86400000}, {"w", 604800000}};
    if (strcmp(text, "-1") == 0) {
        *out_ms = -1;
        return 0;
    }
    if (!isdigit((unsigned char)*text))
        return -1;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (errno != 0)
        return -1;
    for (size_t i = 0; i < IMP_ARRAY_LEN(units); i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            if (v > INT64_MAX / units[i].mult)
                return -1;
            *out_ms = (int64_t)v * units[i].mult;
            return 0;
        }
    }
    return -1;
}

static int valid_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > 249 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return 0;
    for (const char *s = name; *s; s++) {
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
            return 0;
    }
    return 1;
}

static int valid_policy(const char *p)
{
    return strcmp(p, "delete") == 0 || strcmp(p, "compact") == 0 ||
           strcmp(p, "compact,delete") == 0 || strcmp(p, "delete,compact") == 0;
}

/* Split a line (comment already cut) into blank-separated fields, in place; returns how
 * many there are (only the first MAX_FIELDS are kept). */
static int split_fields(char *line, char **fields)
{
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, " \t\r", &save); tok != NULL;
         tok = strtok_r(NULL, " \t\r", &save)) {
        if (n < MAX_FIELDS)
            fields[n] = tok;
        n++;
    }
    return n;
}

static imp_error_t *line_error(const char *origin, int line, const char *what, const char *value)
{
    return imp_error_new(IMP_ERR_FATAL, "topics_manifest", "%s:%d: %s \"%s\"", origin, line, what,
                         value);
}

/* Validate the fields of one line into spec (which owns nothing until success). */
static imp_error_t *parse_fields(char **f, int nf, const char *origin, int line,
                                 imp_topic_spec_t *spec)
{
    if (nf != MAX_FIELDS)
        return imp_error_new(IMP_ERR_FATAL, "topics_manifest",
                             "%s:%d: expected 4 fields (name partitions retention "
                             "cleanup.policy), got %d",
                             origin, line, nf);
    if (!valid_name(f[0]))
        return line_error(origin, line, "invalid topic name", f[0]);
    char *end = NULL;
    errno = 0;
    long parts = strtol(f[1], &end, 10);
    if (errno != 0 || *end != '\0' || parts < 1 || parts > MAX_PARTITIONS)
        return line_error(origin, line, "invalid partition count", f[1]);
    int64_t retention = 0;
    if (imp_topics_parse_retention(f[2], &retention) != 0)
        return line_error(origin, line, "invalid retention", f[2]);
    if (!valid_policy(f[3]))
        return line_error(origin, line, "invalid cleanup.policy", f[3]);
    spec->name = imp_strdup(f[0]);
    spec->partitions = (int32_t)parts;
    spec->retention_ms = retention;
    spec->cleanup_policy = imp_strdup(f[3]);
    spec->line = line;
    return NULL;
}

static imp_error_t *parse_line(imp_topics_t *t, char *text, const char *origin, int line)
{
    char *hash = strchr(text, '#');
    if (hash != NULL)
        *hash = '\0';
    char *f[MAX_FIELDS];
    int nf = split_fields(text, f);
    if (nf == 0)
        return NULL;
    imp_topic_spec_t spec = {0};
    imp_error_t *err = parse_fields(f, nf, origin, line, &spec);
    if (err != NULL)
        return err;
    const imp_topic_spec_t *dup = imp_topics_find(t, spec.name);
    if (dup != NULL) {
        err = imp_error_new(IMP_ERR_FATAL, "topics_manifest",
                            "%s:%d: topic \"%s\" already declared on line %d", origin, line,
                            spec.name, dup->line);
        free(spec.name);
        free(spec.cleanup_policy);
        return err;
    }
    t->topics = imp_realloc(t->topics, (t->count + 1) * sizeof(*t->topics));
    t->topics[t->count++] = spec;
    return NULL;
}

imp_error_t *imp_topics_parse(const char *text, const char *origin, imp_topics_t **out)
{
    *out = NULL;
    imp_topics_t *t = imp_calloc(1, sizeof(*t));
    char *copy = imp_strdup(text);
    imp_error_t *err = NULL;
    int line = 1;
    for (char *s = copy; s != NULL && err == NULL; line++) {
        char *nl = strchr(s, '\n');
        if (nl != NULL)
            *nl = '\0';
        err = parse_line(t, s, origin ? origin : "topics", line);
        s = nl ? nl + 1 : NULL;
    }
    free(copy);
    if (err != NULL) {
        imp_topics_free(t);
        return err;
    }
    *out = t;
    return NULL;
}

static char *read_file(const char *path, imp_error_t **err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        *err = imp_error_new(IMP_ERR_FATAL, "topics_manifest", "cannot read %s: %s", path,
                             strerror(errno));
        return NULL;
    }
    size_t len = 0, cap = 4096;
    char *buf = imp_malloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len - 1 == 0)
            buf = imp_realloc(buf, cap *= 2);
    }
    int failed = ferror(f);
    fclose(f);
    buf[len] = '\0';
    if (failed || memchr(buf, '\0', len) != NULL) {
        free(buf);
        *err = imp_error_new(IMP_ERR_FATAL, "topics_manifest", "cannot read %s", path);
        return NULL;
    }
    return buf;
}

imp_error_t *imp_topics_load(const char *path, imp_topics_t **out)
{
    *out = NULL;
    imp_error_t *err = NULL;
    char *text = read_file(path, &err);
    if (text == NULL)
        return err;
    err = imp_topics_parse(text, path, out);
    free(text);
    return err;
}

void imp_topics_free(imp_topics_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->count; i++) {
        free(t->topics[i].name);
        free(t->topics[i].cleanup_policy);
    }
    free(t->topics);
    free(t);
}

const imp_topic_spec_t *imp_topics_find(const imp_topics_t *t, const char *name)
{
    for (size_t i = 0; i < t->count; i++) {
        if (strcmp(t->topics[i].name, name) == 0)
            return &t->topics[i];
    }
    return NULL;
}
