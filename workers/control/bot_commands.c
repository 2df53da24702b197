/* The bot commands imperium-control applies (docs/bot-versions.md): draft a version, publish
 * one as the canary or the stable version, roll the stable version back, and set the tenant's
 * release channel. Each in the command's transaction under the tenant (row-level security),
 * serialised per tenant by a lock on its row, with its bot_releases row, an audit row, the
 * outcome in operations and an imp.control.v1 event when what answers may have changed. */
#include "bot.h"

#include "imp/kb.h"
#include "imp/log.h"
#include "imp/mem.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQL_SLUG_OWNER "SELECT imp_tenant_id_by_slug($1)::text"
#define SQL_TENANT_LOCK "SELECT release_channel FROM tenants WHERE id = $1 FOR UPDATE"
#define SQL_BOT_ENSURE                                                                             \
    "INSERT INTO bots (tenant_id, name) VALUES ($1, '" CONTROL_BOT_NAME "') "                      \
    "ON CONFLICT (tenant_id, name) DO NOTHING"
#define SQL_BOT "SELECT id::text FROM bots WHERE tenant_id = $1 AND name = '" CONTROL_BOT_NAME "'"
#define SQL_KB_VERSION "SELECT id::text FROM kb_versions WHERE tenant_id = $1 AND number = $2"
#define SQL_KB_STABLE                                                                              \
    "SELECT id::text, number FROM kb_versions WHERE tenant_id = $1 AND state = 'stable'"
/* What a draft copies the members it is not given from: the stable version, else the newest
 * one; a bot's first version copies the tenant's settings (bot_instruction, qc, safe_reply),
 * so the rules it answered with until then carry over. */
#define SQL_BASE                                                                                   \
    "SELECT instruction, settings::text FROM bot_versions WHERE tenant_id = $1 AND bot_id = $2 "   \
    "ORDER BY state = 'stable' DESC, number DESC LIMIT 1"
#define SQL_BASE_TENANT                                                                            \
    "SELECT settings->>'bot_instruction', jsonb_strip_nulls(jsonb_build_object('qc', "             \
    "settings->'qc', 'safe_reply', settings->'safe_reply'))::text FROM tenants WHERE id = $1"
#define SQL_SAME                                                                                   \
    "SELECT number, state FROM bot_versions WHERE tenant_id = $1 AND bot_id = $2 "                 \
    "AND instruction IS NOT DISTINCT FROM $3::text AND settings = $4::jsonb "                      \
    "AND kb_version_id IS NOT DISTINCT FROM $5::uuid ORDER BY number DESC LIMIT 1"
#define SQL_INSERT                                                                                 \
    "INSERT INTO bot_versions (tenant_id, bot_id, number, instruction, settings, kb_version_id, "  \
    "operation_id) SELECT $1::uuid, $2::uuid, coalesce(max(number), 0) + 1, $3::text, $4::jsonb, " \
    "$5::uuid, $6::uuid FROM bot_versions WHERE tenant_id = $1 AND bot_id = $2 "                   \
    "RETURNING number, id::text"
#define SQL_VERSION_COLS                                                                           \
    "SELECT v.id::text, v.number, v.state, v.kb_version_id::text, k.number FROM bot_versions v "   \
    "LEFT JOIN kb_versions k ON k.tenant_id = v.tenant_id AND k.id = v.kb_version_id "             \
    "WHERE v.tenant_id = $1 AND v.bot_id = $2 "
#define SQL_VERSION SQL_VERSION_COLS "AND v.number = $3::integer"
#define SQL_VERSION_BY_ID SQL_VERSION_COLS "AND v.id = $3::uuid"
#define SQL_IN_STATE SQL_VERSION_COLS "AND v.state = $3::text"
#define SQL_SET_STATE                                                                              \
    "UPDATE bot_versions SET state = $3::text, "                                                   \
    "published_at = CASE WHEN $3::text = 'archived' THEN published_at ELSE now() END, "            \
    "archived_at = CASE WHEN $3::text = 'archived' THEN now() END "                                \
    "WHERE tenant_id = $1 AND id = $2"
