/* Unit tests for table-driven IMP_* configuration. */
#include "imp/config.h"

#include "imp/mem.h"

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    char *dsn;
    char *name;
    long long threads;
    bool verbose;
    long long timeout_ms;
    long long body_max;
    double ratio;
    char *token;
    long long pin;
} settings_t;

#define SECRET_DEFAULT "dev-default-token-XYZ"

static const imp_config_entry_t table[] = {
    {"IMP_T_DSN", IMP_CFG_STRING, NULL, 0, 0, IMP_CFG_SECRET, "Postgres connection string",
     offsetof(settings_t, dsn)},
    {"IMP_T_NAME", IMP_CFG_STRING, "imperium", 0, 0, 0, "instance name",
     offsetof(settings_t, name)},
    {"IMP_T_THREADS", IMP_CFG_INT, "2", 1, 64, 0, "event loops", offsetof(settings_t, threads)},
    {"IMP_T_VERBOSE", IMP_CFG_BOOL, "false", 0, 0, 0, "chatty logs", offsetof(settings_t, verbose)},
    {"IMP_T_TIMEOUT", IMP_CFG_DURATION, "5s", 1, 60000, 0, "request timeout",
     offsetof(settings_t, timeout_ms)},
    {"IMP_T_BODY_MAX", IMP_CFG_SIZE, "1MiB", 1, 16 << 20, 0, "largest request body",
     offsetof(settings_t, body_max)},
    {"IMP_T_RATIO", IMP_CFG_DOUBLE, "0.5", 0, 1, 0, "sampling ratio", offsetof(settings_t, ratio)},
    {"IMP_T_TOKEN", IMP_CFG_STRING, SECRET_DEFAULT, 0, 0, IMP_CFG_SECRET, "bot token",
     offsetof(settings_t, token)},
    {"IMP_T_PIN", IMP_CFG_INT, "7", 0, 100, IMP_CFG_SECRET, "a secret number",
     offsetof(settings_t, pin)},
};
#define NTABLE IMP_ARRAY_LEN(table)

static void env_reset(void)
{
    for (size_t i = 0; i < NTABLE; i++)
        unsetenv(table[i].name);
    setenv("IMP_T_DSN", "postgres://app:pw@db/imperium", 1);
}

/* Load and expect failure; returns the message (caller frees). */
static char *load_fails(void)
{
    settings_t s;
    memset(&s, 0xab, sizeof(s)); /* garbage, as an uninitialised struct would hold */
    imp_error_t *err = imp_config_load(table, NTABLE, &s);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_FATAL);
    ck_assert_str_eq(imp_error_code(err), "config");
    char *msg = imp_strdup(imp_error_message(err));
    imp_error_free(err);
    imp_config_dispose(table, NTABLE, &s); /* safe whichever entry failed */
    return msg;
}

static void assert_fails_naming(const char *var, const char *value, const char *says)
{
    env_reset();
    setenv(var, value, 1);
    char *msg = load_fails();
    ck_assert_msg(strncmp(msg, var, strlen(var)) == 0, "%s=\"%s\": \"%s\" does not name it", var,
                  value, msg);
    ck_assert_msg(strstr(msg, says) != NULL, "%s=\"%s\": \"%s\" lacks \"%s\"", var, value, msg,
                  says);
    ck_assert_msg(strchr(msg, '\n') == NULL, "message is more than one line: %s", msg);
    free(msg);
}

START_TEST(defaults)
{
    env_reset();
    settings_t s;
    memset(&s, 0, sizeof(s));
    ck_assert_ptr_null(imp_config_load(table, NTABLE, &s));
    ck_assert_str_eq(s.dsn, "postgres://app:pw@db/imperium");
    ck_assert_str_eq(s.name, "imperium");
    ck_assert_int_eq(s.threads, 2);
    ck_assert(!s.verbose);
    ck_assert_int_eq(s.timeout_ms, 5000);
    ck_assert_int_eq(s.body_max, 1 << 20);
    ck_assert(s.ratio == 0.5);
    ck_assert_str_eq(s.token, SECRET_DEFAULT);
    ck_assert_int_eq(s.pin, 7);
    imp_config_dispose(table, NTABLE, &s);
    ck_assert_ptr_null(s.dsn);
    ck_assert_ptr_null(s.name);
    ck_assert_ptr_null(s.token);
}
END_TEST

