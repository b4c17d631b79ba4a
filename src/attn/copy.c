/* The annotated Transformer's copy task (SEMANTICS §13): its data generator,
 * the training loop of example_simple_model, and the checks that follow it
 * (held-out exact copies, the reference's own example). Shared by attn train
 * and attn demo. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attn.h"
#include "dist.h"

void copy_defaults(copy_opts *o)
{
    *o = (copy_opts){
        .vocab = 11, .layers = 2, .d_model = 512, .heads = 8, .d_ff = 2048,
        .dropout = 0.1, .attn_dropout = 0.1, .lr = 0.5, .warmup = 400, .smoothing = 0,
        .seed = 0, .batch = 80, .seq_len = 10, .batches = 20, .eval_batches = 5,
        .epochs = 20, .save_every = 0, .heldout = 200, .out = NULL, .quiet = false,
        .who = "train",
    };
}

double copy_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- data */

/* splitmix64: a stream from any 64-bit state, every output well mixed. */
static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

copy_rng copy_stream(uint64_t seed, uint64_t stream)
{
    uint64_t s = stream ^ 0x6a09e667f3bcc909u;
    uint64_t mixed = splitmix(&s);
    s = seed;
    copy_rng r = {splitmix(&s) ^ mixed};
    return r;
}

uint64_t copy_next(copy_rng *r)
{
    return splitmix(&r->s);
}

void copy_rows(copy_rng *r, int32_t *ids, int rows, int len, int vocab)
{
    for (int b = 0; b < rows; b++) {
        int32_t *row = ids + (size_t)b * len;
        row[0] = 1;                          /* data[:, 0] = 1, the start symbol */
        for (int i = 1; i < len; i++)        /* torch.randint(1, V): 1 .. V-1 */
            row[i] = 1 + (int32_t)(((splitmix(&r->s) >> 32) * (uint64_t)(vocab - 1)) >> 32);
    }
}

/* ---------------------------------------------------------------- model */

int copy_create(const copy_opts *o, at_model **out)
{
    *out = NULL;
    at_config *cfg;
    const struct { at_param k; double v; } set[] = {
        {AT_P_SRC_VOCAB, o->vocab}, {AT_P_TGT_VOCAB, o->vocab}, {AT_P_LAYERS, o->layers},
        {AT_P_D_MODEL, o->d_model}, {AT_P_HEADS, o->heads}, {AT_P_D_FF, o->d_ff},
        {AT_P_DROPOUT, o->dropout}, {AT_P_ATTN_DROPOUT, o->attn_dropout},
        {AT_P_SEED, o->seed}, {AT_P_LR, o->lr}, {AT_P_WARMUP, o->warmup},
        {AT_P_SMOOTHING, o->smoothing},
    };
    at_status s = at_config_create(&cfg);
    for (size_t i = 0; s == AT_OK && i < sizeof set / sizeof *set; i++)
        s = at_config_set(cfg, set[i].k, set[i].v);
    double max_len = 0;
    if (s == AT_OK && at_config_get(cfg, AT_P_MAX_LEN, &max_len) == AT_OK &&
        o->seq_len > max_len)
        s = at_config_set(cfg, AT_P_MAX_LEN, o->seq_len);
    if (s == AT_OK)
        s = at_model_create(cfg, out);
    at_config_free(cfg);
    if (s == AT_OK)
        return ATTN_OK;
    attn_error("%s: cannot create the model: %s", o->who, at_errmsg(NULL));
    return s == AT_E_ARG ? ATTN_USAGE : ATTN_FAIL;
}

int64_t copy_parameters(at_model *m)
{
    int64_t n = 0;
    for (int i = 0; i < at_model_tensor_count(m); i++) {
        at_view v;
        if (at_model_tensor_trainable(m, i) != 1 || at_model_tensor(m, i, NULL, &v) != AT_OK)
            continue;
        int64_t e = 1;
        for (int d = 0; d < v.ndim; d++)
            e *= v.shape[d];
        n += e;
    }
    return n;
}