#define SQL_RELEASE                                                                                \
    "INSERT INTO bot_releases (tenant_id, bot_id, channel, action, version_id, "                   \
    "previous_version_id, operation_id, actor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
/* Where a rollback goes: what was stable before the current version was last published. */
#define SQL_PREVIOUS                                                                               \
    "SELECT previous_version_id::text FROM bot_releases WHERE tenant_id = $1 AND version_id = $2 " \
    "AND channel = 'stable' AND action = 'publish' ORDER BY id DESC LIMIT 1"
#define SQL_CHANNEL_SET "UPDATE tenants SET release_channel = $2, updated_at = now() WHERE id = $1"

/* One bot command being applied. op carries what records.c needs (slug, actor). */
typedef struct {
    control_op_t op;
    control_bot_cmd_t cmd;
    control_bot_data_t b;
    char channel[16];               /* the tenant's release channel */
    char bot_id[IMP_UUID_STR_SIZE]; /* "" when the tenant has no bot yet */
} bot_op_t;

typedef struct {
    bool exists;
    char id[IMP_UUID_STR_SIZE];
    long long number;
    char state[16];
    char kb_id[IMP_UUID_STR_SIZE]; /* the pinned kb version, "" for none */
    long long kb_number;
} version_t;

/* ---- outcomes ------------------------------------------------------------------------------- */

static json_t *bot_result(const bot_op_t *bop)
{
    return json_pack("{s:s, s:s, s:s}", "tenant_id", bop->op.ev->tenantid, "slug", bop->b.slug,
                     "bot", CONTROL_BOT_NAME);
}

static json_t *number_or_null(const version_t *v)
{
    return v->exists ? json_integer(v->number) : json_null();
}

/* ---- reading -------------------------------------------------------------------------------- */

static const char *tenant_of(const bot_op_t *bop)
{
    return bop->op.ev->tenantid;
}

/* The command's tenant must exist (*ok false and a failed outcome when it does not); a slug
 * of another tenant than the envelope's is a malformed command. Locks the tenant's row, which
 * serialises the bot commands of a tenant, and reads its channel and its bot (if any). */
static imp_error_t *prepare(bot_op_t *bop, control_outcome_t *out, bool *ok)
{
    char *owner = NULL, *channel = NULL;
    const char *slug[] = {bop->b.slug}, *tenant[] = {tenant_of(bop)};
    *ok = false;
    imp_error_t *err = imp_pg_exec_scalar(bop->op.pg, SQL_SLUG_OWNER, 1, slug, &owner);
    if (err == NULL && owner == NULL)
        control_fail(out, "tenant %s does not exist", bop->b.slug);
    else if (err == NULL && strcmp(owner, tenant_of(bop)) != 0)
        err =
            imp_error_new(IMP_ERR_POISON, "bad_command", "tenantid %s is not the tenant of slug %s",
                          tenant_of(bop), bop->b.slug);
    else if (err == NULL)
        err = imp_pg_exec_scalar(bop->op.pg, SQL_TENANT_LOCK, 1, tenant, &channel);
    imp_pg_result_t *res = NULL;
    if (err == NULL && channel != NULL)
        err = imp_pg_exec_cached(bop->op.pg, SQL_BOT, 1, tenant, &res);
    if (err == NULL && channel != NULL) {
        snprintf(bop->channel, sizeof(bop->channel), "%s", channel);
        if (imp_pg_result_rows(res) == 1)
            snprintf(bop->bot_id, sizeof(bop->bot_id), "%s", imp_pg_result_value(res, 0, 0));
        *ok = true;
    }
    imp_pg_result_free(res);
    free(channel);
    free(owner);
    return err;
}

/* The tenant's bot, created with its first version. */
static imp_error_t *ensure_bot(bot_op_t *bop)
{
    const char *tenant[] = {tenant_of(bop)};
    char *id = NULL;
    if (bop->bot_id[0] != '\0')
        return NULL;
    imp_error_t *err = imp_pg_exec_cached(bop->op.pg, SQL_BOT_ENSURE, 1, tenant, NULL);
    if (err == NULL)
        err = imp_pg_exec_scalar(bop->op.pg, SQL_BOT, 1, tenant, &id);
    if (err == NULL)
        snprintf(bop->bot_id, sizeof(bop->bot_id), "%s", id);
    free(id);
    return err;
}

