/* Helpers shared by the provider adapters: requests, URLs, secrets, answers. */
#include "send.h"

#include "imp/mem.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void send_req_header(send_req_t *req, const char *fmt, ...)
{
    if (req->nheaders >= SEND_MAX_HEADERS)
        abort(); /* a bug in an adapter */
    va_list ap;
    va_start(ap, fmt);
    char *line = NULL;
    if (vasprintf(&line, fmt, ap) < 0)
        abort();
    va_end(ap);
    req->headers[req->nheaders++] = line;
    req->headers[req->nheaders] = NULL;
}

void send_req_dispose(send_req_t *req)
{
    free(req->url);
    if (req->body != NULL)
        imp_crypto_wipe(req->body, strlen(req->body));
    free(req->body);
    for (size_t i = 0; i < req->nheaders; i++) {
        imp_crypto_wipe(req->headers[i], strlen(req->headers[i]));
        free(req->headers[i]);
    }
    memset(req, 0, sizeof(*req));
}

char *send_url_join(const char *base, const char *path)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    while (*path == '/')
        path++;
    return imp_asprintf("%.*s/%s", (int)n, base, path);
}

imp_error_t *send_secret(const send_channel_t *ch, const char *name, const char **out)
{
    const char *v = json_string_value(json_object_get(ch->secrets, name));
    if (v == NULL || v[0] == '\0')
        return imp_error_new(IMP_ERR_POISON, "secret_missing", "the channel has no secret %s",
                             name);
    *out = v;
    return NULL;
}

char *send_answer_excerpt(const char *body, size_t len)
{
    if (body == NULL)
        return imp_strdup("");
    if (len > SEND_ANSWER_MAX)
        len = SEND_ANSWER_MAX;
    char *s = imp_strndup(body, len);
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    return s;
}

char *send_json_take(json_t *obj)
{
    char *s = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (s == NULL)
        abort();
    return s;
}
