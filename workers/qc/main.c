/* imperium-qc: drafts in, the customer's answer (or a safe reply and an escalation) out. */
#include "qc.h"

#include "imp/mem.h"
#include "imp/worker.h"

#include <stddef.h>

typedef struct {
    imp_worker_settings_t rt;
} settings_t;

static const imp_config_entry_t config_table[] = {
    IMP_WORKER_CONFIG(settings_t, rt),
};

static settings_t settings;

int main(int argc, char **argv)
{
    static const char *const topics[] = {"imp.draft.v1"};
    imp_worker_def_t def = {
        .name = "qc",
        .topics = topics,
        .ntopics = 1,
        .handler = qc_handle,
    };
    return imp_worker_main(argc, argv, "imperium-qc",
                           "Checks drafts against the tenant's rules: the answer, or a safe reply "
                           "and an escalation to the manager chat.",
                           config_table, IMP_ARRAY_LEN(config_table), &settings,
                           offsetof(settings_t, rt), &def);
}