/* A version of the tenant's bot by sql (SQL_VERSION, SQL_VERSION_BY_ID, SQL_IN_STATE). */
static imp_error_t *version_query(bot_op_t *bop, const char *sql, const char *key, version_t *v)
{
    imp_pg_result_t *res = NULL;
    const char *params[] = {tenant_of(bop), bop->bot_id, key};
    memset(v, 0, sizeof(*v));
    if (bop->bot_id[0] == '\0')
        return NULL;
    imp_error_t *err = imp_pg_exec_cached(bop->op.pg, sql, 3, params, &res);
    if (err == NULL && imp_pg_result_rows(res) == 1) {
        v->exists = true;
        snprintf(v->id, sizeof(v->id), "%s", imp_pg_result_value(res, 0, 0));
        imp_pg_result_get_int64(res, 0, 1, &v->number);
        snprintf(v->state, sizeof(v->state), "%s", imp_pg_result_value(res, 0, 2));
        if (!imp_pg_result_is_null(res, 0, 3)) {
            snprintf(v->kb_id, sizeof(v->kb_id), "%s", imp_pg_result_value(res, 0, 3));
            imp_pg_result_get_int64(res, 0, 4, &v->kb_number);
        }
    }
    imp_pg_result_free(res);
    return err;
}

static imp_error_t *version_in_state(bot_op_t *bop, const char *state, version_t *v)
{
    return version_query(bop, SQL_IN_STATE, state, v);
}

/* The version that answers the tenant's traffic on channel: the canary on the canary channel
 * when there is one, else the stable version (may not exist). */
static imp_error_t *answering(bot_op_t *bop, const char *channel, version_t *v)
{
    imp_error_t *err = NULL;
    memset(v, 0, sizeof(*v));
    if (strcmp(channel, "canary") == 0)
        err = version_in_state(bop, "canary", v);
    if (err == NULL && !v->exists)
        err = version_in_state(bop, "stable", v);
    return err;
}

/* ---- writing -------------------------------------------------------------------------------- */

static imp_error_t *set_state(bot_op_t *bop, const version_t *v, const char *state)
{
    const char *params[] = {tenant_of(bop), v->id, state};
    return imp_pg_exec_cached(bop->op.pg, SQL_SET_STATE, 3, params, NULL);
}

static imp_error_t *release(bot_op_t *bop, const char *channel, const char *action,
                            const version_t *to, const version_t *from)
{
    const char *params[] = {tenant_of(bop), bop->bot_id, channel,
                            action,         to->id,      from->exists ? from->id : NULL,
                            bop->op.ev->id, bop->b.actor};
    return imp_pg_exec_cached(bop->op.pg, SQL_RELEASE, 8, params, NULL);
}

static imp_error_t *audit(bot_op_t *bop, const char *action, json_t *before, json_t *after)
{
    char target[128];
    snprintf(target, sizeof(target), "bot:%s/%s", bop->b.slug, CONTROL_BOT_NAME);
    imp_error_t *err = control_audit(&bop->op, action, target, before, after);
    json_decref(before);
    json_decref(after);
    return err;
}

/* imp.control.v1: what answers the tenant may have changed (version: the bot version number
 * that took over, 0 for none). */
static imp_error_t *publish_changed(bot_op_t *bop, long long version)
{
    const imp_envelope_t *ev = bop->op.ev;
    char id[IMP_UUID_STR_SIZE];
    imp_error_t *err = imp_opid_derive(ev->id, "control.changed", id);
    if (err != NULL)
        return err;
    json_t *data = json_pack("{s:s, s:s}", "tenant_id", ev->tenantid, "what", "bot");
    if (version > 0)
        json_object_set_new(data, "version", json_integer(version));
    imp_envelope_t out;
    err = imp_envelope_derive(&out, ev, id, CONTROL_SOURCE, CONTROL_TYPE_CHANGED, data);
    if (err == NULL)
        err = imp_worker_emit(bop->op.ctx, CONTROL_TOPIC_CONTROL, ev->tenantid, &out);
    return err;
}

