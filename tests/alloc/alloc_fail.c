/* Allocation-failure injection, as SQLite tests its allocator paths.
 *
 * This program is linked with the library's objects and with the GNU linker's
 * --wrap for every allocation function they call (tests/CMakeLists.txt), so
 * each malloc, calloc, realloc, aligned_alloc, strdup, realpath(.., NULL) made
 * by libat (and by cJSON, through cJSON_InitHooks) goes through the counter
 * below. For each operation (model create, load, forward, training step,
 * decoding, statistics, charts, saving, sharing, holds) it runs
 *
 *   clean:  the operation with nothing failing, counting its allocations
 *           (there must be some) and keeping its result;
 *   once:   for n = 1, 2, ...: the same operation, each time in a fresh
 *           thread on fresh objects, with allocation n failing, until a run
 *           completes without reaching allocation n;
 *   persistent: allocation n and every later one failing, for the n after
 *           which the once run went on allocating (for the others both modes
 *           are the same run).
 *
 * After each run: the status must be AT_E_NOMEM with a message whenever an
 * allocation failed (AT_OK only where the library can do without the memory,
 * as in removing stale temporaries, and then with the clean result); the
 * operation's own promises on failure must hold (parameters unchanged after a
 * failed training step, no views after a failed pass, no file left by a
 * failed save, no object from a failed create or load); the same operation
 * repeated with allocation working again must succeed with exactly the clean
 * result; and once everything is freed, no block allocated during the run
 * may be left (the wrapper's table of live blocks, in every build; in the
 * sanitizer build LeakSanitizer and ASan watch too). A run that does not end
 * in 60 s fails the test. First, a dozen malformed headers must still load
 * as AT_E_FORMAT (the loader's test for a failed allocation inside cJSON must
 * not take a syntax error for one).
 *
 *   alloc_fail [-v] [OPERATION...]    (default: every operation)
 *
 * -v prints every run, with the offset of the allocating call in this
 * program (addr2line -f -e alloc_fail 0x...).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "at.h"
#include "at_viz.h"

/* ================================================================ the wrapper */

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t al, size_t n);
int __real_posix_memalign(void **out, size_t al, size_t n);
void __real_free(void *p);
char *__real_realpath(const char *path, char *resolved);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t al, size_t n);
int __wrap_posix_memalign(void **out, size_t al, size_t n);
void __wrap_free(void *p);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
char *__wrap_realpath(const char *path, char *resolved);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static struct {
    bool armed;       /* allocations are counted (and may fail) */
    long count;       /* allocations counted since arm() */
    long fail_at;     /* the allocation that fails, 1-based (0: none) */
    bool persistent;  /* and every one after it */
    long refused;     /* allocations that failed */
    void *site;       /* the call that made the first of them */
} inj;

/* Every block the wrapper handed out and that is not freed yet: open
 * addressing with linear probing, deletion by backward shift. */
#define LIVE_BITS 14
#define LIVE_SLOTS (1u << LIVE_BITS)
typedef struct live_block { void *p; size_t size; void *site; unsigned long seq; } live_block;
static live_block live[LIVE_SLOTS];
static size_t nlive;
static unsigned long seq;   /* blocks handed out so far */

static size_t slot_of(const void *p)
{
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> (64 - LIVE_BITS));
}

static void live_add(void *p, size_t size, void *site)
{
    if (nlive >= LIVE_SLOTS / 2) {
        fprintf(stderr, "alloc_fail: more than %u live blocks\n", LIVE_SLOTS / 2);
        abort();
    }
    size_t i = slot_of(p);
    while (live[i].p)
        i = (i + 1) & (LIVE_SLOTS - 1);
    live[i] = (live_block){p, size, site, ++seq};
    nlive++;
}

/* Removes p; false when the wrapper did not hand it out (a block of the C
 * library's own, or of the test before it started). */
static bool live_remove(const void *p)
{
    size_t i = slot_of(p);
    while (live[i].p && live[i].p != p)
        i = (i + 1) & (LIVE_SLOTS - 1);
    if (!live[i].p)
        return false;
    live[i].p = NULL;
    nlive--;
    /* shift later members of the cluster back into the hole */
    for (size_t j = (i + 1) & (LIVE_SLOTS - 1); live[j].p; j = (j + 1) & (LIVE_SLOTS - 1)) {
        size_t home = slot_of(live[j].p);
        bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            live[i] = live[j];
            live[j].p = NULL;
            i = j;
        }
    }
    return true;
}

#define SITE __builtin_return_address(0)

/* Counts one allocation; true when it must fail. */
#define refuse() refuse_at(SITE)
static bool refuse_at(void *site)
{
    if (!inj.armed)
        return false;
    long n = ++inj.count;
    bool fail = inj.fail_at > 0 && (n == inj.fail_at || (inj.persistent && n > inj.fail_at));
    if (fail && !inj.refused++)
        inj.site = site;
    return fail;
}

static void *track(void *p, size_t size, void *site)
{
    if (p)
        live_add(p, size, site);
    return p;
}

void *__wrap_malloc(size_t n)
{
    pthread_mutex_lock(&lock);
    void *p = refuse() ? NULL : track(__real_malloc(n), n, SITE);
    pthread_mutex_unlock(&lock);
    if (!p)
        errno = ENOMEM;
    return p;
}

void *__wrap_calloc(size_t k, size_t n)
{
    pthread_mutex_lock(&lock);
    void *p = refuse() ? NULL : track(__real_calloc(k, n), k * n, SITE);
    pthread_mutex_unlock(&lock);
    if (!p)
        errno = ENOMEM;
    return p;
}

void *__wrap_aligned_alloc(size_t al, size_t n)
{
    pthread_mutex_lock(&lock);
    void *p = refuse() ? NULL : track(__real_aligned_alloc(al, n), n, SITE);
    pthread_mutex_unlock(&lock);
    if (!p)
        errno = ENOMEM;
    return p;
}

int __wrap_posix_memalign(void **out, size_t al, size_t n)
{
    pthread_mutex_lock(&lock);
    int e = ENOMEM;
    if (!refuse() && (e = __real_posix_memalign(out, al, n)) == 0)
        track(*out, n, SITE);
    pthread_mutex_unlock(&lock);
    return e;
}

