/* The topics manifest (deploy/topics.conf): the single source of truth for Kafka topics.
 *
 * One topic per line, fields separated by blanks:
 *
 *   # name                 partitions  retention  cleanup.policy
 *   imp.inbound.v1         12          7d         delete
 *   imp.tenants.v1         3           -1         compact
 *
 * name: 1..249 characters of [a-zA-Z0-9._-], not "." or "..", unique in the file.
 * partitions: 1..10000.
 * retention: -1 (forever) or a number with a unit ms, s, m, h, d or w ("7d", "12h").
 * cleanup.policy: delete | compact | compact,delete.
 * '#' starts a comment (whole line or after the fields); blank lines are ignored.
 *
 * Used by imperium-devbroker (creates every topic) and by the admin tool that creates the
 * same topics on a real cluster.
 */
#ifndef IMP_TOPICS_H
#define IMP_TOPICS_H

#include <stddef.h>
#include <stdint.h>

#include "imp/error.h"

typedef struct {
    char *name;
    int32_t partitions;
    int64_t retention_ms; /* -1 = forever */
    char *cleanup_policy; /* "delete", "compact" or "compact,delete" */
    int line;             /* line number in the manifest, for messages */
} imp_topic_spec_t;

typedef struct {
    imp_topic_spec_t *topics; /* in file order */
    size_t count;
} imp_topics_t;

/* Parse manifest text. origin names it in errors ("deploy/topics.conf:12: bad partitions").
 * On success *out is new (free with imp_topics_free); on error (fatal, "topics_manifest",
 * message with the line number) *out is NULL. */
imp_error_t *imp_topics_parse(const char *text, const char *origin, imp_topics_t **out);

/* Read and parse a file. An unreadable file is fatal "topics_manifest" naming the path. */
imp_error_t *imp_topics_load(const char *path, imp_topics_t **out);

void imp_topics_free(imp_topics_t *t);

/* The spec called name (borrowed), or NULL. */
const imp_topic_spec_t *imp_topics_find(const imp_topics_t *t, const char *name);

/* Parse a retention value ("-1", "7d", "500ms"); 0 on success, -1 when malformed. */
int imp_topics_parse_retention(const char *text, int64_t *out_ms);

#endif
