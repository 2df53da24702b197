/* The sink: nothing leaves; the outbound row is the record (the test chat, and providers
 * whose base URL is configured empty). */
#include "send.h"

const send_provider_t send_provider_sink = {
    .name = "sink", .idempotent = true, .build = NULL, .message_id = NULL};
