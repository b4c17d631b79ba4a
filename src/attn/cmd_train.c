/* attn train --task copy: the annotated Transformer's copy task, trained as
 * its example_simple_model does, with checkpoints that resume exactly. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attn.h"
#include "dist.h"

static const char help[] =
    "usage: attn train [--task copy] [--epochs N] [--batch-size B] [--layers N]\n"
    "                  [--d-model D] [--heads H] [--d-ff F] [--dropout P]\n"
    "                  [--warmup W] [--lr X] [--seed S] [--out F] [--save-every K]\n"
    "                  [--resume F] [more options below]\n"
    "\n"
    "Train the copy task of the annotated Transformer as its example_simple_model\n"
    "does. Its data generator: batches of B rows of L ids, column 0 the start\n"
    "symbol 1, the others uniform in 1..V-1; the source is the whole row and so is\n"
    "the target (the decoder reads row[:-1] and learns row[1:]); pad id 0. Each\n"
    "epoch: --batches training steps (dropout on), then --eval-batches batches\n"
    "scored without dropout or update. One line per epoch: train loss (sum of\n"
    "loss x tokens over the sum of tokens, as run_epoch), eval loss, the learning\n"
    "rate of the next step, training tokens per second, elapsed time. A progress\n"
    "bar is drawn on stderr when it is a terminal. At the end, --heldout fresh\n"
    "random rows are greedily decoded and the exact copies counted, and the\n"
    "reference's own example (src 0 1 ... 9, start symbol 0, no mask) is decoded.\n"
    "\n"
    "The defaults are the reference's (the run takes minutes on a small machine):\n"
    "  --task copy        the task: copy (this text) or translate (a parallel corpus:\n"
    "                     see attn train --task translate --help)\n"
    "  --epochs N         epochs (default 20)\n"
    "  --batch-size B     rows per batch (default 80)\n"
    "  --batches N        training batches per epoch (default 20)\n"
    "  --eval-batches N   evaluation batches per epoch (default 5; 0 for none)\n"
    "  --seq-len L        ids per row, the start symbol included (default 10)\n"
    "  --vocab V          vocabulary, pad 0 and start 1 included (default 11)\n"
    "  --layers N         layers in the encoder and in the decoder (default 2)\n"
    "  --d-model D        model width (default 512)\n"
    "  --heads H          attention heads, dividing D (default 8)\n"
    "  --d-ff F           feed-forward inner width (default 2048)\n"
    "  --dropout P        dropout (default 0.1)\n"
    "  --attn-dropout P   dropout on attention weights (default 0.1: the reference\n"
    "                     uses 0.1 whatever --dropout says)\n"
    "  --lr X             Adam's base learning rate, times the Noam rate (default 0.5)\n"
    "  --warmup W         Noam warmup steps (default 400)\n"
    "  --smoothing X      label smoothing (default 0)\n"
    "  --seed S           seed of the initialisation, dropout and data (default 0)\n"
    "  --out F            the training checkpoint (weights, Adam moments, step count),\n"
    "                     written atomically at the end (default copy.safetensors)\n"
    "  --save-every K     also write it every K epochs (default 0: only at the end)\n"
    "  --resume F         go on from a checkpoint written by --out: the model and its\n"
    "                     settings come from F, the epoch from its step count; give\n"
    "                     the same --batch-size, --batches, --seq-len and --threads and\n"
    "                     the result equals an uninterrupted run bit for bit\n"
    "  --heldout N        held-out rows decoded at the end (default 200; 0: none)\n"
    "  --snapshot-every K record the attention and head statistics of --probe every K\n"
    "                     steps (and at the first), into --snapshots, rewritten\n"
    "                     atomically after each; training is the same bit for bit\n"
    "  --probe F          the probe: src (B, S) and the decoder input tgt (B, T) (I32 or\n"
    "                     I64; tgt optional: the encoder alone), pad id 0\n"
    "  --snapshots F      where (default: --out's name with .snapshots.safetensors)\n"
    "  --threads N        threads for OpenBLAS and libat (default: as configured)\n"
    "  --quiet            no epoch lines, no progress bar\n"
    "  -h, --help         this text\n"
    "\n"
    "--out is checked before the first step. The first SIGINT (Ctrl-C) or SIGTERM\n"
    "stops training after the current step, saves --out (a checkpoint --resume\n"
    "goes on from, mid-epoch too), prints the command that resumes and exits with\n"
    "status 130 (SIGINT) or 143 (SIGTERM); a second signal ends attn at once.\n"
    "\n"
    "Decode with the result: attn decode --model F --src \"1 5 3 8 2 9 4 7 6 10\".\n";

static void put(char *b, size_t len, size_t *at, char c)
{
    if (*at + 1 < len)
        b[(*at)++] = c;
    b[*at] = '\0';
}

/* Appends " WORD" to b (of size len, at *at), quoted for a POSIX shell when
 * it holds anything but letters, digits and _@%+=:,./- . */