/* {"stable": N|null, "canary": N|null} */
static json_t *pointers(const version_t *stable, const version_t *canary)
{
    return json_pack("{s:o, s:o}", "stable", number_or_null(stable), "canary",
                     number_or_null(canary));
}

/* ---- draft ---------------------------------------------------------------------------------- */

typedef struct {
    char *instruction; /* NULL: the default */
    json_t *settings;
    char kb_id[IMP_UUID_STR_SIZE];
} inputs_t;

static void inputs_dispose(inputs_t *in)
{
    free(in->instruction);
    json_decref(in->settings);
    memset(in, 0, sizeof(*in));
}

/* A blank instruction (a tenant's settings may hold one) is the default one. */
static char *instruction_or_null(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    bool blank = true;
    for (size_t i = 0; i < n && blank; i++)
        blank = s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t';
    return blank ? NULL : imp_strdup(s);
}

/* The instruction and settings the command does not give, from the base (SQL_BASE). */
static imp_error_t *copy_base(bot_op_t *bop, inputs_t *in, control_outcome_t *out, bool *ok)
{
    imp_pg_result_t *res = NULL;
    const char *params[] = {tenant_of(bop), bop->bot_id};
    imp_error_t *err = NULL;
    if (bop->bot_id[0] != '\0')
        err = imp_pg_exec_cached(bop->op.pg, SQL_BASE, 2, params, &res);
    bool from_tenant = err == NULL && (res == NULL || imp_pg_result_rows(res) == 0);
    if (from_tenant) {
        imp_pg_result_free(res);
        res = NULL;
        err = imp_pg_exec_cached(bop->op.pg, SQL_BASE_TENANT, 1, params, &res);
    }
    *ok = err == NULL && imp_pg_result_rows(res) == 1;
    if (!*ok) {
        imp_pg_result_free(res);
        return err;
    }
    const char *ins = imp_pg_result_value(res, 0, 0), *settings = imp_pg_result_value(res, 0, 1);
    if (bop->b.instruction == NULL)
        in->instruction = instruction_or_null(ins);
    if (bop->b.settings == NULL)
        in->settings = json_loads(settings, 0, NULL);
    imp_pg_result_free(res);
    const char *src = from_tenant ? "tenants.settings" : "the base version";
    const char *what = "instruction", *option = "--instruction";
    imp_error_t *why = NULL;
    if (in->instruction != NULL &&
        !control_bot_instruction_valid(in->instruction, strlen(in->instruction)))
        why = imp_error_new(IMP_ERR_POISON, "bad_command",
                            "bot_instruction is not a text of 1 to %d characters",
                            CONTROL_BOT_INSTRUCTION_MAX_CHARS);
    if (why == NULL && bop->b.settings == NULL) {
        what = "settings";
        option = "--settings";
        why = control_bot_settings_check(in->settings, "settings");
    }
    if (why != NULL) {
        control_fail(out,
                     "bot %s: the %s copied from %s is not valid for a bot version (%s): give %s",
                     bop->b.slug, what, src, imp_error_message(why), option);
        imp_error_free(why);
        *ok = false;
    }
    return NULL;
}

/* The new version's instruction, settings and pinned kb version; *ok false (with a failed
 * outcome) when they cannot be had. */
static imp_error_t *draft_inputs(bot_op_t *bop, inputs_t *in, control_outcome_t *out, bool *ok)
{
    const control_bot_data_t *b = &bop->b;
    imp_error_t *err = NULL;
    *ok = true;
    if (json_is_string(b->instruction))
        in->instruction = imp_strdup(json_string_value(b->instruction));
    if (b->settings != NULL)
        in->settings = json_deep_copy(b->settings);
    if (b->instruction == NULL || b->settings == NULL)
        err = copy_base(bop, in, out, ok);
    if (err != NULL || !*ok || b->kb_version == 0)
        return err;
    char number[24], *id = NULL;
    snprintf(number, sizeof(number), "%lld", b->kb_version);
    imp_pg_result_t *res = NULL;
    const char *params[] = {tenant_of(bop), number};
    err = imp_pg_exec_cached(bop->op.pg, SQL_KB_VERSION, 2, params, &res);
    if (err == NULL && imp_pg_result_rows(res) == 1)
        id = imp_strdup(imp_pg_result_value(res, 0, 0));
    imp_pg_result_free(res);
    if (err == NULL && id == NULL) {
        control_fail(out, "bot %s: kb version %lld does not exist", b->slug, b->kb_version);
        *ok = false;
    } else if (id != NULL) {
        snprintf(in->kb_id, sizeof(in->kb_id), "%s", id);
    }
    free(id);
    return err;
}

