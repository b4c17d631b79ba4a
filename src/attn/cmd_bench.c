/* attn bench forward: time the forward pass of a randomly initialised model
 * and, in the same run, OpenBLAS's sgemm on the shape of its largest linear. */
#include <cJSON.h>
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn.h"

static const char help[] =
    "usage: attn bench forward [--layers N] [--d-model D] [--heads H] [--d-ff F]\n"
    "                          [--vocab V] [--batch B] [--src-len S] [--tgt-len T]\n"
    "                          [--iters K] [--warmup W] [--threads N] [--json]\n"
    "\n"
    "Time the full forward pass (encoder, decoder, generator; evaluation mode) of a\n"
    "randomly initialised model on random ids, and OpenBLAS's sgemm in the same run\n"
    "on the shape of the model's largest linear (M = B*S rows, K = d_model,\n"
    "N = d_ff), so the two throughputs can be compared on this machine as it is.\n"
    "FLOPs counted: every linear 2*rows*in*out, attention QK^T and PV\n"
    "2*B*h*Lq*Lk*d_k each, the generator; not softmax, layer norm or embedding.\n"
    "\n"
    "  --layers N    layers in the encoder and in the decoder (default 6)\n"
    "  --d-model D   model width (default 512)\n"
    "  --heads H     attention heads (default 8)\n"
    "  --d-ff F      feed-forward inner width (default 2048)\n"
    "  --vocab V     source and target vocabulary (default 1000)\n"
    "  --batch B     sentences per batch (default 1)\n"
    "  --src-len S   source length (default 32)\n"
    "  --tgt-len T   target length (default 32; 0 times the encoder alone)\n"
    "  --iters K     timed iterations (default 20)\n"
    "  --warmup W    untimed iterations first (default 2)\n"
    "  --threads N   threads for OpenBLAS and libat (default: as configured; see\n"
    "                OPENBLAS_NUM_THREADS)\n"
    "  --json        print one JSON object instead of text\n"
    "  -h, --help    this text\n"
    "\n"
    "The defaults are the paper's base model. OpenBLAS picks its kernels from the\n"
    "CPU unless OPENBLAS_CORETYPE says otherwise; the core it chose is printed.\n";

typedef struct bench_cfg {
    int layers, d, heads, d_ff, vocab, batch, S, T, iters, warmup, threads;
    bool json;
} bench_cfg;

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median and minimum of n times (sorted in place). */
static void stats(double *t, int n, double *median, double *min)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    *min = t[0];
    *median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* FLOPs of one forward pass. */
