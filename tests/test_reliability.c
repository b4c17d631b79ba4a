/* Regression tests for what a hostile probe found (issue 8): failed creates
 * and loads that leaked, files checked after memory was allocated, NaN that
 * loaded and trained silently, saves that replaced devices, readers that
 * hung on a FIFO, one handle used by two threads, arrays that outlived the
 * arena, lax metadata numbers, a huge batch that allocated before it was
 * refused. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/st.h"
#include "suites.h"
#include "testutil.h"

static at_config *config_of(const double (*kv)[2], size_t n)
{
    at_config *cfg;
    ck_assert_int_eq(at_config_create(&cfg), AT_OK);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(at_config_set(cfg, (at_param)kv[i][0], kv[i][1]), AT_OK);
    return cfg;
}

/* Bytes the C library's allocator hands out now (0 under ASan, whose
 * LeakSanitizer reports a leak at exit instead). */
static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* A model far too large for memory: d_model 65536 with 6 layers needs 1.2 TB
 * of weights, while its positional tables (2.6 GB) can be had. */
START_TEST(failed_create_frees_everything)
{
    const double kv[][2] = {{AT_P_D_MODEL, 65536}, {AT_P_HEADS, 8}, {AT_P_D_FF, 65536}};
    at_config *cfg = config_of(kv, 3);
    size_t before = heap_in_use();
    for (int i = 0; i < 20; i++) {
        at_model *m = (at_model *)1;
        ck_assert_int_eq(at_model_create(cfg, &m), AT_E_NOMEM);
        ck_assert_ptr_null(m);
        ck_assert_ptr_nonnull(strstr(at_errmsg(NULL), "out of memory"));
    }
    size_t after = heap_in_use();
    ck_assert_msg(after < before + (1u << 20), "20 failed creates kept %zu bytes",
                  after - before);
    at_config_free(cfg);
}
END_TEST

static void put_tensor(st_out *o, const char *name, int ndim, int64_t d0, int64_t d1,
                       int64_t d2, const void *data)
{
    *o = (st_out){.name = name, .dtype = ST_F32, .ndim = ndim, .data = data};
    o->shape[0] = d0, o->shape[1] = d1, o->shape[2] = d2;
}

/* 1 MB that describes d_model 65536: the shapes are wrong long before the
 * weights could be allocated, and that is what the load must say. */
START_TEST(load_checks_shapes_before_allocating)
{
    float *big = calloc(65536, sizeof *big);
    st_out o[5];
    put_tensor(&o[0], "src_embed.0.lut.weight", 2, 1, 65536, 0, big);
    put_tensor(&o[1], "tgt_embed.0.lut.weight", 2, 1, 65536, 0, big);
    put_tensor(&o[2], "encoder.layers.0.feed_forward.w_1.weight", 2, 1, 65536, 0, big);
    put_tensor(&o[3], "src_embed.1.pe", 3, 1, 1, 65536, big);
    put_tensor(&o[4], "encoder.layers.0.self_attn.linears.0.weight", 2, 1, 1, 0, big);
    const char *kv[] = {"heads", "8"};
    char err[512];
    const char *path = tmp_path("crafted.safetensors");
    ck_assert_int_eq(st_write(path, o, 5, kv, 1, err, sizeof err), AT_OK);
    size_t before = heap_in_use();
    for (int i = 0; i < 10; i++) {
        at_model *m = NULL;
        ck_assert_int_eq(at_model_load(path, NULL, &m), AT_E_SHAPE);
        ck_assert_ptr_null(m);
    }
    ck_assert_ptr_nonnull(strstr(at_errmsg(NULL), "encoder.layers.0.self_attn.linears.0"));
    ck_assert(heap_in_use() < before + (1u << 20));
    free(big);
    tmp_cleanup();
}
END_TEST

