/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "fault-internal.h"

static void teardown(void)
{
    keel__faults_clear();
    (void) unsetenv("KEEL_FAULT");
}

TestSuite(fault, .fini = teardown, .timeout = 10);

static const keel_fault *get(size_t *n)
{
    return keel__faults_get(n);
}

static void assert_fault(const keel_fault *f, keel_fault_action action, keel_fault_when when, unsigned msec, const char *point)
{
    cr_assert_eq(f->action, action, "action %s", keel__fault_action_to_string(f->action));
    cr_assert_eq(f->when, when);
    cr_assert_eq(f->sleep_msec, msec);
    cr_assert_str_eq(f->point, point);
}

Test(fault, none_by_default)
{
    size_t n = 99;
    (void) get(&n);
    cr_assert_eq(n, 0);
    cr_assert_not(keel__faults_any());
}

Test(fault, each_action_and_when)
{
    size_t n;
    char *error = NULL;

    cr_assert_eq(keel__faults_parse("error@in:metrics.start,sigint@before:token.spawn.refresh,sigterm@in:a,"
                                    "sighup@before:b-c_d.9,sleep=200@in:token.request,sleep=3600000@before:x",
                                    &error),
                 0);
    cr_assert_null(error);
    const keel_fault *f = get(&n);
    cr_assert_eq(n, 6);
    cr_assert(keel__faults_any());
    assert_fault(&f[0], KEEL_FAULT_ERROR, KEEL_FAULT_IN, 0, "metrics.start");
    assert_fault(&f[1], KEEL_FAULT_SIGINT, KEEL_FAULT_BEFORE, 0, "token.spawn.refresh");
    assert_fault(&f[2], KEEL_FAULT_SIGTERM, KEEL_FAULT_IN, 0, "a");
    assert_fault(&f[3], KEEL_FAULT_SIGHUP, KEEL_FAULT_BEFORE, 0, "b-c_d.9");
    assert_fault(&f[4], KEEL_FAULT_SLEEP, KEEL_FAULT_IN, 200, "token.request");
    assert_fault(&f[5], KEEL_FAULT_SLEEP, KEEL_FAULT_BEFORE, 3600000, "x");
}

Test(fault, same_point_twice_kept_in_order)
{
    size_t n;
    cr_assert_eq(keel__faults_parse("sleep=5@in:p,error@in:p", NULL), 0);
    const keel_fault *f = get(&n);
    cr_assert_eq(n, 2);
    assert_fault(&f[0], KEEL_FAULT_SLEEP, KEEL_FAULT_IN, 5, "p");
    assert_fault(&f[1], KEEL_FAULT_ERROR, KEEL_FAULT_IN, 0, "p");
}

Test(fault, blanks_around_elements_tolerated)
{
    size_t n;
    cr_assert_eq(keel__faults_parse("  error@in:a ,\tsleep=1@before:b\t", NULL), 0);
    const keel_fault *f = get(&n);
    cr_assert_eq(n, 2);
    assert_fault(&f[0], KEEL_FAULT_ERROR, KEEL_FAULT_IN, 0, "a");
    assert_fault(&f[1], KEEL_FAULT_SLEEP, KEEL_FAULT_BEFORE, 1, "b");
}

Test(fault, empty_spec_clears)
{
    size_t n;
    cr_assert_eq(keel__faults_parse("error@in:a", NULL), 0);
    cr_assert_eq(keel__faults_parse("", NULL), 0);
    (void) get(&n);
    cr_assert_eq(n, 0);
    cr_assert_eq(keel__faults_parse("error@in:a", NULL), 0);
    cr_assert_eq(keel__faults_parse(" \t ", NULL), 0);
    (void) get(&n);
    cr_assert_eq(n, 0);
    cr_assert_eq(keel__faults_parse(NULL, NULL), -EINVAL);
}

Test(fault, replaces_previous_set)
{
    size_t n;
    cr_assert_eq(keel__faults_parse("error@in:a,error@in:b", NULL), 0);
    cr_assert_eq(keel__faults_parse("sigint@before:c", NULL), 0);
    const keel_fault *f = get(&n);
    cr_assert_eq(n, 1);
    assert_fault(&f[0], KEEL_FAULT_SIGINT, KEEL_FAULT_BEFORE, 0, "c");
}