static double forward_flops(const bench_cfg *c)
{
    double B = c->batch, S = c->S, T = c->T, d = c->d, f = c->d_ff, V = c->vocab;
    double rs = B * S, rt = B * T;
    /* per encoder layer: q, k, v, out projections; QK^T and PV (h*d_k = d); FFN */
    double enc = 4 * 2 * rs * d * d + 2 * 2 * B * S * S * d + 2 * 2 * rs * d * f;
    double dec = 0;
    if (c->T > 0)
        dec = 4 * 2 * rt * d * d + 2 * 2 * B * T * T * d          /* self-attention */
              + 2 * 2 * rt * d * d + 2 * 2 * rs * d * d           /* cross: q, out; k, v */
              + 2 * 2 * B * T * S * d                             /* cross QK^T, PV */
              + 2 * 2 * rt * d * f;                               /* FFN */
    double gen = c->T > 0 ? 2 * rt * d * V : 0;
    return c->layers * (enc + dec) + gen;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static at_status make_model(const bench_cfg *c, at_model **out)
{
    at_config *cfg;
    at_status s = at_config_create(&cfg);
    int max_len = c->S > c->T ? c->S : c->T;
    const struct { at_param k; int v; } set[] = {
        {AT_P_LAYERS, c->layers}, {AT_P_D_MODEL, c->d}, {AT_P_HEADS, c->heads},
        {AT_P_D_FF, c->d_ff}, {AT_P_SRC_VOCAB, c->vocab}, {AT_P_TGT_VOCAB, c->vocab},
    };
    for (size_t i = 0; s == AT_OK && i < sizeof set / sizeof *set; i++)
        s = at_config_set(cfg, set[i].k, set[i].v);
    double def_len = 0;
    if (s == AT_OK && at_config_get(cfg, AT_P_MAX_LEN, &def_len) == AT_OK && max_len > def_len)
        s = at_config_set(cfg, AT_P_MAX_LEN, max_len);
    if (s == AT_OK)
        s = at_model_create(cfg, out);
    at_config_free(cfg);
    return s;
}

typedef struct result {
    double fwd_median, fwd_min, flops;
    double gemm_median, gemm_min, gemm_flops;
    int M, N, K;
} result;

/* Times cblas_sgemm C = A W^T with A (M, K), W (N, K), as a linear layer does. */
static int time_sgemm(const bench_cfg *c, result *r, double *times)
{
    r->M = c->batch * c->S, r->K = c->d, r->N = c->d_ff;
    size_t na = (size_t)r->M * r->K, nw = (size_t)r->N * r->K, nc = (size_t)r->M * r->N;
    float *a = malloc(na * sizeof *a), *w = malloc(nw * sizeof *w), *o = malloc(nc * sizeof *o);
    if (!a || !w || !o) {
        free(a), free(w), free(o);
        attn_error("bench: out of memory for the sgemm of %d x %d x %d", r->M, r->K, r->N);
        return ATTN_FAIL;
    }
    uint64_t s = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < na; i++)
        a[i] = (float)(rng_next(&s) >> 40) / (float)(1u << 24) - 0.5f;
    for (size_t i = 0; i < nw; i++)
        w[i] = (float)(rng_next(&s) >> 40) / (float)(1u << 24) - 0.5f;
    for (int i = -c->warmup; i < c->iters; i++) {
        double t0 = now_sec();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r->M, r->N, r->K, 1.0f, a, r->K,
                    w, r->K, 0.0f, o, r->N);
        if (i >= 0)
            times[i] = now_sec() - t0;
    }
    stats(times, c->iters, &r->gemm_median, &r->gemm_min);
    r->gemm_flops = 2.0 * r->M * r->N * r->K;
    free(a), free(w), free(o);
    return ATTN_OK;
}

static int run(const bench_cfg *c, result *r)
{
    if (c->threads > 0)
        at_set_threads(c->threads);
    at_model *m = NULL;
    at_status s = make_model(c, &m);
    if (s != AT_OK) {
        attn_error("bench: cannot create the model: %s", at_errmsg(NULL));
        return s == AT_E_ARG ? ATTN_USAGE : ATTN_FAIL;
    }
    size_t ns = (size_t)c->batch * c->S, nt = (size_t)c->batch * c->T;
    int32_t *src = malloc(ns * sizeof *src), *tgt = c->T ? malloc(nt * sizeof *tgt) : NULL;
    double *times = malloc((size_t)c->iters * sizeof *times);
    int rc = ATTN_OK;
    if (!src || (c->T && !tgt) || !times) {
        attn_error("bench: out of memory for the batch");
        rc = ATTN_FAIL;
    } else {
        uint64_t seed = 88172645463325252u;   /* ids 1..V-1: nothing is padded */
        for (size_t i = 0; i < ns; i++)
            src[i] = c->vocab > 1 ? 1 + (int32_t)(rng_next(&seed) % (uint64_t)(c->vocab - 1)) : 0;
        for (size_t i = 0; i < nt; i++)
            tgt[i] = c->vocab > 1 ? 1 + (int32_t)(rng_next(&seed) % (uint64_t)(c->vocab - 1)) : 0;
        for (int i = -c->warmup; i < c->iters && rc == ATTN_OK; i++) {
            double t0 = now_sec();
            if (at_forward(m, src, tgt, c->batch, c->S, c->T, 0) != AT_OK) {
                attn_error("bench: forward pass failed: %s", at_errmsg(m));
                rc = ATTN_FAIL;
            } else if (i >= 0) {
                times[i] = now_sec() - t0;
            }
        }
    }
    at_model_free(m);
    free(src);
    free(tgt);
    if (rc == ATTN_OK) {
        stats(times, c->iters, &r->fwd_median, &r->fwd_min);
        r->flops = forward_flops(c);
        rc = time_sgemm(c, r, times);
    }
    free(times);
    return rc;
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v ? v : dflt;
}

