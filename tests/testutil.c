#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "testutil.h"

static bool is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

bool write_all(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

bool golden_open(golden *g, const char *name)
{
    memset(g, 0, sizeof *g);
    snprintf(g->dir, sizeof g->dir, "%s/golden/%s", AT_TEST_DATA, name);
    if (!is_dir(g->dir))
        snprintf(g->dir, sizeof g->dir, "%s/%s", AT_SHARED_GOLDEN, name);
    if (!is_dir(g->dir))
        return false;
    char path[1100], err[512];
    snprintf(path, sizeof path, "%s/case.json", g->dir);
    size_t len;
    char *text = (char *)read_all(path, &len);
    ck_assert_msg(text, "cannot read %s", path);
    g->kase = cJSON_ParseWithLength(text, len);
    free(text);
    ck_assert_msg(g->kase, "%s is not JSON", path);

    snprintf(path, sizeof path, "%s/io.safetensors", g->dir);
    ck_assert_msg(st_read(&g->io, path, err, sizeof err) == AT_OK, "%s", err);

    at_config *hint;
    ck_assert_int_eq(at_config_create(&hint), AT_OK);
    ck_assert_int_eq(at_config_set(hint, AT_P_HEADS, golden_config_int(g, "h")), AT_OK);
    snprintf(path, sizeof path, "%s/model.safetensors", g->dir);
    at_status s = at_model_load(path, hint, &g->m);
    at_config_free(hint);
    ck_assert_msg(s == AT_OK, "loading %s: %s", path, at_errmsg(NULL));
    return true;
}

void golden_close(golden *g)
{
    at_model_free(g->m);
    st_free(&g->io);
    cJSON_Delete(g->kase);
    memset(g, 0, sizeof *g);
}

const st_tensor *golden_tensor(const golden *g, const char *name)
{
    const st_tensor *t = st_find(&g->io, name);
    ck_assert_msg(t, "%s: no tensor '%s' in io.safetensors", g->dir, name);
    return t;
}

int32_t *golden_ids(const golden *g, const char *name, int64_t *rows, int64_t *cols)
{
    const st_tensor *t = golden_tensor(g, name);
    ck_assert_int_eq(t->ndim, 2);
    int64_t *wide = malloc((size_t)t->numel * sizeof *wide);
    int32_t *ids = malloc((size_t)t->numel * sizeof *ids);
    char err[256];
    ck_assert_msg(st_to_i64(t, wide, err, sizeof err) == AT_OK, "%s", err);
    for (int64_t i = 0; i < t->numel; i++)
        ids[i] = (int32_t)wide[i];
    free(wide);
    *rows = t->shape[0];
    *cols = t->shape[1];
    return ids;
}

double golden_tol(const golden *g, const char *group, const char *field)
{
    cJSON *tol = cJSON_GetObjectItemCaseSensitive(g->kase, "tolerances");
    cJSON *grp = cJSON_GetObjectItemCaseSensitive(tol, group);
    cJSON *v = cJSON_GetObjectItemCaseSensitive(grp, field);
    ck_assert_msg(cJSON_IsNumber(v), "case.json has no tolerances.%s.%s", group, field);
    return v->valuedouble;
}

int golden_config_int(const golden *g, const char *key)
{
    cJSON *cfg = cJSON_GetObjectItemCaseSensitive(g->kase, "config");
    cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    ck_assert_msg(cJSON_IsNumber(v), "case.json has no config.%s", key);
    return v->valueint;
}

long compare_view(const at_view *v, const st_tensor *ref, double atol, double rtol,
                  const char *label, double *max_err)
{
    ck_assert_msg(v->ndim == ref->ndim, "%s: view has %d dims, reference %d", label, v->ndim,
                  ref->ndim);
    for (int i = 0; i < ref->ndim; i++)
        ck_assert_msg(v->shape[i] == ref->shape[i], "%s: dim %d is %lld, reference %lld",
                      label, i, (long long)v->shape[i], (long long)ref->shape[i]);
    float *want = malloc((size_t)ref->numel * sizeof *want);
    char err[256];
    if (st_to_f32(ref, want, err, sizeof err) != AT_OK) {   /* ids and masks: I64 */
        int64_t *wide = malloc((size_t)ref->numel * sizeof *wide);
        ck_assert_msg(st_to_i64(ref, wide, err, sizeof err) == AT_OK, "%s", err);
        for (int64_t i = 0; i < ref->numel; i++)
            want[i] = (float)wide[i];
        free(wide);
    }
    int64_t dims[4] = {1, 1, 1, 1};
    for (int i = 0; i < v->ndim; i++)
        dims[i] = v->shape[i];
    long bad = 0;
    double worst = 0;
    int64_t n = 0;
    for (int64_t a = 0; a < dims[0]; a++)
        for (int64_t b = 0; b < dims[1]; b++)
            for (int64_t c = 0; c < dims[2]; c++)
                for (int64_t d = 0; d < dims[3]; d++, n++) {
                    double got = v->data[a * v->stride[0] + b * v->stride[1] +
                                         c * v->stride[2] + d * v->stride[3]];
                    double e = fabs(got - want[n]);
                    if (!(e <= atol + rtol * fabs(want[n])))
                        bad++;
                    if (!(e <= worst))
                        worst = e;
                }
    free(want);
    printf("  %-28s max |err| %.3g (atol %.3g)%s\n", label, worst, atol,
           bad ? "  OUT OF TOLERANCE" : "");
    if (max_err)
        *max_err = worst;
    return bad;
}

static char tmp_dir[256];

const char *tmp_path(const char *name)
{
    static char path[512];
    if (!tmp_dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmp_dir, sizeof tmp_dir, "%s/at_test_XXXXXX", base ? base : "/tmp");
        ck_assert_msg(mkdtemp(tmp_dir), "mkdtemp failed");
    }
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    return path;
}

