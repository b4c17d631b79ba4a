/* Under an address-space limit that leaves no room for OpenBLAS's buffers,
 * the first pass of a process must fail with AT_E_NOMEM, not hang inside
 * OpenBLAS (which retries its malloc forever). Run by CTest in builds
 * without a sanitizer (ASan needs an unlimited address space); an alarm
 * turns a hang into a failure. Prints "1 passed, 0 failed" when it passes. */
#include <at.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static int check(int ok, const char *what)
{
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    return ok;
}

int main(void)
{
    at_config *c;
    at_model *m;
    if (at_config_create(&c) != AT_OK || at_config_set(c, AT_P_D_MODEL, 64) != AT_OK ||
        at_config_set(c, AT_P_HEADS, 4) != AT_OK || at_model_create(c, &m) != AT_OK) {
        fprintf(stderr, "blas_limit: %s\n", at_errmsg(NULL));
        return 1;
    }
    at_config_free(c);
    /* what is mapped now plus 64 MiB: less than one OpenBLAS buffer */
    unsigned long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%lu", &pages) != 1) {
        fprintf(stderr, "blas_limit: cannot read /proc/self/statm\n");
        return 1;
    }
    fclose(f);
    rlim_t lim = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)64 << 20);
    struct rlimit r = {lim, lim};
    if (setrlimit(RLIMIT_AS, &r) != 0) {
        perror("blas_limit: setrlimit");
        return 1;
    }
    alarm(60);
    int32_t ids[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    at_status s = at_forward(m, ids, ids, 2, 4, 4, 0);
    int ok = check(s == AT_E_NOMEM && strstr(at_errmsg(m), "OpenBLAS"),
                   "a pass under a tight ulimit -v fails with AT_E_NOMEM naming OpenBLAS");
    if (!ok)
        printf("     status %s: %s\n", at_status_string(s), at_errmsg(m));
    at_model_free(m);
    printf("%d passed, %d failed\n", ok, !ok);
    return ok ? 0 : 1;
}