int resume_take(at_model *m, const char *path, const opt *opts, int nopts, const resumed *r,
                int nr)
{
    for (int i = 0; i < nr; i++) {
        double v = 0;
        if (at_model_get(m, r[i].key, &v) != AT_OK) {
            attn_error("train: cannot read %s from '%s': %s", r[i].flag, path, at_errmsg(m));
            return ATTN_FAIL;
        }
        for (int k = 0; k < nopts; k++) {
            if (strcmp(opts[k].name, r[i].flag) != 0 || !opts[k].seen)
                continue;
            double given = r[i].is_int ? *(int *)r[i].dest : *(double *)r[i].dest;
            if ((float)given != (float)v) {
                attn_error("train: --%s %g differs from the checkpoint's %g; a resumed run "
                           "keeps the checkpoint's settings", r[i].flag, given, v);
                return ATTN_USAGE;
            }
        }
        if (r[i].is_int)
            *(int *)r[i].dest = (int)v;
        else
            *(double *)r[i].dest = v;
    }
    return ATTN_OK;
}

/* ---------------------------------------------------------------- interruption */

static volatile sig_atomic_t stop_signal;
static const int stop_signals[2] = {SIGINT, SIGTERM};
static struct sigaction saved_action[2], default_action;
static bool caught[2];
static char ack[2][256];   /* what the handler prints, made beforehand */
static size_t ack_len[2];

static void on_stop(int sig)
{
    int e = errno;
    if (stop_signal) {
        /* the second one: die of it now (it is blocked until we return) */
        sigaction(sig, &default_action, NULL);
        raise(sig);
    } else {
        stop_signal = sig;
        int i = sig == stop_signals[0] ? 0 : 1;
        ssize_t w = write(STDOUT_FILENO, ack[i], ack_len[i]);   /* async-signal-safe */
        (void)w;
    }
    errno = e;
}

void copy_catch_signals(bool bar)
{
    stop_signal = 0;
    for (int i = 0; i < 2; i++) {
        /* on a terminal the progress bar is cleared first */
        int n = snprintf(ack[i], sizeof ack[i], "%s%s: stopping after the current step to save "
                         "the checkpoint (a second signal quits at once)\n",
                         bar ? "\r\033[K" : "", i == 0 ? "SIGINT" : "SIGTERM");
        ack_len[i] = n > 0 && (size_t)n < sizeof ack[i] ? (size_t)n : 0;
    }
    memset(&default_action, 0, sizeof default_action);
    default_action.sa_handler = SIG_DFL;
    sigemptyset(&default_action.sa_mask);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 2; i++)
        sigaddset(&sa.sa_mask, stop_signals[i]);   /* one handler at a time */
    sa.sa_flags = SA_RESTART;
    for (int i = 0; i < 2; i++)
        caught[i] = sigaction(stop_signals[i], NULL, &saved_action[i]) == 0 &&
                    saved_action[i].sa_handler != SIG_IGN &&
                    sigaction(stop_signals[i], &sa, NULL) == 0;
}

void copy_release_signals(void)
{
    for (int i = 0; i < 2; i++)
        if (caught[i])
            sigaction(stop_signals[i], &saved_action[i], NULL);
    caught[0] = caught[1] = false;
}

int copy_caught_signal(void)
{
    return stop_signal;
}

/* ---------------------------------------------------------------- training */

/* The progress bar: one line on stderr, redrawn in place. */
static void progress(int epoch, int epochs, int done, int total, const char *what, double loss)
{
    enum { WIDTH = 30 };
    char bar[WIDTH + 1];
    int fill = total > 0 ? done * WIDTH / total : WIDTH;
    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[WIDTH] = '\0';
    fprintf(stderr, "\r  epoch %d/%d [%s] %d/%d batches  %s loss %.4f", epoch, epochs, bar,
            done, total, what, loss);
    fflush(stderr);
}

static void progress_clear(void)
{
    fputs("\r\033[K", stderr);
    fflush(stderr);
}

/* A step whose loss or gradients were not finite changed nothing, and
 * nothing more is saved: says what the last good checkpoint is. */
static void diverged(const copy_opts *o, uint64_t saved_step)
{
    if (!o->out)
        return;
    if (saved_step > 0)
        attn_error("%s: training diverged; '%s' keeps the last good checkpoint (step %llu): "
                   "lower --lr or raise --warmup and train again", o->who, o->out,
                   (unsigned long long)saved_step);
    else
        attn_error("%s: training diverged before this run saved a checkpoint: '%s' was not "
                   "written; lower --lr or raise --warmup and train again", o->who, o->out);
}