/* Saves m, then rewrites the file with one value of tensor `name` replaced. */
static const char *save_with(at_model *m, bool training, const char *name, float value)
{
    const char *path = tmp_path("base.safetensors");
    ck_assert_int_eq(training ? at_model_save_training(m, path) : at_model_save(m, path), AT_OK);
    st_file f;
    char err[512];
    ck_assert_int_eq(st_read(&f, path, err, sizeof err), AT_OK);
    st_out *o = calloc((size_t)f.count, sizeof *o);
    float *copy = NULL;
    for (int i = 0; i < f.count; i++) {
        const st_tensor *t = &f.tensors[i];
        o[i] = (st_out){.name = t->name, .dtype = t->dtype, .ndim = t->ndim, .data = t->data};
        memcpy(o[i].shape, t->shape, sizeof t->shape);
        if (!strcmp(t->name, name)) {
            copy = malloc(t->nbytes);
            memcpy(copy, t->data, t->nbytes);
            copy[t->numel / 2] = value;
            o[i].data = copy;
        }
    }
    ck_assert_ptr_nonnull(copy);
    const char **kv = calloc((size_t)f.meta_count * 2, sizeof *kv);
    for (int i = 0; i < f.meta_count; i++)
        kv[2 * i] = f.meta_keys[i], kv[2 * i + 1] = f.meta_vals[i];
    const char *out = tmp_path("edited.safetensors");
    ck_assert_int_eq(st_write(out, o, f.count, kv, f.meta_count, err, sizeof err), AT_OK);
    free(kv);
    free(copy);
    free(o);
    st_free(&f);
    return out;
}

static void expect_load_refused(const char *path, const char *name)
{
    at_model *back = (at_model *)1;
    ck_assert_int_eq(at_model_load(path, NULL, &back), AT_E_NUMERIC);
    ck_assert_ptr_null(back);
    ck_assert_msg(strstr(at_errmsg(NULL), name), "message '%s' names no '%s'",
                  at_errmsg(NULL), name);
}

START_TEST(nonfinite_files_refused)
{
    at_model *m = small_model(5);
    expect_load_refused(save_with(m, false, "decoder.layers.1.src_attn.linears.2.weight", NAN),
                        "decoder.layers.1.src_attn.linears.2.weight");
    expect_load_refused(save_with(m, false, "generator.proj.bias", INFINITY),
                        "generator.proj.bias");
    int32_t x[4] = {1, 2, 3, 4};
    float loss;
    ck_assert_int_eq(at_train_step(m, x, x, 1, 4, 4, 0, &loss, NULL), AT_OK);
    expect_load_refused(save_with(m, true, "adam.exp_avg_sq.encoder.norm.a_2", -1e-3f),
                        "adam.exp_avg_sq.encoder.norm.a_2");
    expect_load_refused(save_with(m, true, "adam.exp_avg.tgt_embed.0.lut.weight", NAN),
                        "adam.exp_avg.tgt_embed.0.lut.weight");
    /* nor can a host write one */
    at_view v;
    ck_assert_int_eq(at_model_tensor(m, 3, NULL, &v), AT_OK);
    size_t n = (size_t)(v.shape[0] * v.shape[1] * v.shape[2] * v.shape[3]);
    float *w = malloc(n * sizeof *w);
    memcpy(w, v.data, n * sizeof *w);
    w[n - 1] = NAN;
    ck_assert_int_eq(at_model_tensor_write(m, 3, w, n), AT_E_NUMERIC);
    ck_assert(!isnan(v.data[n - 1]));
    free(w);
    at_model_free(m);
    tmp_cleanup();
}
END_TEST

/* Weights that are finite but overflow the logits: the loss is not finite,
 * and the step must change nothing. */
