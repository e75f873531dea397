/* Unit tests for common/stages.c (the benchmark's per-record timestamps):
 * off without KWS_STAGES, so a call site costs nothing and no file appears;
 * with it, only the sampled offsets are written, one line each, to
 * <prefix>.<program>.<pid>; a bad KWS_STAGES_EVERY is refused. */
#include "stages.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char prefix[64];

static void setup(void)
{
	snprintf(prefix, sizeof prefix, "/tmp/check_stages.%d", (int)getpid());
	unsetenv("KWS_STAGES");
	unsetenv("KWS_STAGES_EVERY");
}

static void path_of(char *out, size_t n)
{
	snprintf(out, n, "%s.test.%d", prefix, (int)getpid());
}

START_TEST(test_off_by_default)
{
	char path[128];
	ck_assert_int_eq(stages_setup("test"), 0);
	ck_assert(!stages_want(0));
	ck_assert(!stages_want(16));
	stages_mark('X', 1, 16, 5, -1); /* no file: nothing happens */
	stages_close();
	path_of(path, sizeof path);
	ck_assert_int_ne(access(path, F_OK), 0);
}
END_TEST

START_TEST(test_sampled_lines)
{
	char path[128], line[128];
	setenv("KWS_STAGES", prefix, 1);
	setenv("KWS_STAGES_EVERY", "4", 1);
	ck_assert_int_eq(stages_setup("test"), 0);
	int marked = 0;
	for (int64_t o = 0; o < 10; o++)
		if (stages_want(o)) {
			stages_mark('K', 3, o, 1000 + o, o == 4 ? 77 : -1);
			marked++;
		}
	ck_assert_int_eq(marked, 3); /* 0, 4, 8 */
	ck_assert(stages_now_us() > 1600000000LL * 1000000);
	stages_close();
	ck_assert(!stages_want(0)); /* closed: off again */
	path_of(path, sizeof path);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	ck_assert_str_eq(line, "K 3 0 1000 -1\n");
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	ck_assert_str_eq(line, "K 3 4 1004 77\n");
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	ck_assert_str_eq(line, "K 3 8 1008 -1\n");
	ck_assert_ptr_null(fgets(line, sizeof line, f));
	fclose(f);
	unlink(path);
}
END_TEST

START_TEST(test_bad_every)
{
	setenv("KWS_STAGES", prefix, 1);
	setenv("KWS_STAGES_EVERY", "0", 1);
	ck_assert_int_eq(stages_setup("test"), -1);
	setenv("KWS_STAGES_EVERY", "12x", 1);
	ck_assert_int_eq(stages_setup("test"), -1);
	ck_assert(!stages_want(0));
}
END_TEST

START_TEST(test_unwritable_prefix)
{
	setenv("KWS_STAGES", "/nonexistent-dir/x", 1);
	ck_assert_int_eq(stages_setup("test"), -1);
	ck_assert(!stages_want(0));
}
END_TEST

static Suite *stages_suite(void)
{
	Suite *s = suite_create("stages");
	TCase *tc = tcase_create("stages");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_off_by_default);
	tcase_add_test(tc, test_sampled_lines);
	tcase_add_test(tc, test_bad_every);
	tcase_add_test(tc, test_unwritable_prefix);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(stages_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