static void shell_word(char *b, size_t len, size_t *at, const char *w)
{
    bool plain = *w != '\0';
    for (const char *p = w; *p && plain; p++)
        plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                (*p >= '0' && *p <= '9') || strchr("_@%+=:,./-", *p);
    put(b, len, at, ' ');
    if (!plain)
        put(b, len, at, '\'');
    for (const char *p = w; *p; p++) {
        if (!plain && *p == '\'') {   /* ' becomes '\'' */
            put(b, len, at, '\'');
            put(b, len, at, '\\');
            put(b, len, at, '\'');
        }
        put(b, len, at, *p);
    }
    if (!plain)
        put(b, len, at, '\'');
}

/* Appends " --NAME N". */
static void shell_int(char *b, size_t len, size_t *at, const char *name, int v)
{
    char num[24];
    shell_word(b, len, at, name);
    snprintf(num, sizeof num, "%d", v);
    shell_word(b, len, at, num);
}

/* Under mpirun: what rank 0 reduced per step and the time it spent on it. */
static void reduced_summary(uint64_t steps)
{
    double bytes, seconds, cpu;
    dist_reduced(&bytes, &seconds, &cpu);
    if (dist_size() > 1 && steps > 0)
        printf("allreduce: %.2f MB a step over %d ranks; %.2f s in reductions on rank 0 "
               "(%.1f ms a step, waiting for the slowest rank included; %.2f s of CPU)\n",
               bytes / (double)steps * 1e-6, dist_size(), seconds,
               seconds / (double)steps * 1e3, cpu);
}

static const char *signal_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal";
}

/* After a signal stopped training: saves the checkpoint and says how to go
 * on. Returns the exit status (128 + the signal, as a shell reports a
 * process that signal ended; 1 if the save failed). */
static int interrupted(at_model *m, const copy_opts *o, int sig, int threads)
{
    uint64_t steps = at_model_steps(m);
    if (dist_rank() > 0)              /* rank 0 saves and says how to go on */
        return 128 + sig;
    if (steps == 0) {
        attn_error("train: interrupted by %s before the first step; nothing saved",
                   signal_name(sig));
        return 128 + sig;
    }
    if (at_model_save_training(m, o->out) != AT_OK) {
        attn_error("train: interrupted by %s after step %llu, and cannot save the checkpoint: "
                   "%s", signal_name(sig), (unsigned long long)steps, at_errmsg(m));
        return ATTN_FAIL;
    }
    size_t len = 8 * strlen(o->out) + 4 * strlen(attn_program) + 512, at = 0;
    char *cmd = malloc(len);
    if (!cmd) {
        attn_error("train: interrupted by %s after step %llu; saved the training checkpoint "
                   "'%s' (resume it with --resume)", signal_name(sig),
                   (unsigned long long)steps, o->out);
        return 128 + sig;
    }
    cmd[0] = '\0';
    shell_word(cmd, len, &at, attn_program);
    shell_word(cmd, len, &at, "train");
    shell_word(cmd, len, &at, "--resume");
    shell_word(cmd, len, &at, o->out);
    shell_word(cmd, len, &at, "--out");
    shell_word(cmd, len, &at, o->out);
    shell_int(cmd, len, &at, "--epochs", o->epochs);
    shell_int(cmd, len, &at, "--batch-size", o->batch);
    shell_int(cmd, len, &at, "--batches", o->batches);
    shell_int(cmd, len, &at, "--eval-batches", o->eval_batches);
    shell_int(cmd, len, &at, "--seq-len", o->seq_len);
    shell_int(cmd, len, &at, "--heldout", o->heldout);
    if (o->save_every > 0)
        shell_int(cmd, len, &at, "--save-every", o->save_every);
    if (threads > 0)
        shell_int(cmd, len, &at, "--threads", threads);
    if (o->quiet)
        shell_word(cmd, len, &at, "--quiet");
    uint64_t epoch = steps / (uint64_t)o->batches, batch = steps % (uint64_t)o->batches;
    char where[96];
    if (batch)
        snprintf(where, sizeof where, "in epoch %llu of %d, %llu of %d batches done",
                 (unsigned long long)epoch + 1, o->epochs, (unsigned long long)batch,
                 o->batches);
    else
        snprintf(where, sizeof where, "%llu of %d epochs done", (unsigned long long)epoch,
                 o->epochs);
    attn_error("train: interrupted by %s after step %llu (%s); saved the training checkpoint "
               "'%s'; resume with:%s", signal_name(sig), (unsigned long long)steps, where,
               o->out, cmd);
    free(cmd);
    return 128 + sig;
}

