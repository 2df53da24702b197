/* imperium-send's call threads (workers/send/runners.c): every slot of a round runs once, at
 * the same time as the others, slot 0 on the caller's thread; rounds follow one another
 * without a lost wake-up; more slots than threads are capped. */
#include "../../../workers/send/runners.c"

#include <check.h>
#include <stdatomic.h>
#include <time.h>

#define MAX_SLOTS 8

typedef struct {
    atomic_int runs[MAX_SLOTS];
    pthread_t thread[MAX_SLOTS];
    atomic_int arrived;
    int expect;        /* slots that must meet before any returns; 0: do not wait */
    atomic_int met;    /* slots that saw all `expect` arrive */
    atomic_int beyond; /* slots numbered MAX_SLOTS or more */
} round_t;

/* Read after the round, which the caller's wait orders after every slot's writes. */
static int runs(round_t *r, int slot)
{
    return atomic_load(&r->runs[slot]);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void slot_fn(size_t slot, void *arg)
{
    round_t *r = arg;
    if (slot >= MAX_SLOTS) { /* asserted on the test's thread (runs_beyond) */
        atomic_fetch_add(&r->beyond, 1);
        return;
    }
    atomic_fetch_add(&r->runs[slot], 1);
    r->thread[slot] = pthread_self();
    if (r->expect == 0)
        return;
    /* Wait (bounded) for every slot of the round: only slots running at once all get here. */
    atomic_fetch_add(&r->arrived, 1);
    long long deadline = now_ms() + 5000;
    while (atomic_load(&r->arrived) < r->expect && now_ms() < deadline)
        sched_yield();
    if (atomic_load(&r->arrived) >= r->expect)
        atomic_fetch_add(&r->met, 1);
}

START_TEST(slots_run_once_at_the_same_time)
{
    send_runners_t *rs = NULL;
    ck_assert_ptr_null(send_runners_new(3, &rs));
    round_t r = {.expect = 4};
    send_runners_run(rs, 4, slot_fn, &r);
    for (int s = 0; s < 4; s++)
        ck_assert_int_eq(runs(&r, s), 1);
    int met = atomic_load(&r.met);
    ck_assert_int_eq(met, 4);
    ck_assert(pthread_equal(r.thread[0], pthread_self()));
    for (int s = 1; s < 4; s++) {
        ck_assert(!pthread_equal(r.thread[s], pthread_self()));
        for (int t = 1; t < s; t++)
            ck_assert(!pthread_equal(r.thread[s], r.thread[t]));
    }
    send_runners_free(rs);
}
END_TEST

START_TEST(more_slots_than_threads_are_capped)
{
    send_runners_t *rs = NULL;
    ck_assert_ptr_null(send_runners_new(2, &rs));
    round_t r = {0};
    send_runners_run(rs, 6, slot_fn, &r);
    for (int s = 0; s < 3; s++)
        ck_assert_int_eq(runs(&r, s), 1);
    for (int s = 3; s < MAX_SLOTS; s++)
        ck_assert_int_eq(runs(&r, s), 0);
    send_runners_free(rs);
}
END_TEST

START_TEST(no_threads_runs_slot_zero_only)
{
    round_t r = {0};
    send_runners_run(NULL, 4, slot_fn, &r);
    ck_assert_int_eq(runs(&r, 0), 1);
    for (int s = 1; s < MAX_SLOTS; s++)
        ck_assert_int_eq(runs(&r, s), 0);
}
END_TEST

START_TEST(rounds_in_a_row_lose_nothing)
{
    send_runners_t *rs = NULL;
    ck_assert_ptr_null(send_runners_new(5, &rs));
    int want[MAX_SLOTS] = {0};
    round_t r = {0};
    for (int i = 0; i < 2000; i++) {
        size_t n = 1 + (size_t)(i % 6); /* 1..6 slots: some threads sit out some rounds */
        send_runners_run(rs, n, slot_fn, &r);
        for (size_t s = 0; s < n; s++)
            want[s]++;
    }
    for (int s = 0; s < MAX_SLOTS; s++)
        ck_assert_int_eq(runs(&r, s), want[s]);
    int beyond = atomic_load(&r.beyond);
    ck_assert_int_eq(beyond, 0);
    send_runners_free(rs);
}
END_TEST

START_TEST(free_without_a_round)
{
    send_runners_t *rs = NULL;
    ck_assert_ptr_null(send_runners_new(4, &rs));
    send_runners_free(rs);
    send_runners_free(NULL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("send_runners");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, slots_run_once_at_the_same_time);
    tcase_add_test(tc, more_slots_than_threads_are_capped);
    tcase_add_test(tc, no_threads_runs_slot_zero_only);
    tcase_add_test(tc, rounds_in_a_row_lose_nothing);
    tcase_add_test(tc, free_without_a_round);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