START_TEST(diverged_step_changes_nothing)
{
    at_model *m = small_model(6);
    int32_t x[8] = {1, 2, 3, 4, 5, 6, 1, 2};
    float loss;
    ck_assert_int_eq(at_train_step(m, x, x, 2, 4, 4, 0, &loss, NULL), AT_OK);
    at_view g;
    int gen = -1;
    for (int i = 0; i < at_model_tensor_count(m); i++) {
        const char *name;
        ck_assert_int_eq(at_model_tensor(m, i, &name, &g), AT_OK);
        if (!strcmp(name, "generator.proj.weight"))
            gen = i;
    }
    ck_assert_int_ge(gen, 0);
    ck_assert_int_eq(at_model_tensor(m, gen, NULL, &g), AT_OK);
    size_t n = (size_t)(g.shape[0] * g.shape[1]);
    float *w = malloc(n * sizeof *w);
    for (size_t i = 0; i < n; i++)
        w[i] = i % 2 ? 3e38f : -3e38f;
    ck_assert_int_eq(at_model_tensor_write(m, gen, w, n), AT_OK);
    const char *before = tmp_path("before.safetensors");
    const char *after = tmp_path("after.safetensors");
    ck_assert_int_eq(at_model_save_training(m, before), AT_OK);
    uint64_t steps = at_model_steps(m);
    ck_assert_int_eq(at_train_step(m, x, x, 2, 4, 4, 0, &loss, NULL), AT_E_NUMERIC);
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "not taken"));
    ck_assert_uint_eq(at_model_steps(m), steps);
    ck_assert_int_eq(at_model_save_training(m, after), AT_OK);
    size_t la, lb;
    unsigned char *a = read_all(before, &la), *b = read_all(after, &lb);
    ck_assert(la == lb && !memcmp(a, b, la));     /* weights, moments and step */
    free(a);
    free(b);
    free(w);
    at_model_free(m);
    tmp_cleanup();
}
END_TEST

/* Huge query weights make the scores infinite and the softmax NaN: no
 * statistic of those heads may be a number. */
START_TEST(stats_of_nonfinite_heads_are_nan)
{
    at_model *m = small_model(7);
    at_view q;
    ck_assert_int_eq(at_model_find_tensor(m, "encoder.layers.0.self_attn.linears.0.weight", &q),
                     AT_OK);
    int idx = -1;
    for (int i = 0; i < at_model_tensor_count(m) && idx < 0; i++) {
        at_view v;
        ck_assert_int_eq(at_model_tensor(m, i, NULL, &v), AT_OK);
        idx = v.data == q.data ? i : -1;
    }
    size_t n = (size_t)(q.shape[0] * q.shape[1]);
    float *w = malloc(n * sizeof *w);
    for (size_t i = 0; i < n; i++)
        w[i] = 3e38f;
    ck_assert_int_eq(at_model_tensor_write(m, idx, w, n), AT_OK);
    int32_t src[6] = {1, 2, 3, 4, 5, 6};
    ck_assert_int_eq(at_forward(m, src, NULL, 1, 6, 0, 0), AT_OK);
    double st[2 * AT_STAT_COUNT];
    ck_assert_int_eq(at_attention_stats(m, AT_ATTN_ENC_SELF, 0, 1, AT_STAT_COUNT, st), AT_OK);
    for (int h = 0; h < 2; h++) {
        for (int k = 0; k < AT_STAT_COUNT; k++)
            if (k != AT_STAT_ROWS)
                ck_assert_msg(isnan(st[h * AT_STAT_COUNT + k]), "head %d stat %d = %g", h, k,
                              st[h * AT_STAT_COUNT + k]);
        ck_assert(st[h * AT_STAT_COUNT + AT_STAT_ROWS] == 6);
    }
    double js[4];
    ck_assert_int_eq(at_attention_js(m, AT_ATTN_ENC_SELF, 0, js), AT_OK);
    ck_assert(isnan(js[1]) && isnan(js[2]));
    free(w);
    at_model_free(m);
}
END_TEST

/* ---------------------------------------------------------------- files */

START_TEST(fifo_is_refused_not_waited_on)
{
    const char *fifo = tmp_path("fifo");
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    at_model *m = (at_model *)1;
    alarm(20);                      /* the old reader blocked here forever */
    ck_assert_int_eq(at_model_load(fifo, NULL, &m), AT_E_IO);
    alarm(0);
    ck_assert_ptr_null(m);
    ck_assert_ptr_nonnull(strstr(at_errmsg(NULL), "FIFO"));
    tmp_cleanup();
}
END_TEST

static bool is_chardev(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISCHR(sb.st_mode);
}