static json_t *draft_result(bot_op_t *bop, long long number, const char *id, const char *state,
                            bool created)
{
    json_t *r = bot_result(bop);
    json_object_update_new(
        r, json_pack("{s:I, s:s, s:s, s:o, s:b, s:b}", "version", (json_int_t)number, "version_id",
                     id, "state", state, "kb_version",
                     bop->b.kb_version > 0 ? json_integer(bop->b.kb_version) : json_null(),
                     "created", created, "changed", created));
    return r;
}

/* --if-changed: a version with exactly these inputs; *found when there is one. */
static imp_error_t *find_same(bot_op_t *bop, const char *const params[5], control_outcome_t *out,
                              bool *found)
{
    imp_pg_result_t *res = NULL;
    *found = false;
    imp_error_t *err = imp_pg_exec_cached(bop->op.pg, SQL_SAME, 5, params, &res);
    if (err == NULL && imp_pg_result_rows(res) == 1) {
        long long number = 0;
        imp_pg_result_get_int64(res, 0, 0, &number);
        char state[16];
        snprintf(state, sizeof(state), "%s", imp_pg_result_value(res, 0, 1));
        version_t v;
        char text[24];
        snprintf(text, sizeof(text), "%lld", number);
        err = version_query(bop, SQL_VERSION, text, &v);
        if (err == NULL) {
            *found = true;
            control_succeed(
                out, draft_result(bop, number, v.id, state, false),
                "bot %s: version %lld (%s) has this instruction, these settings and this "
                "kb version: no new version",
                bop->b.slug, number, state);
        }
    }
    imp_pg_result_free(res);
    return err;
}

static json_t *draft_view(long long number, const inputs_t *in, long long kb_version)
{
    return json_pack("{s:I, s:s, s:o, s:O, s:o}", "version", (json_int_t)number, "state", "draft",
                     "instruction_chars",
                     in->instruction ? json_integer((json_int_t)imp_kb_utf8_count(
                                           in->instruction, strlen(in->instruction)))
                                     : json_null(),
                     "settings", in->settings, "kb_version",
                     kb_version > 0 ? json_integer(kb_version) : json_null());
}