int copy_train(at_model *m, const copy_opts *o, copy_result *res)
{
    size_t n = (size_t)o->batch * (size_t)o->seq_len;
    int32_t *ids = malloc(n * sizeof *ids);
    if (!ids) {
        attn_error("%s: out of memory for a batch of %d x %d", o->who, o->batch, o->seq_len);
        return ATTN_FAIL;
    }
    bool bar = !o->quiet && isatty(STDERR_FILENO) && dist_rank() == 0;
    bool lead = dist_rank() == 0;     /* evaluates and saves */
    int first_row, rows;              /* this rank's shard of every training batch */
    dist_shard(o->batch, &first_row, &rows);
    const int32_t *shard = ids + (size_t)first_row * o->seq_len;
    uint64_t steps = at_model_steps(m);
    int first = (int)(steps / (uint64_t)o->batches);
    int skip = (int)(steps % (uint64_t)o->batches);   /* batches of epoch `first` done */
    int total = o->batches + o->eval_batches, rc = ATTN_OK;
    uint64_t saved_step = 0;          /* the step this run last saved to --out */
    double t_start = copy_now();
    res->epochs_run = 0;
    res->train_seconds = 0;
    res->interrupted = 0;
    for (int e = first; e < o->epochs && rc == ATTN_OK && !res->interrupted; e++) {
        copy_rng rng = copy_stream((uint64_t)o->seed, (uint64_t)e);
        double loss_sum = 0, eval_sum = 0, t0 = copy_now();
        int64_t tokens = 0, eval_tokens = 0;
        int b0 = e == first ? skip : 0;
        for (int b = 0; b < b0; b++)   /* the data those steps saw */
            copy_rows(&rng, ids, o->batch, o->seq_len, o->vocab);
        for (int b = b0; b < o->batches; b++) {
            float loss;
            int64_t nt;
            if ((res->interrupted = dist_max(stop_signal)) != 0)
                break;
            copy_rows(&rng, ids, o->batch, o->seq_len, o->vocab);
            /* every rank draws the whole batch (the same stream) and trains on
             * its rows; without mpirun, at_train_step on all of them */
            at_status st = dist_active()
                ? at_train_step_reduce(m, rows ? shard : NULL, shard, rows, o->seq_len,
                                       o->seq_len, 0, first_row, dist_allreduce, NULL, &loss,
                                       &nt)
                : at_train_step(m, ids, ids, o->batch, o->seq_len, o->seq_len, 0, &loss, &nt);
            if (st != AT_OK) {
                if (bar)
                    progress_clear();
                attn_error("%s: training step %llu failed: %s", o->who,
                           (unsigned long long)at_model_steps(m) + 1, at_errmsg(m));
                if (st == AT_E_NUMERIC)
                    diverged(o, saved_step);
                rc = ATTN_FAIL;
                break;
            }
            if ((rc = snap_after_step(o->snap, m)) != ATTN_OK)
                break;
            loss_sum += (double)loss * (double)nt;
            tokens += nt;
            if (bar)
                progress(e + 1, o->epochs, b + 1, total, "train", loss_sum / (double)tokens);
        }
        double t_train = copy_now() - t0;
        for (int b = 0; b < o->eval_batches && rc == ATTN_OK && !res->interrupted; b++) {
            float loss;
            int64_t nt;
            if ((res->interrupted = dist_max(stop_signal)) != 0)
                break;
            copy_rows(&rng, ids, o->batch, o->seq_len, o->vocab);
            if (!lead)                /* rank 0 scores for everyone */
                continue;
            if (at_eval_loss(m, ids, ids, o->batch, o->seq_len, o->seq_len, 0, &loss, &nt) !=
                AT_OK) {
                if (bar)
                    progress_clear();
                attn_error("%s: evaluation failed: %s", o->who, at_errmsg(m));
                rc = ATTN_FAIL;
                break;
            }
            eval_sum += (double)loss * (double)nt;
            eval_tokens += nt;
            if (bar)
                progress(e + 1, o->epochs, o->batches + b + 1, total, "eval",
                         eval_sum / (double)eval_tokens);
        }
        if (bar && res->interrupted)
            progress_clear();
        if (rc != ATTN_OK || res->interrupted)
            break;
        if (bar)
            progress_clear();
        res->train_seconds += t_train;
        res->epochs_run++;
        res->train_loss = loss_sum / (double)tokens;
        res->eval_loss = eval_tokens ? eval_sum / (double)eval_tokens : -1;
        if (!o->quiet) {
            char eval[32] = "  (none)";
            if (eval_tokens)
                snprintf(eval, sizeof eval, "%8.4f", res->eval_loss);
            printf("epoch %3d/%d  train loss %8.4f  eval loss %s  lr %.3e  %7.0f tokens/s  "
                   "elapsed %6.1f s\n", e + 1, o->epochs, res->train_loss, eval,
                   at_model_learning_rate(m), (double)tokens / t_train, copy_now() - t_start);
            fflush(stdout);
        }
        bool last = e + 1 == o->epochs;
        if (lead && o->out && !last && o->save_every > 0 && (e + 1) % o->save_every == 0) {
            rc = copy_save(m, o);
            saved_step = at_model_steps(m);
        }
    }
    free(ids);
    res->seconds = copy_now() - t_start;
    return rc;
}

