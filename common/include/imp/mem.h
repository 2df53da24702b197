/* Allocation wrappers: allocation failure aborts the process, so callers never NULL-check. */
#ifndef IMP_MEM_H
#define IMP_MEM_H

#include <stddef.h>

void *imp_malloc(size_t n);
void *imp_calloc(size_t count, size_t n);
void *imp_realloc(void *p, size_t n);
char *imp_strdup(const char *s);
char *imp_strndup(const char *s, size_t n);
/* printf into a new heap string (caller frees). */
char *imp_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define IMP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
