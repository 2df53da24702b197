/* The client's knowledge-base commands: read and check the local files (a source that is too
 * large or does not parse never leaves the machine), send the command to imp.commands.v1,
 * wait for its outcome — written by imperium-control, or by imperium-indexer for the
 * commands forwarded to it — and print it. docs/knowledge-base-operations.md. */
#include "cli_kb.h"

#include "imp/mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define QUESTIONS_FILE_MAX (4 * 1024 * 1024)

static const control_kb_cmd_t command_of[] = {
    [KB_CLI_SOURCE_PUT] = CONTROL_KB_SOURCE_PUT,
    [KB_CLI_SOURCE_RM] = CONTROL_KB_SOURCE_REMOVE,
    [KB_CLI_QUESTIONS_SET] = CONTROL_KB_QUESTIONS_SET,
    [KB_CLI_SETTINGS] = CONTROL_KB_SETTINGS,
    [KB_CLI_BUILD] = CONTROL_KB_BUILD,
    [KB_CLI_PROMOTE] = CONTROL_KB_PROMOTE,
    [KB_CLI_ROLLBACK] = CONTROL_KB_ROLLBACK,
    [KB_CLI_EVAL] = CONTROL_KB_EVAL,
};

/* ---- local files ------------------------------------------------------------------------- */

/* The whole file, at most max bytes. NULL when it is larger (*size: its size, or 0 when
 * only reading it showed that) or cannot be read (*size -1, errno set). */
static char *read_file(const char *path, size_t max, size_t *len, long long *size)
{
    struct stat st;
    *size = -1;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size > max) {
        *size = (long long)st.st_size;
        fclose(f);
        return NULL;
    }
    char *buf = imp_malloc(max + 2);
    size_t n = fread(buf, 1, max + 1, f);
    bool failed = ferror(f);
    fclose(f);
    if (failed || n > max) {
        *size = failed ? -1 : 0;
        errno = failed ? EIO : 0;
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void file_problem(const char *path, long long size, size_t max, const char *what)
{
    if (size > 0)
        fprintf(stderr, "%s: %s is %lld bytes; %s holds at most %zu bytes (%zu KiB): split it\n",
                CONTROL_BINARY, path, size, what, max, max / 1024);
    else if (size == 0)
        fprintf(stderr,
                "%s: %s is more than %zu bytes (%zu KiB), what %s holds at most: split it\n",
                CONTROL_BINARY, path, max, max / 1024, what);
    else
        fprintf(stderr, "%s: cannot read %s: %s\n", CONTROL_BINARY, path, strerror(errno));
}

/* Check a source the way the worker will: UTF-8 without NUL, and chunkable in its format. */
static int check_source(const kb_args_t *a, const char *text, size_t len)
{
    size_t bad = 0;
    if (!imp_kb_utf8_valid(text, len, &bad)) {
        fprintf(stderr, "%s: %s is not UTF-8 text (byte %zu)\n", CONTROL_BINARY, a->file, bad);
        return -1;
    }
    imp_kb_format_t format;
    imp_kb_format_parse(a->format, &format);
    imp_kb_chunks_t chunks = {0};
    imp_kb_chunk_settings_t set = IMP_KB_CHUNK_DEFAULTS;
    imp_error_t *err = imp_kb_chunk(format, text, len, &set, &chunks);
    imp_kb_chunks_dispose(&chunks);
    if (err != NULL) {
        fprintf(stderr, "%s: %s is not valid %s: %s\n", CONTROL_BINARY, a->file, a->format,
                imp_error_message(err));
        imp_error_free(err);
        return -1;
    }
    return 0;
}

static int source_data(const kb_args_t *a, json_t *d)
{
    size_t len = 0;
    long long size = -1;
    char *text = read_file(a->file, IMP_KB_SOURCE_MAX, &len, &size);
    if (text == NULL) {
        file_problem(a->file, size, IMP_KB_SOURCE_MAX, "a source");
        return -1;
    }
    int rc = check_source(a, text, len);
    if (rc == 0)
        json_object_set_new(d, "content", json_stringn(text, len));
    json_object_set_new(d, "name", json_string(a->name));
    json_object_set_new(d, "format", json_string(a->format));
    free(text);
    return rc;
}

static int questions_data(const kb_args_t *a, json_t *d)
{
    size_t len = 0;
    long long size = -1;
    char *text = read_file(a->file, QUESTIONS_FILE_MAX, &len, &size);
    if (text == NULL) {
        file_problem(a->file, size, QUESTIONS_FILE_MAX, "a questions file");
        return -1;
    }
    json_error_t jerr;
    json_t *qs = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!json_is_array(qs)) {
        fprintf(stderr, "%s: %s is not a JSON array of questions%s%s (line %d)\n", CONTROL_BINARY,
                a->file, qs == NULL ? ": " : "", qs == NULL ? jerr.text : "", jerr.line);
        json_decref(qs);
        return -1;
    }
    json_object_set_new(d, "questions", qs);
    return 0;
}

static void settings_data(const kb_args_t *a, json_t *d)
{
    if (a->min_hit_rate != NULL)
        json_object_set_new(d, "min_hit_rate",
                            a->min_hit_rate[0] ? json_real(strtod(a->min_hit_rate, NULL))
                                               : json_null());
    if (a->eval_k != NULL)
        json_object_set_new(
            d, "eval_k", a->eval_k[0] ? json_integer(strtoll(a->eval_k, NULL, 10)) : json_null());
    if (a->chunk_defaults)
        json_object_set_new(d, "chunk", json_null());
    if (a->chunk_given) {
        static const char *const names[] = {"target_chars", "max_chars", "overlap_chars"};
        json_t *chunk = json_object();
        for (int i = 0; i < 3; i++)
            if (a->chunk[i] >= 0)
                json_object_set_new(chunk, names[i], json_integer(a->chunk[i]));
        json_object_set_new(d, "chunk", chunk);
    }
}

