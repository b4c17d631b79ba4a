/* What the CPU can do against the kernels OpenBLAS chose (issue 12).
 *
 * OpenBLAS built for many CPUs (Debian's DYNAMIC_ARCH build) picks its
 * kernels when it loads, from its own table of CPU models; on a CPU it does
 * not know, 0.3.21 falls back to its Prescott (SSE3) kernels — on a machine
 * with AVX-512 a batch-32 forward pass then runs 4× slower. The choice can
 * only be changed before the process starts (OPENBLAS_CORETYPE), so all a
 * library can do is notice and say which value to set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "core/core.h"

/* The widest vector extension a core's GEMM kernels use: 0 SSE, 1 AVX,
 * 2 AVX2 + FMA, 3 AVX-512. Names as openblas_get_corename() gives them
 * (OpenBLAS's x86_64 dynamic cores); an unknown name is taken as the best,
 * so that a newer OpenBLAS is never reported as a fallback. */
static int core_level(const char *core)
{
    static const struct { const char *name; int level; } cores[] = {
        {"prescott", 0},   {"core2", 0},      {"penryn", 0},      {"dunnington", 0},
        {"nehalem", 0},    {"atom", 0},       {"opteron", 0},     {"opteron_sse3", 0},
        {"barcelona", 0},  {"nano", 0},       {"katmai", 0},      {"coppermine", 0},
        {"northwood", 0},  {"banias", 0},     {"athlon", 0},      {"bobcat", 0},
        {"sandybridge", 1}, {"bulldozer", 1}, {"piledriver", 1},  {"steamroller", 1},
        {"haswell", 2},    {"zen", 2},        {"excavator", 2},
        {"skylakex", 3},   {"cooperlake", 3}, {"sapphirerapids", 3},
    };
    char low[32];
    size_t n = 0;
    for (; core && core[n] && n + 1 < sizeof low; n++)
        low[n] = (char)(core[n] >= 'A' && core[n] <= 'Z' ? core[n] - 'A' + 'a' : core[n]);
    low[n] = '\0';
    for (size_t i = 0; i < sizeof cores / sizeof cores[0]; i++)
        if (strcmp(low, cores[i].name) == 0)
            return cores[i].level;
    return 3;
}

/* The same scale for this CPU, the OS's support of the registers included
 * (GCC's and Clang's __builtin_cpu_supports read XGETBV). */
static int cpu_level(void)
{
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return 3;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 2;
    if (__builtin_cpu_supports("avx"))
        return 1;
#endif
    return 0;
}

int cpu_blas_report(char *buf, size_t size)
{
    static const char *const ext[] = {"SSE", "AVX", "AVX2 and FMA", "AVX-512"};
    static const char *const fix[] = {"", "Sandybridge", "Haswell", "SkylakeX"};
    const char *core = openblas_get_corename(), *asked = getenv("OPENBLAS_CORETYPE");
    int have = cpu_level(), used = core_level(core);
    if (!core)
        core = "?";
    if (used >= have) {
        snprintf(buf, size, "OpenBLAS runs its %s kernels (%s); the CPU has %s", core,
                 ext[used], ext[have]);
        return 0;
    }
    if (asked && *asked)
        snprintf(buf, size, "OpenBLAS runs its %s kernels (%s), as OPENBLAS_CORETYPE=%s asks, "
                 "on a CPU with %s: its matrix products are slower than they could be "
                 "(OPENBLAS_CORETYPE=%s uses it)", core, ext[used], asked, ext[have], fix[have]);
    else
        snprintf(buf, size, "OpenBLAS runs its %s kernels (%s) on a CPU with %s: its matrix "
                 "products are slower than they could be (4x on a batch-32 forward pass with "
                 "Prescott on AVX-512); set OPENBLAS_CORETYPE=%s in the environment before "
                 "the program starts", core, ext[used], ext[have], fix[have]);
    return 1;
}
