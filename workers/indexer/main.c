/* imperium-indexer: builds, promotes, rolls back and evaluates knowledge-base versions from
 * the requests imperium-control forwards on imp.kb.v1 (docs/knowledge-base-operations.md). */
#include "indexer.h"

#include "imp/config.h"
#include "imp/log.h"
#include "imp/mem.h"

#include <stddef.h>
#include <stdio.h>

typedef struct {
    imp_worker_settings_t rt;
    imp_embed_settings_t embed;
    long long eval_k;
} settings_t;

static const imp_config_entry_t config_table[] = {
    IMP_WORKER_CONFIG(settings_t, rt),
    IMP_EMBED_CONFIG(settings_t, embed),
    {"IMP_KB_EVAL_K", IMP_CFG_INT, "3", 1, 50, 0,
     "k of hit@k in kb eval and the promotion gate, unless the request or the tenant's "
     "settings.kb_eval_k says",
     offsetof(settings_t, eval_k)},
};

static const char summary[] =
    "Applies knowledge-base requests from imp.kb.v1: builds a draft version from a tenant's\n"
    "sources (chunk, embed, insert in one transaction), promotes, rolls back, evaluates; records\n"
    "their outcome in operations and publishes imp.control.v1 when a version changes.\n"
    "It handles one request per transaction whatever IMP_WORKER_BATCH says: builds are heavy.";

int main(int argc, char **argv)
{
    static const char *const topics[] = {INDEXER_TOPIC_KB};
    settings_t s = {0};
    indexer_t ix = {0};
    imp_config_init_or_exit(argc, argv, INDEXER_BINARY, summary, config_table,
                            IMP_ARRAY_LEN(config_table), &s);
    imp_log_level_t level;
    int rc = 2;
    if (imp_log_level_parse(s.rt.log_level, &level) != 0) {
        fprintf(stderr, "%s: IMP_LOG_LEVEL must be debug, info, warn or error\n", INDEXER_BINARY);
        goto out;
    }
    imp_log_init(INDEXER_BINARY, level);
    imp_error_t *err = imp_embedder_from_settings(&s.embed, &ix.emb);
    if (err != NULL) {
        fprintf(stderr, "%s: %s\n", INDEXER_BINARY, imp_error_message(err));
        imp_error_free(err);
        goto out;
    }
    ix.eval_k = s.eval_k;
    s.rt.batch_max = 1;
    IMP_LOG_INFO("embedder", IMP_LS("name", imp_embedder_name(ix.emb)),
                 IMP_LS("model", imp_embedder_model(ix.emb)),
                 IMP_LI("dim", imp_embedder_dim(ix.emb)));
    imp_worker_def_t def = {
        .name = INDEXER_WORKER,
        .topics = topics,
        .ntopics = IMP_ARRAY_LEN(topics),
        .handler = indexer_handle,
        .user = &ix,
    };
    imp_worker_t *w = NULL;
    err = imp_worker_new(&def, &s.rt, &w);
    if (err == NULL) {
        imp_worker_handle_signals(w);
        err = imp_worker_run(w);
    } else {
        IMP_LOG_ERROR("could not start", IMP_LE(err));
    }
    rc = err == NULL ? 0 : 1;
    imp_error_free(err);
    imp_worker_free(w);
out:
    imp_embedder_free(ix.emb);
    imp_config_dispose(config_table, IMP_ARRAY_LEN(config_table), &s);
    return rc;
}