START_TEST(every_type_from_env)
{
    env_reset();
    setenv("IMP_T_NAME", "edge-1", 1);
    setenv("IMP_T_THREADS", "64", 1);
    setenv("IMP_T_VERBOSE", "yes", 1);
    setenv("IMP_T_TIMEOUT", "250ms", 1);
    setenv("IMP_T_BODY_MAX", "64KiB", 1);
    setenv("IMP_T_RATIO", "0.125", 1);
    setenv("IMP_T_TOKEN", "123:abc", 1);
    setenv("IMP_T_PIN", "0", 1);
    settings_t s;
    ck_assert_ptr_null(imp_config_load(table, NTABLE, &s));
    ck_assert_str_eq(s.name, "edge-1");
    ck_assert_int_eq(s.threads, 64);
    ck_assert(s.verbose);
    ck_assert_int_eq(s.timeout_ms, 250);
    ck_assert_int_eq(s.body_max, 65536);
    ck_assert(s.ratio == 0.125);
    ck_assert_str_eq(s.token, "123:abc");
    ck_assert_int_eq(s.pin, 0);
    imp_config_dispose(table, NTABLE, &s);

    /* An empty value is a value for a variable with a default (strings may be cleared). */
    setenv("IMP_T_NAME", "", 1);
    ck_assert_ptr_null(imp_config_load(table, NTABLE, &s));
    ck_assert_str_eq(s.name, "");
    imp_config_dispose(table, NTABLE, &s);
}
END_TEST

START_TEST(required_missing_or_empty)
{
    env_reset();
    unsetenv("IMP_T_DSN");
    char *msg = load_fails();
    ck_assert_str_eq(msg, "IMP_T_DSN is required but not set");
    free(msg);

    setenv("IMP_T_DSN", "", 1);
    msg = load_fails();
    ck_assert_str_eq(msg, "IMP_T_DSN is required but empty");
    free(msg);
}
END_TEST

START_TEST(malformed_values)
{
    static const char *const cases[][2] = {
        {"IMP_T_THREADS", "abc"},
        {"IMP_T_THREADS", "12x"},
        {"IMP_T_THREADS", ""},
        {"IMP_T_THREADS", "1.5"},
        {"IMP_T_THREADS", "99999999999999999999"},
        {"IMP_T_VERBOSE", "maybe"},
        {"IMP_T_VERBOSE", ""},
        {"IMP_T_VERBOSE", "2"},
        {"IMP_T_TIMEOUT", "5 s"},
        {"IMP_T_TIMEOUT", "5sec"},
        {"IMP_T_TIMEOUT", "-1s"},
        {"IMP_T_TIMEOUT", "1.5s"},
        {"IMP_T_TIMEOUT", "1y"},
        {"IMP_T_TIMEOUT", "ms"},
        {"IMP_T_BODY_MAX", "1TiB"},
        {"IMP_T_BODY_MAX", "-5"},
        {"IMP_T_BODY_MAX", "1KB"},
        {"IMP_T_BODY_MAX", "1.5MiB"},
        {"IMP_T_RATIO", "abc"},
        {"IMP_T_RATIO", "nan"},
        {"IMP_T_RATIO", "inf"},
        {"IMP_T_RATIO", "0.5x"},
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++)
        assert_fails_naming(cases[i][0], cases[i][1], "is not a valid");
}
END_TEST

START_TEST(malformed_echo_is_one_line)
{
    assert_fails_naming("IMP_T_THREADS", "12\nIMP_FAKE=1", "\"12?IMP_FAKE=1\"");
    assert_fails_naming("IMP_T_THREADS", "\x1b[31mred", "\"?[31mred\"");

    char big[300];
    memset(big, '9', sizeof(big) - 2);
    big[sizeof(big) - 2] = 'x';
    big[sizeof(big) - 1] = '\0';
    env_reset();
    setenv("IMP_T_THREADS", big, 1);
    char *msg = load_fails();
    ck_assert_msg(strlen(msg) < 150, "too long: %s", msg);
    ck_assert_ptr_nonnull(strstr(msg, "...\""));
    free(msg);
}
END_TEST

START_TEST(bounds)
{
    static const char *const out[][2] = {
        {"IMP_T_THREADS", "0"},      {"IMP_T_THREADS", "65"},  {"IMP_T_THREADS", "-1"},
        {"IMP_T_TIMEOUT", "61s"},    {"IMP_T_TIMEOUT", "0ms"}, {"IMP_T_TIMEOUT", "2h"},
        {"IMP_T_BODY_MAX", "17MiB"}, {"IMP_T_BODY_MAX", "0"},  {"IMP_T_RATIO", "1.5"},
        {"IMP_T_RATIO", "-0.1"},
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(out); i++)
        assert_fails_naming(out[i][0], out[i][1], "must be between");
    assert_fails_naming("IMP_T_THREADS", "65", "must be between 1 and 64");
    /* Bounds print exactly, not as 1.67772e+07. */
    assert_fails_naming("IMP_T_BODY_MAX", "17MiB", "must be between 1 and 16777216");
    assert_fails_naming("IMP_T_RATIO", "2", "must be between 0 and 1");

    static const char *const in[][2] = {
        {"IMP_T_THREADS", "1"}, {"IMP_T_THREADS", "64"},     {"IMP_T_TIMEOUT", "1m"},
        {"IMP_T_TIMEOUT", "1"}, {"IMP_T_BODY_MAX", "16MiB"}, {"IMP_T_RATIO", "0"},
        {"IMP_T_RATIO", "1"},
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(in); i++) {
        env_reset();
        setenv(in[i][0], in[i][1], 1);
        settings_t s;
        imp_error_t *err = imp_config_load(table, NTABLE, &s);
        ck_assert_msg(err == NULL, "%s=%s rejected: %s", in[i][0], in[i][1],
                      err ? imp_error_message(err) : "");
        imp_config_dispose(table, NTABLE, &s);
    }
}
END_TEST

