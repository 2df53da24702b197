/* Usage events (imp/usage.h). */
#include "imp/usage.h"

#include "imp/opid.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static bool counter_name_ok(const char *s)
{
    if (s == NULL || s[0] == '\0' || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
            return false;
    return true;
}

static void set_opt(json_t *o, const char *name, const char *v)
{
    json_object_set_new(o, name, v != NULL && v[0] != '\0' ? json_string(v) : json_null());
}

imp_error_t *imp_usage_event(const imp_envelope_t *cause, const char *source, const imp_usage_t *u,
                             imp_envelope_t *out)
{
    imp_envelope_init(out);
    if (u->kind == NULL || (strcmp(u->kind, "turn") != 0 && strcmp(u->kind, "message") != 0))
        return imp_error_new(IMP_ERR_POISON, "bad_usage", "usage kind must be turn or message");
    if (u->ref == NULL || u->ref[0] == '\0')
        return imp_error_new(IMP_ERR_POISON, "bad_usage", "usage ref is missing");
    json_t *counters = json_object();
    for (size_t i = 0; i < u->ncounters; i++) {
        if (!counter_name_ok(u->counters[i].name) || u->counters[i].value < 0) {
            json_decref(counters);
            return imp_error_new(IMP_ERR_POISON, "bad_usage",
                                 "usage counter %zu must be a [a-z_] name with a value >= 0", i);
        }
        json_object_set_new(counters, u->counters[i].name, json_integer(u->counters[i].value));
    }
    char step[32], id[IMP_UUID_STR_SIZE];
    snprintf(step, sizeof(step), "usage:%s", u->kind);
    imp_error_t *err = imp_opid_derive(cause->id, step, id);
    if (err != NULL) {
        json_decref(counters);
        return err;
    }
    json_t *data =
        json_pack("{s:s, s:s, s:o}", "kind", u->kind, "ref", u->ref, "counters", counters);
    set_opt(data, "conversation_id", u->conversation_id);
    set_opt(data, "channel", u->channel);
    set_opt(data, "purpose", u->purpose);
    set_opt(data, "model", u->model);
    return imp_envelope_derive(out, cause, id, source, IMP_TYPE_USAGE, data);
}

size_t imp_usage_chars(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; p != NULL && *p; p++)
        if ((*p & 0xC0) != 0x80)
            n++;
    return n;
}
