/* Integration helper of it_control_*.sh: open a sealed token (imp_crypto_open).
 *
 *   control_unseal AAD < TOKEN
 *
 * Key from IMP_SECRET_KEY. Prints the plaintext and exits 0, or prints the error's code
 * (secret_auth, secret_malformed) to stderr and exits 1. */
#include "imp/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: control_unseal AAD < TOKEN\n");
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
    static char token[256 * 1024];
    size_t n = fread(token, 1, sizeof(token) - 1, stdin);
    while (n > 0 && (token[n - 1] == '\n' || token[n - 1] == '\r'))
        n--;
    token[n] = '\0';
    uint8_t *plain = NULL;
    size_t len = 0;
    err = imp_crypto_open(key, token, argv[1], strlen(argv[1]), &plain, &len);
    if (err != NULL) {
        fprintf(stderr, "%s\n", imp_error_code(err));
        imp_error_free(err);
        return 1;
    }
    fwrite(plain, 1, len, stdout);
    fputc('\n', stdout);
    imp_crypto_wipe(plain, len);
    free(plain);
    return 0;
}
