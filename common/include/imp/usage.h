/* Usage events: what a tenant consumed, for metering (imp.usage.v1, keyed by tenant).
 *
 * One event per billable action, derived from the event that caused it, so a retried or
 * replayed handler emits the same event id and metering counts it once:
 *
 *   id   = imp_opid_derive(cause->id, "usage:<kind>")
 *   type = imp.usage.recorded.v1 (schemas/events/imp.usage.recorded.v1.json)
 *   data = {kind, ref, conversation_id, channel, purpose, model, counters: {name: n, …}}
 *
 * kind "turn": an answered turn (imperium-rag): turns, llm_requests, prompt_tokens,
 * completion_tokens. kind "message": a message a provider accepted (imperium-send):
 * messages, characters. Counter names are [a-z_]+, values integers >= 0.
 */
#ifndef IMP_USAGE_H
#define IMP_USAGE_H

#include <stddef.h>

#include "imp/envelope.h"
#include "imp/error.h"

#define IMP_TOPIC_USAGE "imp.usage.v1"
#define IMP_TYPE_USAGE "imp.usage.recorded.v1"

typedef struct {
    const char *name;
    long long value;
} imp_usage_counter_t;

typedef struct {
    const char *kind;            /* "turn" | "message" */
    const char *ref;             /* the operation id the usage belongs to */
    const char *conversation_id; /* NULL: none */
    const char *channel;         /* NULL: none */
    const char *purpose;         /* NULL: none (a message's purpose: answer, escalation …) */
    const char *model;           /* NULL: none (the LLM that answered) */
    const imp_usage_counter_t *counters;
    size_t ncounters;
} imp_usage_t;

/* Build the usage event caused by cause (tenant, subject, trace and causation follow it);
 * source is the emitting binary's source ("imperium/rag"). Poison error on a bad kind,
 * counter name or negative value; out is then empty. */
imp_error_t *imp_usage_event(const imp_envelope_t *cause, const char *source, const imp_usage_t *u,
                             imp_envelope_t *out);

/* The number of Unicode code points of a UTF-8 string (bytes that do not start a sequence
 * are not counted). */
size_t imp_usage_chars(const char *s);

#endif