static void print_text(const bench_cfg *c, const result *r)
{
    double fwd = r->flops / r->fwd_median * 1e-9, gemm = r->gemm_flops / r->gemm_median * 1e-9;
    printf("forward: N %d, d_model %d, h %d, d_ff %d, vocab %d, batch %d, src_len %d, "
           "tgt_len %d\n", c->layers, c->d, c->heads, c->d_ff, c->vocab, c->batch, c->S, c->T);
    printf("OpenBLAS: core %s, %d threads; OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s\n",
           openblas_get_corename(), openblas_get_num_threads(),
           env_or("OPENBLAS_CORETYPE", "(unset)"), env_or("OPENBLAS_L2_SIZE", "(unset)"));
    printf("forward: median %.2f ms, min %.2f ms over %d iterations (%d warm-up); "
           "%.3f GFLOP per pass, %.1f GFLOP/s\n", r->fwd_median * 1e3, r->fwd_min * 1e3,
           c->iters, c->warmup, r->flops * 1e-9, fwd);
    printf("sgemm:   M %d x K %d x N %d (the FFN's first linear): median %.3f ms, "
           "%.1f GFLOP/s\n", r->M, r->K, r->N, r->gemm_median * 1e3, gemm);
    printf("ratio:   the forward pass runs at %.2f of that sgemm throughput\n", fwd / gemm);
}

static int print_json(const bench_cfg *c, const result *r)
{
    cJSON *o = cJSON_CreateObject(), *cfg, *blas, *f, *g;
    if (!o)
        return ATTN_FAIL;
    cJSON_AddStringToObject(o, "bench", "forward");
    cJSON_AddStringToObject(o, "libat_version", at_version_string());
    cJSON_AddItemToObject(o, "config", cfg = cJSON_CreateObject());
    const struct { const char *k; int v; } items[] = {
        {"layers", c->layers}, {"d_model", c->d}, {"heads", c->heads}, {"d_ff", c->d_ff},
        {"vocab", c->vocab}, {"batch", c->batch}, {"src_len", c->S}, {"tgt_len", c->T},
        {"iters", c->iters}, {"warmup", c->warmup},
    };
    for (size_t i = 0; i < sizeof items / sizeof *items; i++)
        cJSON_AddNumberToObject(cfg, items[i].k, items[i].v);
    cJSON_AddItemToObject(o, "openblas", blas = cJSON_CreateObject());
    cJSON_AddStringToObject(blas, "core", openblas_get_corename());
    cJSON_AddNumberToObject(blas, "threads", openblas_get_num_threads());
    const char *envs[] = {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS"};
    for (size_t i = 0; i < sizeof envs / sizeof *envs; i++) {
        const char *v = getenv(envs[i]);
        cJSON_AddItemToObject(blas, envs[i], v ? cJSON_CreateString(v) : cJSON_CreateNull());
    }
    cJSON_AddItemToObject(o, "forward", f = cJSON_CreateObject());
    cJSON_AddNumberToObject(f, "median_ms", r->fwd_median * 1e3);
    cJSON_AddNumberToObject(f, "min_ms", r->fwd_min * 1e3);
    cJSON_AddNumberToObject(f, "gflop", r->flops * 1e-9);
    cJSON_AddNumberToObject(f, "gflops", r->flops / r->fwd_median * 1e-9);
    cJSON_AddItemToObject(o, "sgemm", g = cJSON_CreateObject());
    cJSON_AddNumberToObject(g, "m", r->M);
    cJSON_AddNumberToObject(g, "k", r->K);
    cJSON_AddNumberToObject(g, "n", r->N);
    cJSON_AddNumberToObject(g, "median_ms", r->gemm_median * 1e3);
    cJSON_AddNumberToObject(g, "min_ms", r->gemm_min * 1e3);
    cJSON_AddNumberToObject(g, "gflops", r->gemm_flops / r->gemm_median * 1e-9);
    cJSON_AddNumberToObject(o, "ratio", (r->flops / r->fwd_median) /
                                            (r->gemm_flops / r->gemm_median));
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text) {
        attn_error("bench: out of memory");
        return ATTN_FAIL;
    }
    printf("%s\n", text);
    cJSON_free(text);
    return ATTN_OK;
}

