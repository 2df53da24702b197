/* The `imperium-control kb …` client's own interfaces: its arguments (cli_kb_args.c) and
 * `kb versions` (cli_kb_show.c). */
#ifndef CLI_KB_H
#define CLI_KB_H

#include "control.h"

#include "imp/kb.h"

typedef enum {
    KB_CLI_SOURCE_PUT,
    KB_CLI_SOURCE_RM,
    KB_CLI_QUESTIONS_SET,
    KB_CLI_SETTINGS,
    KB_CLI_BUILD,
    KB_CLI_PROMOTE,
    KB_CLI_ROLLBACK,
    KB_CLI_EVAL,
    KB_CLI_VERSIONS,
} kb_cli_cmd_t;

/* Parsed arguments; strings are borrowed from argv. */
typedef struct {
    kb_cli_cmd_t cmd;
    int operands;
    const char *slug;
    const char *name;         /* source put, rm */
    const char *format;       /* source put: given, or implied by the file's extension */
    const char *file;         /* source put, questions set */
    long long version;        /* promote, eval */
    long long k;              /* eval: 0 = the tenant's kb_eval_k */
    bool if_changed;          /* build */
    const char *min_hit_rate; /* settings: NULL not given, "" remove */
    const char *eval_k;
    long long chunk[3]; /* settings: target, max, overlap; -1 not given */
    bool chunk_given, chunk_defaults;
    const char *operation_id;
    bool no_wait;
    long long timeout_ms;
    bool json;
} kb_args_t;

/* Parse argv[1..argc) (argv[1] is "kb"). 0, or -1 with a one-line problem in err. */
int cli_kb_args_parse(int argc, char **argv, kb_args_t *out, char *err, size_t cap);

/* `kb versions`: the tenant's versions as Postgres has them. */
int cli_kb_versions(imp_pg_t *pg, const char *slug, bool json);

#endif
