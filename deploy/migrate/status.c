/* imperium-migrate status: applied, pending, changed and missing migrations. */
#include "migrate.h"

#include <string.h>

static void print_row(FILE *out, long version, const char *name, const char *state,
                      const char *when)
{
    fprintf(out, "%-8ld %-40s %-8s %s\n", version, name, state, when != NULL ? when : "");
}

/* One line per file; false when it is an error state (changed or out of order). */
static bool file_line(FILE *out, const migrate_file_t *f, const migrate_history_t *h, long newest)
{
    const migrate_applied_t *a = migrate_history_find(h, f->version);
    if (a == NULL) {
        bool late = f->version < newest;
        print_row(out, f->version, f->name, late ? "order" : "pending",
                  late ? "older than an applied migration" : NULL);
        return !late;
    }
    bool same = strcmp(a->checksum, f->checksum) == 0;
    print_row(out, f->version, f->name, same ? "applied" : "changed", a->applied_at);
    return same;
}

imp_error_t *migrate_status(imp_pg_t *pg, const migrate_set_t *set, FILE *out, bool *clean)
{
    migrate_history_t h;
    imp_error_t *err = migrate_history_load(pg, &h);
    if (err != NULL)
        return err;
    long newest = h.n > 0 ? h.rows[h.n - 1].version : -1;
    *clean = true;
    fprintf(out, "%-8s %-40s %-8s %s\n", "version", "name", "state", "applied_at");
    for (size_t i = 0; i < set->n; i++)
        *clean = file_line(out, &set->files[i], &h, newest) && *clean;
    for (size_t i = 0; i < h.n; i++)
        if (migrate_set_find(set, h.rows[i].version) == NULL)
            print_row(out, h.rows[i].version, h.rows[i].name, "missing", h.rows[i].applied_at);
    migrate_history_dispose(&h);
    return NULL;
}
