/* libat's own matrix products and the element-wise loops around them,
 * tested from inside the library (at_internal_tests links its objects, not
 * the shared library: none of this is public API).
 *
 * - every operand layout (A or Aᵀ, B or Bᵀ), with and without accumulation,
 *   at sizes that leave partial slivers, panels, KC and NC blocks, against a
 *   product summed in double;
 * - the same product over the pool, and from a weight's packed panels, gives
 *   the same bits as in one thread with libat's kernels (gemm.c: a sum's
 *   order depends on K and the kernel alone; OpenBLAS's only to within
 *   float rounding);
 * - relu's and dropout's backward and the fused epilogue, bit for bit
 *   against their definitions element by element (core.h: drop_keep).
 *
 * The kernel is the one LIBAT_GEMM names, as the library chooses it; CTest
 * runs this once per kernel. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

static uint64_t rng = 88172645463325252ull;

static float uniform(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 40) / (double)(1u << 24)) * 2.0f - 1.0f;
}

static float *filled(size_t n)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    ck_assert_ptr_nonnull(x);
    for (size_t i = 0; i < n; i++)
        x[i] = uniform();
    return x;
}

/* op(X)[i][k] of X stored with leading dimension ld */
static double at(const float *X, int ld, bool t, int i, int k)
{
    return t ? X[(size_t)k * ld + i] : X[(size_t)i * ld + k];
}

typedef struct shape { int M, N, K; } shape;

/* partial slivers (M mod 6, 12, 4), partial panels (N mod 32), K past one
 * KC block (256) and N past one NC block (512), a single row, K = 1 */
static const shape shapes[] = {
    {1, 1, 1},    {1, 40, 300},  {2, 33, 17},   {5, 31, 64},   {7, 64, 257},
    {13, 530, 9}, {64, 96, 513}, {193, 70, 260}, {250, 600, 40}, {37, 1030, 3},
};

/* C = op(A)·op(B) (+ C0), each element within a few float ulps of the
 * double sum, scaled by Σ|a·b|. */
static void check_against_double(bool ta, bool tb, bool add, shape s)
{
    int M = s.M, N = s.N, K = s.K, lda = ta ? M + 3 : K + 5, ldb = tb ? K + 2 : N + 7,
        ldc = N + 1;
    float *A = filled((size_t)(ta ? K : M) * lda), *B = filled((size_t)(tb ? N : K) * ldb);
    float *C = filled((size_t)M * ldc), *C0 = malloc((size_t)M * ldc * sizeof *C0);
    ck_assert_ptr_nonnull(C0);
    memcpy(C0, C, (size_t)M * ldc * sizeof *C);
    gemm_serial(ta, tb, M, N, K, A, lda, B, ldb, add, C, ldc);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double sum = add ? C0[(size_t)i * ldc + j] : 0.0, mag = fabs(sum);
            for (int k = 0; k < K; k++) {
                double p = at(A, lda, ta, i, k) * at(B, ldb, !tb, j, k);
                sum += p, mag += fabs(p);
            }
            double got = C[(size_t)i * ldc + j];
            ck_assert_msg(fabs(got - sum) <= 4e-7 * (K + 2) * mag + 1e-30,
                          "%c%c%s %dx%dx%d: C[%d][%d] = %.9g, the double sum %.9g",
                          ta ? 'T' : 'N', tb ? 'T' : 'N', add ? "+" : "", M, N, K, i, j, got,
                          sum);
        }
    /* the columns past N of each row are not written */
    for (int i = 0; i < M; i++)
        ck_assert(C[(size_t)i * ldc + N] == C0[(size_t)i * ldc + N]);
    free(A), free(B), free(C), free(C0);
}

START_TEST(products_match_double_sums)
{
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int op = 0; op < 8; op++)
            check_against_double(op & 1, op & 2, op & 4, shapes[s]);
}
END_TEST

/* The pool cuts C into blocks of rows or columns; a weight's panels are
 * packed ahead: neither may change a bit. */