Test(fault, from_env)
{
    size_t n;
    char *error = NULL;

    cr_assert_eq(setenv("KEEL_FAULT", "sleep=10@in:token.request", 1), 0);
    cr_assert_eq(keel__faults_from_env(&error), 0);
    const keel_fault *f = get(&n);
    cr_assert_eq(n, 1);
    assert_fault(&f[0], KEEL_FAULT_SLEEP, KEEL_FAULT_IN, 10, "token.request");

    cr_assert_eq(setenv("KEEL_FAULT", "", 1), 0);
    cr_assert_eq(keel__faults_from_env(&error), 0);
    (void) get(&n);
    cr_assert_eq(n, 0);

    cr_assert_eq(setenv("KEEL_FAULT", "error@in:a", 1), 0);
    cr_assert_eq(keel__faults_from_env(&error), 0);
    cr_assert_eq(unsetenv("KEEL_FAULT"), 0);
    cr_assert_eq(keel__faults_from_env(&error), 0);
    (void) get(&n);
    cr_assert_eq(n, 0);

    cr_assert_eq(setenv("KEEL_FAULT", "boom", 1), 0);
    cr_assert_eq(keel__faults_from_env(&error), -EINVAL);
    cr_assert_not_null(error);
    free(error);
}

/* Each malformed spec: -EINVAL, the configured set untouched, and exactly this message. */
static void assert_bad(const char *spec, const char *message)
{
    size_t n;
    char *error = NULL;

    cr_assert_eq(keel__faults_parse("error@in:kept", NULL), 0);
    cr_assert_eq(keel__faults_parse(spec, &error), -EINVAL, "spec '%s'", spec);
    cr_assert_not_null(error, "spec '%s'", spec);
    cr_assert_str_eq(error, message);
    free(error);

    const keel_fault *f = get(&n);
    cr_assert_eq(n, 1, "a bad spec must leave the faults alone");
    cr_assert_str_eq(f[0].point, "kept");
    cr_assert_eq(keel__faults_parse(spec, NULL), -EINVAL, "no message wanted: still -EINVAL");
}

Test(fault, empty_element)
{
    assert_bad("error@in:a,,error@in:b",
               "KEEL_FAULT: empty element 2 in 'error@in:a,,error@in:b' (expected ACTION@WHEN:POINT between commas)");
    assert_bad(",error@in:a", "KEEL_FAULT: empty element 1 in ',error@in:a' (expected ACTION@WHEN:POINT between commas)");
    assert_bad("error@in:a,", "KEEL_FAULT: empty element 2 in 'error@in:a,' (expected ACTION@WHEN:POINT between commas)");
    assert_bad("error@in:a, ,error@in:b",
               "KEEL_FAULT: empty element 2 in 'error@in:a, ,error@in:b' (expected ACTION@WHEN:POINT between commas)");
}

Test(fault, missing_at)
{
    assert_bad("error", "KEEL_FAULT: missing '@' in 'error' (expected ACTION@WHEN:POINT)");
    assert_bad("error@in:a,errorin:b", "KEEL_FAULT: missing '@' in 'errorin:b' (expected ACTION@WHEN:POINT)");
}

Test(fault, missing_colon)
{
    assert_bad("error@in", "KEEL_FAULT: missing ':' in 'error@in' (expected ACTION@WHEN:POINT)");
    assert_bad("error@in.metrics.start", "KEEL_FAULT: missing ':' in 'error@in.metrics.start' (expected ACTION@WHEN:POINT)");
}

Test(fault, bad_action)
{
    assert_bad("eror@in:metrics.start",
               "KEEL_FAULT: bad action 'eror' in 'eror@in:metrics.start' (expected error, sigint, sigterm, sighup or sleep=MS)");
    assert_bad("@in:a", "KEEL_FAULT: bad action '' in '@in:a' (expected error, sigint, sigterm, sighup or sleep=MS)");
    assert_bad("ERROR@in:a",
               "KEEL_FAULT: bad action 'ERROR' in 'ERROR@in:a' (expected error, sigint, sigterm, sighup or sleep=MS)");
    assert_bad("sleep@in:a",
               "KEEL_FAULT: bad action 'sleep' in 'sleep@in:a' (expected error, sigint, sigterm, sighup or sleep=MS)");
    assert_bad("error @in:a",
               "KEEL_FAULT: bad action 'error ' in 'error @in:a' (expected error, sigint, sigterm, sighup or sleep=MS)");
    assert_bad("sigkill@in:a",
               "KEEL_FAULT: bad action 'sigkill' in 'sigkill@in:a' (expected error, sigint, sigterm, sighup or sleep=MS)");
}