static imp_error_t *draft(bot_op_t *bop, control_outcome_t *out)
{
    bool ok = false, found = false;
    inputs_t in = {0};
    char *settings = NULL;
    imp_pg_result_t *res = NULL;
    imp_error_t *err = prepare(bop, out, &ok);
    if (err == NULL && ok)
        err = draft_inputs(bop, &in, out, &ok);
    if (err != NULL || !ok)
        goto out;
    settings = json_dumps(in.settings, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
    const char *same[] = {tenant_of(bop), bop->bot_id, in.instruction, settings,
                          in.kb_id[0] ? in.kb_id : NULL};
    if (bop->b.if_changed && bop->bot_id[0] != '\0')
        err = find_same(bop, same, out, &found);
    if (err == NULL && !found)
        err = ensure_bot(bop);
    if (err != NULL || found)
        goto out;
    const char *params[] = {tenant_of(bop), bop->bot_id, in.instruction,
                            settings,       same[4],     bop->op.ev->id};
    err = imp_pg_exec_cached(bop->op.pg, SQL_INSERT, 6, params, &res);
    if (err != NULL)
        goto out;
    long long number = 0;
    imp_pg_result_get_int64(res, 0, 0, &number);
    err = audit(bop, "bot.draft", NULL, draft_view(number, &in, bop->b.kb_version));
    if (err == NULL)
        control_succeed(out,
                        draft_result(bop, number, imp_pg_result_value(res, 0, 1), "draft", true),
                        "bot %s: version %lld drafted", bop->b.slug, number);
out:
    imp_pg_result_free(res);
    free(settings);
    inputs_dispose(&in);
    return err;
}

/* ---- publish -------------------------------------------------------------------------------- */

static json_t *publish_result(bot_op_t *bop, const version_t *v, const char *state,
                              const version_t *previous, bool changed)
{
    json_t *r = bot_result(bop);
    json_object_update_new(r, json_pack("{s:I, s:s, s:s, s:o, s:b}", "version",
                                        (json_int_t)v->number, "version_id", v->id, "state", state,
                                        "previous", number_or_null(previous), "changed", changed));
    return r;
}

/* A stable bot version answers from the stable knowledge base: a version pinned to another
 * one would silently change what it answers from. *ok false with a failed outcome then. */
static imp_error_t *check_pin(bot_op_t *bop, const version_t *v, control_outcome_t *out, bool *ok)
{
    imp_pg_result_t *res = NULL;
    const char *params[] = {tenant_of(bop)};
    *ok = true;
    if (v->kb_id[0] == '\0')
        return NULL;
    imp_error_t *err = imp_pg_exec_cached(bop->op.pg, SQL_KB_STABLE, 1, params, &res);
    bool stable = err == NULL && imp_pg_result_rows(res) == 1;
    if (err == NULL && (!stable || strcmp(imp_pg_result_value(res, 0, 0), v->kb_id) != 0)) {
        *ok = false;
        control_fail(
            out,
            "bot %s: version %lld answers from kb version %lld, which is not the stable one "
            "(%s%s): promote it first (kb promote %s %lld), or draft a version without "
            "--kb-version",
            bop->b.slug, v->number, v->kb_number, stable ? "stable: " : "none",
            stable ? imp_pg_result_value(res, 0, 1) : "", bop->b.slug, v->kb_number);
    }
    imp_pg_result_free(res);
    return err;
}

static imp_error_t *publish_stable(bot_op_t *bop, const version_t *v, control_outcome_t *out)
{
    version_t stable, canary;
    bool ok = false;
    imp_error_t *err = version_in_state(bop, "stable", &stable);
    if (err == NULL)
        err = version_in_state(bop, "canary", &canary);
    if (err == NULL && strcmp(v->state, "stable") == 0) {
        control_succeed(out, publish_result(bop, v, "stable", &stable, false),
                        "bot %s: version %lld is already stable", bop->b.slug, v->number);
        return NULL;
    }
    if (err == NULL)
        err = check_pin(bop, v, out, &ok);
    if (err != NULL || !ok)
        return err;
    json_t *before = pointers(&stable, &canary);
    if (stable.exists)
        err = set_state(bop, &stable, "archived");
    if (err == NULL)
        err = set_state(bop, v, "stable");
    if (err == NULL)
        err = release(bop, "stable", "publish", v, &stable);
    bool was_canary = strcmp(v->state, "canary") == 0;
    if (was_canary)
        canary.exists = false;
    version_t now = *v;
    if (err == NULL)
        err = audit(bop, "bot.publish", before, pointers(&now, &canary));
    else
        json_decref(before);
    if (err == NULL)
        err = publish_changed(bop, v->number);
    if (err != NULL)
        return err;
    char was[64] = "";
    if (stable.exists)
        snprintf(was, sizeof(was), " (version %lld archived)", stable.number);
    control_succeed(out, publish_result(bop, v, "stable", &stable, true),
                    "bot %s: version %lld is stable%s", bop->b.slug, v->number, was);
    return NULL;
}

static imp_error_t *publish_canary(bot_op_t *bop, const version_t *v, control_outcome_t *out)
{
    version_t stable, canary;
    imp_error_t *err = version_in_state(bop, "stable", &stable);
    if (err == NULL)
        err = version_in_state(bop, "canary", &canary);
    if (err != NULL)
        return err;
    if (strcmp(v->state, "canary") == 0) {
        control_succeed(out, publish_result(bop, v, "canary", &canary, false),
                        "bot %s: version %lld is already the canary", bop->b.slug, v->number);
        return NULL;
    }
    if (strcmp(v->state, "stable") == 0) {
        control_fail(out, "bot %s: version %lld is the stable version; a canary is another version",
                     bop->b.slug, v->number);
        return NULL;
    }
    json_t *before = pointers(&stable, &canary);
    if (canary.exists)
        err = set_state(bop, &canary, "archived");
    if (err == NULL)
        err = set_state(bop, v, "canary");
    if (err == NULL)
        err = release(bop, "canary", "publish", v, &canary);
    version_t now = *v;
    if (err == NULL)
        err = audit(bop, "bot.publish", before, pointers(&stable, &now));
    else
        json_decref(before);
    if (err == NULL)
        err = publish_changed(bop, v->number);
    if (err != NULL)
        return err;
    char kb[64] = "";
    if (v->kb_id[0] != '\0')
        snprintf(kb, sizeof(kb), ", answering from kb version %lld", v->kb_number);
    control_succeed(out, publish_result(bop, v, "canary", &canary, true),
                    "bot %s: version %lld is the canary%s (tenant %s is on the %s channel)",
                    bop->b.slug, v->number, kb, bop->b.slug, bop->channel);
    return NULL;
}

static imp_error_t *publish(bot_op_t *bop, control_outcome_t *out)
{
    bool ok = false;
    version_t v;
    imp_error_t *err = prepare(bop, out, &ok);
    if (err != NULL || !ok)
        return err;
    char number[24];
    snprintf(number, sizeof(number), "%lld", bop->b.version);
    err = version_query(bop, SQL_VERSION, number, &v);
    if (err == NULL && !v.exists)
        control_fail(out, "bot %s has no version %lld", bop->b.slug, bop->b.version);
    if (err != NULL || !v.exists)
        return err;
    return strcmp(bop->b.channel, "stable") == 0 ? publish_stable(bop, &v, out)
                                                 : publish_canary(bop, &v, out);
}

/* ---- rollback ------------------------------------------------------------------------------- */

static imp_error_t *previous_of(bot_op_t *bop, const version_t *stable, version_t *prev)
{
    char *id = NULL;
    imp_pg_result_t *res = NULL;
    const char *params[] = {tenant_of(bop), stable->id};
    memset(prev, 0, sizeof(*prev));
    imp_error_t *err = imp_pg_exec_cached(bop->op.pg, SQL_PREVIOUS, 2, params, &res);
    if (err == NULL && imp_pg_result_rows(res) == 1 && !imp_pg_result_is_null(res, 0, 0))
        id = imp_strdup(imp_pg_result_value(res, 0, 0));
    imp_pg_result_free(res);
    if (err == NULL && id != NULL)
        err = version_query(bop, SQL_VERSION_BY_ID, id, prev);
    free(id);
    return err;
}

static imp_error_t *rollback(bot_op_t *bop, control_outcome_t *out)
{
    bool ok = false;
    version_t stable, canary, prev;
    imp_error_t *err = prepare(bop, out, &ok);
    if (err != NULL || !ok)
        return err;
    err = version_in_state(bop, "stable", &stable);
    if (err == NULL)
        err = version_in_state(bop, "canary", &canary);
    if (err == NULL && !stable.exists)
        control_fail(out, "bot %s has no stable version to roll back", bop->b.slug);
    if (err == NULL && stable.exists)
        err = previous_of(bop, &stable, &prev);
    if (err == NULL && stable.exists && !prev.exists)
        control_fail(out,
                     "bot %s: nothing to roll back to: version %lld was its first stable version",
                     bop->b.slug, stable.number);
    if (err != NULL || !stable.exists || !prev.exists)
        return err;
    json_t *before = pointers(&stable, &canary);
    err = set_state(bop, &stable, "archived");
    if (err == NULL)
        err = set_state(bop, &prev, "stable");
    if (err == NULL)
        err = release(bop, "stable", "rollback", &prev, &stable);
    if (strcmp(prev.state, "canary") == 0)
        canary.exists = false;
    if (err == NULL)
        err = audit(bop, "bot.rollback", before, pointers(&prev, &canary));
    else
        json_decref(before);
    if (err == NULL)
        err = publish_changed(bop, prev.number);
    if (err == NULL)
        control_succeed(out, publish_result(bop, &prev, "stable", &stable, true),
                        "bot %s: rolled back to version %lld (version %lld archived)", bop->b.slug,
                        prev.number, stable.number);
    return err;
}

/* ---- release channel ------------------------------------------------------------------------ */

/* "version 2 (canary)", "version 1 (stable)", or how the tenant is answered without one. */
static void describe(const version_t *v, const char *channel, char *buf, size_t cap)
{
    if (!v->exists)
        snprintf(buf, cap, "no bot version yet: answered from tenants.settings");
    else if (strcmp(channel, "canary") == 0 && strcmp(v->state, "stable") == 0)
        snprintf(buf, cap, "no canary version: answered by the stable version %lld", v->number);
    else
        snprintf(buf, cap, "answered by version %lld (%s)", v->number, v->state);
}

static imp_error_t *channel_set(bot_op_t *bop, control_outcome_t *out)
{
    bool ok = false;
    version_t v;
    imp_error_t *err = prepare(bop, out, &ok);
    if (err == NULL && ok)
        err = answering(bop, bop->b.channel, &v);
    if (err != NULL || !ok)
        return err;
    char what[160];
    describe(&v, bop->b.channel, what, sizeof(what));
    json_t *r = bot_result(bop);
    json_object_update_new(r, json_pack("{s:s, s:o, s:b}", "channel", bop->b.channel, "answering",
                                        number_or_null(&v), "changed",
                                        strcmp(bop->channel, bop->b.channel) != 0));
    if (strcmp(bop->channel, bop->b.channel) == 0) {
        control_succeed(out, r, "tenant %s is already on the %s channel: %s", bop->b.slug,
                        bop->b.channel, what);
        return NULL;
    }
    const char *params[] = {tenant_of(bop), bop->b.channel};
    err = imp_pg_exec_cached(bop->op.pg, SQL_CHANNEL_SET, 2, params, NULL);
    if (err == NULL)
        err = audit(bop, "bot.channel", json_pack("{s:s}", "release_channel", bop->channel),
                    json_pack("{s:s, s:o}", "release_channel", bop->b.channel, "answering",
                              number_or_null(&v)));
    if (err == NULL)
        err = publish_changed(bop, v.exists ? v.number : 0);
    if (err == NULL)
        control_succeed(out, r, "tenant %s is on the %s channel: %s", bop->b.slug, bop->b.channel,
                        what);
    else
        json_decref(r);
    return err;
}

/* ---- the handler ---------------------------------------------------------------------------- */

typedef imp_error_t *(*bot_fn)(bot_op_t *bop, control_outcome_t *out);

static const bot_fn bot_fns[CONTROL_BOT_COUNT] = {draft, publish, rollback, channel_set};

imp_error_t *control_bot_handle(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, void *user)
{
    int cmd = control_bot_cmd_of_type(ev->type);
    assert(cmd >= 0);
    if (!control_uuid_valid(ev->tenantid))
        return imp_error_new(IMP_ERR_POISON, "bad_command",
                             "tenantid is not a tenant id (a lowercase UUID)");
    bot_op_t bop = {.op = {.ctx = ctx, .ev = ev, .c = user}, .cmd = (control_bot_cmd_t)cmd};
    imp_error_t *err = control_bot_data_parse(bop.cmd, ev->data, &bop.b);
    if (err != NULL)
        return err;
    bop.op.pg = imp_worker_ctx_pg(ctx);
    bop.op.d.slug = bop.b.slug;
    bop.op.d.actor = bop.b.actor;
    control_outcome_t out = {0};
    err = bot_fns[cmd](&bop, &out);
    if (err == NULL)
        err = control_record_outcome(&bop.op, &out);
    if (err == NULL && out.failed)
        IMP_LOG_WARN("command failed", IMP_LS("type", ev->type), IMP_LS("slug", bop.b.slug),
                     IMP_LS("actor", bop.b.actor), IMP_LS("reason", out.error));
    else if (err == NULL)
        IMP_LOG_INFO("command applied", IMP_LS("type", ev->type), IMP_LS("slug", bop.b.slug),
                     IMP_LS("actor", bop.b.actor),
                     IMP_LS("outcome", json_string_value(json_object_get(out.result, "message"))));
    control_outcome_dispose(&out);
    return err;
}
