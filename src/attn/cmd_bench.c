/* attn bench forward: time the forward pass of a randomly initialised model
 * and, in the same run, OpenBLAS's sgemm on the shape of its largest linear. */
#include <cJSON.h>
#include <cblas.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn.h"

static const char help[] =
    "usage: attn bench forward|train|decode [options]\n"
    "\n"
    "  attn bench forward [--layers N] [--d-model D] [--heads H] [--d-ff F] [--vocab V]\n"
    "                     [--batch B] [--src-len S] [--tgt-len T] [--iters K]\n"
    "                     [--warmup W] [--threads N] [--json]\n"
    "    The full forward pass (encoder, decoder, generator; evaluation mode) of a\n"
    "    randomly initialised model on random ids, and OpenBLAS's sgemm in the same\n"
    "    run on the shape of the model's largest linear (M = B*S rows, K = d_model,\n"
    "    N = d_ff), so the two throughputs can be compared on this machine as it is.\n"
    "    FLOPs counted: every linear 2*rows*in*out, attention QK^T and PV\n"
    "    2*B*h*Lq*Lk*d_k each, the generator; not softmax, layer norm or embedding.\n"
    "    Defaults: the paper's base model, vocab 1000, batch 1, S = T = 32, 20\n"
    "    iterations after 2 warm-up ones.\n"
    "\n"
    "  attn bench train [same options]\n"
    "    One training step (at_train_step: forward with dropout, loss, backward,\n"
    "    Adam) on random ids: the decoder reads T ids (the batch's full target has\n"
    "    T + 1). FLOPs: 3 x the forward pass's, the usual convention. Defaults: the\n"
    "    base model, vocab 1000, batch 32, S = T = 32, 5 iterations after 1 warm-up.\n"
    "  attn bench train --task copy [--epochs K] [--layers ...] [--threads N] [--json]\n"
    "    One epoch of the copy task with the reference's settings (vocabulary 11,\n"
    "    N 2, d_model 512, h 8, d_ff 2048; 20 training batches of 80 x 10, then 5\n"
    "    evaluation batches), as attn train runs it; seconds per epoch over --epochs\n"
    "    epochs (default 1) after --warmup untimed steps (default 1).\n"
    "\n"
    "  After forward, train and the copy task, the ceiling (at_kernel_peak, 0.5 s):\n"
    "  libat's kernel on every thread, on blocks held in cache; the workload's\n"
    "  GFLOP/s as a share of it moves less with a shared host's clock than time.\n"
    "\n"
    "  attn bench decode [--tokens N] [--layers ...] [--batch B] [--src-len S] ...\n"
    "    Greedy decoding (at_greedy_decode, key/value cache) of N tokens after the\n"
    "    start id (max_len N + 1; no end id), per decode and per token. Defaults:\n"
    "    the base model, vocab 1000, batch 1, S = 32, 32 tokens, 10 iterations\n"
    "    after 1 warm-up.\n"
    "  attn bench decode --beam K [same options]\n"
    "    Beam search (at_beam_decode: K hypotheses per sentence, alpha 0, no end id,\n"
    "    so every hypothesis runs the N tokens), then greedy decoding of the same\n"
    "    batch on the same model, and the ratio of the two times.\n"
    "\n"
    "  --layers N    layers in the encoder and in the decoder (default 6)\n"
    "  --d-model D   model width (default 512)\n"
    "  --heads H     attention heads (default 8)\n"
    "  --d-ff F      feed-forward inner width (default 2048)\n"
    "  --vocab V     source and target vocabulary (default 1000)\n"
    "  --batch B     sentences per batch\n"
    "  --src-len S   source length (default 32)\n"
    "  --tgt-len T   decoder length (default 32; forward: 0 times the encoder alone)\n"
    "  --tokens N    decode: tokens to generate (default 32)\n"
    "  --beam K      decode: beam search with K hypotheses per sentence\n"
    "  --task copy   train: time copy-task epochs instead of one step\n"
    "  --epochs K    train --task copy: timed epochs (default 1)\n"
    "  --iters K     timed iterations\n"
    "  --warmup W    untimed iterations (train --task copy: steps) first\n"
    "  --interventions  forward, decode: also time, in alternating rounds, a handle\n"
    "                on the same weights whose interventions exist but do nothing\n"
    "                (every gate set to 1) and one with a no-op tap on every site\n"
    "  --threads N   threads for OpenBLAS and libat (default: as configured; see\n"
    "                OPENBLAS_NUM_THREADS)\n"
    "  --json        print one JSON object instead of text\n"
    "  -h, --help    this text\n"
    "\n"
    "OpenBLAS picks its kernels from the CPU unless OPENBLAS_CORETYPE says\n"
    "otherwise; the core it chose and the OPENBLAS_* variables are printed, and a\n"
    "warning when its kernels are below the CPU's (e.g. Prescott's SSE3 kernels on a\n"
    "CPU with AVX-512) with the OPENBLAS_CORETYPE value that fixes it.\n";

