/* Migration files on disk: NNNN_name.sql, read whole, checksummed, sorted by version. */
#include "migrate.h"

#include "imp/crypto.h"
#include "imp/mem.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* NNNN_name.sql: digits, '_', then [a-z0-9_]+. */
static bool parse_name(const char *name, long *version)
{
    const char *p = name;
    while (isdigit((unsigned char)*p))
        p++;
    if (p - name < 4 || p - name > 9 || *p != '_')
        return false;
    const char *rest = p + 1, *dot = strrchr(name, '.');
    if (dot == rest)
        return false;
    for (const char *q = rest; q < dot; q++)
        if (!islower((unsigned char)*q) && !isdigit((unsigned char)*q) && *q != '_')
            return false;
    *version = strtol(name, NULL, 10);
    return true;
}

static imp_error_t *read_file(const char *path, char **out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return imp_error_new(IMP_ERR_FATAL, "migrate_read", "cannot read %s: %s", path,
                             strerror(errno));
    size_t cap = 8192, n = 0;
    char *buf = imp_malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0)
            buf = imp_realloc(buf, cap *= 2);
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    buf[n] = '\0';
    if (failed || strlen(buf) != n) {
        free(buf);
        return imp_error_new(IMP_ERR_FATAL, "migrate_read", "cannot read %s: %s", path,
                             failed ? "read error" : "file contains a NUL byte");
    }
    *out = buf;
    return NULL;
}

static imp_error_t *load_one(const char *dir, const char *name, long version, migrate_file_t *f)
{
    char *path = imp_asprintf("%s/%s", dir, name);
    imp_error_t *err = read_file(path, &f->sql);
    free(path);
    if (err != NULL)
        return err;
    f->version = version;
    f->name = imp_strdup(name);
    uint8_t digest[IMP_SHA256_LEN];
    imp_sha256(f->sql, strlen(f->sql), digest);
    imp_hex_encode(digest, sizeof(digest), f->checksum);
    return NULL;
}

static int by_version(const void *a, const void *b)
{
    long va = ((const migrate_file_t *)a)->version, vb = ((const migrate_file_t *)b)->version;
    return va < vb ? -1 : va > vb;
}

static imp_error_t *check_unique(const migrate_set_t *set)
{
    for (size_t i = 1; i < set->n; i++)
        if (set->files[i].version == set->files[i - 1].version)
            return imp_error_new(IMP_ERR_FATAL, "migrate_files",
                                 "migrations %s and %s have the same version",
                                 set->files[i - 1].name, set->files[i].name);
    return NULL;
}

static imp_error_t *add_entry(const char *dir, const char *name, migrate_set_t *set, size_t *cap)
{
    long version = 0;
    if (!parse_name(name, &version))
        return imp_error_new(IMP_ERR_FATAL, "migrate_files",
                             "migration file %s is not named NNNN_name.sql", name);
    if (set->n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        set->files = imp_realloc(set->files, *cap * sizeof(*set->files));
    }
    migrate_file_t *f = &set->files[set->n];
    memset(f, 0, sizeof(*f));
    imp_error_t *err = load_one(dir, name, version, f);
    if (err == NULL)
        set->n++;
    return err;
}

imp_error_t *migrate_load_dir(const char *dir, migrate_set_t *out)
{
    memset(out, 0, sizeof(*out));
    DIR *d = opendir(dir);
    if (d == NULL)
        return imp_error_new(IMP_ERR_FATAL, "migrate_files", "cannot open migrations dir %s: %s",
                             dir, strerror(errno));
    imp_error_t *err = NULL;
    size_t cap = 0;
    struct dirent *e;
    while (err == NULL && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && has_suffix(e->d_name, ".sql"))
            err = add_entry(dir, e->d_name, out, &cap);
    closedir(d);
    if (err == NULL && out->n == 0)
        err = imp_error_new(IMP_ERR_FATAL, "migrate_files", "no migrations in %s", dir);
    if (err == NULL) {
        qsort(out->files, out->n, sizeof(*out->files), by_version);
        err = check_unique(out);
    }
    if (err != NULL)
        migrate_set_dispose(out);
    return err;
}

void migrate_set_dispose(migrate_set_t *set)
{
    for (size_t i = 0; i < set->n; i++) {
        free(set->files[i].name);
        free(set->files[i].sql);
    }
    free(set->files);
    memset(set, 0, sizeof(*set));
}

const migrate_file_t *migrate_set_find(const migrate_set_t *set, long version)
{
    for (size_t i = 0; i < set->n; i++)
        if (set->files[i].version == version)
            return &set->files[i];
    return NULL;
}