START_TEST(saves_refuse_devices_and_follow_links)
{
    at_model *m = small_model(8);
    ck_assert(is_chardev("/dev/null"));
    ck_assert_int_eq(at_model_save(m, "/dev/null"), AT_E_IO);
    ck_assert_ptr_nonnull(strstr(at_errmsg(m), "character device"));
    ck_assert(is_chardev("/dev/null"));
    ck_assert_int_eq(at_model_save(m, "/dev/full"), AT_E_IO);
    ck_assert(is_chardev("/dev/full"));
    /* a FIFO and a directory */
    char fifo[600], dir[600];
    snprintf(fifo, sizeof fifo, "%s", tmp_path("pipe"));
    snprintf(dir, sizeof dir, "%s", tmp_path("dir"));
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    ck_assert_int_eq(at_model_save(m, fifo), AT_E_IO);
    ck_assert_int_eq(at_model_save(m, dir), AT_E_IO);
    /* a symlink: its target is replaced, the link stays */
    char target[600], link[600];
    snprintf(target, sizeof target, "%s", tmp_path("target.safetensors"));
    snprintf(link, sizeof link, "%s", tmp_path("link.safetensors"));
    ck_assert(write_all(target, "old", 3));
    ck_assert_int_eq(symlink(target, link), 0);
    ck_assert_int_eq(at_model_save(m, link), AT_OK);
    struct stat sb;
    ck_assert_int_eq(lstat(link, &sb), 0);
    ck_assert(S_ISLNK(sb.st_mode));
    at_model *back;
    ck_assert_int_eq(at_model_load(target, NULL, &back), AT_OK);
    at_model_free(back);
    /* a dangling link is refused */
    char dangling[600];
    snprintf(dangling, sizeof dangling, "%s", tmp_path("dangling"));
    ck_assert_int_eq(symlink("/nonexistent/x.safetensors", dangling), 0);
    ck_assert_int_eq(at_model_save(m, dangling), AT_E_IO);
    at_model_free(m);
    tmp_cleanup();
}
END_TEST

/* A process that is gone: a child that exited and was reaped. */
static pid_t dead_pid(void)
{
    pid_t p = fork();
    ck_assert_int_ge(p, 0);
    if (p == 0)
        _exit(0);
    ck_assert_int_eq(waitpid(p, NULL, 0), p);
    return p;
}

START_TEST(stale_temporaries_are_removed)
{
    at_model *m = small_model(9);
    char path[600], stale[700], live[700], other[700];
    snprintf(path, sizeof path, "%s", tmp_path("ckpt.safetensors"));
    snprintf(stale, sizeof stale, "%s.tmp.%ld.AbC123", path, (long)dead_pid());
    snprintf(live, sizeof live, "%s.tmp.%ld.XyZ789", path, (long)getppid());
    snprintf(other, sizeof other, "%s.tmp.notes", path);
    ck_assert(write_all(stale, "left by kill -9", 15));
    ck_assert(write_all(live, "being written", 13));
    ck_assert(write_all(other, "not ours", 8));
    ck_assert_int_eq(at_model_save(m, path), AT_OK);
    ck_assert_int_ne(access(stale, F_OK), 0);       /* its writer is gone */
    ck_assert_int_eq(access(live, F_OK), 0);        /* its writer still runs */
    ck_assert_int_eq(access(other, F_OK), 0);       /* not a temporary of ours */
    at_model_free(m);
    tmp_cleanup();
}
END_TEST

/* Writes a tiny model with one metadata value replaced. */
static at_status load_with_meta(const char *key, const char *value)
{
    at_model *m = small_model(10);
    const char *path = tmp_path("meta.safetensors");
    ck_assert_int_eq(at_model_save(m, path), AT_OK);
    at_model_free(m);
    st_file f;
    char err[512];
    ck_assert_int_eq(st_read(&f, path, err, sizeof err), AT_OK);
    st_out *o = calloc((size_t)f.count, sizeof *o);
    for (int i = 0; i < f.count; i++) {
        const st_tensor *t = &f.tensors[i];
        o[i] = (st_out){.name = t->name, .dtype = t->dtype, .ndim = t->ndim, .data = t->data};
        memcpy(o[i].shape, t->shape, sizeof t->shape);
    }
    const char **kv = calloc((size_t)f.meta_count * 2, sizeof *kv);
    for (int i = 0; i < f.meta_count; i++)
        kv[2 * i] = f.meta_keys[i],
        kv[2 * i + 1] = strcmp(f.meta_keys[i], key) ? f.meta_vals[i] : value;
    const char *out = tmp_path("meta2.safetensors");
    ck_assert_int_eq(st_write(out, o, f.count, kv, f.meta_count, err, sizeof err), AT_OK);
    free(kv);
    free(o);
    st_free(&f);
    at_status s = at_model_load(out, NULL, &m);
    at_model_free(m);
    return s;
}

