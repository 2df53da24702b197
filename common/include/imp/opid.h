/* Operation ids and UUIDs (RFC 9562).
 *
 * An operation_id is a UUIDv5 under the fixed project namespace IMP_OPID_NAMESPACE:
 *
 *   inbound webhook:  UUIDv5(ns, "<tenant_id>|<channel>|<provider event id>")
 *   derived event:    UUIDv5(ns, "<parent operation_id>|<step>")
 *
 * so a redelivered webhook yields the same ids all the way down (ARCHITECTURE.md §4).
 * Text form: 36 characters, lowercase, hyphenated ("2ed6657d-e927-568b-95e1-2665a8aea6a2");
 * IMP_UUID_STR_SIZE bytes with the NUL. */
#ifndef IMP_OPID_H
#define IMP_OPID_H

#include <stddef.h>
#include <stdint.h>

#include "imp/error.h"

#define IMP_UUID_LEN 16
#define IMP_UUID_STR_LEN 36
#define IMP_UUID_STR_SIZE 37

/* The project namespace, 07da5cec-ed2a-4cf7-a0ae-43edb714bc16. It must never change: every
 * stored operation_id, every inbox row and every dedupe decision depends on it. */
extern const uint8_t IMP_OPID_NAMESPACE[IMP_UUID_LEN];

/* out = UUIDv5(ns, name[0..len)): SHA-1 name-based (RFC 9562 §5.5). */
void imp_uuid_v5(const uint8_t ns[IMP_UUID_LEN], const void *name, size_t len,
                 uint8_t out[IMP_UUID_LEN]);

/* out = a random UUIDv4 (RFC 9562 §5.4), for row ids. */
void imp_uuid_v4(uint8_t out[IMP_UUID_LEN]);

/* The 36-character lowercase text form into out (IMP_UUID_STR_SIZE bytes, NUL-terminated). */
void imp_uuid_format(const uint8_t uuid[IMP_UUID_LEN], char out[IMP_UUID_STR_SIZE]);

/* Parse text[0..len): exactly 36 characters, hyphens at 8, 13, 18 and 23, hex digits of
 * either case elsewhere (no braces, no "urn:uuid:"). 0 on success, -1 when malformed. */
int imp_uuid_parse(const char *text, size_t len, uint8_t out[IMP_UUID_LEN]);

/* A new random UUIDv4 in text form. */
void imp_uuid_v4_str(char out[IMP_UUID_STR_SIZE]);

/* The operation_id of an inbound provider event. tenant_id and channel must be non-empty
 * and free of '|' (so the name is unambiguous); provider_event_id must be non-empty (an
 * empty one would merge every event of the channel into one). Otherwise an error of class
 * poison, code "opid_name", and out is left empty. */
imp_error_t *imp_opid_inbound(const char *tenant_id, const char *channel,
                              const char *provider_event_id, char out[IMP_UUID_STR_SIZE]);

/* The operation_id of the event that step derives from parent_opid. parent_opid must be a
 * UUID (either case; the lowercase form is hashed, so case does not change the result) and
 * step non-empty; otherwise poison "opid_name" and out is left empty. */
imp_error_t *imp_opid_derive(const char *parent_opid, const char *step,
                             char out[IMP_UUID_STR_SIZE]);

#endif