int cmd_bench(int argc, char **argv)
{
    bench_cfg c = {.layers = 6, .d = 512, .heads = 8, .d_ff = 2048, .vocab = 1000,
                   .batch = 1, .S = 32, .T = 32, .iters = 20, .warmup = 2};
    double lo[AT_P_ATTN_DROPOUT + 1] = {0}, hi[AT_P_ATTN_DROPOUT + 1] = {0};
    for (int k = 1; k <= AT_P_ATTN_DROPOUT; k++)
        at_param_bounds((at_param)k, &lo[k], &hi[k]);
    double vocab_lo = lo[AT_P_SRC_VOCAB] > 2 ? lo[AT_P_SRC_VOCAB] : 2;
    opt opts[] = {
        {"layers", OPT_INT, &c.layers, lo[AT_P_LAYERS], hi[AT_P_LAYERS], false},
        {"d-model", OPT_INT, &c.d, lo[AT_P_D_MODEL], hi[AT_P_D_MODEL], false},
        {"heads", OPT_INT, &c.heads, lo[AT_P_HEADS], hi[AT_P_HEADS], false},
        {"d-ff", OPT_INT, &c.d_ff, lo[AT_P_D_FF], hi[AT_P_D_FF], false},
        {"vocab", OPT_INT, &c.vocab, vocab_lo, hi[AT_P_SRC_VOCAB], false},
        {"batch", OPT_INT, &c.batch, 1, 1 << 20, false},
        {"src-len", OPT_INT, &c.S, 1, 1 << 20, false},
        {"tgt-len", OPT_INT, &c.T, 0, 1 << 20, false},
        {"iters", OPT_INT, &c.iters, 1, 1000000, false},
        {"warmup", OPT_INT, &c.warmup, 0, 1000000, false},
        {"threads", OPT_INT, &c.threads, 1, 4096, false},
        {"json", OPT_FLAG, &c.json, 0, 0, false},
    };
    char *pos[1];
    int npos;
    int r = args_parse(argc, argv, opts, (int)(sizeof opts / sizeof *opts), pos, 1, &npos);
    if (r == ARGS_HELP) {
        fputs(help, stdout);
        return ATTN_OK;
    }
    if (r != ARGS_OK)
        return ATTN_USAGE;
    if (npos == 0) {
        attn_error("bench: say what to time: attn bench forward (see attn bench --help)");
        return ATTN_USAGE;
    }
    if (strcmp(pos[0], "forward") != 0) {
        attn_error("bench: unknown benchmark '%.40s'; there is: forward", pos[0]);
        return ATTN_USAGE;
    }
    result res;
    int rc = run(&c, &res);
    if (rc != ATTN_OK)
        return rc;
    if (c.json)
        return print_json(&c, &res);
    print_text(&c, &res);
    return ATTN_OK;
}
