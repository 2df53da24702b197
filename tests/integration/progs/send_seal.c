/* Integration helper of it_send_*.sh: seal stdin with IMP_SECRET_KEY (imp_crypto_seal).
 *
 *   send_seal AAD < PLAINTEXT     prints the token */
#include "imp/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: send_seal AAD < PLAINTEXT\n");
        return 2;
    }
    const char *key_text = getenv("IMP_SECRET_KEY");
    uint8_t key[IMP_CRYPTO_KEY_LEN];
    imp_error_t *err = imp_crypto_key_parse("IMP_SECRET_KEY", key_text ? key_text : "", key);
    if (err != NULL) {
        fprintf(stderr, "%s\n", imp_error_message(err));
        imp_error_free(err);
        return 2;
    }
    static char plain[64 * 1024];
    size_t n = fread(plain, 1, sizeof(plain), stdin);
    char *token = NULL;
    err = imp_crypto_seal(key, plain, n, argv[1], strlen(argv[1]), &token);
    if (err != NULL) {
        fprintf(stderr, "%s\n", imp_error_message(err));
        imp_error_free(err);
        return 1;
    }
    printf("%s\n", token);
    free(token);
    return 0;
}
