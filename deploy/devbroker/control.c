/* The control channel: a TCP listener on 127.0.0.1 serving line commands, and the wait for
 * SIGTERM/SIGINT, in one ppoll loop on the main thread. */
#include "devbroker.h"

#include "imp/log.h"
#include "imp/mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 64
#define MAX_LINE 1024
#define REPLY_SIZE 1200

typedef struct {
    int fd;
    size_t len;
    char buf[MAX_LINE];
} client_t;

struct devbroker_control {
    int listen_fd; /* -1: no control channel */
    client_t *clients[MAX_CLIENTS];
};

static int listen_loopback(int port, imp_error_t **err)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *err = imp_error_new(IMP_ERR_FATAL, "devbroker_control", "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0) {
        *err = imp_error_new(IMP_ERR_FATAL, "devbroker_control",
                             "cannot listen on 127.0.0.1:%d: %s", port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

devbroker_control_t *devbroker_control_new(int port, imp_error_t **err)
{
    *err = NULL;
    int fd = -1;
    if (port != 0 && (fd = listen_loopback(port, err)) < 0)
        return NULL;
    devbroker_control_t *ctl = imp_calloc(1, sizeof(*ctl));
    ctl->listen_fd = fd;
    return ctl;
}

static void client_close(devbroker_control_t *ctl, int i)
{
    close(ctl->clients[i]->fd);
    free(ctl->clients[i]);
    ctl->clients[i] = NULL;
}

void devbroker_control_free(devbroker_control_t *ctl)
{
    if (ctl == NULL)
        return;
    for (int i = 0; i < MAX_CLIENTS; i++) {
        if (ctl->clients[i] != NULL)
            client_close(ctl, i);
    }
    if (ctl->listen_fd >= 0)
        close(ctl->listen_fd);
    free(ctl);
}

static void accept_clients(devbroker_control_t *ctl)
{
    int fd;
    while ((fd = accept4(ctl->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
        int slot = -1;
        for (int i = 0; i < MAX_CLIENTS && slot < 0; i++) {
            if (ctl->clients[i] == NULL)
                slot = i;
        }
        if (slot < 0) {
            static const char busy[] = "error: too many control connections\n";
            (void)!send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL);
            close(fd);
            continue;
        }
        ctl->clients[slot] = imp_calloc(1, sizeof(client_t));
        ctl->clients[slot]->fd = fd;
    }
}

/* Replies are short; a client that does not read them is dropped rather than buffered. */
static int send_line(int fd, const char *text)
{
    char out[REPLY_SIZE + 1];
    size_t len = strlen(text);
    memcpy(out, text, len);
    out[len++] = '\n';
    return send(fd, out, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* Run every complete line in the buffer; -1 when the client must be dropped. */
static int run_lines(client_t *cl, devbroker_cluster_t *cluster)
{
    char *nl;
    while ((nl = memchr(cl->buf, '\n', cl->len)) != NULL) {
        *nl = '\0';
        char reply[REPLY_SIZE];
        devbroker_command_run(cluster, cl->buf, reply, sizeof(reply));
        if (send_line(cl->fd, reply) != 0)
            return -1;
        size_t used = (size_t)(nl - cl->buf) + 1;
        memmove(cl->buf, nl + 1, cl->len - used);
        cl->len -= used;
    }
    if (cl->len == sizeof(cl->buf)) {
        send_line(cl->fd, "error: line too long");
        return -1;
    }
    return 0;
}

static int serve_client(client_t *cl, devbroker_cluster_t *cluster)
{
    ssize_t got = recv(cl->fd, cl->buf + cl->len, sizeof(cl->buf) - cl->len, 0);
    if (got < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (got == 0 && cl->len > 0) {
        /* The last command may come without its newline before the client closes. */
        cl->buf[cl->len++] = '\n';
        run_lines(cl, cluster);
    }
    if (got <= 0)
        return -1;
    cl->len += (size_t)got;
    return run_lines(cl, cluster);
}

void devbroker_control_run(devbroker_control_t *ctl, devbroker_cluster_t *cluster,
                           volatile sig_atomic_t *stop)
{
    sigset_t waitmask;
    sigemptyset(&waitmask);
    while (!*stop) {
        struct pollfd pfd[MAX_CLIENTS + 1];
        int owner[MAX_CLIENTS + 1];
        nfds_t n = 0;
        if (ctl->listen_fd >= 0) {
            pfd[n] = (struct pollfd){.fd = ctl->listen_fd, .events = POLLIN};
            owner[n++] = -1;
        }
        for (int i = 0; i < MAX_CLIENTS; i++) {
            if (ctl->clients[i] == NULL)
                continue;
            pfd[n] = (struct pollfd){.fd = ctl->clients[i]->fd, .events = POLLIN};
            owner[n++] = i;
        }
        /* Signals are blocked except inside ppoll, so a SIGTERM cannot slip in between the
         * check of *stop and the wait. */
        if (ppoll(pfd, n, NULL, &waitmask) < 0)
            continue;
        for (nfds_t k = 0; k < n; k++) {
            if (pfd[k].revents == 0)
                continue;
            if (owner[k] < 0)
                accept_clients(ctl);
            else if (serve_client(ctl->clients[owner[k]], cluster) != 0)
                client_close(ctl, owner[k]);
        }
    }
}