static int resume_settings(at_model *m, const char *path, copy_opts *o, const opt *opts,
                           int nopts, const resumed *r, int nr)
{
    int rc = resume_take(m, path, opts, nopts, r, nr);
    if (rc != ATTN_OK)
        return rc;
    double src_vocab = 0;
    at_model_get(m, AT_P_SRC_VOCAB, &src_vocab);
    if (o->vocab < 3 || (int)src_vocab != o->vocab) {
        attn_error("train: '%s' has vocabularies %g (source) and %d (target); the copy task "
                   "needs them equal and at least 3", path, src_vocab, o->vocab);
        return ATTN_FAIL;
    }
    return ATTN_OK;
}

/* Whether the command line asks for --task translate (its options differ). */
static bool wants_translate(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            break;
        if (!strcmp(argv[i], "--task=translate") ||
            (!strcmp(argv[i], "--task") && i + 1 < argc && !strcmp(argv[i + 1], "translate")))
            return true;
    }
    return false;
}

static int train_copy(int argc, char **argv)
{
    copy_opts o;
    copy_defaults(&o);
    o.out = "copy.safetensors";
    const char *task = "copy", *resume = NULL, *probe = NULL, *snap_out = NULL;
    int threads = 0, warmup = (int)o.warmup, snap_every = 0;
    double lo[AT_P_ADAM_EPS + 1] = {0}, hi[AT_P_ADAM_EPS + 1] = {0};
    for (int k = 1; k <= AT_P_ADAM_EPS; k++)
        at_param_bounds((at_param)k, &lo[k], &hi[k]);
    opt opts[] = {
        {"task", OPT_STR, &task, 0, 0, false},
        {"epochs", OPT_INT, &o.epochs, 1, 1000000, false},
        {"batch-size", OPT_INT, &o.batch, 1, 100000, false},
        {"batches", OPT_INT, &o.batches, 1, 1000000, false},
        {"eval-batches", OPT_INT, &o.eval_batches, 0, 1000000, false},
        {"seq-len", OPT_INT, &o.seq_len, 2, 100000, false},
        {"vocab", OPT_INT, &o.vocab, 3, hi[AT_P_SRC_VOCAB], false},
        {"layers", OPT_INT, &o.layers, lo[AT_P_LAYERS], hi[AT_P_LAYERS], false},
        {"d-model", OPT_INT, &o.d_model, lo[AT_P_D_MODEL], hi[AT_P_D_MODEL], false},
        {"heads", OPT_INT, &o.heads, lo[AT_P_HEADS], hi[AT_P_HEADS], false},
        {"d-ff", OPT_INT, &o.d_ff, lo[AT_P_D_FF], hi[AT_P_D_FF], false},
        {"dropout", OPT_NUM, &o.dropout, lo[AT_P_DROPOUT], hi[AT_P_DROPOUT], false},
        {"attn-dropout", OPT_NUM, &o.attn_dropout, lo[AT_P_ATTN_DROPOUT],
         hi[AT_P_ATTN_DROPOUT], false},
        {"lr", OPT_NUM, &o.lr, lo[AT_P_LR], hi[AT_P_LR], false},
        {"warmup", OPT_INT, &warmup, lo[AT_P_WARMUP], hi[AT_P_WARMUP], false},
        {"smoothing", OPT_NUM, &o.smoothing, lo[AT_P_SMOOTHING], hi[AT_P_SMOOTHING], false},
        {"seed", OPT_INT, &o.seed, lo[AT_P_SEED], hi[AT_P_SEED] < 2147483647 ? hi[AT_P_SEED]
                                                                          : 2147483647, false},
        {"out", OPT_STR, &o.out, 0, 0, false},
        {"save-every", OPT_INT, &o.save_every, 0, 1000000, false},
        {"resume", OPT_STR, &resume, 0, 0, false},
        {"heldout", OPT_INT, &o.heldout, 0, 100000, false},
        {"threads", OPT_INT, &threads, 1, 4096, false},
        {"quiet", OPT_FLAG, &o.quiet, 0, 0, false},
        {"snapshot-every", OPT_INT, &snap_every, 1, 100000000, false},
        {"probe", OPT_STR, &probe, 0, 0, false},
        {"snapshots", OPT_STR, &snap_out, 0, 0, false},
    };
    int nopts = (int)(sizeof opts / sizeof *opts);
    int rc;
    if (!args_command(argc, argv, opts, nopts, help, &rc))
        return rc;
    if (strcmp(task, "copy") != 0) {
        attn_error("train: unknown task '%.40s'; there are: copy, translate", task);
        return ATTN_USAGE;
    }
    if ((snap_every > 0) != (probe != NULL) || (snap_out && !probe)) {
        attn_error("train: --snapshot-every and --probe go together (--snapshots with them)");
        return ATTN_USAGE;
    }
    char *snap_path = probe ? (snap_out ? strdup(snap_out) : snap_default_path(o.out)) : NULL;
    if (probe && (!snap_path || io_check_output("train", snap_path) != ATTN_OK)) {
        free(snap_path);
        return ATTN_FAIL;
    }
    o.warmup = warmup;
    /* before the work, not after it; rank 0 writes it */
    if (dist_rank() == 0 && io_check_output("train", o.out) != ATTN_OK)
        return ATTN_FAIL;
    if (threads > 0)
        at_set_threads(threads);
    else if (dist_threads() > 0)      /* ranks sharing a machine share its cores */
        at_set_threads(dist_threads());

    at_model *m = NULL;
    if (resume) {
        rc = io_load_model(resume, 0, &m, NULL);
        if (rc != ATTN_OK)
            return rc;
        if (at_model_steps(m) == 0) {
            attn_error("train: '%s' is not a training checkpoint (no optimizer state); "
                       "resume from a file that attn train --out wrote", resume);
            at_model_free(m);
            return ATTN_FAIL;
        }
        const resumed keep[] = {
            {"vocab", AT_P_TGT_VOCAB, true, &o.vocab},
            {"layers", AT_P_LAYERS, true, &o.layers},
            {"d-model", AT_P_D_MODEL, true, &o.d_model},
            {"heads", AT_P_HEADS, true, &o.heads},
            {"d-ff", AT_P_D_FF, true, &o.d_ff},
            {"dropout", AT_P_DROPOUT, false, &o.dropout},
            {"attn-dropout", AT_P_ATTN_DROPOUT, false, &o.attn_dropout},
            {"lr", AT_P_LR, false, &o.lr},
            {"warmup", AT_P_WARMUP, false, &o.warmup},
            {"smoothing", AT_P_SMOOTHING, false, &o.smoothing},
            {"seed", AT_P_SEED, true, &o.seed},
        };
        rc = resume_settings(m, resume, &o, opts, nopts, keep, (int)(sizeof keep / sizeof *keep));
        if (rc != ATTN_OK) {
            at_model_free(m);
            return rc;
        }
    } else {
        rc = copy_create(&o, &m);
        if (rc != ATTN_OK)
            return rc;
    }

    uint64_t done = at_model_steps(m) / (uint64_t)o.batches;
    uint64_t part = at_model_steps(m) % (uint64_t)o.batches;
    copy_catch_signals(!o.quiet && isatty(STDERR_FILENO));   /* a signal saves from here */
    printf("copy task: vocabulary %d, N %d, d_model %d, h %d, d_ff %d (%.2fM parameters),\n"
           "  dropout %g (attention %g); %d epochs of %d batches of %d x %d (+%d evaluation\n"
           "  batches), Adam base lr %g x Noam rate (warmup %g), smoothing %g, seed %d,\n"
           "  %d threads\n", o.vocab, o.layers, o.d_model, o.heads, o.d_ff,
           (double)copy_parameters(m) * 1e-6, o.dropout, o.attn_dropout, o.epochs, o.batches,
           o.batch, o.seq_len, o.eval_batches, o.lr, o.warmup, o.smoothing, o.seed,
           at_get_threads());
    if (dist_size() > 1)
        printf("data-parallel over %d MPI ranks: each trains on %d or %d rows of every batch "
               "of %d\n", dist_size(), o.batch / dist_size(),
               o.batch / dist_size() + (o.batch % dist_size() != 0), o.batch);
    if (resume && part)
        printf("resumed from %s at step %llu: %llu epoch%s and %llu of %d batches done\n",
               resume, (unsigned long long)at_model_steps(m), (unsigned long long)done,
               done == 1 ? "" : "s", (unsigned long long)part, o.batches);
    else if (resume)
        printf("resumed from %s at step %llu: %llu epoch%s done\n", resume,
               (unsigned long long)at_model_steps(m), (unsigned long long)done,
               done == 1 ? "" : "s");
    if (done >= (uint64_t)o.epochs)
        printf("nothing to train: the checkpoint has %llu epochs, --epochs is %d\n",
               (unsigned long long)done, o.epochs);
    fflush(stdout);

    if (probe && dist_rank() == 0 && (rc = snap_open("train", probe, snap_path, snap_every, m, &o.snap)) != ATTN_OK) {
        copy_release_signals();
        at_model_free(m);
        free(snap_path);
        return rc;
    }
    copy_result res = {0};
    uint64_t step0 = at_model_steps(m);
    rc = copy_train(m, &o, &res);
    reduced_summary(at_model_steps(m) - step0);
    if (o.snap)
        printf("wrote %s: %d snapshots of the probe's attention\n", snap_path,
               snap_count(o.snap));
    snap_close(o.snap);
    o.snap = NULL;
    free(snap_path);
    if (rc == ATTN_OK && res.interrupted) {
        rc = interrupted(m, &o, res.interrupted, threads);
        copy_release_signals();
        at_model_free(m);
        return rc;
    }
    if (rc == ATTN_OK && res.epochs_run > 0) {
        printf("trained %d epoch%s (%d steps) in %.1f s: %.2f s per epoch, of which %.2f s "
               "training steps\n", res.epochs_run, res.epochs_run == 1 ? "" : "s",
               res.epochs_run * o.batches, res.seconds, res.seconds / res.epochs_run,
               res.train_seconds / res.epochs_run);
    }
    if (dist_rank() > 0) {            /* rank 0 saves, tests and prints */
        copy_release_signals();
        at_model_free(m);
        return rc;
    }
    if (rc == ATTN_OK && (res.epochs_run > 0 || !resume || strcmp(resume, o.out) != 0)) {
        rc = copy_save(m, &o);
        if (rc == ATTN_OK)
            printf("wrote %s (training checkpoint: weights, Adam moments, step %llu)\n", o.out,
                   (unsigned long long)at_model_steps(m));
    }
    int sig = copy_caught_signal();   /* one that came after the last step */
    copy_release_signals();           /* what is left can be stopped at once */
    if (rc == ATTN_OK && sig) {
        attn_error("train: interrupted by %s after the last step; training is complete and "
                   "'%s' written (step %llu); the held-out check was skipped",
                   signal_name(sig), o.out, (unsigned long long)at_model_steps(m));
        at_model_free(m);
        return 128 + sig;
    }
    copy_accuracy acc;
    if (rc == ATTN_OK && o.heldout > 0 && (rc = copy_heldout(m, &o, o.heldout, &acc)) == ATTN_OK)
        copy_print_heldout(&o, &acc);
    if (rc == ATTN_OK)
        rc = copy_reference_example(m, &o);
    at_model_free(m);
    return rc;
}

int cmd_train(int argc, char **argv)
{
    int rc = dist_init("train");
    if (rc == ATTN_OK)
        rc = wants_translate(argc, argv) ? cmd_train_translate(argc, argv)
                                         : train_copy(argc, argv);
    return dist_end(rc);
}
