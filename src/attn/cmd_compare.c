/* attn compare: the largest difference between same-named tensors of two
 * safetensors files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"

static const char help[] =
    "usage: attn compare A.safetensors B.safetensors [--atol X] [--rtol R]\n"
    "\n"
    "Compare every tensor present in both files under the same name (any numeric\n"
    "dtype; integers are compared as numbers, so an I64 mask matches an F32 one)\n"
    "and print, per tensor, the largest absolute difference. Element a of A and b of\n"
    "B agree when |a - b| <= atol + rtol * |b|; NaN agrees only with NaN. Tensors in\n"
    "only one file are counted, not compared.\n"
    "\n"
    "Typical use: check `attn dump` output against a dump of the PyTorch reference.\n"
    "\n"
    "  --atol X     absolute tolerance (default 1e-5)\n"
    "  --rtol R     relative tolerance (default 0)\n"
    "  -h, --help   this text\n"
    "\n"
    "Exit status: 0 when every common tensor agrees, 1 when one differs (in shape or\n"
    "beyond the tolerance) or there is no common tensor, 2 for a usage error.\n";

/* A tensor's values as doubles, or NULL (message printed). */
static double *values(const st_tensor *t, const char *path)
{
    size_t n = (size_t)t->numel;
    double *out = malloc((n ? n : 1) * sizeof *out);
    char err[512];
    at_status s = AT_E_NOMEM;
    if (!out) {
        snprintf(err, sizeof err, "out of memory");
    } else if (t->dtype == ST_F16 || t->dtype == ST_BF16 || t->dtype == ST_F32 ||
               t->dtype == ST_F64) {
        float *f = malloc((n ? n : 1) * sizeof *f);
        s = f ? st_to_f32(t, f, err, sizeof err) : AT_E_NOMEM;
        if (!f)
            snprintf(err, sizeof err, "out of memory");
        for (size_t i = 0; s == AT_OK && i < n; i++)
            out[i] = f[i];
        free(f);
    } else {
        int64_t *w = malloc((n ? n : 1) * sizeof *w);
        s = w ? st_to_i64(t, w, err, sizeof err) : AT_E_NOMEM;
        if (!w)
            snprintf(err, sizeof err, "out of memory");
        for (size_t i = 0; s == AT_OK && i < n; i++)
            out[i] = (double)w[i];
        free(w);
    }
    if (s != AT_OK) {
        attn_error("%s: %s", path, err);
        free(out);
        return NULL;
    }
    return out;
}

static bool same_shape(const st_tensor *a, const st_tensor *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

static void shape_str(char *buf, size_t len, const st_tensor *t)
{
    size_t n = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < t->ndim && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (n < len)
        snprintf(buf + n, len - n, "]");
}

/* Compares one pair; prints its line; returns 1 if they differ, 0 if they
 * agree, -1 on an error (printed). */
static int compare_one(const st_tensor *ta, const char *pa, const st_tensor *tb,
                       const char *pb, double atol, double rtol)
{
    char sa[64], sb[64];
    shape_str(sa, sizeof sa, ta);
    shape_str(sb, sizeof sb, tb);
    if (!same_shape(ta, tb)) {
        printf("  %-36s DIFFERENT SHAPES %s vs %s\n", ta->name, sa, sb);
        return 1;
    }
    double *a = values(ta, pa), *b = a ? values(tb, pb) : NULL;
    if (!b) {
        free(a);
        return -1;
    }
    double worst = 0;
    size_t bad = 0, n = (size_t)ta->numel;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) {
            if (!(isnan(a[i]) && isnan(b[i])))
                worst = INFINITY, bad++;
            continue;
        }
        double d = a[i] == b[i] ? 0 : fabs(a[i] - b[i]);   /* inf == inf */
        if (isnan(d))
            d = INFINITY;
        if (d > worst)
            worst = d;
        if (!(d <= atol + rtol * fabs(b[i])))
            bad++;
    }
    printf("  %-36s %-16s max |a-b| %-11.3g %s", ta->name, sa, worst, bad ? "FAIL" : "ok");
    if (bad)
        printf(" (%zu of %zu elements out of tolerance)", bad, n);
    printf("\n");
    free(a);
    free(b);
    return bad ? 1 : 0;
}

int cmd_compare(int argc, char **argv)
{
    double atol = 1e-5, rtol = 0;
    opt opts[] = {
        {"atol", OPT_NUM, &atol, 0, 1e300, false},
        {"rtol", OPT_NUM, &rtol, 0, 1e300, false},
    };
    char *pos[2];
    int npos;
    int r = args_parse(argc, argv, opts, 2, pos, 2, &npos);
    if (r == ARGS_HELP) {
        fputs(help, stdout);
        return ATTN_OK;
    }
    if (r != ARGS_OK)
        return ATTN_USAGE;
    if (npos != 2) {
        attn_error("compare: needs two files, A and B (see attn compare --help)");
        return ATTN_USAGE;
    }
    st_file fa, fb;
    char err[512];
    if (st_read(&fa, pos[0], err, sizeof err) != AT_OK) {
        attn_error("cannot read: %s", err);
        return ATTN_FAIL;
    }
    if (st_read(&fb, pos[1], err, sizeof err) != AT_OK) {
        attn_error("cannot read: %s", err);
        st_free(&fa);
        return ATTN_FAIL;
    }
    printf("A = %s\nB = %s\natol %g, rtol %g\n", pos[0], pos[1], atol, rtol);
    int common = 0, differ = 0, rc = ATTN_OK;
    for (int i = 0; i < fa.count && rc == ATTN_OK; i++) {
        const st_tensor *tb = st_find(&fb, fa.tensors[i].name);
        if (!tb)
            continue;
        common++;
        int c = compare_one(&fa.tensors[i], pos[0], tb, pos[1], atol, rtol);
        if (c < 0)
            rc = ATTN_FAIL;
        differ += c > 0;
    }
    if (rc == ATTN_OK) {
        printf("%d tensors compared, %d differ; %d only in A, %d only in B\n", common, differ,
               fa.count - common, fb.count - common);
        if (common == 0) {
            attn_error("compare: the files have no tensor name in common");
            rc = ATTN_FAIL;
        } else if (differ) {
            attn_error("compare: %d of %d tensors differ", differ, common);
            rc = ATTN_FAIL;
        }
    }
    st_free(&fa);
    st_free(&fb);
    return rc;
}