START_TEST(secrets_never_in_messages)
{
    env_reset();
    setenv("IMP_T_PIN", "hunter2-secret", 1);
    char *msg = load_fails();
    ck_assert_str_eq(msg, "IMP_T_PIN is not a valid integer");
    free(msg);

    setenv("IMP_T_PIN", "424242", 1);
    msg = load_fails();
    ck_assert_ptr_nonnull(strstr(msg, "IMP_T_PIN"));
    ck_assert_ptr_null(strstr(msg, "424242"));
    free(msg);

    /* A failure after the secret DSN was read does not mention it either. */
    env_reset();
    setenv("IMP_T_THREADS", "x", 1);
    msg = load_fails();
    ck_assert_ptr_null(strstr(msg, "app:pw"));
    free(msg);
}
END_TEST

START_TEST(duration_units)
{
    static const struct {
        const char *text;
        long long ms;
    } ok[] = {
        {"0", 0},        {"100", 100}, {"250ms", 250},     {"2s", 2000},     {"5m", 300000},
        {"1h", 3600000}, {"0s", 0},    {"36h", 129600000}, {"1d", 86400000}, {"14d", 1209600000},
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(ok); i++) {
        long long v = -1;
        ck_assert_msg(imp_config_parse_duration_ms(ok[i].text, &v) == 0, "%s", ok[i].text);
        ck_assert_int_eq(v, ok[i].ms);
    }
    static const char *const bad[] = {"",
                                      "ms",
                                      "1w",
                                      "1D",
                                      "1.5s",
                                      "-1s",
                                      "1 s",
                                      "1S",
                                      "1sec",
                                      "1hh",
                                      "9223372036854775807h",
                                      "99999999999999999999"};
    for (size_t i = 0; i < IMP_ARRAY_LEN(bad); i++) {
        long long v = -1;
        ck_assert_msg(imp_config_parse_duration_ms(bad[i], &v) == -1, "accepted %s", bad[i]);
    }
    long long v = 0;
    ck_assert_int_eq(imp_config_parse_duration_ms(NULL, &v), -1);
}
END_TEST

START_TEST(size_units)
{
    static const struct {
        const char *text;
        long long bytes;
    } ok[] = {
        {"512", 512}, {"2B", 2},    {"64KiB", 65536}, {"1MiB", 1048576},    {"1GiB", 1073741824},
        {"1k", 1000}, {"1K", 1024}, {"3M", 3145728},  {"2G", 2147483648LL}, {"0", 0},
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(ok); i++) {
        long long v = -1;
        ck_assert_msg(imp_config_parse_size(ok[i].text, &v) == 0, "%s", ok[i].text);
        ck_assert_int_eq(v, ok[i].bytes);
    }
    static const char *const bad[] = {
        "", "KiB", "1KB", "1kib", "1.5MiB", "-1", "1 MiB", "1TiB", "9223372036854775807GiB"};
    for (size_t i = 0; i < IMP_ARRAY_LEN(bad); i++) {
        long long v = -1;
        ck_assert_msg(imp_config_parse_size(bad[i], &v) == -1, "accepted %s", bad[i]);
    }
}
END_TEST

START_TEST(bool_values)
{
    static const char *const yes[] = {"1", "true", "TRUE", "yes", "Yes", "on", "ON"};
    static const char *const no[] = {"0", "false", "False", "no", "NO", "off", "Off"};
    static const char *const bad[] = {"", "2", "y", "n", "tru", "truee", " true", "enabled"};
    bool b = false;
    for (size_t i = 0; i < IMP_ARRAY_LEN(yes); i++) {
        b = false;
        ck_assert_int_eq(imp_config_parse_bool(yes[i], &b), 0);
        ck_assert(b);
    }
    for (size_t i = 0; i < IMP_ARRAY_LEN(no); i++) {
        b = true;
        ck_assert_int_eq(imp_config_parse_bool(no[i], &b), 0);
        ck_assert(!b);
    }
    for (size_t i = 0; i < IMP_ARRAY_LEN(bad); i++)
        ck_assert_msg(imp_config_parse_bool(bad[i], &b) == -1, "accepted \"%s\"", bad[i]);
}
END_TEST