Test(fault, bad_when)
{
    assert_bad("error@during:a", "KEEL_FAULT: bad when 'during' in 'error@during:a' (expected before or in)");
    assert_bad("error@:a", "KEEL_FAULT: bad when '' in 'error@:a' (expected before or in)");
    assert_bad("error@IN:a", "KEEL_FAULT: bad when 'IN' in 'error@IN:a' (expected before or in)");
}

Test(fault, bad_point)
{
    assert_bad("error@in:", "KEEL_FAULT: empty point in 'error@in:'");
    assert_bad("error@in:Token.start",
               "KEEL_FAULT: bad point 'Token.start' in 'error@in:Token.start' (expected a-z, 0-9, '_', '.' and '-')");
    assert_bad("error@in:a b", "KEEL_FAULT: bad point 'a b' in 'error@in:a b' (expected a-z, 0-9, '_', '.' and '-')");
    assert_bad("error@in:a:b", "KEEL_FAULT: bad point 'a:b' in 'error@in:a:b' (expected a-z, 0-9, '_', '.' and '-')");
    assert_bad("error@in:"
               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
               "KEEL_FAULT: point 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' in "
               "'error@in:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' is too long (at most 63 characters)");
}

Test(fault, bad_sleep_value)
{
    assert_bad("sleep=0@in:a", "KEEL_FAULT: bad sleep value '0' in 'sleep=0@in:a' (expected milliseconds from 1 to 3600000)");
    assert_bad("sleep=-5@in:a", "KEEL_FAULT: bad sleep value '-5' in 'sleep=-5@in:a' (expected milliseconds from 1 to 3600000)");
    assert_bad("sleep=abc@in:a", "KEEL_FAULT: bad sleep value 'abc' in 'sleep=abc@in:a' (expected milliseconds from 1 to 3600000)");
    assert_bad("sleep=@in:a", "KEEL_FAULT: bad sleep value '' in 'sleep=@in:a' (expected milliseconds from 1 to 3600000)");
    assert_bad("sleep=10ms@in:a",
               "KEEL_FAULT: bad sleep value '10ms' in 'sleep=10ms@in:a' (expected milliseconds from 1 to 3600000)");
    assert_bad("sleep=+5@in:a", "KEEL_FAULT: bad sleep value '+5' in 'sleep=+5@in:a' (expected milliseconds from 1 to 3600000)");
    assert_bad("sleep=3600001@in:a",
               "KEEL_FAULT: bad sleep value '3600001' in 'sleep=3600001@in:a' (expected milliseconds from 1 to 3600000)");
    assert_bad("sleep=99999999999999999999999@in:a",
               "KEEL_FAULT: bad sleep value '99999999999999999999999' in "
               "'sleep=99999999999999999999999@in:a' (expected milliseconds from 1 to 3600000)");
}

Test(fault, too_many)
{
    char spec[2048] = "";
    char *error = NULL;

    for (int i = 0; i <= KEEL_FAULTS_MAX; i++)
        strcat(spec, i ? ",error@in:p" : "error@in:p");
    cr_assert_eq(keel__faults_parse(spec, &error), -EINVAL);
    cr_assert_not_null(strstr(error, "too many faults"));
    free(error);

    spec[strlen(spec) - strlen(",error@in:p")] = 0;
    cr_assert_eq(keel__faults_parse(spec, NULL), 0, "exactly the maximum is fine");
}

Test(fault, names)
{
    cr_assert_str_eq(keel__fault_action_to_string(KEEL_FAULT_SLEEP), "sleep");
    cr_assert_str_eq(keel__fault_when_to_string(KEEL_FAULT_BEFORE), "before");
    cr_assert_null(keel__fault_action_to_string(_KEEL_FAULT_ACTION_MAX));
    cr_assert_null(keel__fault_when_to_string(_KEEL_FAULT_WHEN_INVALID));
}