void tmp_cleanup(void)
{
    if (!tmp_dir[0])
        return;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_dir);
    tmp_dir[0] = '\0';
}

/* 2 layers, d_model 16, 2 heads, d_ff 32, vocabularies 7 and 9, max_len 64. */
at_model *small_model(int seed)
{
    at_config *cfg;
    ck_assert_int_eq(at_config_create(&cfg), AT_OK);
    double v[][2] = {{AT_P_LAYERS, 2}, {AT_P_D_MODEL, 16}, {AT_P_HEADS, 2},
                     {AT_P_D_FF, 32}, {AT_P_SRC_VOCAB, 7}, {AT_P_TGT_VOCAB, 9},
                     {AT_P_MAX_LEN, 64}, {AT_P_SEED, seed}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        ck_assert_int_eq(at_config_set(cfg, (at_param)v[i][0], v[i][1]), AT_OK);
    at_model *m;
    ck_assert_int_eq(at_model_create(cfg, &m), AT_OK);
    at_config_free(cfg);
    return m;
}


long golden_check_greedy(const golden *g, const int32_t *ys, int64_t n, const at_view *logp)
{
    int64_t one, len;
    int32_t *want = golden_ids(g, "greedy.ys", &one, &len);
    ck_assert_int_eq(len, n);
    for (int64_t t = 0; t < n; t++)
        ck_assert_msg(ys[t] == want[t], "step %lld: %d, reference %d", (long long)t, ys[t],
                      want[t]);
    free(want);
    long bad = 0;
    double atol = golden_tol(g, "attention_probs", "recommended_atol");
    char name[64];
    for (int l = 0; l < golden_config_int(g, "N"); l++) {
        at_view v;
        ck_assert_int_eq(at_get_attention(g->m, AT_ATTN_DEC_SELF, l, &v), AT_OK);
        snprintf(name, sizeof name, "greedy.self_attn_last.%d", l);
        bad += compare_view(&v, golden_tensor(g, name), atol, 1e-4, name, NULL);
        ck_assert_int_eq(at_get_attention(g->m, AT_ATTN_CROSS, l, &v), AT_OK);
        snprintf(name, sizeof name, "greedy.cross_attn_last.%d", l);
        bad += compare_view(&v, golden_tensor(g, name), atol, 1e-4, name, NULL);
    }
    bad += compare_view(logp, golden_tensor(g, "greedy.logprobs"),
                        golden_tol(g, "logprobs", "recommended_atol"), 1e-4, "greedy.logprobs",
                        NULL);
    return bad;
}