static char *help_text(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    imp_config_print_help(f, "imperium-test", "A test binary.", table, NTABLE);
    fclose(f);
    return buf;
}

START_TEST(help_output)
{
    char *help = help_text();
    ck_assert_ptr_nonnull(strstr(help, "usage: imperium-test"));
    ck_assert_ptr_nonnull(strstr(help, "A test binary."));
    for (size_t i = 0; i < NTABLE; i++) {
        ck_assert_msg(strstr(help, table[i].name) != NULL, "%s missing", table[i].name);
        ck_assert_msg(strstr(help, table[i].description) != NULL, "%s description missing",
                      table[i].name);
    }
    ck_assert_ptr_nonnull(strstr(help, "IMP_T_DSN (string, required)"));
    ck_assert_ptr_nonnull(strstr(help, "IMP_T_NAME (string, default \"imperium\")"));
    ck_assert_ptr_nonnull(strstr(help, "IMP_T_THREADS (integer, 1..64, default \"2\")"));
    ck_assert_ptr_nonnull(strstr(help, "IMP_T_TIMEOUT (duration, 1..60000, default \"5s\")"));
    ck_assert_ptr_nonnull(strstr(help, "IMP_T_BODY_MAX (size, 1..16777216, default \"1MiB\")"));
    ck_assert_ptr_nonnull(strstr(help, "IMP_T_TOKEN (string, secret)"));
    ck_assert_ptr_null(strstr(help, SECRET_DEFAULT));
    ck_assert_ptr_null(strstr(help, "IMP_T_PIN (integer, 0..100, default"));
    free(help);
}
END_TEST

/* Run imp_config_init_or_exit in a child; capture its stdout and stderr and exit status. */
static int run_init(char *arg, char **out, char **err)
{
    int po[2], pe[2];
    ck_assert_int_eq(pipe(po), 0);
    ck_assert_int_eq(pipe(pe), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(po[1], STDOUT_FILENO);
        dup2(pe[1], STDERR_FILENO);
        char *argv[] = {"imperium-test", arg, NULL};
        settings_t s;
        imp_config_init_or_exit(arg ? 2 : 1, argv, "imperium-test", "A test binary.", table, NTABLE,
                                &s);
        imp_config_dispose(table, NTABLE, &s);
        _exit(42); /* loaded fine */
    }
    close(po[1]);
    close(pe[1]);
    FILE *fo = fdopen(po[0], "r"), *fe = fdopen(pe[0], "r");
    size_t cap = 0;
    *out = NULL;
    *err = NULL;
    ssize_t n = getdelim(out, &cap, '\0', fo);
    if (n < 0) {
        free(*out);
        *out = imp_strdup("");
    }
    cap = 0;
    n = getdelim(err, &cap, '\0', fe);
    if (n < 0) {
        free(*err);
        *err = imp_strdup("");
    }
    fclose(fo);
    fclose(fe);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

START_TEST(init_or_exit)
{
    char *out, *err;
    env_reset();
    unsetenv("IMP_T_DSN");
    ck_assert_int_eq(run_init("--help", &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, "IMP_T_DSN"));
    ck_assert_ptr_null(strstr(out, SECRET_DEFAULT));
    ck_assert_str_eq(err, "");
    free(out);
    free(err);

    ck_assert_int_eq(run_init(NULL, &out, &err), 2);
    ck_assert_str_eq(err, "imperium-test: IMP_T_DSN is required but not set\n");
    ck_assert_str_eq(out, "");
    free(out);
    free(err);

    setenv("IMP_T_DSN", "postgres://x", 1);
    setenv("IMP_T_TOKEN", "tok-SECRET-value", 1);
    setenv("IMP_T_PIN", "tok-SECRET-pin", 1);
    ck_assert_int_eq(run_init(NULL, &out, &err), 2);
    ck_assert_str_eq(err, "imperium-test: IMP_T_PIN is not a valid integer\n");
    free(out);
    free(err);

    setenv("IMP_T_PIN", "3", 1);
    ck_assert_int_eq(run_init(NULL, &out, &err), 42);
    ck_assert_str_eq(err, "");
    free(out);
    free(err);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("load");
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, every_type_from_env);
    tcase_add_test(tc, required_missing_or_empty);
    tcase_add_test(tc, malformed_values);
    tcase_add_test(tc, malformed_echo_is_one_line);
    tcase_add_test(tc, bounds);
    tcase_add_test(tc, secrets_never_in_messages);
    suite_add_tcase(s, tc);

    tc = tcase_create("parsers_help");
    tcase_add_test(tc, duration_units);
    tcase_add_test(tc, size_units);
    tcase_add_test(tc, bool_values);
    tcase_add_test(tc, help_output);
    tcase_add_test(tc, init_or_exit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
