/* The event envelope: every message on every topic is a CloudEvents 1.0 structured-mode JSON
 * object (ARCHITECTURE.md §4, schemas/envelope.v1.json):
 *
 *   {"specversion":"1.0","id":"<operation_id>","source":"imperium/dialog",
 *    "type":"imp.turn.v1","time":"2026-01-02T03:04:05.678Z","subject":"<conversation key>",
 *    "datacontenttype":"application/json","tenantid":"<tenant>","traceparent":"00-…-01",
 *    "causationid":"<operation_id of the cause>","attempt":0,
 *    "notbefore":"…","dlq":{"worker":…,"class":…,"reason":…,"topic":…,"partition":…,
 *    "offset":…,"at":…},"data":{…}}
 *
 * Rules (the same in the JSON Schema; the unit test checks both on schemas/examples):
 *   specversion  "1.0", required
 *   id           lowercase canonical UUID, not nil, required
 *   source       imperium/<binary>: ^imperium/[a-z0-9][a-z0-9._-]{0,54}$, required
 *   type         ^imp(\.[a-z0-9_]+)+\.v[0-9]+$, at most 128 characters, required
 *   time         RFC 3339 (Z or ±hh:mm, optional fraction), 1970..9999 UTC, required
 *   subject      non-empty string, optional
 *   datacontenttype  "application/json" when present
 *   tenantid     ^[a-z0-9][a-z0-9_-]{0,62}$ (no ':', it separates the Kafka key), required
 *   traceparent  W3C version 00 (imp/trace.h), optional
 *   causationid  like id, optional
 *   attempt      integer 0..2^31-1 written without fraction or exponent, default 0
 *   notbefore    like time, optional
 *   dlq          object with every member: worker (like tenantid), class (infra | retriable
 *                | poison | fatal), reason (string), topic (Kafka topic name), partition
 *                (integer 0..2^31-1), offset (integer >= 0), at (like time); optional
 *   data         JSON object, required (data_base64 is not supported)
 * Any other attribute is rejected: adding one is a new envelope version. Duplicate keys,
 * invalid UTF-8, \u0000 and integers beyond 64 bits are rejected by the JSON reader.
 *
 * Only the envelope is validated here; the data of each type is checked by its handler
 * (schemas/events/<type>.json is the contract). */
#ifndef IMP_ENVELOPE_H
#define IMP_ENVELOPE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imp/error.h"
#include "imp/trace.h"

#define IMP_ENVELOPE_UUID_LEN 36
#define IMP_ENVELOPE_SOURCE_MAX 64
#define IMP_ENVELOPE_TYPE_MAX 128
#define IMP_ENVELOPE_NAME_MAX 63   /* tenantid and dlq.worker */
#define IMP_ENVELOPE_TOPIC_MAX 249 /* Kafka's own limit */
#define IMP_ENVELOPE_TIME_LEN 24   /* "2026-01-02T03:04:05.678Z" */

typedef struct {
    char worker[IMP_ENVELOPE_NAME_MAX + 1]; /* the worker that gave up on the event */
    imp_err_class_t cls;
    char *reason;                           /* owned heap string (freed by imp_envelope_dispose) */
    char topic[IMP_ENVELOPE_TOPIC_MAX + 1]; /* where the event was consumed from */
    int32_t partition;
    int64_t offset;
    int64_t at_ms; /* when it was dead-lettered, Unix epoch milliseconds */
} imp_envelope_dlq_t;

/* A value object; strings are NUL-terminated and "" means absent. */
typedef struct {
    char id[IMP_ENVELOPE_UUID_LEN + 1];
    char source[IMP_ENVELOPE_SOURCE_MAX + 1];
    char type[IMP_ENVELOPE_TYPE_MAX + 1];
    int64_t time_ms; /* Unix epoch milliseconds (finer fractions are truncated) */
    char *subject;   /* owned heap string; NULL when absent */
    char tenantid[IMP_ENVELOPE_NAME_MAX + 1];
    char traceparent[IMP_TRACEPARENT_LEN + 1];
    char causationid[IMP_ENVELOPE_UUID_LEN + 1];
    int attempt;
    int64_t notbefore_ms; /* 0 when absent (1970-01-01T00:00:00Z reads as absent) */
    bool has_dlq;
    imp_envelope_dlq_t dlq;
    json_t *data; /* owned reference to a JSON object */
} imp_envelope_t;

