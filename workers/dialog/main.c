/* imperium-dialog: conversations, messages, coalescing into turns, handover (docs/dialog.md). */
#include "dialog.h"

#include "imp/log.h"
#include "imp/mem.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    imp_worker_settings_t rt;
    long long tick_ms;
    long long tick_batch;
} settings_t;

static const imp_config_entry_t config_table[] = {
    IMP_WORKER_CONFIG(settings_t, rt),
    {"IMP_DIALOG_TICK", IMP_CFG_DURATION, "100ms", 10, 10000, 0,
     "how often the scheduler looks for due bursts (the coalescing window's resolution)",
     offsetof(settings_t, tick_ms)},
    {"IMP_DIALOG_TICK_BATCH", IMP_CFG_INT, "200", 1, 10000, 0,
     "due bursts one scheduler tick emits at most", offsetof(settings_t, tick_batch)},
};

static settings_t settings;

static imp_error_t *handle(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, void *user)
{
    (void)user;
    if (strcmp(ev->type, "imp.inbound.message.v1") == 0)
        return dialog_on_message(ctx, ev);
    if (strcmp(ev->type, "imp.delivery.status.v1") == 0)
        return dialog_on_delivery(ctx, ev);
    if (strcmp(ev->type, "imp.inbound.status.v1") == 0)
        return dialog_on_inbound_status(ctx, ev);
    /* Edits, callbacks and other events: nothing to do yet (docs/dialog.md). */
    IMP_LOG_DEBUG("event type ignored", IMP_LS("type", ev->type));
    return NULL;
}

static const char summary[] =
    "Conversations and messages from imp.inbound.v1, coalesced into turns on imp.turn.v1;\n"
    "handover to the tenant's Telegram manager chat; delivery state from imp.delivery.v1\n"
    "(docs/dialog.md).";

int main(int argc, char **argv)
{
    static const char *const topics[] = {"imp.inbound.v1", "imp.delivery.v1"};
    imp_config_init_or_exit(argc, argv, "imperium-dialog", summary, config_table,
                            IMP_ARRAY_LEN(config_table), &settings);
    int rc = 2;
    imp_log_level_t level;
    if (imp_log_level_parse(settings.rt.log_level, &level) != 0) {
        fprintf(stderr, "imperium-dialog: IMP_LOG_LEVEL must be debug, info, warn or error\n");
        goto out;
    }
    imp_log_init("imperium-dialog", level);
    dialog_config.tick_batch = settings.tick_batch;
    imp_worker_def_t def = {
        .name = "dialog",
        .topics = topics,
        .ntopics = IMP_ARRAY_LEN(topics),
        .handler = handle,
        .on_tick = dialog_tick,
        .tick_ms = settings.tick_ms,
    };
    imp_worker_t *w = NULL;
    imp_error_t *err = imp_worker_new(&def, &settings.rt, &w);
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
    imp_config_dispose(config_table, IMP_ARRAY_LEN(config_table), &settings);
    return rc;
}
