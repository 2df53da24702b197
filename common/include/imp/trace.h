/* W3C Trace Context: the traceparent header, version 00.
 *
 *   00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
 *   version  trace-id (32 hex)            parent-id (16)   flags
 *
 * Hex is lowercase; a trace-id or parent-id of all zeros is invalid. Only version 00 is
 * accepted: an edge that receives anything else starts a new trace (imp_trace_new).
 * Imperium records no spans of its own, so events pass a traceparent on unchanged; a
 * component that does start a span (an outgoing HTTP call) sends imp_trace_child. */
#ifndef IMP_TRACE_H
#define IMP_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "imp/error.h"

#define IMP_TRACEPARENT_LEN 55 /* "00-" + 32 + "-" + 16 + "-" + 2 */
#define IMP_TRACE_ID_LEN 32
#define IMP_TRACE_PARENT_ID_LEN 16
#define IMP_TRACE_FLAG_SAMPLED 0x01

typedef struct {
    char trace_id[IMP_TRACE_ID_LEN + 1];         /* 32 lowercase hex digits */
    char parent_id[IMP_TRACE_PARENT_ID_LEN + 1]; /* 16 lowercase hex digits */
    uint8_t flags;
} imp_trace_t;

/* Parse text[0..len) as a version-00 traceparent (exactly 55 bytes). Returns NULL and fills
 * out, or a poison error "traceparent is ..." and leaves out untouched. */
imp_error_t *imp_trace_parse(const char *text, size_t len, imp_trace_t *out);

/* Write the traceparent of t, NUL-terminated, into out (IMP_TRACEPARENT_LEN + 1 bytes). */
void imp_trace_format(const imp_trace_t *t, char *out);

/* A new trace: random trace-id and parent-id (getrandom), flags = sampled. */
void imp_trace_new(imp_trace_t *out);

/* A child of parent: the same trace-id and flags, a new random parent-id. out may be parent. */
void imp_trace_child(const imp_trace_t *parent, imp_trace_t *out);

#endif
