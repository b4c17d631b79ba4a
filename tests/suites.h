/* Every Check suite factory; tests/test_X.c defines suite_X. */
#ifndef AT_TEST_SUITES_H
#define AT_TEST_SUITES_H

#include <check.h>

Suite *suite_golden(void);
Suite *suite_masks(void);
Suite *suite_views(void);
Suite *suite_badinput(void);
Suite *suite_checkpoint(void);
Suite *suite_st(void);
Suite *suite_train(void);
Suite *suite_decode(void);
Suite *suite_stats(void);
Suite *suite_threads(void);
Suite *suite_viz(void);
Suite *suite_reliability(void);
Suite *suite_beam(void);
Suite *suite_interv(void);
Suite *suite_reduce(void);
Suite *suite_prune(void);
Suite *suite_snapshots(void);

#endif