START_TEST(pool_and_panels_give_the_same_bits)
{
    pool_set_threads(2);
    const shape big[] = {{300, 700, 520}, {1100, 96, 64}, {40, 2100, 300}, {3, 4000, 33}};
    for (size_t s = 0; s < sizeof big / sizeof big[0]; s++)
        for (int op = 0; op < 4; op++) {
            bool ta = op & 1, tb = op & 2;
            int M = big[s].M, N = big[s].N, K = big[s].K, lda = ta ? M : K, ldb = tb ? K : N;
            float *A = filled((size_t)M * K), *B = filled((size_t)N * K);
            float *C1 = malloc((size_t)M * N * sizeof *C1), *C2 = malloc((size_t)M * N * sizeof *C2);
            ck_assert(C1 && C2);
            gemm_serial(ta, tb, M, N, K, A, lda, B, ldb, false, C1, N);
            gemm(ta, tb, M, N, K, A, lda, B, ldb, 0.0f, C2, N);
            /* OpenBLAS (LIBAT_GEMM=openblas) sums as it likes: there the
             * pool's product is only as close as two float sums are */
            for (size_t i = 0; i < (size_t)M * N && !gemm_own(); i++)
                ck_assert_msg(fabsf(C1[i] - C2[i]) <= 1e-6f * K,
                              "openblas %c%c %dx%dx%d: element %zu %g, one call %g",
                              ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, i, C2[i], C1[i]);
            ck_assert_msg(!gemm_own() || memcmp(C1, C2, (size_t)M * N * sizeof *C1) == 0,
                          "%c%c %dx%dx%d: the pool's product differs from one thread's",
                          ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K);
            if (tb) {
                /* W (N, K) = B: its full panels packed as packed.c packs them */
                float *panels = malloc((size_t)N * K * sizeof *panels);
                ck_assert_ptr_nonnull(panels);
                for (int j = 0; j + 32 <= N; j += 32)
                    gemm_pack_rows(panels + (size_t)j * K, B + (size_t)j * K, (size_t)K, 32, K);
                if (!ta) {
                    gemm_serial_packed(M, N, K, A, K, B, panels, false, C2, N);
                    ck_assert_msg(memcmp(C1, C2, (size_t)M * N * sizeof *C1) == 0,
                                  "NT %dx%dx%d: the product on packed panels differs", M, N, K);
                }
                free(panels);
            }
            free(A), free(B), free(C1), free(C2);
        }
    pool_set_threads(0);
}
END_TEST

/* The kernel running is the one LIBAT_GEMM names when the CPU can run it,
 * and the best the CPU can run when it names none. */
START_TEST(the_kernel_asked_for_runs)
{
    __builtin_cpu_init();
    bool avx512 = __builtin_cpu_supports("avx512f");
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const char *best = avx512 ? "avx512" : avx2 ? "avx2" : "generic";
    const char *want = getenv("LIBAT_GEMM");
    if (!want || !*want)
        ck_assert_str_eq(gemm_kernel_name(), best);
    else if (strcmp(want, "openblas") == 0 || strcmp(want, "generic") == 0 ||
             (strcmp(want, "avx2") == 0 && avx2) || (strcmp(want, "avx512") == 0 && avx512))
        ck_assert_str_eq(gemm_kernel_name(), want);
    else
        ck_assert_str_eq(gemm_kernel_name(), best);
}
END_TEST

static bool kept(uint64_t key, size_t i, float p)
{
    return drop_keep(drop_bits(key, i / 4), i, drop_threshold(p));
}

static uint32_t bits_of(float x)
{
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}

/* n elements with zeros of both signs, a NaN where relu or dropout drops
 * it, and values of both signs */
static float *awkward(size_t n)
{
    float *x = filled(n);
    x[1] = 0.0f, x[2] = -0.0f, x[5] = NAN, x[9] = -INFINITY;
    return x;
}