/* The command's data (*out: new reference), read from the files and checked by the rules
 * the worker applies; -1 after printing why not. */
static int command_data(void *args, const cli_settings_t *s, json_t **out)
{
    const kb_args_t *a = args;
    json_t *d = json_pack("{s:s, s:s}", "slug", a->slug, "actor", s->actor);
    int rc = 0;
    switch (a->cmd) {
    case KB_CLI_SOURCE_PUT:
        rc = source_data(a, d);
        break;
    case KB_CLI_SOURCE_RM:
        json_object_set_new(d, "name", json_string(a->name));
        break;
    case KB_CLI_QUESTIONS_SET:
        rc = questions_data(a, d);
        break;
    case KB_CLI_SETTINGS:
        settings_data(a, d);
        break;
    case KB_CLI_BUILD:
        if (a->if_changed)
            json_object_set_new(d, "if_changed", json_true());
        break;
    case KB_CLI_EVAL:
        if (a->k > 0)
            json_object_set_new(d, "k", json_integer(a->k));
        /* fall through */
    case KB_CLI_PROMOTE:
        json_object_set_new(d, "version", json_integer(a->version));
        break;
    default:
        break;
    }
    control_kb_data_t parsed;
    imp_error_t *err = rc == 0 ? control_kb_data_parse(command_of[a->cmd], d, &parsed) : NULL;
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

/* ---- printing outcomes --------------------------------------------------------------------- */

static void print_eval(const json_t *ev)
{
    json_int_t n = json_integer_value(json_object_get(ev, "questions"));
    json_int_t k = json_integer_value(json_object_get(ev, "k"));
    printf("hit@1 %lld/%lld %.3f\n", (long long)json_integer_value(json_object_get(ev, "hit1")),
           (long long)n, json_number_value(json_object_get(ev, "hit_at_1")));
    printf("hit@%lld %lld/%lld %.3f\n", (long long)k,
           (long long)json_integer_value(json_object_get(ev, "hitk")), (long long)n,
           json_number_value(json_object_get(ev, "hit_at_k")));
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(ev, "missed"), i, m)
    {
        const char *source = json_string_value(json_object_get(m, "source"));
        const char *fragment = json_string_value(json_object_get(m, "fragment"));
        json_int_t rank = json_integer_value(json_object_get(m, "rank"));
        printf("missed: %s (expected%s%s%s%s%s; ",
               json_string_value(json_object_get(m, "question")), source ? " " : "",
               source ? source : "", fragment ? " \"" : "", fragment ? fragment : "",
               fragment ? "\"" : "");
        if (rank > 0)
            printf("found at rank %lld)\n", (long long)rank);
        else
            printf("not found)\n");
    }
}

static void print_result(const json_t *result, const char *status, void *arg)
{
    const kb_args_t *a = arg;
    (void)status;
    if (result == NULL)
        return;
    const json_t *version = json_object_get(result, "version");
    if (a->cmd == KB_CLI_BUILD && json_is_integer(version))
        printf("version %lld\n", (long long)json_integer_value(version));
    const json_t *ev = json_object_get(result, "eval");
    if (json_is_object(ev) && (a->cmd == KB_CLI_EVAL || a->cmd == KB_CLI_PROMOTE))
        print_eval(ev);
}

/* ---- sending -------------------------------------------------------------------------------- */

static int wait_for(imp_pg_t *pg, const cli_settings_t *s, const char *tenant_id, const char *opid,
                    void *arg)
{
    const kb_args_t *a = arg;
    control_kb_cmd_t cmd = command_of[a->cmd];
    char fwd[IMP_UUID_STR_SIZE];
    cli_wait_opts_t o = {.print = print_result, .arg = arg};
    if (control_kb_forward_step(cmd) != NULL &&
        imp_opid_derive(opid, control_kb_forward_step(cmd), fwd) == NULL) {
        o.worker = CONTROL_INDEXER_WORKER;
        o.operation_id = fwd;
        o.finisher = "imperium-indexer";
    }
    return cli_wait_opts(pg, s, tenant_id, opid, a->timeout_ms, &o);
}

static int versions(imp_pg_t *pg, const cli_settings_t *s, void *args)
{
    (void)s;
    const kb_args_t *a = args;
    return cli_kb_versions(pg, a->slug, a->json);
}

int control_cli_kb(int argc, char **argv)
{
    kb_args_t a;
    char problem[512];
    if (cli_kb_args_parse(argc, argv, &a, problem, sizeof(problem)) != 0) {
        fprintf(stderr, "%s: %s\n", CONTROL_BINARY, problem);
        cli_kb_print_usage(stderr);
        return CONTROL_EXIT_USAGE;
    }
    bool reads = a.cmd == KB_CLI_VERSIONS;
    cli_command_t c = {.reads = reads,
                       .read = versions,
                       .prepare = reads ? NULL : command_data,
                       .sub = {.slug = a.slug,
                               .type = reads ? NULL : control_kb_cmd_type(command_of[a.cmd]),
                               .operation_id = a.operation_id,
                               .no_wait = a.no_wait,
                               .timeout_ms = a.timeout_ms,
                               .wait = wait_for,
                               .arg = &a,
                               .too_large_hint = ": split the source into several"}};
    return cli_run(&c, &a);
}
