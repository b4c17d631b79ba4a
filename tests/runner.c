/* One runner for every suite: `at_tests NAME` runs suite NAME, `at_tests`
 * runs them all. CTest calls it once per suite. */
#include <stdio.h>
#include <string.h>

#include "suites.h"

static const struct {
    const char *name;
    Suite *(*make)(void);
} all[] = {
    {"golden", suite_golden},       {"masks", suite_masks},
    {"views", suite_views},         {"badinput", suite_badinput},
    {"checkpoint", suite_checkpoint}, {"st", suite_st},
    {"train", suite_train},         {"decode", suite_decode},
    {"stats", suite_stats},         {"threads", suite_threads},
    {"viz", suite_viz},             {"reliability", suite_reliability},
    {"beam", suite_beam},           {"interv", suite_interv},
    {"reduce", suite_reduce},
    {"prune", suite_prune},
    {"snapshots", suite_snapshots},
};

int main(int argc, char **argv)
{
    SRunner *sr = NULL;
    int n = (int)(sizeof all / sizeof all[0]);
    for (int i = 0; i < n; i++) {
        if (argc > 1 && strcmp(argv[1], all[i].name))
            continue;
        if (!sr)
            sr = srunner_create(all[i].make());
        else
            srunner_add_suite(sr, all[i].make());
    }
    if (!sr) {
        fprintf(stderr, "at_tests: no suite named '%s'\n", argv[1]);
        return 2;
    }
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
