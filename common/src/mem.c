/* Allocation wrappers that abort on exhaustion. */
#include "imp/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void oom(size_t n)
{
    char buf[96];
    int len = snprintf(buf, sizeof(buf),
                       "{\"level\":\"fatal\",\"msg\":\"out of memory\",\"bytes\":%zu}\n", n);
    if (len > 0 && write(STDERR_FILENO, buf, (size_t)len) < 0) {
        /* nothing more can be done */
    }
    abort();
}

void *imp_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *imp_calloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (p == NULL)
        oom(count * n);
    return p;
}

void *imp_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *imp_strdup(const char *s)
{
    size_t n = strlen(s);
    char *d = imp_malloc(n + 1);
    memcpy(d, s, n + 1);
    return d;
}

char *imp_strndup(const char *s, size_t n)
{
    char *d = imp_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *imp_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = NULL;
    int n = vasprintf(&out, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom(0);
    return out;
}