typedef enum bench_kind { BENCH_FORWARD, BENCH_TRAIN, BENCH_COPY, BENCH_DECODE } bench_kind;

typedef struct bench_cfg {
    bench_kind kind;
    int layers, d, heads, d_ff, vocab, batch, S, T, tokens, epochs, iters, warmup, threads;
    int beam;                     /* decode: 0 greedy, else beam search with K = beam */
    bool json;
    bool interventions;           /* forward, decode: idle and tapped handles beside */
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

/* Bytes of the weights one decoding step reads: every decoder layer's
 * self-attention, cross-attention query and output, feed-forward and norms
 * (the cross keys and values are computed once), the final norm and the
 * generator. */
static double decode_weight_bytes(const bench_cfg *c)
{
    double d = c->d, f = c->d_ff, V = c->vocab;
    double layer = (4 * d * d + 4 * d) + (2 * d * d + 2 * d) + (2 * d * f + f + d) + 6 * d;
    return 4 * (c->layers * layer + 2 * d + V * d + V);
}

/* The memory-bandwidth bound of a decoding step (issue 12): the decoder's
 * weights read once per token. The bandwidth is measured in the same run,
 * as a plain read of as many bytes by as many threads as decoding uses
 * (best of 5 sweeps): the weights of the base decoder (84 MB) may sit in a
 * large L3, and a datasheet figure would say nothing of that. */
typedef struct sweep {
    const float *x;
    size_t n;
    float sum;
} sweep;

static void *sweep_run(void *arg)
{
    sweep *s = arg;
    /* 64 independent sums: 16 vectors of SSE2 in flight, so that the adds'
     * latency does not bound the read (16 sums read half as fast) */
    float acc[64] = {0};
    size_t i = 0;
    for (; i + 64 <= s->n; i += 64)
        for (int u = 0; u < 64; u++)
            acc[u] += s->x[i + u];
    for (; i < s->n; i++)
        acc[0] += s->x[i];
    for (int u = 1; u < 64; u++)
        acc[0] += acc[u];
    s->sum = acc[0];
    return NULL;
}

static double read_gbps(double bytes, int threads)
{
    size_t n = (size_t)(bytes / sizeof(float));
    float *x = malloc(n * sizeof *x);
    if (!x)
        return 0;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(i & 7);
    threads = threads < 1 ? 1 : threads > 64 ? 64 : threads;
    pthread_t tid[64];
    bool made[64];
    sweep part[64];
    double best = 0;
    for (int round = 0; round < 6; round++) {
        double t0 = now_sec();
        for (int t = 0; t < threads; t++) {
            size_t lo = n * (size_t)t / (size_t)threads, hi = n * (size_t)(t + 1) / (size_t)threads;
            part[t] = (sweep){x + lo, hi - lo, 0};
            made[t] = t > 0 && pthread_create(&tid[t], NULL, sweep_run, &part[t]) == 0;
            if (t > 0 && !made[t])
                sweep_run(&part[t]);
        }
        sweep_run(&part[0]);
        for (int t = 1; t < threads; t++)
            if (made[t])
                pthread_join(tid[t], NULL);
        double gbps = bytes / (now_sec() - t0) * 1e-9;
        if (round > 0 && gbps > best)   /* round 0 warms the pages */
            best = gbps;
    }
    free(x);
    return best;
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
    int max_len = c->S > c->T + 1 ? c->S : c->T + 1;
    max_len = max_len > c->tokens + 1 ? max_len : c->tokens + 1;
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
    double median, min, flops;                 /* per iteration (copy: per epoch) */
    double gemm_median, gemm_min, gemm_flops;  /* forward */
    int M, N, K;
    double step_ms, eval_ms;                   /* copy: per training step, per eval batch */
    double greedy_median, greedy_min;          /* decode --beam: greedy on the same batch */
    double idle_median, tap_median;            /* --interventions */
    double read_gbps;                          /* decode: a plain read of the weights' bytes */
    double peak;                               /* at_kernel_peak after the runs, or -1 */
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

/* Random ids 1..V-1 (nothing is padded). */
static void random_ids(int32_t *ids, size_t n, int vocab, uint64_t *seed)
{
    for (size_t i = 0; i < n; i++)
        ids[i] = vocab > 1 ? 1 + (int32_t)(rng_next(seed) % (uint64_t)(vocab - 1)) : 0;
}

/* One timed call of the benchmark on m; false (message printed) if it failed. */
static bool run_once(const bench_cfg *c, at_model *m, const int32_t *src, const int32_t *tgt,
                     int32_t *out)
{
    at_status s;
    float loss;
    int len;
    switch (c->kind) {
    case BENCH_FORWARD:
        s = at_forward(m, src, tgt, c->batch, c->S, c->T, 0);
        break;
    case BENCH_TRAIN:
        s = at_train_step(m, src, tgt, c->batch, c->S, c->T + 1, 0, &loss, NULL);
        break;
    default:
        if (c->beam > 0) {
            at_beam_options o;
            at_beam_options_init(&o);
            o.beam_size = c->beam;
            o.alpha = 0;
            o.max_len_a = c->tokens + 1;
            o.max_len_b = 0;
            int *lens = (int *)(out + (size_t)c->batch * (c->tokens + 1));
            s = at_beam_decode(m, src, c->batch, c->S, 0, 1, -1, &o, out, c->tokens + 1, lens,
                               NULL);
        } else {
            s = at_greedy_decode(m, src, c->batch, c->S, 0, c->tokens + 1, 1, -1, out, &len);
        }
        break;
    }
    if (s == AT_OK)
        return true;
    static const char *what[] = {"forward pass", "training step", "", "decoding"};
    attn_error("bench: %s failed: %s", what[c->kind], at_errmsg(m));
    return false;
}

static at_status noop_tap(void *user, const at_tap_event *ev)
{
    (void)user, (void)ev;
    return AT_OK;
}

/* The plain handle, one whose interventions exist but do nothing, and one
 * with a no-op tap on every site, on the same weights, in alternating rounds
 * (the machine's drift falls on all three alike); r->median becomes the
 * plain handle's of these rounds. */
static int time_interventions(const bench_cfg *c, at_model *m, const int32_t *src,
                              const int32_t *tgt, int32_t *out, result *r, double *times)
{
    at_model *h[3] = {m, NULL, NULL};
    int rc = ATTN_OK;
    bool ok = at_model_share(m, &h[1]) == AT_OK && at_model_share(m, &h[2]) == AT_OK &&
              at_gate_set(h[1], AT_ALL, AT_ALL, AT_ALL, 1.0f) == AT_OK;
    for (int s = 0; ok && s < AT_SITE_COUNT; s++)
        ok = at_tap_add(h[2], (at_site)s, AT_ALL, s >= AT_SITE_SRC_EMBED ? 0 : AT_ALL,
                        noop_tap, NULL) == AT_OK;
    double *t3 = ok ? malloc((size_t)c->iters * 3 * sizeof *t3) : NULL;
    if (!t3) {
        attn_error("bench: cannot set up the interventions' handles: %s", at_errmsg(NULL));
        rc = ATTN_FAIL;
    }
    for (int i = -c->warmup; t3 && i < c->iters && rc == ATTN_OK; i++)
        for (int k = 0; k < 3 && rc == ATTN_OK; k++) {
            double t0 = now_sec();
            if (!run_once(c, h[k], src, tgt, out))
                rc = ATTN_FAIL;
            else if (i >= 0)
                t3[k * c->iters + i] = now_sec() - t0;
        }
    if (rc == ATTN_OK) {
        double lo;
        stats(t3, c->iters, &r->median, &r->min);
        stats(t3 + c->iters, c->iters, &r->idle_median, &lo);
        stats(t3 + 2 * (size_t)c->iters, c->iters, &r->tap_median, &lo);
        memcpy(times, t3, (size_t)c->iters * sizeof *times);
    }
    free(t3);
    at_model_free(h[1]);
    at_model_free(h[2]);
    return rc;
}

static int run(const bench_cfg *c, result *r)
{
    at_model *m = NULL;
    at_status s = make_model(c, &m);
    if (s != AT_OK) {
        attn_error("bench: cannot create the model: %s", at_errmsg(NULL));
        return s == AT_E_ARG ? ATTN_USAGE : ATTN_FAIL;
    }
    int tcols = c->kind == BENCH_TRAIN ? c->T + 1 : c->T;
    size_t ns = (size_t)c->batch * c->S, nt = (size_t)c->batch * tcols;
    /* decode: the ids, then (beam) the lengths */
    size_t no = c->kind == BENCH_DECODE ? (size_t)c->batch * (c->tokens + 2) : 0;
    int32_t *src = malloc(ns * sizeof *src), *tgt = nt ? malloc(nt * sizeof *tgt) : NULL;
    int32_t *out = no ? malloc(no * sizeof *out) : NULL;
    double *times = malloc((size_t)c->iters * 2 * sizeof *times);
    int rc = ATTN_OK;
    if (!src || (nt && !tgt) || (no && !out) || !times) {
        attn_error("bench: out of memory for the batch");
        rc = ATTN_FAIL;
    } else {
        uint64_t seed = 88172645463325252u;
        random_ids(src, ns, c->vocab, &seed);
        random_ids(tgt, nt, c->vocab, &seed);
        for (int i = -c->warmup; i < c->iters && rc == ATTN_OK; i++) {
            double t0 = now_sec();
            if (!run_once(c, m, src, tgt, out))
                rc = ATTN_FAIL;
            else if (i >= 0)
                times[i] = now_sec() - t0;
        }
        /* beam search against greedy decoding of the same batch, same model */
        bench_cfg greedy = *c;
        greedy.beam = 0;
        for (int i = -c->warmup; c->beam > 0 && i < c->iters && rc == ATTN_OK; i++) {
            double t0 = now_sec();
            if (!run_once(&greedy, m, src, tgt, out))
                rc = ATTN_FAIL;
            else if (i >= 0)
                times[c->iters + i] = now_sec() - t0;
        }
        if (rc == ATTN_OK && c->beam > 0)
            stats(times + c->iters, c->iters, &r->greedy_median, &r->greedy_min);
        if (rc == ATTN_OK && c->interventions)
            rc = time_interventions(c, m, src, tgt, out, r, times);
    }
    at_model_free(m);
    free(src);
    free(tgt);
    free(out);
    if (rc == ATTN_OK) {
        if (!c->interventions)
            stats(times, c->iters, &r->median, &r->min);
        /* a training step counts as 3 forward passes (forward, two backward products) */
        r->flops = c->kind == BENCH_DECODE ? 0
                                           : forward_flops(c) * (c->kind == BENCH_TRAIN ? 3 : 1);
        if (c->kind == BENCH_FORWARD)
            rc = time_sgemm(c, r, times);
        if (c->kind == BENCH_DECODE)
            r->read_gbps = read_gbps(decode_weight_bytes(c), at_get_threads());
    }
    free(times);
    return rc;
}

/* Copy-task epochs as attn train runs them, after c->warmup untimed steps. */
static int run_copy(const bench_cfg *c, result *r)
{
    copy_opts o;
    copy_defaults(&o);
    o.layers = c->layers, o.d_model = c->d, o.heads = c->heads, o.d_ff = c->d_ff;
    o.who = "bench";
    o.quiet = true;
    at_model *m;
    int rc = copy_create(&o, &m);
    if (rc != ATTN_OK)
        return rc;
    size_t n = (size_t)o.batch * o.seq_len;
    int32_t *ids = malloc(n * sizeof *ids);
    double *times = malloc((size_t)c->epochs * sizeof *times);
    double steps = 0, evals = 0;
    if (!ids || !times) {
        attn_error("bench: out of memory");
        rc = ATTN_FAIL;
    }
    copy_rng rng = copy_stream(0, 1000);
    for (int i = 0; i < c->warmup && rc == ATTN_OK; i++) {
        float loss;
        copy_rows(&rng, ids, o.batch, o.seq_len, o.vocab);
        if (at_train_step(m, ids, ids, o.batch, o.seq_len, o.seq_len, 0, &loss, NULL) != AT_OK) {
            attn_error("bench: training step failed: %s", at_errmsg(m));
            rc = ATTN_FAIL;
        }
    }
    for (int e = 0; e < c->epochs && rc == ATTN_OK; e++) {
        rng = copy_stream(0, (uint64_t)e);
        double t0 = now_sec();
        for (int b = 0; b < o.batches + o.eval_batches && rc == ATTN_OK; b++) {
            float loss;
            at_status s;
            copy_rows(&rng, ids, o.batch, o.seq_len, o.vocab);
            if (b < o.batches)
                s = at_train_step(m, ids, ids, o.batch, o.seq_len, o.seq_len, 0, &loss, NULL);
            else
                s = at_eval_loss(m, ids, ids, o.batch, o.seq_len, o.seq_len, 0, &loss, NULL);
            if (s != AT_OK) {
                attn_error("bench: copy-task batch failed: %s", at_errmsg(m));
                rc = ATTN_FAIL;
            }
            if (b == o.batches - 1)
                steps += now_sec() - t0;
        }
        times[e] = now_sec() - t0;
        evals += times[e];
    }
    if (rc == ATTN_OK) {
        r->step_ms = steps / c->epochs / o.batches * 1e3;
        r->eval_ms = (evals - steps) / c->epochs / o.eval_batches * 1e3;
        stats(times, c->epochs, &r->median, &r->min);
        bench_cfg f = *c;
        f.vocab = o.vocab, f.batch = o.batch, f.S = o.seq_len, f.T = o.seq_len - 1;
        r->flops = forward_flops(&f) * (3 * o.batches + o.eval_batches);
    }
    free(ids);
    free(times);
    at_model_free(m);
    return rc;
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v ? v : dflt;
}

static void print_text(const bench_cfg *c, const result *r)
{
    static const char *names[] = {"forward", "train", "copy", "decode"};
    if (c->kind == BENCH_COPY)
        printf("copy task: vocab 11, N %d, d_model %d, h %d, d_ff %d; one epoch = 20 training "
               "batches of 80 x 10 + 5 evaluation batches\n", c->layers, c->d, c->heads,
               c->d_ff);
    else if (c->kind == BENCH_DECODE)
        printf("decode: N %d, d_model %d, h %d, d_ff %d, vocab %d, batch %d, src_len %d, "
               "%d tokens%s\n", c->layers, c->d, c->heads, c->d_ff, c->vocab, c->batch, c->S,
               c->tokens, c->beam > 0 ? "; beam search against greedy decoding" : "");
    else
        printf("%s: N %d, d_model %d, h %d, d_ff %d, vocab %d, batch %d, src_len %d, "
               "tgt_len %d\n", names[c->kind], c->layers, c->d, c->heads, c->d_ff, c->vocab,
               c->batch, c->S, c->T);
    printf("OpenBLAS: core %s, %d threads; libat %d threads; OPENBLAS_CORETYPE=%s "
           "OPENBLAS_L2_SIZE=%s OPENBLAS_NUM_THREADS=%s\n", openblas_get_corename(),
           openblas_get_num_threads(), at_get_threads(), env_or("OPENBLAS_CORETYPE", "(unset)"),
           env_or("OPENBLAS_L2_SIZE", "(unset)"), env_or("OPENBLAS_NUM_THREADS", "(unset)"));
    printf("libat: %s kernels; LIBAT_GEMM=%s\n", at_kernel_name(), env_or("LIBAT_GEMM", "(unset)"));
    char blas[400];
    if (at_blas_report(blas, sizeof blas) == 1)
        printf("warning: %s\n", blas);
    switch (c->kind) {
    case BENCH_FORWARD: {
        double fwd = r->flops / r->median * 1e-9, gemm = r->gemm_flops / r->gemm_median * 1e-9;
        printf("forward: median %.2f ms, min %.2f ms over %d iterations (%d warm-up); "
               "%.3f GFLOP per pass, %.1f GFLOP/s\n", r->median * 1e3, r->min * 1e3, c->iters,
               c->warmup, r->flops * 1e-9, fwd);
        printf("sgemm:   M %d x K %d x N %d (the FFN's first linear): median %.3f ms, "
               "%.1f GFLOP/s\n", r->M, r->K, r->N, r->gemm_median * 1e3, gemm);
        printf("ratio:   the forward pass runs at %.2f of that sgemm throughput\n", fwd / gemm);
        break;
    }
    case BENCH_TRAIN:
        printf("train step: median %.2f ms, min %.2f ms over %d iterations (%d warm-up); "
               "%.3f GFLOP per step (3 x forward), %.1f GFLOP/s\n", r->median * 1e3,
               r->min * 1e3, c->iters, c->warmup, r->flops * 1e-9, r->flops / r->median * 1e-9);
        break;
    case BENCH_COPY:
        printf("copy epoch: median %.3f s, min %.3f s over %d epoch%s (%d warm-up steps); "
               "training step %.1f ms, evaluation batch %.1f ms; %.1f GFLOP/s (a step 3 x "
               "forward)\n", r->median, r->min, c->epochs, c->epochs == 1 ? "" : "s",
               c->warmup, r->step_ms, r->eval_ms, r->flops / r->median * 1e-9);
        break;
    case BENCH_DECODE: {
        double bytes = decode_weight_bytes(c);
        printf("decode: median %.2f ms, min %.2f ms per decode over %d iterations (%d warm-up); "
               "%.3f ms per token; decoder weights %.1f MB per token, read at %.1f GB/s\n",
               r->median * 1e3, r->min * 1e3, c->iters, c->warmup, r->median * 1e3 / c->tokens,
               bytes * 1e-6, bytes * c->tokens / r->median * 1e-9);
        if (r->read_gbps > 0)
            printf("bound: %.3f ms per token (those bytes read once per token at %.1f GB/s, a "
                   "plain read of as many bytes by %d threads in this run); decoding takes "
                   "%.2f x the bound\n", bytes / r->read_gbps * 1e-6, r->read_gbps,
                   at_get_threads(), r->median / c->tokens / (bytes / r->read_gbps * 1e-9));
        if (c->beam > 0)
            printf("beam %d: %.1f sentences/s; greedy: median %.2f ms per decode, %.1f "
                   "sentences/s; beam takes %.2f x greedy's time\n", c->beam,
                   c->batch / r->median, r->greedy_median * 1e3, c->batch / r->greedy_median,
                   r->median / r->greedy_median);
        break;
    }
    }
    if (r->peak > 0)
        printf("peak:    libat's %s kernel on %d threads, blocks held in cache: %.1f GFLOP/s; "
               "this workload runs at %.0f%% of it\n", at_kernel_name(), at_get_threads(),
               r->peak, r->flops / r->median * 1e-9 / r->peak * 100);
    if (c->interventions)
        printf("interventions (alternating rounds): none %.3f ms; idle (gates set to 1) %.3f ms, "
               "%+.2f%%; a no-op tap on every site %.3f ms, %+.2f%%\n", r->median * 1e3,
               r->idle_median * 1e3, (r->idle_median / r->median - 1) * 100,
               r->tap_median * 1e3, (r->tap_median / r->median - 1) * 100);
}

static int print_json(const bench_cfg *c, const result *r)
{
    static const char *names[] = {"forward", "train", "train-copy", "decode"};
    cJSON *o = cJSON_CreateObject(), *cfg, *blas, *f, *g;
    if (!o)
        return ATTN_FAIL;
    cJSON_AddStringToObject(o, "bench", names[c->kind]);
    cJSON_AddStringToObject(o, "libat_version", at_version_string());
    cJSON_AddItemToObject(o, "config", cfg = cJSON_CreateObject());
    const struct { const char *k; int v; bool on; } items[] = {
        {"layers", c->layers, true}, {"d_model", c->d, true}, {"heads", c->heads, true},
        {"d_ff", c->d_ff, true}, {"vocab", c->vocab, c->kind != BENCH_COPY},
        {"batch", c->batch, c->kind != BENCH_COPY}, {"src_len", c->S, c->kind != BENCH_COPY},
        {"tgt_len", c->T, c->kind == BENCH_FORWARD || c->kind == BENCH_TRAIN},
        {"tokens", c->tokens, c->kind == BENCH_DECODE},
        {"beam", c->beam, c->kind == BENCH_DECODE && c->beam > 0},
        {"epochs", c->epochs, c->kind == BENCH_COPY},
        {"iters", c->iters, c->kind != BENCH_COPY}, {"warmup", c->warmup, true},
    };
    for (size_t i = 0; i < sizeof items / sizeof *items; i++)
        if (items[i].on)
            cJSON_AddNumberToObject(cfg, items[i].k, items[i].v);
    cJSON_AddItemToObject(o, "openblas", blas = cJSON_CreateObject());
    cJSON_AddStringToObject(blas, "core", openblas_get_corename());
    cJSON_AddNumberToObject(blas, "threads", openblas_get_num_threads());
    cJSON_AddNumberToObject(blas, "libat_threads", at_get_threads());
    char report[400];
    int fallback = at_blas_report(report, sizeof report);
    cJSON_AddBoolToObject(blas, "fallback", fallback == 1);
    cJSON_AddStringToObject(blas, "report", report);
    const char *envs[] = {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS"};
    for (size_t i = 0; i < sizeof envs / sizeof *envs; i++) {
        const char *v = getenv(envs[i]);
        cJSON_AddItemToObject(blas, envs[i], v ? cJSON_CreateString(v) : cJSON_CreateNull());
    }
    cJSON *kern;
    cJSON_AddItemToObject(o, "kernels", kern = cJSON_CreateObject());
    cJSON_AddStringToObject(kern, "libat", at_kernel_name());
    const char *want = getenv("LIBAT_GEMM");
    cJSON_AddItemToObject(kern, "LIBAT_GEMM", want ? cJSON_CreateString(want) : cJSON_CreateNull());
    static const char *sections[] = {"forward", "train_step", "copy_epoch", "decode"};
    cJSON_AddItemToObject(o, sections[c->kind], f = cJSON_CreateObject());
    double unit = c->kind == BENCH_COPY ? 1 : 1e3;
    cJSON_AddNumberToObject(f, c->kind == BENCH_COPY ? "median_s" : "median_ms", r->median * unit);
    cJSON_AddNumberToObject(f, c->kind == BENCH_COPY ? "min_s" : "min_ms", r->min * unit);
    if (c->interventions) {
        cJSON_AddNumberToObject(f, "idle_median_ms", r->idle_median * 1e3);
        cJSON_AddNumberToObject(f, "tap_median_ms", r->tap_median * 1e3);
    }
    if (c->kind == BENCH_DECODE) {
        double bytes = decode_weight_bytes(c);
        cJSON_AddNumberToObject(f, "ms_per_token", r->median * 1e3 / c->tokens);
        cJSON_AddNumberToObject(f, "weight_mb_per_token", bytes * 1e-6);
        cJSON_AddNumberToObject(f, "weight_gbps", bytes * c->tokens / r->median * 1e-9);
        cJSON_AddNumberToObject(f, "sentences_per_s", c->batch / r->median);
        if (r->read_gbps > 0) {
            double bound = bytes / r->read_gbps * 1e-9;
            cJSON_AddNumberToObject(f, "read_gbps", r->read_gbps);
            cJSON_AddNumberToObject(f, "bound_ms_per_token", bound * 1e3);
            cJSON_AddNumberToObject(f, "over_bound", r->median / c->tokens / bound);
        }
        if (c->beam > 0) {
            cJSON_AddNumberToObject(f, "greedy_median_ms", r->greedy_median * 1e3);
            cJSON_AddNumberToObject(f, "greedy_sentences_per_s", c->batch / r->greedy_median);
            cJSON_AddNumberToObject(f, "beam_over_greedy", r->median / r->greedy_median);
        }
    } else {
        cJSON_AddNumberToObject(f, "gflop", r->flops * 1e-9);
        cJSON_AddNumberToObject(f, "gflops", r->flops / r->median * 1e-9);
    }
    if (r->peak > 0) {
        cJSON_AddNumberToObject(f, "kernel_peak_gflops", r->peak);
        cJSON_AddNumberToObject(f, "of_peak", r->flops / r->median * 1e-9 / r->peak);
    }
    if (c->kind == BENCH_COPY) {
        cJSON_AddNumberToObject(f, "step_ms", r->step_ms);
        cJSON_AddNumberToObject(f, "eval_batch_ms", r->eval_ms);
    }
    if (c->kind == BENCH_FORWARD) {
        cJSON_AddItemToObject(o, "sgemm", g = cJSON_CreateObject());
        cJSON_AddNumberToObject(g, "m", r->M);
        cJSON_AddNumberToObject(g, "k", r->K);
        cJSON_AddNumberToObject(g, "n", r->N);
        cJSON_AddNumberToObject(g, "median_ms", r->gemm_median * 1e3);
        cJSON_AddNumberToObject(g, "min_ms", r->gemm_min * 1e3);
        cJSON_AddNumberToObject(g, "gflops", r->gemm_flops / r->gemm_median * 1e-9);
        cJSON_AddNumberToObject(o, "ratio", (r->flops / r->median) /
                                                (r->gemm_flops / r->gemm_median));
    }
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

/* Options each benchmark takes (by name; --threads, --json everywhere). */
static bool option_applies(bench_kind k, const char *name)
{
    static const char *const only[][2] = {
        {"vocab", "fte"}, {"batch", "fte"}, {"src-len", "fte"}, {"tgt-len", "ft"},
        {"tokens", "e"}, {"beam", "e"}, {"task", "tc"}, {"epochs", "c"}, {"iters", "fte"},
        {"interventions", "fe"},
    };
    static const char code[] = "ftce";
    for (size_t i = 0; i < sizeof only / sizeof *only; i++)
        if (strcmp(only[i][0], name) == 0)
            return strchr(only[i][1], code[k]) != NULL;
    return true;
}

int cmd_bench(int argc, char **argv)
{
    bench_cfg c = {.layers = 6, .d = 512, .heads = 8, .d_ff = 2048, .vocab = 1000,
                   .S = 32, .T = 32, .tokens = 32, .epochs = 1};
    const char *task = NULL;
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
        {"tokens", OPT_INT, &c.tokens, 1, 1 << 20, false},
        {"beam", OPT_INT, &c.beam, 1, AT_BEAM_MAX, false},
        {"task", OPT_STR, &task, 0, 0, false},
        {"epochs", OPT_INT, &c.epochs, 1, 1000000, false},
        {"iters", OPT_INT, &c.iters, 1, 1000000, false},
        {"warmup", OPT_INT, &c.warmup, 0, 1000000, false},
        {"threads", OPT_INT, &c.threads, 1, 4096, false},
        {"json", OPT_FLAG, &c.json, 0, 0, false},
        {"interventions", OPT_FLAG, &c.interventions, 0, 0, false},
    };
    enum { NOPTS = sizeof opts / sizeof *opts };
    char *pos[1];
    int npos;
    int r = args_parse(argc, argv, opts, NOPTS, pos, 1, &npos);
    if (r == ARGS_HELP) {
        fputs(help, stdout);
        return ATTN_OK;
    }
    if (r != ARGS_OK)
        return ATTN_USAGE;
    if (npos == 0) {
        attn_error("bench: say what to time: attn bench forward|train|decode (see attn bench "
                   "--help)");
        return ATTN_USAGE;
    }
    static const char *kinds[] = {"forward", "train", NULL, "decode"};
    int k = 0;
    while (k < 4 && (!kinds[k] || strcmp(pos[0], kinds[k]) != 0))
        k++;
    if (k == 4) {
        attn_error("bench: unknown benchmark '%.40s'; there are: forward, train, decode", pos[0]);
        return ATTN_USAGE;
    }
    c.kind = (bench_kind)k;
    if (task && strcmp(task, "copy") != 0) {
        attn_error("bench: unknown task '%.40s'; there is: copy", task);
        return ATTN_USAGE;
    }
    if (task && c.kind == BENCH_TRAIN)
        c.kind = BENCH_COPY;
    for (int i = 0; i < NOPTS; i++) {
        if (opts[i].seen && !option_applies(c.kind, opts[i].name)) {
            attn_error("bench: --%s does not apply to attn bench %s%s", opts[i].name, pos[0],
                       c.kind == BENCH_COPY ? " --task copy" : "");
            return ATTN_USAGE;
        }
    }
    /* the defaults of each benchmark, for what the command line left unsaid */
    static const struct { int batch, iters, warmup, layers; } dflt[] = {
        [BENCH_FORWARD] = {1, 20, 2, 6},
        [BENCH_TRAIN] = {32, 5, 1, 6},
        [BENCH_COPY] = {80, 1, 1, 2},
        [BENCH_DECODE] = {1, 10, 1, 6},
    };
    int *fields[] = {&c.batch, &c.iters, &c.warmup, &c.layers};
    const int vals[] = {dflt[c.kind].batch, dflt[c.kind].iters, dflt[c.kind].warmup,
                        dflt[c.kind].layers};
    const char *names[] = {"batch", "iters", "warmup", "layers"};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < NOPTS; j++)
            if (strcmp(opts[j].name, names[i]) == 0 && !opts[j].seen)
                *fields[i] = vals[i];
    if (c.kind == BENCH_DECODE)
        c.T = 0;
    if (c.threads > 0)
        at_set_threads(c.threads);

    result res = {0};
    int rc = c.kind == BENCH_COPY ? run_copy(&c, &res) : run(&c, &res);
    if (rc != ATTN_OK)
        return rc;
    /* the ceiling, measured after the workload, in the same minute of the
     * host's clock; decoding is bound by memory instead (its own bound) */
    res.peak = c.kind == BENCH_DECODE ? -1.0 : at_kernel_peak(0.5);
    if (c.json)
        return print_json(&c, &res);
    print_text(&c, &res);
    return ATTN_OK;
}
