/* imperium-control: the worker that applies tenant lifecycle, knowledge-base and bot
 * commands (`serve`, the default) and its own command-line client (`tenant`, `channel`,
 * `secret`, `kb`, `bot`). docs/tenants.md, docs/knowledge-base-operations.md,
 * docs/bot-versions.md. */
#include "bot.h"
#include "control.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static bool is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0 || strcmp(arg, "help") == 0;
}

static bool is_client(const char *arg)
{
    return strcmp(arg, "tenant") == 0 || strcmp(arg, "channel") == 0 ||
           strcmp(arg, "secret") == 0 || strcmp(arg, "kb") == 0 || strcmp(arg, "bot") == 0;
}

static void print_help(void)
{
    cli_print_usage(stdout);
    cli_kb_print_usage(stdout);
    cli_bot_print_usage(stdout);
    printf("\n");
    control_serve_help(stdout);
    printf("\n");
    control_cli_help(stdout);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "serve") == 0)
        return control_serve(argc, argv);
    if (is_help(argv[1])) {
        print_help();
        return CONTROL_EXIT_OK;
    }
    if (is_client(argv[1])) {
        signal(SIGPIPE, SIG_IGN);
        bool kb = strcmp(argv[1], "kb") == 0, bot = strcmp(argv[1], "bot") == 0;
        for (int i = 2; i < argc; i++) {
            if (is_help(argv[i])) {
                if (kb)
                    cli_kb_print_usage(stdout);
                else if (bot)
                    cli_bot_print_usage(stdout);
                else
                    cli_print_usage(stdout);
                return CONTROL_EXIT_OK;
            }
        }
        if (bot)
            return control_cli_bot(argc, argv);
        return kb ? control_cli_kb(argc, argv) : control_cli(argc, argv);
    }
    fprintf(stderr, "%s: unknown command \"%s\"\n", CONTROL_BINARY, argv[1]);
    cli_print_usage(stderr);
    cli_kb_print_usage(stderr);
    cli_bot_print_usage(stderr);
    return CONTROL_EXIT_USAGE;
}