void *__wrap_realloc(void *p, size_t n)
{
    pthread_mutex_lock(&lock);
    void *q = NULL;
    if (!refuse()) {
        q = __real_realloc(p, n);
        if (q) {
            if (p)
                live_remove(p);
            live_add(q, n, SITE);
        }
    }
    pthread_mutex_unlock(&lock);
    if (!q)
        errno = ENOMEM;
    return q;
}

void __wrap_free(void *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&lock);
    live_remove(p);
    pthread_mutex_unlock(&lock);
    __real_free(p);
}

char *__wrap_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    pthread_mutex_lock(&lock);
    char *p = refuse() ? NULL : track(__real_malloc(n), n, SITE);
    pthread_mutex_unlock(&lock);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    return memcpy(p, s, n);
}

char *__wrap_strndup(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    pthread_mutex_lock(&lock);
    char *p = refuse() ? NULL : track(__real_malloc(n + 1), n + 1, SITE);
    pthread_mutex_unlock(&lock);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* realpath(path, NULL) allocates its answer, which the caller frees. */
char *__wrap_realpath(const char *path, char *resolved)
{
    if (resolved)
        return __real_realpath(path, resolved);
    pthread_mutex_lock(&lock);
    bool fail = refuse();
    pthread_mutex_unlock(&lock);
    if (fail) {
        errno = ENOMEM;
        return NULL;
    }
    char *r = __real_realpath(path, NULL);
    if (r) {
        pthread_mutex_lock(&lock);
        live_add(r, strlen(r) + 1, SITE);
        pthread_mutex_unlock(&lock);
    }
    return r;
}

/* cJSON is a shared library: its own calls to malloc do not pass through
 * --wrap, so its hooks are pointed here. */
static void *cjson_malloc(size_t n) { return __wrap_malloc(n); }
static void cjson_free(void *p) { __wrap_free(p); }

static void arm(long fail_at, bool persistent)
{
    pthread_mutex_lock(&lock);
    inj.count = 0;
    inj.refused = 0;
    inj.fail_at = fail_at;
    inj.persistent = persistent;
    inj.armed = true;
    pthread_mutex_unlock(&lock);
}

/* Stops counting; returns the number of allocations counted. */
static long disarm(long *refused, void **site)
{
    pthread_mutex_lock(&lock);
    inj.armed = false;
    long n = inj.count;
    *refused = inj.refused;
    *site = inj.refused ? inj.site : NULL;
    pthread_mutex_unlock(&lock);
    return n;
}

/* ================================================================ results */

/* What an operation produced, as bytes (op.floats: float32 values). */
typedef struct blob {
    char *p;
    size_t n;
    FILE *f;
} blob;

static void blob_open(blob *b)
{
    b->p = NULL;
    b->n = 0;
    b->f = open_memstream(&b->p, &b->n);
    if (!b->f) {
        perror("alloc_fail: open_memstream");
        exit(2);
    }
}

static void blob_close(blob *b)
{
    if (b->f && fclose(b->f) != 0) {
        perror("alloc_fail: memory stream");
        exit(2);
    }
    b->f = NULL;
}

static void blob_free(blob *b)
{
    if (b->f)
        fclose(b->f);
    free(b->p);
    memset(b, 0, sizeof *b);
}

static void put(blob *b, const void *p, size_t n) { fwrite(p, 1, n, b->f); }

static void put_f(blob *b, float v) { put(b, &v, sizeof v); }

/* A view's elements, in order, as float32. */
static void put_view(blob *b, const at_view *v)
{
    int64_t want = 1;
    bool dense = true;
    for (int d = 3; d >= 0; d--) {
        dense &= v->shape[d] == 1 || v->stride[d] == want;
        want *= v->shape[d];
    }
    if (dense) {
        put(b, v->data, (size_t)want * sizeof *v->data);
        return;
    }
    for (int64_t i = 0; i < v->shape[0]; i++)
        for (int64_t j = 0; j < v->shape[1]; j++)
            for (int64_t k = 0; k < v->shape[2]; k++) {
                const float *row = v->data + i * v->stride[0] + j * v->stride[1] +
                                   k * v->stride[2];
                if (v->stride[3] == 1)
                    put(b, row, (size_t)v->shape[3] * sizeof *row);
                else
                    for (int64_t l = 0; l < v->shape[3]; l++)
                        put_f(b, row[l * v->stride[3]]);
            }
}

/* ================================================================ the model */

enum { LAYERS = 2, D_MODEL = 32, HEADS = 2, D_FF = 64, VOCAB = 11, MAX_LEN = 16 };
enum { B = 2, S = 6, TF = 6 };   /* a batch: 2 rows, source 6, full target 6 */

static const int32_t src_ids[B * S] = {1, 4, 2, 7, 3, 9, 5, 8, 6, 10, 0, 0};
static const int32_t tgt_ids[B * TF] = {1, 4, 2, 7, 3, 9, 1, 5, 8, 6, 0, 0};
static const int32_t src_small[3] = {1, 2, 3}, tgt_small[3] = {1, 2, 3};

/* The model of most operations; the checkpoints that the load operations
 * read are of a smaller one (1 layer, d_model 16), since every tensor there
 * is a dozen allocations of the JSON parser. */
static at_config *make_config_of(int layers, int d, int d_ff)
{
    at_config *c;
    if (at_config_create(&c) != AT_OK)
        return NULL;
    double v[][2] = {{AT_P_LAYERS, layers}, {AT_P_D_MODEL, d},      {AT_P_HEADS, HEADS},
                     {AT_P_D_FF, d_ff},     {AT_P_SRC_VOCAB, VOCAB}, {AT_P_TGT_VOCAB, VOCAB},
                     {AT_P_MAX_LEN, MAX_LEN}, {AT_P_SEED, 7},        {AT_P_WARMUP, 4}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (at_config_set(c, (at_param)v[i][0], v[i][1]) != AT_OK) {
            at_config_free(c);
            return NULL;
        }
    return c;
}

static at_config *make_config(void) { return make_config_of(LAYERS, D_MODEL, D_FF); }

/* Setup steps run with allocation working; a failure there is the test's. */
static void need(at_status s, const char *what, const at_model *m)
{
    if (s != AT_OK) {
        fprintf(stderr, "alloc_fail: setup: %s: %s: %s\n", what, at_status_string(s),
                at_errmsg(m));
        exit(2);
    }
}

static at_model *make_model(void)
{
    at_config *c = make_config();
    at_model *m = NULL;
    if (!c)
        need(AT_E_NOMEM, "config", NULL);
    need(at_model_create(c, &m), "at_model_create", NULL);
    at_config_free(c);
    return m;
}

static void put_tensors(blob *b, at_model *m)
{
    int n = at_model_tensor_count(m);
    for (int i = 0; i < n; i++) {
        at_view v;
        const char *name;
        if (at_model_tensor(m, i, &name, &v) != AT_OK)
            continue;
        put(b, name, strlen(name) + 1);
        put_view(b, &v);
    }
}

static void put_grads(blob *b, at_model *m)
{
    int n = at_model_tensor_count(m);
    for (int i = 0; i < n; i++) {
        at_view v;
        if (at_model_tensor_trainable(m, i) == 1 && at_model_grad(m, i, &v) == AT_OK)
            put_view(b, &v);
    }
}

/* Every attention tensor and output of the last pass that exists. */
static void put_pass(blob *b, at_model *m)
{
    for (int kind = 0; kind < 3; kind++)
        for (int l = 0; l < LAYERS; l++) {
            at_view v;
            at_status s = at_get_attention(m, (at_attn_kind)kind, l, &v);
            put_f(b, (float)s);
            if (s == AT_OK)
                put_view(b, &v);
        }
    for (int w = AT_OUT_SRC_EMBED; w <= AT_OUT_TGT_MASK; w++)
        for (int l = 0; l < (w == AT_OUT_ENC_LAYER || w == AT_OUT_DEC_LAYER ? LAYERS : 1);
             l++) {
            at_view v;
            at_status s = at_get_output(m, (at_output)w, l, &v);
            put_f(b, (float)s);
            if (s == AT_OK)
                put_view(b, &v);
        }
}

/* ================================================================ operations */

/* The state of one run of an operation. */
typedef struct ctx {
    const struct op *op;
    at_config *cfg;
    at_model *m, *m2;
    at_viz_options *opts;
    at_hold *hold;
    blob out;                /* a chart's stream */
    char path[600];          /* a file the operation writes */
    float loss;
    int64_t ntok;
    int32_t ids[B * 8];
    int len;
    int lens[B];             /* beam search: per row */
    double score[B];
} ctx;

typedef struct op {
    const char *name;
    void (*setup)(ctx *);                 /* with allocation working */
    at_status (*run)(ctx *);              /* the calls under test; repeatable */
    void (*snap)(ctx *, blob *);          /* its result */
    /* after a failure: what the library promises then; NULL when it holds */
    const char *(*after_fail)(ctx *, const blob *before);
    bool floats;                          /* snap holds float32 values */
    int chart, fmt, kind;                 /* for the chart operations */
    bool makes;   /* run creates the object: a failed one must leave none, and
                     there is nothing to use again */
} op;

/* Files: inference and training checkpoints written once by main(), and a
 * scratch directory for the saving operations. */
static char dir[256], ckpt[300], train_ckpt[300], save_dir[300];
static unsigned char *ckpt_bytes, *train_bytes;
static size_t ckpt_len, train_len;

static void free_ctx(ctx *c)
{
    at_model_free(c->m2);   /* a shared handle before its base */
    at_model_free(c->m);
    at_hold_release(c->hold);   /* a hold outlives its model */
    c->hold = NULL;
    at_config_free(c->cfg);
    at_viz_options_free(c->opts);
    blob_free(&c->out);
    c->m = c->m2 = NULL;
    c->cfg = NULL;
    c->opts = NULL;
}

static void no_setup(ctx *c) { (void)c; }
static void setup_model(ctx *c) { c->m = make_model(); }
static void setup_cfg(ctx *c)
{
    c->cfg = make_config();
    if (!c->cfg)
        need(AT_E_NOMEM, "config", NULL);
}

static void setup_forward(ctx *c)
{
    c->m = make_model();
    /* a small pass first, so the one under test grows the arena */
    need(at_forward(c->m, src_small, tgt_small, 1, 3, 3, 0), "small forward", c->m);
}

static void setup_trained(ctx *c)
{
    c->m = make_model();
    need(at_train_step(c->m, src_small, tgt_small, 1, 3, 3, 0, &c->loss, &c->ntok),
         "small step", c->m);
}

/* -- config */
static at_status run_config(ctx *c)
{
    if (c->cfg)
        return AT_OK;
    return at_config_create(&c->cfg);
}
static void snap_config(ctx *c, blob *b)
{
    double v;
    for (int k = 1; at_config_get(c->cfg, (at_param)k, &v) == AT_OK; k++)
        put(b, &v, sizeof v);
}

static const char *config_null(ctx *c, const blob *before)
{
    (void)before;
    return c->cfg ? "a failed call returned a configuration" : NULL;
}

/* -- create and load: the model's tensors */
static at_status run_create(ctx *c)
{
    return c->m ? AT_OK : at_model_create(c->cfg, &c->m);
}
static void snap_tensors(ctx *c, blob *b) { put_tensors(b, c->m); }
static const char *model_null(ctx *c, const blob *before)
{
    (void)before;
    return c->m ? "a failed call returned a model" : NULL;
}

static at_status run_load_file(ctx *c)
{
    return c->m ? AT_OK : at_model_load(ckpt, NULL, &c->m);
}
static at_status run_load_buffer(ctx *c)
{
    return c->m ? AT_OK : at_model_load_buffer(ckpt_bytes, ckpt_len, NULL, &c->m);
}
static at_status run_load_train_file(ctx *c)
{
    return c->m ? AT_OK : at_model_load(train_ckpt, NULL, &c->m);
}
static at_status run_load_train_buffer(ctx *c)
{
    return c->m ? AT_OK : at_model_load_buffer(train_bytes, train_len, NULL, &c->m);
}
/* A training checkpoint: its tensors, its step count, and one more step,
 * which only the restored Adam moments make equal to the clean run's. */
static void snap_training(ctx *c, blob *b)
{
    put_tensors(b, c->m);
    put_f(b, (float)at_model_steps(c->m));
    float loss = 0;
    at_status s = at_train_step(c->m, src_ids, tgt_ids, B, S, TF, 0, &loss, NULL);
    put_f(b, (float)s);
    put_f(b, loss);
    put_tensors(b, c->m);
}

/* -- forward */
static at_status run_forward(ctx *c) { return at_forward(c->m, src_ids, tgt_ids, B, S, TF, 0); }
static void snap_pass(ctx *c, blob *b) { put_pass(b, c->m); }
static const char *no_views(ctx *c, const blob *before)
{
    (void)before;
    at_view v;
    if (at_get_attention(c->m, AT_ATTN_ENC_SELF, 0, &v) != AT_E_STATE)
        return "views of a failed pass are still offered (at_forward promises AT_E_STATE)";
    return NULL;
}

static at_status run_encoder(ctx *c) { return at_forward(c->m, src_ids, NULL, B, S, 0, 0); }

/* -- training */
static at_status run_train(ctx *c)
{
    return at_train_step(c->m, src_ids, tgt_ids, B, S, TF, 0, &c->loss, &c->ntok);
}
static void snap_train(ctx *c, blob *b)
{
    put_f(b, c->loss);
    put_f(b, (float)c->ntok);
    put_f(b, (float)at_model_steps(c->m));
    put_tensors(b, c->m);
    put_grads(b, c->m);
    put_pass(b, c->m);
}
/* at_train_step: "On failure the parameters are unchanged." */
static void snap_params(ctx *c, blob *b)
{
    put_f(b, (float)at_model_steps(c->m));
    put_tensors(b, c->m);
}
static const char *params_unchanged(ctx *c, const blob *before)
{
    blob now;
    blob_open(&now);
    snap_params(c, &now);
    blob_close(&now);
    bool same = now.n == before->n && !memcmp(now.p, before->p, now.n);
    blob_free(&now);
    return same ? NULL : "a failed training step changed the parameters or the step count";
}

static at_status run_eval(ctx *c)
{
    return at_eval_loss(c->m, src_ids, tgt_ids, B, S, TF, 0, &c->loss, &c->ntok);
}
static void snap_eval(ctx *c, blob *b)
{
    put_f(b, c->loss);
    put_f(b, (float)c->ntok);
    put_pass(b, c->m);
}

/* -- decoding */
static at_status run_decode(ctx *c)
{
    return at_greedy_decode(c->m, src_ids, B, S, 0, 8, 1, -1, c->ids, &c->len);
}
static void snap_decode(ctx *c, blob *b)
{
    put_f(b, (float)c->len);
    for (int i = 0; i < B * 8; i++)
        put_f(b, (float)c->ids[i]);
    put_pass(b, c->m);
}

/* -- beam search (3 hypotheses per row, rows of at most 8 ids, end id 2) */
static at_status run_beam(ctx *c)
{
    at_beam_options o;
    at_beam_options_init(&o);
    o.beam_size = 3;
    o.max_len_a = 8;
    o.max_len_b = 0;
    return at_beam_decode(c->m, src_ids, B, S, 0, 1, 2, &o, c->ids, 8, c->lens, c->score);
}
static void snap_beam(ctx *c, blob *b)
{
    for (int i = 0; i < B; i++)
        put_f(b, (float)c->lens[i]), put_f(b, (float)c->score[i]);
    for (int i = 0; i < B * 8; i++)
        put_f(b, (float)c->ids[i]);
    put_pass(b, c->m);
}

/* -- statistics */
static at_status run_stats(ctx *c)
{
    double st[HEADS * AT_STAT_COUNT], js[HEADS * HEADS];
    for (int kind = 0; kind < 3; kind++)
        for (int l = 0; l < LAYERS; l++) {
            at_status s = at_attention_stats(c->m, (at_attn_kind)kind, l, 3, AT_STAT_COUNT, st);
            if (s == AT_OK)
                s = at_attention_js(c->m, (at_attn_kind)kind, l, js);
            if (s != AT_OK)
                return s;
        }
    return AT_OK;
}
static void snap_stats(ctx *c, blob *b)
{
    double st[HEADS * AT_STAT_COUNT], js[HEADS * HEADS];
    for (int kind = 0; kind < 3; kind++)
        for (int l = 0; l < LAYERS; l++) {
            at_attention_stats(c->m, (at_attn_kind)kind, l, 3, AT_STAT_COUNT, st);
            at_attention_js(c->m, (at_attn_kind)kind, l, js);
            put(b, st, sizeof st);
            put(b, js, sizeof js);
        }
}

/* -- chart settings */
static const char *const src_words[S] = {"the", "cat", "sat", "<on>", "猫", "&mat"};
static const char *const tgt_words[TF] = {"<s>", "die", "Katze", "saß", "\"auf\"", "Matte"};

static at_status run_options(ctx *c)
{
    at_status s = AT_OK;
    if (!c->opts)
        s = at_viz_options_create(&c->opts);
    if (s == AT_OK)
        s = at_viz_options_set_labels(c->opts, AT_VIZ_SRC, src_words, S);
    if (s == AT_OK)
        s = at_viz_options_set_labels(c->opts, AT_VIZ_TGT, tgt_words, TF - 1);
    if (s == AT_OK)
        s = at_viz_options_set_ids(c->opts, AT_VIZ_TGT, tgt_ids, TF);
    if (s == AT_OK)
        s = at_viz_options_set_font(c->opts, "Noto Sans");
    if (s == AT_OK)
        s = at_viz_options_set_caption(c->opts, "alloc_fail <test> & caption");
    return s;
}
static void setup_chart(ctx *c)
{
    setup_forward(c);
    need(at_forward(c->m, src_ids, tgt_ids, B, S, TF - 1, 0), "forward", c->m);
    need(run_options(c), "chart options", NULL);
}
/* Charts of the pass of a decoding (views laid out for max_len - 1 rows) and
 * of a training step. */
static void setup_chart_decoded(ctx *c)
{
    c->m = make_model();
    need(at_greedy_decode(c->m, src_ids, B, S, 0, 8, 1, -1, c->ids, &c->len), "decode", c->m);
    need(run_options(c), "chart options", NULL);
}
static void setup_chart_trained(ctx *c)
{
    c->m = make_model();
    need(at_train_step(c->m, src_ids, tgt_ids, B, S, TF, 0, &c->loss, &c->ntok), "train", c->m);
    need(run_options(c), "chart options", NULL);
}

/* The settings, through the chart that shows them all. */
static void snap_options(ctx *c, blob *b)
{
    at_model *m = make_model();
    need(at_forward(m, src_ids, tgt_ids, B, S, TF - 1, 0), "forward", m);
    need(at_viz_write(b->f, m, AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_CROSS, 0, 0, c->opts),
         "explorer", m);
    at_model_free(m);
}

/* -- charts */
static at_status run_chart(ctx *c)
{
    const op *o = c->op;
    blob_free(&c->out);
    blob_open(&c->out);
    int layer = o->chart == AT_VIZ_HEATMAP || o->chart == AT_VIZ_HEADS ? LAYERS - 1 : 0;
    int head = o->chart == AT_VIZ_HEATMAP || o->chart == AT_VIZ_LAYERS ? 1 : 0;
    int kind = o->chart <= AT_VIZ_MODEL || o->chart == AT_VIZ_EXPLORER ? o->kind : 0;
    return at_viz_write(c->out.f, c->m, (at_viz_chart)o->chart, (at_viz_format)o->fmt,
                        (at_attn_kind)kind, layer, head, c->opts);
}
static void snap_chart(ctx *c, blob *b)
{
    blob_close(&c->out);
    put(b, c->out.p, c->out.n);
}

/* -- files */
static int dir_entries(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}
/* An empty directory and the file to save in it. */
static void setup_save(ctx *c)
{
    DIR *d = opendir(save_dir);
    char p[600];
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", save_dir, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    snprintf(c->path, sizeof c->path, "%s/out.file", save_dir);
}
static void setup_save_model(ctx *c)
{
    setup_save(c);
    c->m = make_model();
}
static void setup_save_trained(ctx *c)
{
    setup_save(c);
    setup_trained(c);
}
static void setup_save_chart(ctx *c)
{
    setup_save(c);
    setup_chart(c);
}
static at_status run_save(ctx *c) { return at_model_save(c->m, c->path); }
static at_status run_save_training(ctx *c) { return at_model_save_training(c->m, c->path); }
static at_status run_viz_save(ctx *c)
{
    return at_viz_save(c->path, c->m, AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_CROSS, 1, 0,
                       c->opts);
}
static void snap_file(ctx *c, blob *b)
{
    FILE *f = fopen(c->path, "rb");
    if (!f) {
        put(b, "no file", 7);
        return;
    }
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;)
        put(b, buf, n);
    fclose(f);
    unlink(c->path);
}
/* "On failure no file is left behind" */
static const char *no_file(ctx *c, const blob *before)
{
    (void)before;
    if (access(c->path, F_OK) == 0)
        return "a failed save left the file";
    if (dir_entries(save_dir) != 0)
        return "a failed save left a file in the directory (a temporary?)";
    return NULL;
}

/* -- shared handles */
static void setup_full(ctx *c)
{
    setup_forward(c);
    need(at_forward(c->m, src_ids, tgt_ids, B, S, TF, 0), "forward", c->m);
}
static at_status run_share(ctx *c)
{
    at_status s = AT_OK;
    if (!c->m2)
        s = at_model_share(c->m, &c->m2);
    if (s == AT_OK)
        s = at_forward(c->m2, src_ids, tgt_ids, B, S, TF, 0);
    return s;
}
/* The shared handle's pass, and the base's views, which it must not touch. */
static void snap_share(ctx *c, blob *b)
{
    put_pass(b, c->m2);
    put_pass(b, c->m);
}
static const char *base_intact(ctx *c, const blob *before)
{
    (void)before;
    at_view v;
    if (at_get_attention(c->m, AT_ATTN_CROSS, 0, &v) != AT_OK)
        return "a failed share or pass on the shared handle took the base's views";
    return NULL;
}

/* -- holds: a hold, then a larger pass, which moves the activations to a
 * new block while the hold keeps the old one */
static at_status run_hold(ctx *c)
{
    at_status s = AT_OK;
    if (!c->hold)
        s = at_view_hold(c->m, &c->hold);
    if (s == AT_OK)
        s = at_forward(c->m, src_ids, tgt_ids, B, S, TF, 0);
    return s;
}

#define CHART(ch, f, k, nm) \
    {nm, setup_chart, run_chart, snap_chart, NULL, false, ch, f, k, false}

static const op ops[] = {
    {"config", no_setup, run_config, snap_config, config_null, false, 0, 0, 0, true},
    {"create", setup_cfg, run_create, snap_tensors, model_null, true, 0, 0, 0, true},
    {"load_file", no_setup, run_load_file, snap_tensors, model_null, true, 0, 0, 0, true},
    {"load_buffer", no_setup, run_load_buffer, snap_tensors, model_null, true, 0, 0, 0, true},
    {"load_train_file", no_setup, run_load_train_file, snap_training, model_null, true, 0, 0,
     0, true},
    {"load_train_buffer", no_setup, run_load_train_buffer, snap_training, model_null, true, 0,
     0, 0, true},
    {"forward", setup_forward, run_forward, snap_pass, no_views, true, 0, 0, 0, false},
    {"forward_first", setup_model, run_forward, snap_pass, no_views, true, 0, 0, 0, false},
    {"encoder_only", setup_model, run_encoder, snap_pass, no_views, true, 0, 0, 0, false},
    {"train_first", setup_model, run_train, snap_train, params_unchanged, true, 0, 0, 0, false},
    {"train_grow", setup_trained, run_train, snap_train, params_unchanged, true, 0, 0, 0, false},
    {"eval_loss", setup_model, run_eval, snap_eval, NULL, true, 0, 0, 0, false},
    {"decode", setup_model, run_decode, snap_decode, NULL, true, 0, 0, 0, false},
    {"decode_grow", setup_forward, run_decode, snap_decode, NULL, true, 0, 0, 0, false},
    {"beam", setup_model, run_beam, snap_beam, NULL, true, 0, 0, 0, false},
    {"beam_grow", setup_forward, run_beam, snap_beam, NULL, true, 0, 0, 0, false},
    {"stats", setup_full, run_stats, snap_stats, NULL, false, 0, 0, 0, false},
    {"viz_options", no_setup, run_options, snap_options, NULL, false, 0, 0, 0, false},
    CHART(AT_VIZ_HEATMAP, AT_VIZ_SVG, AT_ATTN_CROSS, "heatmap_svg"),
    CHART(AT_VIZ_HEATMAP, AT_VIZ_VEGALITE, AT_ATTN_DEC_SELF, "heatmap_vl"),
    CHART(AT_VIZ_HEATMAP, AT_VIZ_HTML, AT_ATTN_ENC_SELF, "heatmap_html"),
    CHART(AT_VIZ_HEADS, AT_VIZ_SVG, AT_ATTN_ENC_SELF, "heads_svg"),
    CHART(AT_VIZ_HEADS, AT_VIZ_VEGALITE, AT_ATTN_CROSS, "heads_vl"),
    CHART(AT_VIZ_HEADS, AT_VIZ_HTML, AT_ATTN_DEC_SELF, "heads_html"),
    CHART(AT_VIZ_LAYERS, AT_VIZ_SVG, AT_ATTN_DEC_SELF, "layers_svg"),
    CHART(AT_VIZ_LAYERS, AT_VIZ_VEGALITE, AT_ATTN_ENC_SELF, "layers_vl"),
    CHART(AT_VIZ_LAYERS, AT_VIZ_HTML, AT_ATTN_CROSS, "layers_html"),
    CHART(AT_VIZ_MODEL, AT_VIZ_SVG, AT_ATTN_CROSS, "model_svg"),
    CHART(AT_VIZ_MODEL, AT_VIZ_VEGALITE, AT_ATTN_ENC_SELF, "model_vl"),
    CHART(AT_VIZ_MODEL, AT_VIZ_HTML, AT_ATTN_DEC_SELF, "model_html"),
    CHART(AT_VIZ_STATS, AT_VIZ_SVG, 0, "stats_svg"),
    CHART(AT_VIZ_STATS, AT_VIZ_VEGALITE, 0, "stats_vl"),
    CHART(AT_VIZ_STATS, AT_VIZ_HTML, 0, "stats_html"),
    CHART(AT_VIZ_MASKS, AT_VIZ_SVG, 0, "masks_svg"),
    CHART(AT_VIZ_MASKS, AT_VIZ_VEGALITE, 0, "masks_vl"),
    CHART(AT_VIZ_MASKS, AT_VIZ_HTML, 0, "masks_html"),
    CHART(AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_CROSS, "explorer"),
    {"explorer_decoded", setup_chart_decoded, run_chart, snap_chart, NULL, false,
     AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_DEC_SELF, false},
    {"stats_trained", setup_chart_trained, run_chart, snap_chart, NULL, false, AT_VIZ_STATS,
     AT_VIZ_SVG, 0, false},
    {"viz_save", setup_save_chart, run_viz_save, snap_file, no_file, false, 0, 0, 0, false},
    {"save", setup_save_model, run_save, snap_file, no_file, false, 0, 0, 0, false},
    {"save_training", setup_save_trained, run_save_training, snap_file, no_file, false, 0, 0,
     0, false},
    {"share", setup_full, run_share, snap_share, base_intact, true, 0, 0, 0, false},
    {"view_hold", setup_forward, run_hold, snap_pass, NULL, true, 0, 0, 0, false},
};
#define NOPS (int)(sizeof ops / sizeof ops[0])

/* ================================================================ one run */

typedef struct run_result {
    long count, refused;     /* allocations counted; refused */
    void *site;              /* the call whose allocation failed first */
    at_status status;        /* of the run under test */
    char msg[256];           /* its at_errmsg */
    const char *problem;     /* what went wrong, NULL when nothing */
    char detail[512];
    bool absorbed;           /* OK although an allocation failed */
    blob result;             /* the run's result (the clean run keeps it) */
} run_result;

typedef struct run_args {
    const op *op;
    long fail_at;
    bool persistent;
    const blob *clean;       /* NULL for the clean run itself */
    run_result *r;
} run_args;

static bool verbose;

/* a and b equal, or (floats) within a tolerance that only a different
 * summation order (a fallback kernel) explains */
static bool same_result(const blob *a, const blob *b, bool floats, bool tolerant)
{
    if (a->n != b->n)
        return false;
    if (!memcmp(a->p, b->p, a->n))
        return true;
    if (!floats || !tolerant || a->n % sizeof(float))
        return false;
    for (size_t i = 0; i < a->n / sizeof(float); i++) {
        float x, y;
        memcpy(&x, a->p + i * sizeof x, sizeof x);
        memcpy(&y, b->p + i * sizeof y, sizeof y);
        if (!(fabsf(x - y) <= 1e-4f + 1e-3f * fabsf(y)) && !(isinf(x) && x == y))
            return false;
    }
    return true;
}

/* The message of the failed call: a model's, or the thread's for calls that
 * had none (every run has a fresh thread and fresh models, so no message is
 * left over from before). */
static const char *message(const ctx *c)
{
    if (c->m2 && *at_errmsg(c->m2))
        return at_errmsg(c->m2);
    if (c->m && *at_errmsg(c->m))
        return at_errmsg(c->m);
    return at_errmsg(NULL);
}

static void *one_run(void *arg)
{
    run_args *a = arg;
    run_result *r = a->r;
    const op *o = a->op;
    ctx c = {.op = o};
    o->setup(&c);
    blob before = {0};
    if (o->after_fail == params_unchanged) {
        blob_open(&before);
        snap_params(&c, &before);
        blob_close(&before);
    }

    arm(a->fail_at, a->persistent);
    at_status s = o->run(&c);
    r->count = disarm(&r->refused, &r->site);
    r->status = s;
    snprintf(r->msg, sizeof r->msg, "%s", s == AT_OK ? "" : message(&c));

    bool failed = r->refused > 0;
    if (!failed && s != AT_OK) {
        r->problem = "failed with no allocation failing";
        snprintf(r->detail, sizeof r->detail, "%s: %s", at_status_string(s), r->msg);
    } else if (failed && s != AT_OK && s != AT_E_NOMEM) {
        r->problem = "wrong status";
        snprintf(r->detail, sizeof r->detail, "%s, expected AT_E_NOMEM: %s",
                 at_status_string(s), r->msg);
    } else if (s == AT_E_NOMEM && !r->msg[0]) {
        r->problem = "AT_E_NOMEM without a message";
    } else if (s == AT_E_NOMEM && o->after_fail && (r->problem = o->after_fail(&c, &before))) {
        /* reported */
    } else if (s == AT_E_NOMEM && !o->makes) {
        /* allocation works again: the same operation must now succeed */
        at_status s2 = o->run(&c);
        if (s2 != AT_OK) {
            r->problem = "repeated with allocation working, still fails";
            snprintf(r->detail, sizeof r->detail, "%s: %s", at_status_string(s2),
                     message(&c));
        }
    }
    r->absorbed = failed && s == AT_OK;
    if (!r->problem && !(o->makes && s != AT_OK)) {
        blob_open(&r->result);
        o->snap(&c, &r->result);
        blob_close(&r->result);
        /* exact, but for a pass that succeeded through a fallback kernel */
        if (a->clean && !same_result(&r->result, a->clean, o->floats, r->absorbed))
            r->problem = s == AT_OK ? "succeeded with a result that differs from the clean run"
                                    : "repeated after the failure, the result differs from "
                                      "the clean run";
    }
    blob_free(&before);
    free_ctx(&c);
    return NULL;
}

/* The allocating call of a block, as an offset into this program (for
 * addr2line -e alloc_fail). */
static unsigned long site_offset(void *site)
{
    Dl_info info;
    if (dladdr(site, &info) && info.dli_fbase)
        return (unsigned long)((char *)site - (char *)info.dli_fbase);
    return (unsigned long)(uintptr_t)site;
}

/* A run that does not end (a loop that waits for an allocation to succeed)
 * is reported by an alarm: the message is made before each run. */
#define RUN_SECONDS 60
static char hang_msg[160];
static size_t hang_len;

static void on_alarm(int sig)
{
    (void)sig;
    ssize_t w = write(STDOUT_FILENO, hang_msg, hang_len);
    (void)w;
    _exit(1);
}

/* Runs in a fresh thread, so per-thread state (a kernel's scratch, the error
 * message) starts anew every time; checks what the run left allocated. */
static void run(const op *o, long fail_at, bool persistent, const blob *clean, run_result *r)
{
    memset(r, 0, sizeof *r);
    run_args a = {o, fail_at, persistent, clean, r};
    pthread_mutex_lock(&lock);
    size_t live0 = nlive;
    unsigned long seq0 = seq;
    pthread_mutex_unlock(&lock);
    int k = snprintf(hang_msg, sizeof hang_msg, "FAIL %-18s n=%-5ld %-10s did not end in %d s\n",
                     o->name, fail_at, persistent ? "persistent" : "once", RUN_SECONDS);
    hang_len = k > 0 && (size_t)k < sizeof hang_msg ? (size_t)k : 0;
    fflush(stdout);
    alarm(RUN_SECONDS);
    pthread_t t;
    if (pthread_create(&t, NULL, one_run, &a) != 0 || pthread_join(t, NULL) != 0) {
        perror("alloc_fail: thread");
        exit(2);
    }
    alarm(0);
    pthread_mutex_lock(&lock);
    if (nlive != live0 && !r->problem) {
        r->problem = "leak";
        int w = snprintf(r->detail, sizeof r->detail, "%zu block(s) left:", nlive - live0);
        int shown = 0;
        for (size_t i = 0; i < LIVE_SLOTS && w < (int)sizeof r->detail; i++)
            if (live[i].p && live[i].seq > seq0 && shown++ < 4)
                w += snprintf(r->detail + w, sizeof r->detail - (size_t)w,
                              " %zu bytes from 0x%lx;", live[i].size,
                              site_offset(live[i].site));
    }
    pthread_mutex_unlock(&lock);
}

/* ================================================================ the sweep */

typedef struct tally { long points, runs, nomem, absorbed, problems; } tally;

static long problems, op_problems;

/* Prints the first few problems of an operation; the sweep gives the count. */
static void report(const op *o, long n, bool persistent, const run_result *r)
{
    problems++;
    if (op_problems++ >= 8 && !verbose)
        return;
    printf("FAIL %-18s n=%-5ld %-10s %s%s%s\n", o->name, n, persistent ? "persistent" : "once",
           r->problem, r->detail[0] ? ": " : "", r->detail);
    fflush(stdout);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void sweep(const op *o)
{
    double t0 = now_s();
    op_problems = 0;
    run_result clean;
    run(o, 0, false, NULL, &clean);
    if (clean.problem) {
        report(o, 0, false, &clean);
        blob_free(&clean.result);
        return;
    }
    if (clean.count == 0) {
        clean.problem = "no allocation seen: the wrapper does not see this operation's calls";
        report(o, 0, false, &clean);
        blob_free(&clean.result);
        return;
    }
    /* once: allocation n fails, and only it. persistent: n and all after it;
     * run only for the n after which the once run went on allocating (an
     * operation that allocates nothing after a failure sees the same thing in
     * both modes). */
    tally t[2] = {{0}};
    long *later = NULL, nlater = 0, cap = 0;
    for (int mode = 0; mode < 2; mode++) {
        bool persistent = mode == 1;
        for (long k = 0;; k++) {
            long n = persistent ? (k < nlater ? later[k] : -1) : k + 1;
            if (n < 0)
                break;
            run_result r;
            run(o, n, persistent, &clean.result, &r);
            t[mode].runs++;
            if (r.refused == 0) {       /* the run got past allocation n-1 */
                if (r.problem)
                    report(o, n, persistent, &r);
                t[mode].points = n - 1;
                blob_free(&r.result);
                break;
            }
            if (!persistent && r.count > n) {
                if (nlater == cap) {
                    cap = cap ? 2 * cap : 64;
                    later = realloc(later, (size_t)cap * sizeof *later);
                    if (!later)
                        need(AT_E_NOMEM, "sweep", NULL);
                }
                later[nlater++] = n;
            }
            t[mode].nomem += r.status == AT_E_NOMEM;
            t[mode].absorbed += r.absorbed;
            if (r.problem)
                report(o, n, persistent, &r);
            else if (r.absorbed && (verbose || !mode))
                printf("  %-18s n=%-5ld AT_OK: the allocation at 0x%lx failed and the "
                       "operation did without it\n", o->name, n, site_offset(r.site));
            else if (verbose)
                printf("  %-18s n=%-5ld %-10s 0x%-6lx %s %s\n", o->name, n,
                       persistent ? "persistent" : "once", site_offset(r.site),
                       at_status_string(r.status), r.msg);
            blob_free(&r.result);
            if (n > 1000000) {
                printf("FAIL %-18s does not finish\n", o->name);
                problems++;
                break;
            }
        }
    }
    free(later);
    printf("%-18s %5ld allocations; once: %5ld AT_E_NOMEM, %ld absorbed; persistent: %ld runs, "
           "%ld AT_E_NOMEM, %ld absorbed (%.2f s)\n",
           o->name, clean.count, t[0].nomem, t[0].absorbed, t[1].runs, t[1].nomem,
           t[1].absorbed, now_s() - t0);
    if (op_problems > 8 && !verbose)
        printf("FAIL %-18s %ld problems in all (-v prints every one)\n", o->name, op_problems);
    if (t[0].points != clean.count)
        printf("  (%s: the run with failures saw %ld allocation points, the clean run %ld)\n",
               o->name, t[0].points, clean.count);
    fflush(stdout);
    blob_free(&clean.result);
}

static void write_checkpoints(void)
{
    at_config *c = make_config_of(1, 16, 32);
    at_model *m = NULL;
    if (!c)
        need(AT_E_NOMEM, "config", NULL);
    need(at_model_create(c, &m), "at_model_create", NULL);
    at_config_free(c);
    snprintf(ckpt, sizeof ckpt, "%s/model.safetensors", dir);
    snprintf(train_ckpt, sizeof train_ckpt, "%s/train.safetensors", dir);
    need(at_model_save(m, ckpt), "save", m);
    float loss;
    for (int i = 0; i < 2; i++)
        need(at_train_step(m, src_ids, tgt_ids, B, S, TF, 0, &loss, NULL), "train", m);
    need(at_model_save_training(m, train_ckpt), "save_training", m);
    at_model_free(m);
    FILE *f;
    unsigned char **bufs[2] = {&ckpt_bytes, &train_bytes};
    size_t *lens[2] = {&ckpt_len, &train_len};
    const char *paths[2] = {ckpt, train_ckpt};
    for (int i = 0; i < 2; i++) {
        struct stat sb;
        if (stat(paths[i], &sb) != 0 || !(f = fopen(paths[i], "rb"))) {
            perror(paths[i]);
            exit(2);
        }
        *lens[i] = (size_t)sb.st_size;
        *bufs[i] = malloc(*lens[i]);
        if (!*bufs[i] || fread(*bufs[i], 1, *lens[i], f) != *lens[i]) {
            fprintf(stderr, "alloc_fail: cannot read %s\n", paths[i]);
            exit(2);
        }
        fclose(f);
    }
}

/* A header that is not JSON (or not JSON that cJSON reads) is AT_E_FORMAT
 * with allocation working: the loader's test for a failed allocation inside
 * the JSON parser must not take a syntax error for one. */
static void syntax_checks(void)
{
    static const char *const bad[] = {
        "{\"\\ud800\":1}", "{\"\\udc00x\":1}", "{\"\\ud800\\u0041\":1}", "{\"a\":+1}",
        "{\"a\":.5}", "{\"a\":-}", "{\"a\":1,}", "{\"a\" 1}", "{\"a\":[1 2]}",
        "{\"a\":tru}", "{", "{\"a\":[1]]}", NULL /* 1001 nested containers */};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char deep[2100];
        const char *json = bad[i];
        if (!json) {
            size_t k = (size_t)snprintf(deep, sizeof deep, "{\"a\":");
            for (int d = 0; d < 1000; d++)
                deep[k++] = '[';
            for (int d = 0; d < 1000; d++)
                deep[k++] = ']';
            deep[k++] = '}';
            deep[k] = '\0';
            json = deep;
        }
        size_t n = strlen(json), padded = (n + 7) / 8 * 8;
        unsigned char buf[2200];
        for (int b = 0; b < 8; b++)
            buf[b] = (unsigned char)((uint64_t)padded >> 8 * b);
        memcpy(buf + 8, json, n);
        memset(buf + 8 + n, ' ', padded - n);
        at_model *m = NULL;
        at_status s = at_model_load_buffer(buf, 8 + padded, NULL, &m);
        if (s != AT_E_FORMAT || !strstr(at_errmsg(NULL), "not valid JSON")) {
            problems++;
            printf("FAIL syntax            header %.40s%s: %s, expected AT_E_FORMAT (not "
                   "valid JSON): %s\n", json, n > 40 ? "..." : "", at_status_string(s),
                   at_errmsg(NULL));
        }
        at_model_free(m);
    }
    printf("%-18s %zu malformed headers: AT_E_FORMAT\n", "syntax", sizeof bad / sizeof bad[0]);
}

int main(int argc, char **argv)
{
    cJSON_InitHooks(&(cJSON_Hooks){cjson_malloc, cjson_free});
    signal(SIGALRM, on_alarm);
    /* one thread: the same sums in the same order every run */
    at_set_threads(1);
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/alloc_fail_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
        perror("alloc_fail: mkdtemp");
        return 2;
    }
    snprintf(save_dir, sizeof save_dir, "%s/save", dir);
    if (mkdir(save_dir, 0700) != 0) {
        perror(save_dir);
        return 2;
    }
    write_checkpoints();

    int first = 1;
    if (argc > 1 && !strcmp(argv[1], "-v"))
        verbose = true, first = 2;
    double t0 = now_s();
    int swept = 0;
    if (argc <= first)
        syntax_checks();
    for (int i = 0; i < NOPS; i++) {
        bool chosen = argc <= first;
        for (int k = first; k < argc; k++)
            chosen |= !strcmp(argv[k], ops[i].name);
        if (chosen) {
            sweep(&ops[i]);
            swept++;
        }
    }
    free(ckpt_bytes);
    free(train_bytes);
    unlink(ckpt);
    unlink(train_ckpt);
    rmdir(save_dir);
    rmdir(dir);
    if (!swept) {
        fprintf(stderr, "alloc_fail: no operation by that name\n");
        return 2;
    }
    printf("alloc_fail: %d operations, %ld problem(s), %.1f s\n", swept, problems,
           now_s() - t0);
    return problems ? 1 : 0;
}