int copy_save(at_model *m, const copy_opts *o)
{
    if (at_model_save_training(m, o->out) == AT_OK)
        return ATTN_OK;
    attn_error("%s: cannot save the checkpoint: %s", o->who, at_errmsg(m));
    return ATTN_FAIL;
}

/* ---------------------------------------------------------------- checks */

int copy_heldout(at_model *m, const copy_opts *o, int rows, copy_accuracy *acc)
{
    memset(acc, 0, sizeof *acc);
    if (rows < 1)
        return ATTN_OK;
    size_t n = (size_t)rows * (size_t)o->seq_len;
    int32_t *src = malloc(n * sizeof *src), *out = malloc(n * sizeof *out);
    int rc = ATTN_FAIL, len = 0;
    if (!src || !out) {
        attn_error("%s: out of memory for %d held-out rows", o->who, rows);
    } else {
        copy_rng rng = copy_stream((uint64_t)o->seed, COPY_HELDOUT_STREAM);
        copy_rows(&rng, src, rows, o->seq_len, o->vocab);
        double t0 = copy_now();
        if (at_greedy_decode(m, src, rows, o->seq_len, 0, o->seq_len, 1, -1, out, &len) !=
            AT_OK) {
            attn_error("%s: decoding the held-out rows failed: %s", o->who, at_errmsg(m));
        } else {
            acc->seconds = copy_now() - t0;
            acc->rows = rows;
            for (int b = 0; b < rows; b++) {
                const int32_t *s = src + (size_t)b * o->seq_len, *d = out + (size_t)b * o->seq_len;
                int same = 0;
                for (int i = 1; i < o->seq_len; i++)
                    same += s[i] == d[i];
                acc->tokens += o->seq_len - 1;
                acc->tokens_correct += same;
                acc->exact += same == o->seq_len - 1;
            }
            rc = ATTN_OK;
        }
    }
    free(src);
    free(out);
    return rc;
}

void copy_print_heldout(const copy_opts *o, const copy_accuracy *a)
{
    printf("held-out: %d fresh random sequences (start symbol 1, then %d ids from 1..%d;\n"
           "          a stream the training never draws from), greedy decoding, max_len %d:\n"
           "          %d/%d copied exactly (%.1f%%); %lld/%lld tokens right (%.2f%%); "
           "%.1f ms\n", a->rows, o->seq_len - 1, o->vocab - 1, o->seq_len, a->exact, a->rows,
           100.0 * a->exact / a->rows, (long long)a->tokens_correct, (long long)a->tokens,
           100.0 * (double)a->tokens_correct / (double)a->tokens, a->seconds * 1e3);
}

int copy_reference_example(at_model *m, const copy_opts *o)
{
    enum { L = 10 };
    if (o->vocab < L) {
        printf("reference example: skipped (src 0 1 ... 9 needs a vocabulary of at least 10)\n");
        return ATTN_OK;
    }
    int32_t src[L], out[L];
    int len;
    for (int i = 0; i < L; i++)
        src[i] = i;
    /* the reference: src_mask = ones (pad -1 masks nothing), start_symbol 0 */
    if (at_greedy_decode(m, src, 1, L, -1, L, 0, -1, out, &len) != AT_OK) {
        attn_error("%s: decoding the reference example failed: %s", o->who, at_errmsg(m));
        return ATTN_FAIL;
    }
    int same = 0;
    for (int i = 0; i < L; i++)
        same += out[i] == src[i];
    printf("reference example (its greedy_decode: src_mask all ones, start symbol 0):\n"
           "  src     ");
    for (int i = 0; i < L; i++)
        printf(" %d", src[i]);
    printf("\n  decoded ");
    for (int i = 0; i < len; i++)
        printf(" %d", out[i]);
    printf("\n  (%d/%d positions equal the source. Note: 0 is the pad id and never appears\n"
           "  in training, where every row starts with the start symbol 1; the held-out\n"
           "  accuracy above is the in-distribution measure.)\n", same, L);
    return ATTN_OK;
}