/* Empty envelope: every string "", numbers 0, no subject, no dlq, data NULL. */
void imp_envelope_init(imp_envelope_t *e);

/* Release data, subject and dlq.reason; e is left as after imp_envelope_init. */
void imp_envelope_dispose(imp_envelope_t *e);

/* Parse and validate buf[0..len) with one json_loadb. out need not be initialized (what
 * it held is not released); on success it holds the event (dispose it), on error it is
 * empty. Every failure is a poison error, code "bad_envelope", whose message starts with
 * the attribute at fault ("attempt is negative", "dlq.partition is not an integer") or
 * with "invalid json". */
imp_error_t *imp_envelope_parse(const char *buf, size_t len, imp_envelope_t *out);

/* Validate e by the same rules and write it as compact JSON into *out (new heap string,
 * caller frees with free()). datacontenttype is always written, attempt always, absent
 * optional attributes never. On error (poison, "bad_envelope") *out is NULL. */
imp_error_t *imp_envelope_serialize(const imp_envelope_t *e, char **out);

/* Deepest data imp_envelope_serialize_trusted writes (a cycle in data reaches it too);
 * imp_envelope_parse reads at most 2048 levels anyway. */
#define IMP_ENVELOPE_DATA_DEPTH_MAX 4096

/* The bytes imp_envelope_serialize writes, written straight into the buffer, for an
 * envelope whose fixed attributes already passed the rules (set by imp_envelope_new_event,
 * _derive, _set_dlq or _parse, and traceparent by imp_trace_format): those are not checked
 * again (debug builds assert them). Still checked: subject and dlq.reason not empty and valid
 * UTF-8, attempt not negative, the times in range, data an object no deeper than
 * IMP_ENVELOPE_DATA_DEPTH_MAX. *out is a new heap string (caller frees with free()) and *len
 * (len may be NULL) its length; on error (poison, "bad_envelope") *out is NULL. */
imp_error_t *imp_envelope_serialize_trusted(const imp_envelope_t *e, char **out, size_t *len);

/* A new event: out (need not be initialized) gets id, source, type, tenantid, time = now,
 * attempt 0, and data (takes ownership; NULL means an empty object). Fails with a poison
 * error naming the first argument that breaks a rule; data is released then too. */
imp_error_t *imp_envelope_new_event(imp_envelope_t *out, const char *id, const char *source,
                                    const char *type, const char *tenantid, json_t *data);

/* An event caused by cause (borrowed; not out): like imp_envelope_new_event with cause's
 * tenantid, plus cause's subject and traceparent copied and causationid = cause->id.
 * attempt, notbefore and dlq start afresh. id is the derived operation id
 * (imp_opid_derive(cause->id, step)). */
imp_error_t *imp_envelope_derive(imp_envelope_t *out, const imp_envelope_t *cause, const char *id,
                                 const char *source, const char *type, json_t *data);

/* Mark e as a dead letter; the strings are copied and an earlier dlq is replaced. Fails
 * (poison, naming the member) when an argument breaks the dlq rules above; e is then
 * unchanged. */
imp_error_t *imp_envelope_set_dlq(imp_envelope_t *e, const char *worker, imp_err_class_t cls,
                                  const char *reason, const char *topic, int32_t partition,
                                  int64_t offset, int64_t at_ms);

/* Now, in Unix epoch milliseconds (CLOCK_REALTIME). */
int64_t imp_envelope_time_now_ms(void);

/* ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (IMP_ENVELOPE_TIME_LEN + 1 bytes). Returns 0,
 * or -1 (out = "") when ms is outside 1970-01-01 .. 9999-12-31. */
int imp_envelope_time_format(int64_t ms, char *out);

/* Parse RFC 3339 date-time text[0..len) ("T"/"t", "Z"/"z" or ±hh:mm, any number of
 * fraction digits, second 60 accepted as a leap second) into Unix epoch milliseconds.
 * Returns 0, or -1 when malformed or outside 1970-01-01 .. 9999-12-31 UTC. */
int imp_envelope_time_parse(const char *text, size_t len, int64_t *out_ms);

#endif