START_TEST(metadata_numbers_are_decimal)
{
    ck_assert_int_eq(load_with_meta("heads", "2"), AT_OK);
    ck_assert_int_eq(load_with_meta("heads", "0x2"), AT_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(at_errmsg(NULL), "decimal"));
    ck_assert_int_eq(load_with_meta("heads", " 2"), AT_E_FORMAT);
    ck_assert_int_eq(load_with_meta("heads", "2 "), AT_E_FORMAT);
    ck_assert_int_eq(load_with_meta("dropout", "nan"), AT_E_FORMAT);
    ck_assert_int_eq(load_with_meta("lr", "inf"), AT_E_FORMAT);
    ck_assert_int_eq(load_with_meta("lr", "1e-3"), AT_OK);
    ck_assert_int_eq(load_with_meta("lr", "-0.5"), AT_E_FORMAT);   /* out of bounds */
    tmp_cleanup();
}
END_TEST

START_TEST(huge_batch_refused_before_allocating)
{
    at_model *m = small_model(11);
    int32_t x[4] = {1, 2, 3, 4};
    float loss;
    /* the arrays are not that large: nothing may read past their first row */
    ck_assert_int_eq(at_train_step(m, x, x, 0x7fffffff, 4, 4, 0, &loss, NULL), AT_E_RANGE);
    ck_assert_int_eq(at_eval_loss(m, x, x, 0x7fffffff, 4, 4, 0, &loss, NULL), AT_E_RANGE);
    ck_assert_int_eq(at_forward(m, x, x, 0x7fffffff, 4, 4, 0), AT_E_RANGE);
    at_model_free(m);
}
END_TEST

/* ---------------------------------------------------------------- holds */

START_TEST(hold_outlives_a_larger_batch_and_free)
{
    at_model *m = small_model(12);
    int32_t src[2] = {1, 2}, tgt[2] = {1, 3};
    ck_assert_int_eq(at_forward(m, src, tgt, 1, 2, 2, 0), AT_OK);
    at_view v;
    ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, 1, &v), AT_OK);
    float copy[2 * 2 * 2];
    memcpy(copy, v.data, sizeof copy);
    at_hold *h = NULL;
    ck_assert_int_eq(at_view_hold(m, &h), AT_OK);
    /* a batch that needs a larger arena: the old block must stay */
    int32_t big[32 * 40];
    for (int i = 0; i < 32 * 40; i++)
        big[i] = 1 + i % 6;
    ck_assert_int_eq(at_forward(m, big, big, 32, 40, 40, 0), AT_OK);
    ck_assert(!memcmp(copy, v.data, sizeof copy));   /* held, and not overwritten */
    at_view w;
    ck_assert_int_eq(at_model_tensor(m, 0, NULL, &w), AT_OK);
    float w0 = w.data[0];
    at_hold *h2 = NULL;
    ck_assert_int_eq(at_view_hold(m, &h2), AT_OK);
    at_model_free(m);                                 /* the handle goes... */
    ck_assert(!memcmp(copy, v.data, sizeof copy));   /* ...its held memory stays */
    ck_assert(w.data[0] == w0);
    at_hold_release(h);
    ck_assert(w.data[0] == w0);
    at_hold_release(h2);                              /* now everything is freed */
    at_hold_release(NULL);
}
END_TEST

/* A hold on a shared handle keeps the weights but not their writability. */
START_TEST(hold_does_not_pin_sharing)
{
    at_model *base = small_model(13), *other;
    ck_assert_int_eq(at_model_share(base, &other), AT_OK);
    at_hold *h;
    ck_assert_int_eq(at_view_hold(other, &h), AT_OK);
    at_model_free(other);
    int32_t x[4] = {1, 2, 3, 4};
    float loss;
    ck_assert_int_eq(at_train_step(base, x, x, 1, 4, 4, 0, &loss, NULL), AT_OK);
    at_model_free(base);
    at_hold_release(h);
}
END_TEST

