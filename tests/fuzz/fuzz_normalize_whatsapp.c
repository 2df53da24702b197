/* libFuzzer: the whatsapp normalizer on arbitrary bodies. */
#include "fuzz_normalize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_normalize(ING_CH_WHATSAPP, data, size);
}