START_TEST(dropout_matches_its_definition)
{
    pool_set_threads(2);
    const size_t n = 100003, origins[] = {0, 1, 3, 4099};
    const float p = 0.1f, scale = 1.0f / (1.0f - p);
    for (size_t o = 0; o < sizeof origins / sizeof origins[0]; o++) {
        float *x = awkward(n), *y = malloc(n * sizeof *y);
        ck_assert_ptr_nonnull(y);
        dropout_copy(y, x, n, 77, p, origins[o]);
        size_t dropped = 0;
        for (size_t i = 0; i < n; i++) {
            float want = kept(77, origins[o] + i, p) ? x[i] * scale : 0.0f;
            dropped += !kept(77, origins[o] + i, p);
            ck_assert_msg(bits_of(y[i]) == bits_of(want) || (isnan(y[i]) && isnan(want)),
                          "origin %zu, element %zu: %g, not %g", origins[o], i, y[i], want);
        }
        /* 1 − p survive to within a few standard deviations (95 for n) */
        ck_assert(fabs((double)dropped - p * n) < 500);
        free(x), free(y);
    }
    pool_set_threads(0);
}
END_TEST

START_TEST(relu_backward_matches_its_definition)
{
    const size_t n = 70001;
    const float ps[] = {0.0f, 0.1f};
    for (int k = 0; k < 2; k++) {
        float *h = awkward(n), *dh = awkward(n), *want = malloc(n * sizeof *want);
        ck_assert_ptr_nonnull(want);
        dh[3] = NAN, h[3] = -1.0f;        /* a NaN gradient where relu is off: +0 */
        float scale = ps[k] > 0 ? 1.0f / (1.0f - ps[k]) : 1.0f;
        for (size_t i = 0; i < n; i++)
            want[i] = h[i] > 0.0f ? dh[i] * scale : 0.0f;
        relu_dropout_backward(dh, h, n, ps[k]);
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(bits_of(dh[i]) == bits_of(want[i]) || (isnan(dh[i]) && isnan(want[i])),
                          "p %g, element %zu: %g, not %g", ps[k], i, dh[i], want[i]);
        free(h), free(dh), free(want);
    }
}
END_TEST

/* linear_fused: y = resid + dropout(relu(x·Wᵀ + b)), each element against
 * the steps done one at a time on the same product. */
START_TEST(fused_epilogue_matches_its_steps)
{
    pool_set_threads(2);
    const int rows = 300, in = 40, out = 530;
    float *x = filled((size_t)rows * in), *w = filled((size_t)out * in), *b = filled(out);
    float *r = filled((size_t)rows * out), *y = malloc((size_t)rows * out * sizeof *y),
          *z = malloc((size_t)rows * out * sizeof *z);
    ck_assert(y && z);
    linear lin = {w, b, NULL};
    for (int v = 0; v < 8; v++) {
        epilogue e = {v & 1, 5, v & 2 ? 0.1f : 0.0f, 13, v & 4 ? r : NULL};
        linear_forward(z, x, lin, rows, in, out);
        linear_fused(y, x, lin, rows, in, out, &e);
        for (size_t i = 0; i < (size_t)rows * out; i++) {
            float t = z[i];
            if (e.relu)
                t = t > 0.0f ? t : 0.0f;
            if (e.p > 0)
                t = kept(e.key, e.origin + i, e.p) ? t * (1.0f / (1.0f - e.p)) : 0.0f;
            if (e.resid)
                t += r[i];
            ck_assert_msg(bits_of(y[i]) == bits_of(t), "variant %d, element %zu: %g, not %g", v,
                          i, y[i], t);
        }
    }
    free(x), free(w), free(b), free(r), free(y), free(z);
    pool_set_threads(0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("products");
    TCase *tc = tcase_create("products");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, products_match_double_sums);
    tcase_add_test(tc, pool_and_panels_give_the_same_bits);
    tcase_add_test(tc, the_kernel_asked_for_runs);
    tcase_add_test(tc, dropout_matches_its_definition);
    tcase_add_test(tc, relu_backward_matches_its_definition);
    tcase_add_test(tc, fused_epilogue_matches_its_steps);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
