/* `bot versions`: a tenant's bot versions, its release channel and the version that answers
 * its traffic, as Postgres has them, read as the application role under the tenant (row-level
 * security confines it). */
#include "bot.h"

#include "imp/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQL_RFC3339 "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'"
#define SQL_BOT_VERSIONS                                                                           \
    "SELECT v.number, v.state, k.number, v.instruction, v.settings::text, "                        \
    "to_char(v.created_at AT TIME ZONE 'UTC', " SQL_RFC3339 "), "                                  \
    "to_char(v.published_at AT TIME ZONE 'UTC', " SQL_RFC3339 "), v.id::text "                     \
    "FROM bot_versions v JOIN bots b ON b.tenant_id = v.tenant_id AND b.id = v.bot_id "            \
    "LEFT JOIN kb_versions k ON k.tenant_id = v.tenant_id AND k.id = v.kb_version_id "             \
    "WHERE v.tenant_id = $1 AND b.name = '" CONTROL_BOT_NAME "' ORDER BY v.number"
#define SQL_RELEASE_CHANNEL "SELECT release_channel FROM tenants WHERE id = $1"
#define INSTRUCTION_EXCERPT 48

static json_t *nullable(const imp_pg_result_t *res, int r, int c)
{
    const char *v = imp_pg_result_value(res, r, c);
    return v ? json_string(v) : json_null();
}

static json_t *bot_version_json(const imp_pg_result_t *res, int r)
{
    long long number = 0, kb = 0;
    imp_pg_result_get_int64(res, r, 0, &number);
    bool pinned = !imp_pg_result_is_null(res, r, 2);
    if (pinned)
        imp_pg_result_get_int64(res, r, 2, &kb);
    json_t *settings = json_loads(imp_pg_result_value(res, r, 4), 0, NULL);
    return json_pack("{s:I, s:s, s:s, s:o, s:o, s:o, s:s, s:o}", "version", (json_int_t)number,
                     "id", imp_pg_result_value(res, r, 7), "state", imp_pg_result_value(res, r, 1),
                     "kb_version", pinned ? json_integer(kb) : json_null(), "instruction",
                     nullable(res, r, 3), "settings", settings ? settings : json_object(),
                     "created_at", imp_pg_result_value(res, r, 5), "published_at",
                     nullable(res, r, 6));
}

/* The number of the version in state, or 0. */
static json_int_t in_state(const json_t *versions, const char *state)
{
    size_t i;
    json_t *v;
    json_array_foreach(versions, i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "state")), state) == 0)
            return json_integer_value(json_object_get(v, "version"));
    }
    return 0;
}

static json_t *bot_doc(const char *id, const char *slug, const char *channel, json_t *versions)
{
    json_int_t answering = strcmp(channel, "canary") == 0 ? in_state(versions, "canary") : 0;
    if (answering == 0)
        answering = in_state(versions, "stable");
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "tenant_id", id, "slug", slug, "bot",
                     CONTROL_BOT_NAME, "release_channel", channel, "answering",
                     answering ? json_integer(answering) : json_null(), "versions", versions);
}

static imp_error_t *read_bot(imp_pg_t *pg, const char *id, const char *slug, json_t **out)
{
    imp_pg_result_t *res = NULL;
    char *channel = NULL;
    const char *params[] = {id};
    json_t *versions = json_array();
    imp_error_t *err = imp_pg_tx_begin_with(pg, "ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    if (err == NULL)
        err = imp_pg_set_tenant(pg, id);
    if (err == NULL)
        err = imp_pg_exec_scalar(pg, SQL_RELEASE_CHANNEL, 1, params, &channel);
    if (err == NULL)
        err = imp_pg_exec(pg, SQL_BOT_VERSIONS, 1, params, &res);
    for (int r = 0; err == NULL && r < imp_pg_result_rows(res); r++)
        json_array_append_new(versions, bot_version_json(res, r));
    imp_pg_result_free(res);
    if (err == NULL)
        err = imp_pg_tx_commit(pg);
    else
        imp_pg_tx_rollback(pg);
    if (err == NULL)
        *out = bot_doc(id, slug, channel ? channel : "stable", versions);
    else
        json_decref(versions);
    free(channel);
    return err;
}

/* The first max characters of s on one line (line breaks and tabs as spaces), "…" when cut. */
static void excerpt(const char *s, size_t max, char *buf, size_t cap)
{
    size_t n = 0, chars = 0, i = 0;
    for (; s[i] != '\0' && n + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c & 0xC0) != 0x80 && chars++ == max)
            break;
        buf[n++] = c == '\n' || c == '\r' || c == '\t' ? ' ' : (char)c;
    }
    if (s[i] != '\0' && n + 4 <= cap) {
        memcpy(buf + n, "…", 3);
        n += 3;
    }
    buf[n] = '\0';
}

static void print_bot_version(const json_t *v)
{
    const char *published = json_string_value(json_object_get(v, "published_at"));
    const char *ins = json_string_value(json_object_get(v, "instruction"));
    const json_t *kb = json_object_get(v, "kb_version");
    char kbtext[24] = "-", insbuf[4 * INSTRUCTION_EXCERPT + 8] = "(default)";
    if (json_is_integer(kb))
        snprintf(kbtext, sizeof(kbtext), "%lld", (long long)json_integer_value(kb));
    if (ins != NULL)
        excerpt(ins, INSTRUCTION_EXCERPT, insbuf, sizeof(insbuf));
    char *settings = json_dumps(json_object_get(v, "settings"), JSON_COMPACT | JSON_SORT_KEYS);
    printf("%-7lld %-8s %-4s %-24s %-24s %s\n",
           (long long)json_integer_value(json_object_get(v, "version")),
           json_string_value(json_object_get(v, "state")), kbtext,
           json_string_value(json_object_get(v, "created_at")), published ? published : "-",
           insbuf);
    printf("        settings %s\n", settings);
    free(settings);
}

static void print_bot_text(const json_t *doc)
{
    const json_t *answering = json_object_get(doc, "answering");
    const char *channel = json_string_value(json_object_get(doc, "release_channel"));
    printf("release channel: %s; ", channel);
    if (json_is_integer(answering))
        printf("answered by version %lld\n", (long long)json_integer_value(answering));
    else
        printf("no stable bot version: answered from tenants.settings\n");
    printf("%-7s %-8s %-4s %-24s %-24s %s\n", "VERSION", "STATE", "KB", "CREATED", "PUBLISHED",
           "INSTRUCTION");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(doc, "versions"), i, v) print_bot_version(v);
}

int cli_bot_versions(imp_pg_t *pg, const char *slug, bool json)
{
    char *id = NULL;
    json_t *doc = NULL;
    const char *params[] = {slug};
    imp_error_t *err =
        imp_pg_exec_scalar(pg, "SELECT imp_tenant_id_by_slug($1)::text", 1, params, &id);
    if (err == NULL && id != NULL)
        err = read_bot(pg, id, slug, &doc);
    free(id);
    if (err != NULL) {
        cli_report("reading the bot versions", err);
        imp_error_free(err);
        return CONTROL_EXIT_UNKNOWN;
    }
    if (doc == NULL) {
        fprintf(stderr, "%s: tenant %s does not exist\n", CONTROL_BINARY, slug);
        return CONTROL_EXIT_FAILED;
    }
    if (json) {
        char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
        printf("%s\n", text);
        free(text);
    } else {
        print_bot_text(doc);
    }
    json_decref(doc);
    return CONTROL_EXIT_OK;
}