/* ---------------------------------------------------------------- threads */

typedef struct racer {
    at_model *m;
    atomic_int phase;             /* 1: the long pass is starting; 2: it is over */
    long refused, other;
    char msg[256];
} racer;

enum { RB = 24, RL = 48 };

static void *long_pass(void *arg)
{
    racer *r = arg;
    static int32_t ids[RB * RL];
    for (int i = 0; i < RB * RL; i++)
        ids[i] = 1 + (i * 5) % 6;
    atomic_store(&r->phase, 1);
    /* the other thread's calls may keep this one out too, for a moment */
    for (int done = 0; done < 3;) {
        at_status s = at_forward(r->m, ids, ids, RB, RL, RL, 0);
        ck_assert(s == AT_OK || s == AT_E_STATE);
        done += s == AT_OK;
    }
    atomic_store(&r->phase, 2);
    return NULL;
}

START_TEST(one_handle_two_threads_is_refused)
{
    const double kv[][2] = {{AT_P_LAYERS, 2}, {AT_P_D_MODEL, 64}, {AT_P_HEADS, 4},
                            {AT_P_D_FF, 256}, {AT_P_SRC_VOCAB, 7}, {AT_P_TGT_VOCAB, 9}};
    at_config *cfg = config_of(kv, 6);
    racer r = {0};
    ck_assert_int_eq(at_model_create(cfg, &r.m), AT_OK);
    at_config_free(cfg);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, long_pass, &r), 0);
    while (atomic_load(&r.phase) == 0)
        ;
    int32_t x[4] = {1, 2, 3, 4};
    while (atomic_load(&r.phase) == 1) {
        at_status s = at_forward(r.m, x, x, 1, 4, 4, 0);
        if (s == AT_E_STATE) {
            r.refused++;
            snprintf(r.msg, sizeof r.msg, "%s", at_errmsg(r.m));
        } else if (s != AT_OK) {
            r.other++;
        }
        usleep(100);                /* let the long pass in again */
    }
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_msg(r.refused > 0, "no call was refused while another thread ran 3 passes");
    ck_assert_int_eq(r.other, 0);
    ck_assert_ptr_nonnull(strstr(r.msg, "another thread"));
    /* the handle works again, and its own message is its own */
    ck_assert_int_eq(at_forward(r.m, x, x, 1, 4, 4, 0), AT_OK);
    ck_assert_int_eq(at_forward(r.m, x, x, 1, 4, 4, 99), AT_OK);
    ck_assert_int_eq(at_get_attention(r.m, AT_ATTN_CROSS, 7, &(at_view){0}), AT_E_ARG);
    ck_assert_ptr_nonnull(strstr(at_errmsg(r.m), "layer 7"));
    at_model_free(r.m);
}
END_TEST

Suite *suite_reliability(void)
{
    Suite *s = suite_create("reliability");
    TCase *c = tcase_create("memory");
    tcase_add_test(c, failed_create_frees_everything);
    tcase_add_test(c, load_checks_shapes_before_allocating);
    tcase_add_test(c, hold_outlives_a_larger_batch_and_free);
    tcase_add_test(c, hold_does_not_pin_sharing);
    tcase_add_test(c, huge_batch_refused_before_allocating);
    suite_add_tcase(s, c);
    c = tcase_create("numbers");
    tcase_add_test(c, nonfinite_files_refused);
    tcase_add_test(c, diverged_step_changes_nothing);
    tcase_add_test(c, stats_of_nonfinite_heads_are_nan);
    tcase_add_test(c, metadata_numbers_are_decimal);
    suite_add_tcase(s, c);
    c = tcase_create("files");
    tcase_add_test(c, fifo_is_refused_not_waited_on);
    tcase_add_test(c, saves_refuse_devices_and_follow_links);
    tcase_add_test(c, stale_temporaries_are_removed);
    suite_add_tcase(s, c);
    c = tcase_create("threads");
    tcase_set_timeout(c, 120);      /* a loaded machine; TSan */
    tcase_add_test(c, one_handle_two_threads_is_refused);
    suite_add_tcase(s, c);
    return s;
}
