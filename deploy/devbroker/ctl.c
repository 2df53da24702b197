/* Client mode: send one control command to a running devbroker and print its reply. */
#include "devbroker.h"

#include "imp/mem.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CTL_TIMEOUT_MS 10000

/* Connect to "host:port"; -1 (with a message on stderr) when it cannot. */
static int ctl_connect(const char *address)
{
    const char *colon = strrchr(address, ':');
    if (colon == NULL || colon == address || colon[1] == '\0') {
        fprintf(stderr, "imperium-devbroker ctl: address must be host:port, not \"%s\"\n", address);
        return -1;
    }
    char *host = imp_strndup(address, (size_t)(colon - address));
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    free(host);
    if (rc != 0) {
        fprintf(stderr, "imperium-devbroker ctl: %s: %s\n", address, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        fprintf(stderr, "imperium-devbroker ctl: cannot connect to %s: %s\n", address,
                strerror(errno));
    return fd;
}

/* Read one line (without its newline) into buf; 0 on success. */
static int read_line(int fd, char *buf, size_t size)
{
    size_t len = 0;
    while (len + 1 < size) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, CTL_TIMEOUT_MS) <= 0)
            return -1;
        ssize_t got = recv(fd, buf + len, 1, 0);
        if (got <= 0)
            return -1;
        if (buf[len] == '\n')
            break;
        len++;
    }
    buf[len] = '\0';
    return 0;
}

int devbroker_ctl_main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: imperium-devbroker ctl <host:port> <command words...>\n");
        return 2;
    }
    int fd = ctl_connect(argv[2]);
    if (fd < 0)
        return 2;
    size_t len = 1;
    for (int i = 3; i < argc; i++)
        len += strlen(argv[i]) + 1;
    char *line = imp_calloc(1, len);
    for (int i = 3; i < argc; i++) {
        strcat(line, argv[i]);
        strcat(line, i + 1 < argc ? " " : "\n");
    }
    char reply[2048];
    int rc = 2;
    if (send(fd, line, strlen(line), MSG_NOSIGNAL) == (ssize_t)strlen(line) &&
        read_line(fd, reply, sizeof(reply)) == 0) {
        printf("%s\n", reply);
        rc = strncmp(reply, "ok", 2) == 0 && (reply[2] == '\0' || reply[2] == ' ') ? 0 : 1;
    } else {
        fprintf(stderr, "imperium-devbroker ctl: no reply from %s\n", argv[2]);
    }
    free(line);
    close(fd);
    return rc;
}
