/* Helpers of the verifier fuzz targets: the input is split into header values and a body,
 * each copied to a heap block of its exact size so that any over-read is an ASan report. */
#ifndef IMP_FUZZ_VERIFY_COMMON_H
#define IMP_FUZZ_VERIFY_COMMON_H

#include "ingress_core.h"

#include "imp/mem.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FUZZ_MAX_HEADERS 4

typedef struct {
    const char *name[FUZZ_MAX_HEADERS];
    char *value[FUZZ_MAX_HEADERS];
    size_t len[FUZZ_MAX_HEADERS];
    size_t n;
} fuzz_headers_t;

static const char *fuzz_header(void *ctx, const char *name, size_t *len)
{
    fuzz_headers_t *h = ctx;
    for (size_t i = 0; i < h->n; i++) {
        if (strcasecmp(h->name[i], name) == 0) {
            *len = h->len[i];
            return h->value[i];
        }
    }
    return NULL;
}

/* An exact-size copy (never NUL-terminated; one byte allocated for empty input). */
static char *fuzz_copy(const uint8_t *p, size_t n)
{
    char *c = imp_malloc(n ? n : 1);
    if (n)
        memcpy(c, p, n);
    return c;
}

/* Cut the next '\n'-terminated line off *data; false when there is none. */
static int fuzz_line(const uint8_t **data, size_t *size, const uint8_t **line, size_t *len)
{
    const uint8_t *nl = *size ? memchr(*data, '\n', *size) : NULL;
    if (nl == NULL)
        return 0;
    *line = *data;
    *len = (size_t)(nl - *data);
    *size -= *len + 1;
    *data = nl + 1;
    return 1;
}

static void fuzz_add(fuzz_headers_t *h, const char *name, const uint8_t *v, size_t n)
{
    h->name[h->n] = name;
    h->value[h->n] = fuzz_copy(v, n);
    h->len[h->n] = n;
    h->n++;
}

static void fuzz_headers_free(fuzz_headers_t *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->value[i]);
    h->n = 0;
}

static void fuzz_check(int ok)
{
    if (!ok)
        abort();
}

#endif
