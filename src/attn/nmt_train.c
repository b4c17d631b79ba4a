/* attn train --task translate: the annotated Transformer's second half — a
 * translation model trained on a parallel corpus with its own SentencePiece
 * tokenizer, batches grouped by length under a token budget, label
 * smoothing and the Noam schedule — with validation loss and BLEU as it
 * goes, the best checkpoint kept, and checkpoints that resume exactly
 * (docs/translation.md). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "at_text.h"
#include "attn.h"
#include "dist.h"
#include "io/fileio.h"

static const char help[] =
    "usage: attn train --task translate (--data DIR | --train-src F --train-tgt F\n"
    "                  --valid-src F --valid-tgt F) [--minutes M] [--epochs N]\n"
    "                  [--batch-tokens N] [--vocab-size V] [model and schedule flags]\n"
    "                  [--out F] [--best F] [--resume F]\n"
    "\n"
    "Train a translation model on a parallel corpus: two files of one sentence per\n"
    "line, line i of one the translation of line i of the other (attn corpus bible\n"
    "writes one). A SentencePiece tokenizer is trained on the training split first\n"
    "(joint: one vocabulary for both sides, unless --separate-vocab) and travels in\n"
    "the checkpoint's metadata; sentences are read as <s> pieces </s>, pad 0.\n"
    "Batches are grouped by length: the pairs are sorted by target then source\n"
    "length and cut into batches of B pairs with B x max(S, T) <= --batch-tokens\n"
    "(S, T the batch's longest source and target, framing included); their order\n"
    "is shuffled every epoch from the seed. Each epoch (and every --eval-every\n"
    "steps) the validation loss and the corpus BLEU of the validation split\n"
    "translated greedily (--eval-beam) are printed; the model with the best BLEU\n"
    "is written to --best.\n"
    "\n"
    "Data:\n"
    "  --data DIR          DIR/train.{src,tgt} and DIR/valid.{src,tgt}\n"
    "  --train-src F, --train-tgt F, --valid-src F, --valid-tgt F   the files\n"
    "  --vocab-size V      tokenizer pieces, specials included (default 8000)\n"
    "  --separate-vocab    a tokenizer per side, each of --vocab-size pieces\n"
    "  --tokenizer-model bpe|unigram   SentencePiece's algorithm (default bpe)\n"
    "  --max-tokens N      training pairs with a side longer than N ids are left\n"
    "                      out (counted in the first lines; default 256)\n"
    "Model (defaults: the peer configuration of docs/translation.md):\n"
    "  --layers N (3)  --d-model D (256)  --heads H (4)  --d-ff F (1024)\n"
    "  --dropout P (0.1)  --attn-dropout P (0.1)\n"
    "Schedule (the walkthrough's: label smoothing 0.1, Adam 0.9/0.98/1e-9, Noam):\n"
    "  --lr X              Adam's base rate times the Noam rate (default 1)\n"
    "  --warmup W          Noam warmup steps (default 3000, the walkthrough's)\n"
    "  --smoothing X       label smoothing (default 0.1)\n"
    "  --batch-tokens N    the token budget of a batch (default 4000)\n"
    "  --seed S            initialisation, dropout and batch order (default 0)\n"
    "Length of the run:\n"
    "  --epochs N          epochs (default 10)\n"
    "  --minutes M         a wall-clock budget (evaluations included): when it runs\n"
    "                      out, training stops after the current step, evaluates\n"
    "                      and saves (default 0: no budget)\n"
    "  --eval-every K      also evaluate K steps after the last evaluation (default 0:\n"
    "                      each epoch only)\n"
    "  --eval-sentences N  validation sentences translated for BLEU (default 0: all)\n"
    "  --eval-beam K       beam size of that translation (default 1: greedy)\n"
    "Files:\n"
    "  --out F             the training checkpoint (weights, Adam moments, step,\n"
    "                      tokenizer), written at the end, on a budget's end, on\n"
    "                      SIGINT/SIGTERM and every --save-every epochs (default\n"
    "                      translate.safetensors)\n"
    "  --best F            the weights (and tokenizer) of the best validation BLEU\n"
    "                      so far (default: --out with .best before its extension)\n"
    "  --save-every K      also write --out every K epochs (default 1)\n"
    "  --resume F          go on from --out of an earlier run: model, tokenizer and\n"
    "                      settings come from F; with the same data, --batch-tokens,\n"
    "                      --max-tokens and --threads the run equals an uninterrupted\n"
    "                      one bit for bit\n"
    "  --threads N         threads for OpenBLAS and libat (default: as configured)\n"
    "  --quiet             no lines but the summary, no progress bar\n"
    "  --snapshot-every K  record the attention and head statistics of --probe every K\n"
    "                      steps (and at the first) into --snapshots, rewritten\n"
    "                      atomically after each; training is the same bit for bit\n"
    "  --probe F           src (B, S) and decoder input tgt (B, T) in the model's ids\n"
    "                      (I32 or I64, pad 0; e.g. attn translate --dump's src and ys\n"
    "                      with its last column dropped, for a model whose tokenizer\n"
    "                      --resume keeps)\n"
    "  --probe-text S      instead of --probe: a sentence, \"source\" or\n"
    "                      \"source ||| target\" (every one with a target or none),\n"
    "                      encoded with the run's tokenizers as training pairs are;\n"
    "                      repeatable; @F: the lines of file F\n"
    "  --snapshots F       where (default: --out's name with .snapshots.safetensors)\n"
    "  -h, --help          this text\n"
    "\n"
    "Translate with the result: attn translate --model F \"En el principio\".\n";

typedef struct tr_opts {
    const char *data, *train_src, *train_tgt, *valid_src, *valid_tgt, *tok_model;
    int vocab_size, max_tokens;
    bool separate_vocab;
    int layers, d_model, heads, d_ff, warmup, seed, batch_tokens;
    double dropout, attn_dropout, lr, smoothing, minutes;
    int epochs, eval_every, eval_sentences, eval_beam, save_every, threads;
    const char *out, *best, *resume;
    bool quiet;
    const char *probe, *snapshots;   /* --probe, --snapshots */
    const opt_list *probe_text;      /* --probe-text */
    int snapshot_every;
} tr_opts;

/* ---------------------------------------------------------------- text files */

/* Both sides of a split (nmt_read_lines: UTF-8, no NUL, no blank line),
 * of the same length. */
static int pair_read(const char *src, const char *tgt, nmt_lines *s, nmt_lines *t)
{
    if (nmt_read_lines("train", src, s) != ATTN_OK)
        return ATTN_FAIL;
    if (nmt_read_lines("train", tgt, t) != ATTN_OK) {
        nmt_lines_free(s);
        return ATTN_FAIL;
    }
    if (s->n != t->n) {
        attn_error("train: '%s' has %d lines but '%s' has %d; a parallel corpus has one "
                   "translation per line", src, s->n, tgt, t->n);
        nmt_lines_free(s);
        nmt_lines_free(t);
        return ATTN_FAIL;
    }
    return ATTN_OK;
}

/* ---------------------------------------------------------------- encoded pairs */

/* Sentences as ids, <s> pieces </s>: seq i is ids[off[i] .. off[i] + len[i]). */
typedef struct seqs {
    int32_t *ids;
    size_t *off;
    int *len;
    int n;
} seqs;

static void seqs_free(seqs *q)
{
    free(q->ids);
    free(q->off);
    free(q->len);
    memset(q, 0, sizeof *q);
}

static int seqs_encode(const char *path, at_tokenizer *t, const nmt_lines *l, seqs *q)
{
    memset(q, 0, sizeof *q);
    size_t cap = 1 << 20, used = 0;
    q->ids = malloc(cap * sizeof *q->ids);
    q->off = malloc((size_t)l->n * sizeof *q->off);
    q->len = malloc((size_t)l->n * sizeof *q->len);
    if (!q->ids || !q->off || !q->len)
        goto nomem;
    for (int i = 0; i < l->n; i++) {
        const int32_t *ids;
        size_t n;
        if (at_tokenizer_encode(t, l->v[i], l->len[i], &ids, &n) != AT_OK) {
            attn_error("train: '%s' line %d: %s", path, i + 1, at_text_errmsg());
            seqs_free(q);
            return ATTN_FAIL;
        }
        if (n > (size_t)INT32_MAX - 2)
            n = (size_t)INT32_MAX - 2;
        if (used + n + 2 > cap) {
            while (used + n + 2 > cap)
                cap *= 2;
            int32_t *grown = realloc(q->ids, cap * sizeof *grown);
            if (!grown)
                goto nomem;
            q->ids = grown;
        }
        q->off[i] = used;
        q->ids[used++] = AT_TOK_BOS_ID;
        memcpy(q->ids + used, ids, n * sizeof *ids);
        used += n;
        q->ids[used++] = AT_TOK_EOS_ID;
        q->len[i] = (int)n + 2;
    }
    q->n = l->n;
    return ATTN_OK;
nomem:
    attn_error("train: out of memory encoding '%s'", path);
    seqs_free(q);
    return ATTN_FAIL;
}

/* ---------------------------------------------------------------- batches */

/* A batch: pairs order[first .. first + count) of its split, padded to S, T. */
typedef struct batch {
    int first, count, S, T;
} batch;

typedef struct split {
    const char *name;
    nmt_lines src_text, tgt_text;
    seqs src, tgt;
    int *order;        /* the pairs kept, sorted by length */
    int kept, left_out;
    batch *b;
    int nb;
    int64_t tgt_tokens;  /* labels per epoch: the target ids after <s> */
} split;

static void split_free(split *sp)
{
    nmt_lines_free(&sp->src_text);
    nmt_lines_free(&sp->tgt_text);
    seqs_free(&sp->src);
    seqs_free(&sp->tgt);
    free(sp->order);
    free(sp->b);
}

static const split *sort_split;   /* qsort has no context argument */

static int by_length(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    const split *sp = sort_split;
    if (sp->tgt.len[i] != sp->tgt.len[j])
        return sp->tgt.len[i] < sp->tgt.len[j] ? -1 : 1;
    if (sp->src.len[i] != sp->src.len[j])
        return sp->src.len[i] < sp->src.len[j] ? -1 : 1;
    return (i > j) - (i < j);   /* the file's order: the sort is deterministic */
}

/* Sorts the pairs that fit max_tokens by length and cuts them into batches
 * of B pairs with B * max(S, T) <= budget (a longer pair alone). */
static int split_batches(split *sp, int max_tokens, int budget)
{
    sp->order = malloc((size_t)sp->src.n * sizeof *sp->order);
    sp->b = malloc((size_t)sp->src.n * sizeof *sp->b);
    if (!sp->order || !sp->b) {
        attn_error("train: out of memory for the batches of %s", sp->name);
        return ATTN_FAIL;
    }
    sp->kept = 0;
    for (int i = 0; i < sp->src.n; i++) {
        if (sp->src.len[i] > max_tokens || sp->tgt.len[i] > max_tokens)
            sp->left_out++;
        else
            sp->order[sp->kept++] = i;
    }
    sort_split = sp;
    qsort(sp->order, (size_t)sp->kept, sizeof *sp->order, by_length);
    sp->nb = 0;
    sp->tgt_tokens = 0;
    for (int k = 0; k < sp->kept;) {
        batch b = {k, 0, 0, 0};
        while (k < sp->kept) {
            int i = sp->order[k];
            int S = b.S > sp->src.len[i] ? b.S : sp->src.len[i];
            int T = b.T > sp->tgt.len[i] ? b.T : sp->tgt.len[i];
            int64_t cost = (int64_t)(b.count + 1) * (S > T ? S : T);
            if (b.count > 0 && cost > budget)
                break;
            b.S = S, b.T = T, b.count++, k++;
            sp->tgt_tokens += sp->tgt.len[i] - 1;
        }
        sp->b[sp->nb++] = b;
    }
    return ATTN_OK;
}

/* The most ids a batch of the split holds on either side: count * max(S, T). */
static int split_most(const split *sp)
{
    int most = 0;
    for (int k = 0; k < sp->nb; k++) {
        const batch *b = &sp->b[k];
        int a = b->count * (b->S > b->T ? b->S : b->T);
        most = a > most ? a : most;
    }
    return most;
}

/* The ids of batch b, padded with 0: src (count, S), tgt (count, T). */
static void batch_fill(const split *sp, const batch *b, int32_t *src, int32_t *tgt)
{
    memset(src, 0, (size_t)b->count * (size_t)b->S * sizeof *src);
    memset(tgt, 0, (size_t)b->count * (size_t)b->T * sizeof *tgt);
    for (int r = 0; r < b->count; r++) {
        int i = sp->order[b->first + r];
        memcpy(src + (size_t)r * b->S, sp->src.ids + sp->src.off[i],
               (size_t)sp->src.len[i] * sizeof *src);
        memcpy(tgt + (size_t)r * b->T, sp->tgt.ids + sp->tgt.off[i],
               (size_t)sp->tgt.len[i] * sizeof *tgt);
    }
}

/* The batch order of epoch e: a Fisher-Yates shuffle from (seed, e). */
static void epoch_order(int *perm, int nb, int seed, int e)
{
    copy_rng r = copy_stream((uint64_t)seed ^ 0x7472616e736c6174u, (uint64_t)e);
    for (int i = 0; i < nb; i++)
        perm[i] = i;
    for (int i = nb - 1; i > 0; i--) {
        int j = (int)(((copy_next(&r) >> 32) * (uint64_t)(i + 1)) >> 32);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* ---------------------------------------------------------------- the run */

typedef struct run {
    const tr_opts *o;
    at_model *m;
    at_tokenizer *src_tok, *tgt_tok;
    split train, valid;
    int32_t *src_buf, *tgt_buf;
    double best_bleu;
    uint64_t best_step;
    uint64_t last_eval;           /* the step of the last evaluation (0: none) */
    double t_start, deadline;
    bool bar;
    uint64_t saved_step;
    /* this run's totals, for the summary: training steps alone (batch
     * filling included) and evaluations, apart */
    int64_t train_tokens;
    uint64_t train_steps;
    double step_seconds, eval_seconds, tokenizer_seconds;
    snapshots *snap;              /* --snapshot-every, or NULL */
} run;

static void bar_draw(const run *r, int epoch, int done, int total, double loss,
                     double tokens_per_s)
{
    enum { WIDTH = 24 };
    char b[WIDTH + 1];
    int fill = total > 0 ? done * WIDTH / total : WIDTH;
    for (int i = 0; i < WIDTH; i++)
        b[i] = i < fill ? '#' : '.';
    b[WIDTH] = '\0';
    fprintf(stderr, "\r\033[K  epoch %d/%d [%s] %d/%d  loss %.3f  %.0f tok/s  %.0f s", epoch,
            r->o->epochs, b, done, total, loss, tokens_per_s, copy_now() - r->t_start);
    fflush(stderr);
}

static void bar_clear(const run *r)
{
    if (r->bar) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
}

/* The training checkpoint with the best BLEU so far in its metadata, so a
 * resumed run keeps comparing against it. */
static int save_out(run *r)
{
    if (dist_rank() > 0) {            /* rank 0 writes the checkpoints */
        r->saved_step = at_model_steps(r->m);
        return ATTN_OK;
    }
    char v[3][40];
    snprintf(v[0], sizeof v[0], "%.17g", r->best_bleu);
    snprintf(v[1], sizeof v[1], "%llu", (unsigned long long)r->best_step);
    snprintf(v[2], sizeof v[2], "%llu", (unsigned long long)r->last_eval);
    if (at_model_set_meta(r->m, "train.best_bleu", v[0]) != AT_OK ||
        at_model_set_meta(r->m, "train.best_step", v[1]) != AT_OK ||
        at_model_set_meta(r->m, "train.last_eval", v[2]) != AT_OK ||
        at_model_save_training(r->m, r->o->out) != AT_OK) {
        attn_error("train: cannot save the checkpoint '%s': %s", r->o->out, at_errmsg(r->m));
        return ATTN_FAIL;
    }
    r->saved_step = at_model_steps(r->m);
    return ATTN_OK;
}

/* Validation: the loss over every validation batch (no dropout) and the
 * corpus BLEU and chrF of the first --eval-sentences sentences translated. */
typedef struct evaluation {
    double loss, bleu, chrf, seconds;
    int sentences;
} evaluation;

static int evaluate(run *r, evaluation *ev)
{
    const tr_opts *o = r->o;
    double t0 = copy_now(), sum = 0;
    int64_t tokens = 0;
    for (int k = 0; k < r->valid.nb; k++) {
        const batch *b = &r->valid.b[k];
        float loss;
        int64_t nt;
        batch_fill(&r->valid, b, r->src_buf, r->tgt_buf);
        if (at_eval_loss(r->m, r->src_buf, r->tgt_buf, b->count, b->S, b->T, AT_TOK_PAD_ID,
                         &loss, &nt) != AT_OK) {
            attn_error("train: validation loss: %s", at_errmsg(r->m));
            return ATTN_FAIL;
        }
        sum += (double)loss * (double)nt;
        tokens += nt;
    }
    ev->loss = tokens ? sum / (double)tokens : NAN;
    int n = r->valid.src_text.n;
    if (o->eval_sentences > 0 && o->eval_sentences < n)
        n = o->eval_sentences;
    ev->sentences = n;
    char **hyp = calloc((size_t)n, sizeof *hyp);
    if (!hyp) {
        attn_error("train: out of memory for %d translations", n);
        return ATTN_FAIL;
    }
    nmt t = {.m = r->m, .src = r->src_tok, .tgt = r->tgt_tok, .joint = r->src_tok == r->tgt_tok,
             .owns_model = false};
    double ml = 0;
    at_model_get(r->m, AT_P_MAX_LEN, &ml);
    t.max_len = (int)ml;
    nmt_opts no;
    nmt_opts_default(&no);
    no.beam = o->eval_beam;
    int rc = nmt_translate("train", &t, r->valid.src_text.v,
                           r->valid.src_text.len, n, &no, hyp);
    if (rc == ATTN_OK)
        rc = nmt_score("train", hyp, &r->valid.tgt_text, n, &ev->bleu, &ev->chrf);
    for (int i = 0; i < n; i++)
        free(hyp[i]);
    free(hyp);
    ev->seconds = copy_now() - t0;
    r->eval_seconds += ev->seconds;
    return rc;
}

/* Evaluates, prints the one-line summary, keeps the best model. */
static int checkpoint_eval(run *r, int epoch, double train_loss, double tok_s)
{
    evaluation ev = {0};
    if (dist_rank() > 0) {            /* rank 0 evaluates and keeps the best */
        r->last_eval = at_model_steps(r->m);
        return ATTN_OK;
    }
    bar_clear(r);
    int rc = evaluate(r, &ev);
    if (rc != ATTN_OK)
        return rc;
    uint64_t step = at_model_steps(r->m);
    r->last_eval = step;
    bool best = ev.bleu > r->best_bleu || r->best_step == 0;
    if (!r->o->quiet || best) {
        char tl[24] = "    -";
        if (train_loss >= 0)
            snprintf(tl, sizeof tl, "%7.4f", train_loss);
        printf("epoch %3d  step %6llu  train loss %s  valid loss %7.4f  BLEU %5.2f  chrF2 "
               "%5.2f  lr %.2e  %5.0f tok/s  %6.1f min%s\n", epoch,
               (unsigned long long)step, tl, ev.loss, ev.bleu, ev.chrf,
               at_model_learning_rate(r->m), tok_s, (copy_now() - r->t_start) / 60,
               best ? "  best" : "");
        fflush(stdout);
    }
    if (best) {
        r->best_bleu = ev.bleu;
        r->best_step = step;
        if (at_model_save(r->m, r->o->best) != AT_OK) {
            attn_error("train: cannot save the best model '%s': %s", r->o->best,
                       at_errmsg(r->m));
            return ATTN_FAIL;
        }
    }
    return ATTN_OK;
}

typedef enum stop_reason { RAN_OUT = 0, DONE, BUDGET, SIGNAL, FAILED } stop_reason;

/* One training step on batch b (filled in the run's buffers): this rank's
 * rows of it under mpirun, all of them without. */
static at_status shard_step(run *r, const batch *b, float *loss, int64_t *nt)
{
    if (!dist_active())
        return at_train_step(r->m, r->src_buf, r->tgt_buf, b->count, b->S, b->T,
                             AT_TOK_PAD_ID, loss, nt);
    int first, rows;
    dist_shard(b->count, &first, &rows);
    const int32_t *src = r->src_buf + (size_t)first * b->S;
    return at_train_step_reduce(r->m, rows ? src : NULL, r->tgt_buf + (size_t)first * b->T,
                                rows, b->S, b->T, AT_TOK_PAD_ID, first, dist_allreduce, NULL,
                                loss, nt);
}

/* Under mpirun: whether every rank has the same batches (the tokenizers each
 * trained alike) and the same parameters. */
static int ranks_agree(const run *r)
{
    unsigned long long h = DIST_HASH0;
    const split *sp = &r->train;
    h = dist_hash(h, &sp->nb, sizeof sp->nb);
    for (int k = 0; k < sp->kept; k++) {
        int i = sp->order[k];
        h = dist_hash(h, sp->src.ids + sp->src.off[i], (size_t)sp->src.len[i] * sizeof(int32_t));
        h = dist_hash(h, sp->tgt.ids + sp->tgt.off[i], (size_t)sp->tgt.len[i] * sizeof(int32_t));
    }
    if (dist_agree(h, "train", "training batches") != ATTN_OK)
        return ATTN_FAIL;
    h = DIST_HASH0;
    for (int i = 0; i < at_model_tensor_count(r->m); i++) {
        at_view v;
        if (at_model_tensor_trainable(r->m, i) != 1 || at_model_tensor(r->m, i, NULL, &v) !=
                                                           AT_OK)
            continue;
        size_t n = 1;
        for (int k = 0; k < v.ndim; k++)
            n *= (size_t)v.shape[k];
        h = dist_hash(h, v.data, n * sizeof(float));
    }
    return dist_agree(h, "train", "parameters");
}

static stop_reason train_loop(run *r, int *sig)
{
    const tr_opts *o = r->o;
    int nb = r->train.nb;
    int *perm = malloc((size_t)nb * sizeof *perm);
    if (!perm) {
        attn_error("train: out of memory");
        return FAILED;
    }
    uint64_t steps = at_model_steps(r->m);
    int first = (int)(steps / (uint64_t)nb), skip = (int)(steps % (uint64_t)nb);
    if (dist_rank() > 0 && r->snap) {   /* rank 0 records the snapshots */
        snap_close(r->snap);
        r->snap = NULL;
    }
    r->bar = r->bar && dist_rank() == 0;
    stop_reason why = DONE;
    for (int e = first; e < o->epochs && why == DONE; e++) {
        epoch_order(perm, nb, o->seed, e);
        double sum = 0, busy = 0;   /* busy: seconds in this epoch's steps */
        int64_t tokens = 0;
        for (int k = e == first ? skip : 0; k < nb; k++) {
            /* every rank stops after the same step, whichever got the signal */
            if ((*sig = dist_max(copy_caught_signal())) != 0) {
                why = SIGNAL;
                break;
            }
            const batch *b = &r->train.b[perm[k]];
            double t0 = copy_now();
            batch_fill(&r->train, b, r->src_buf, r->tgt_buf);
            float loss;
            int64_t nt;
            at_status s = shard_step(r, b, &loss, &nt);
            if (s != AT_OK) {
                bar_clear(r);
                attn_error("train: step %llu failed: %s", (unsigned long long)steps + 1,
                           at_errmsg(r->m));
                if (s == AT_E_NUMERIC)
                    attn_error("train: training diverged; %s", r->saved_step
                               ? "--out keeps the last good checkpoint: lower --lr or raise "
                                 "--warmup and resume or train again"
                               : "nothing was saved: lower --lr or raise --warmup");
                why = FAILED;
                break;
            }
            steps++;
            if (snap_after_step(r->snap, r->m) != ATTN_OK) {
                why = FAILED;
                break;
            }
            double t1 = copy_now();
            busy += t1 - t0;
            r->step_seconds += t1 - t0;
            r->train_tokens += nt;
            r->train_steps++;
            /* after this step: a run takes at least one; rank 0's clock decides */
            if (r->deadline > 0 && dist_max(dist_rank() == 0 && t1 >= r->deadline))
                why = BUDGET;
            sum += (double)loss * (double)nt;
            tokens += nt;
            double tok_s = (double)tokens / busy;
            if (r->bar)
                bar_draw(r, e + 1, k + 1, nb, sum / (double)tokens, tok_s);
            if (why == BUDGET)
                break;
            /* --eval-every counts from the last evaluation, the end of an epoch's too */
            if (o->eval_every > 0 && steps - r->last_eval >= (uint64_t)o->eval_every &&
                k + 1 < nb &&
                checkpoint_eval(r, e + 1, sum / (double)tokens, tok_s) != ATTN_OK) {
                why = FAILED;
                break;
            }
        }
        double tok_s = tokens ? (double)tokens / busy : 0;
        double loss = tokens ? sum / (double)tokens : -1;
        if (why == DONE || why == BUDGET) {
            if (checkpoint_eval(r, e + 1, loss, tok_s) != ATTN_OK)
                why = FAILED;
        }
        if (why == DONE && e + 1 < o->epochs && o->save_every > 0 &&
            (e + 1) % o->save_every == 0 && save_out(r) != ATTN_OK)
            why = FAILED;
    }
    bar_clear(r);
    free(perm);
    return why;
}

/* ---------------------------------------------------------------- setting up */

static int make_tokenizers(const tr_opts *o, const char *src, const char *tgt, run *r)
{
    at_tokenizer_options to = {.struct_size = sizeof to, .vocab_size = o->vocab_size,
                               .threads = at_get_threads()};
    to.model = strcmp(o->tok_model, "unigram") ? AT_TOK_BPE : AT_TOK_UNIGRAM;
    double t0 = copy_now();
    const char *both[2] = {src, tgt};
    at_status s;
    if (o->separate_vocab) {
        s = at_tokenizer_train(&both[0], 1, &to, &r->src_tok);
        if (s == AT_OK)
            s = at_tokenizer_train(&both[1], 1, &to, &r->tgt_tok);
    } else {
        s = at_tokenizer_train(both, 2, &to, &r->src_tok);
        r->tgt_tok = r->src_tok;
    }
    if (s != AT_OK) {
        attn_error("train: cannot train the tokenizer: %s", at_text_errmsg());
        return s == AT_E_ARG ? ATTN_USAGE : ATTN_FAIL;
    }
    r->tokenizer_seconds = copy_now() - t0;
    if (!o->quiet)
        printf("tokenizer: SentencePiece %s, %s vocabulary of %d pieces, trained in %.1f s\n",
               o->tok_model, o->separate_vocab ? "a separate" : "a joint", o->vocab_size,
               r->tokenizer_seconds);
    return ATTN_OK;
}

static int create_model(const tr_opts *o, run *r)
{
    at_config *cfg;
    int max_len = o->max_tokens > 512 ? o->max_tokens : 512;
    const struct { at_param k; double v; } set[] = {
        {AT_P_SRC_VOCAB, at_tokenizer_vocab_size(r->src_tok)},
        {AT_P_TGT_VOCAB, at_tokenizer_vocab_size(r->tgt_tok)},
        {AT_P_LAYERS, o->layers}, {AT_P_D_MODEL, o->d_model}, {AT_P_HEADS, o->heads},
        {AT_P_D_FF, o->d_ff}, {AT_P_DROPOUT, o->dropout}, {AT_P_ATTN_DROPOUT, o->attn_dropout},
        {AT_P_MAX_LEN, max_len}, {AT_P_SEED, o->seed}, {AT_P_LR, o->lr},
        {AT_P_WARMUP, o->warmup}, {AT_P_SMOOTHING, o->smoothing},
    };
    at_status s = at_config_create(&cfg);
    for (size_t i = 0; s == AT_OK && i < sizeof set / sizeof *set; i++)
        s = at_config_set(cfg, set[i].k, set[i].v);
    if (s == AT_OK)
        s = at_model_create(cfg, &r->m);
    at_config_free(cfg);
    if (s != AT_OK) {
        attn_error("train: cannot create the model: %s", at_errmsg(NULL));
        return s == AT_E_ARG ? ATTN_USAGE : ATTN_FAIL;
    }
    if (nmt_attach("train", r->m, r->src_tok, r->tgt_tok) != ATTN_OK)
        return ATTN_FAIL;
    return ATTN_OK;
}

/* A resumed run: the model, its tokenizer and its settings from the file;
 * a flag that says otherwise is refused. */
static int resume_model(tr_opts *o, const opt *opts, int nopts, run *r)
{
    int rc = io_load_model(o->resume, 0, &r->m, NULL);
    if (rc != ATTN_OK)
        return rc;
    if (at_model_steps(r->m) == 0) {
        attn_error("train: '%s' is not a training checkpoint (no optimizer state); resume "
                   "from the --out of attn train --task translate", o->resume);
        return ATTN_FAIL;
    }
    nmt t;
    if ((rc = nmt_from_model("train", r->m, o->resume, &t)) != ATTN_OK)
        return rc;
    r->src_tok = t.src;
    r->tgt_tok = t.tgt;
    const resumed keep[] = {
        {"layers", AT_P_LAYERS, true, &o->layers}, {"d-model", AT_P_D_MODEL, true, &o->d_model},
        {"heads", AT_P_HEADS, true, &o->heads}, {"d-ff", AT_P_D_FF, true, &o->d_ff},
        {"dropout", AT_P_DROPOUT, false, &o->dropout},
        {"attn-dropout", AT_P_ATTN_DROPOUT, false, &o->attn_dropout},
        {"lr", AT_P_LR, false, &o->lr}, {"warmup", AT_P_WARMUP, true, &o->warmup},
        {"smoothing", AT_P_SMOOTHING, false, &o->smoothing},
        {"seed", AT_P_SEED, true, &o->seed},
    };
    if ((rc = resume_take(r->m, o->resume, opts, nopts, keep,
                          (int)(sizeof keep / sizeof *keep))) != ATTN_OK)
        return rc;
    const char *bb = NULL, *bs = NULL, *le = NULL;
    at_model_get_meta(r->m, "train.best_bleu", &bb);
    at_model_get_meta(r->m, "train.best_step", &bs);
    at_model_get_meta(r->m, "train.last_eval", &le);
    if (bb && bs) {
        r->best_bleu = strtod(bb, NULL);
        r->best_step = strtoull(bs, NULL, 10);
    }
    if (le)
        r->last_eval = strtoull(le, NULL, 10);
    return ATTN_OK;
}

/* The text of a split, read and checked before the tokenizer is trained. */
static int read_split(split *sp, const char *name, const char *src, const char *tgt)
{
    sp->name = name;
    return pair_read(src, tgt, &sp->src_text, &sp->tgt_text);
}

static int encode_split(split *sp, const char *src, const char *tgt, const run *r)
{
    if (seqs_encode(src, r->src_tok, &sp->src_text, &sp->src) != ATTN_OK ||
        seqs_encode(tgt, r->tgt_tok, &sp->tgt_text, &sp->tgt) != ATTN_OK)
        return ATTN_FAIL;
    return split_batches(sp, r->o->max_tokens, r->o->batch_tokens);
}

/* "F.safetensors" -> "F.best.safetensors"; "F" -> "F.best". */
static char *best_path(const char *out)
{
    size_t n = strlen(out);
    const char *slash = strrchr(out, '/'), *dot = strrchr(out, '.');
    if (!dot || (slash && dot < slash) || dot == out || dot[-1] == '/')
        dot = out + n;
    char *p = malloc(n + 6);
    if (p)
        sprintf(p, "%.*s.best%s", (int)(dot - out), out, dot);
    return p;
}

static int train_run(tr_opts *o, const opt *opts, int nopts)
{
    run r = {.o = o, .best_bleu = 0};
    char *files[4] = {0};
    const char **given[4] = {&o->train_src, &o->train_tgt, &o->valid_src, &o->valid_tgt};
    static const char *const names[4] = {"train.src", "train.tgt", "valid.src", "valid.tgt"};
    int rc = ATTN_OK;
    for (int i = 0; i < 4 && o->data; i++) {
        if (!(files[i] = io_join(o->data, names[i]))) {
            attn_error("train: out of memory");
            return ATTN_FAIL;
        }
        *given[i] = files[i];
    }
    double t_begin = copy_now();
    rc = read_split(&r.train, "train", o->train_src, o->train_tgt);
    if (rc == ATTN_OK)
        rc = read_split(&r.valid, "valid", o->valid_src, o->valid_tgt);
    if (rc == ATTN_OK && o->resume)
        rc = resume_model(o, opts, nopts, &r);
    else if (rc == ATTN_OK && (rc = make_tokenizers(o, o->train_src, o->train_tgt, &r)) == ATTN_OK)
        rc = create_model(o, &r);
    if (rc == ATTN_OK)
        rc = encode_split(&r.train, o->train_src, o->train_tgt, &r);
    if (rc == ATTN_OK)
        rc = encode_split(&r.valid, o->valid_src, o->valid_tgt, &r);
    if (rc == ATTN_OK && r.train.nb == 0) {
        attn_error("train: no training pair has both sides within --max-tokens %d",
                   o->max_tokens);
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK && dist_size() > 1 && (rc = ranks_agree(&r)) == ATTN_OK)
        printf("data-parallel over %d MPI ranks: each trains on its share of the rows of "
               "every batch\n", dist_size());
    int most = split_most(&r.train);
    if (split_most(&r.valid) > most)
        most = split_most(&r.valid);
    if (rc == ATTN_OK) {
        r.src_buf = malloc((size_t)most * sizeof *r.src_buf);
        r.tgt_buf = malloc((size_t)most * sizeof *r.tgt_buf);
        if (!r.src_buf || !r.tgt_buf) {
            attn_error("train: out of memory");
            rc = ATTN_FAIL;
        }
    }
    if (rc == ATTN_OK) {
        printf("translate: %d training pairs (%d left out, longer than %d ids) in %d batches "
               "of <= %d tokens, %lld target tokens an epoch; %d validation pairs\n",
               r.train.kept, r.train.left_out, o->max_tokens, r.train.nb, o->batch_tokens,
               (long long)r.train.tgt_tokens, r.valid.src_text.n);
        printf("  model: vocabulary %d/%d, N %d, d_model %d, h %d, d_ff %d (%.2fM parameters), "
               "dropout %g; Adam lr %g x Noam (warmup %d), smoothing %g, seed %d, %d threads\n",
               io_model_int(r.m, AT_P_SRC_VOCAB), io_model_int(r.m, AT_P_TGT_VOCAB), o->layers,
               o->d_model, o->heads, o->d_ff, (double)copy_parameters(r.m) * 1e-6, o->dropout,
               o->lr, o->warmup, o->smoothing, o->seed, at_get_threads());
        if (o->resume)
            printf("resumed from %s at step %llu (epoch %llu, batch %llu of %d)\n", o->resume,
                   (unsigned long long)at_model_steps(r.m),
                   (unsigned long long)(at_model_steps(r.m) / (uint64_t)r.train.nb) + 1,
                   (unsigned long long)(at_model_steps(r.m) % (uint64_t)r.train.nb), r.train.nb);
        fflush(stdout);
    }
    int sig = 0;
    stop_reason why = DONE;
    if (rc == ATTN_OK) {
        r.bar = !o->quiet && isatty(STDERR_FILENO);
        r.t_start = copy_now();
        r.deadline = o->minutes > 0 ? t_begin + o->minutes * 60 : 0;
        copy_catch_signals(r.bar);
        if (o->probe)
            rc = snap_open("train", o->probe, o->snapshots, o->snapshot_every, r.m, &r.snap);
        else if (o->probe_text->n)
            rc = snap_open_text("train", o->probe_text, r.src_tok, r.tgt_tok, o->snapshots,
                                o->snapshot_every, r.m, &r.snap);
        why = rc == ATTN_OK ? train_loop(&r, &sig) : FAILED;
        if (r.snap)
            printf("wrote %s: %d snapshots of the probe's attention\n", o->snapshots,
                   snap_count(r.snap));
        snap_close(r.snap);
        if (why == FAILED)
            rc = ATTN_FAIL;
        else if (at_model_steps(r.m) > r.saved_step || !o->resume ||
                 strcmp(o->resume, o->out) != 0)
            rc = save_out(&r);
        copy_release_signals();
    }
    if (rc == ATTN_OK) {
        double s = copy_now() - t_begin;
        const char *how = why == BUDGET ? "the time budget ran out"
                        : why == SIGNAL ? "interrupted" : "done";
        printf("%s after %.1f min at step %llu; best validation BLEU %.2f (step %llu) in %s; "
               "training checkpoint %s\n", how, s / 60, (unsigned long long)at_model_steps(r.m),
               r.best_bleu, (unsigned long long)r.best_step, o->best, o->out);
        printf("time: %llu steps, %lld target tokens in %.1f s of steps (%.0f target tokens/s); "
               "evaluations %.1f s; tokenizer %.1f s; the rest %.1f s\n",
               (unsigned long long)r.train_steps, (long long)r.train_tokens, r.step_seconds,
               r.step_seconds > 0 ? (double)r.train_tokens / r.step_seconds : 0.0,
               r.eval_seconds, r.tokenizer_seconds,
               s - r.step_seconds - r.eval_seconds - r.tokenizer_seconds);
        if (why == SIGNAL && dist_rank() > 0) {
            rc = 128 + sig;
        } else if (why == SIGNAL) {
            attn_error("train: interrupted by %s; resume with: %s train --task translate "
                       "--resume %s --out %s%s%s (and the same data flags)",
                       sig == 2 ? "SIGINT" : "SIGTERM", attn_program, o->out, o->out,
                       o->minutes > 0 ? " --minutes M" : "", "");
            rc = 128 + sig;
        }
    }
    if (r.src_tok != r.tgt_tok)
        at_tokenizer_free(r.tgt_tok);
    at_tokenizer_free(r.src_tok);
    at_model_free(r.m);
    split_free(&r.train);
    split_free(&r.valid);
    free(r.src_buf);
    free(r.tgt_buf);
    for (int i = 0; i < 4; i++)
        free(files[i]);
    return rc;
}

int cmd_train_translate(int argc, char **argv)
{
    tr_opts o = {
        .tok_model = "bpe", .vocab_size = 8000, .max_tokens = 256,
        .layers = 3, .d_model = 256, .heads = 4, .d_ff = 1024, .dropout = 0.1,
        .attn_dropout = 0.1, .lr = 1.0, .warmup = 3000, .smoothing = 0.1, .seed = 0,
        .batch_tokens = 4000, .epochs = 10, .minutes = 0, .eval_every = 0,
        .eval_sentences = 0, .eval_beam = 1, .save_every = 1,
        .out = "translate.safetensors",
    };
    static opt_list probe_text;   /* 32 KiB: off the stack */
    probe_text.n = 0;
    o.probe_text = &probe_text;
    const char *task = "translate";
    double lo[AT_P_ADAM_EPS + 1] = {0}, hi[AT_P_ADAM_EPS + 1] = {0};
    for (int k = 1; k <= AT_P_ADAM_EPS; k++)
        at_param_bounds((at_param)k, &lo[k], &hi[k]);
    opt opts[] = {
        {"task", OPT_STR, &task, 0, 0, false},
        {"data", OPT_STR, &o.data, 0, 0, false},
        {"train-src", OPT_STR, &o.train_src, 0, 0, false},
        {"train-tgt", OPT_STR, &o.train_tgt, 0, 0, false},
        {"valid-src", OPT_STR, &o.valid_src, 0, 0, false},
        {"valid-tgt", OPT_STR, &o.valid_tgt, 0, 0, false},
        {"vocab-size", OPT_INT, &o.vocab_size, 8, 1 << 20, false},
        {"separate-vocab", OPT_FLAG, &o.separate_vocab, 0, 0, false},
        {"tokenizer-model", OPT_STR, &o.tok_model, 0, 0, false},
        {"max-tokens", OPT_INT, &o.max_tokens, 3, 100000, false},
        {"layers", OPT_INT, &o.layers, lo[AT_P_LAYERS], hi[AT_P_LAYERS], false},
        {"d-model", OPT_INT, &o.d_model, lo[AT_P_D_MODEL], hi[AT_P_D_MODEL], false},
        {"heads", OPT_INT, &o.heads, lo[AT_P_HEADS], hi[AT_P_HEADS], false},
        {"d-ff", OPT_INT, &o.d_ff, lo[AT_P_D_FF], hi[AT_P_D_FF], false},
        {"dropout", OPT_NUM, &o.dropout, lo[AT_P_DROPOUT], hi[AT_P_DROPOUT], false},
        {"attn-dropout", OPT_NUM, &o.attn_dropout, lo[AT_P_ATTN_DROPOUT],
         hi[AT_P_ATTN_DROPOUT], false},
        {"lr", OPT_NUM, &o.lr, lo[AT_P_LR], hi[AT_P_LR], false},
        {"warmup", OPT_INT, &o.warmup, lo[AT_P_WARMUP], hi[AT_P_WARMUP], false},
        {"smoothing", OPT_NUM, &o.smoothing, lo[AT_P_SMOOTHING], hi[AT_P_SMOOTHING], false},
        {"seed", OPT_INT, &o.seed, 0, 2147483647, false},
        {"batch-tokens", OPT_INT, &o.batch_tokens, 1, 10000000, false},
        {"epochs", OPT_INT, &o.epochs, 1, 1000000, false},
        {"minutes", OPT_NUM, &o.minutes, 0, 1e7, false},
        {"eval-every", OPT_INT, &o.eval_every, 0, 100000000, false},
        {"eval-sentences", OPT_INT, &o.eval_sentences, 0, 100000000, false},
        {"eval-beam", OPT_INT, &o.eval_beam, 1, AT_BEAM_MAX, false},
        {"out", OPT_STR, &o.out, 0, 0, false},
        {"best", OPT_STR, &o.best, 0, 0, false},
        {"save-every", OPT_INT, &o.save_every, 0, 1000000, false},
        {"resume", OPT_STR, &o.resume, 0, 0, false},
        {"threads", OPT_INT, &o.threads, 1, 4096, false},
        {"quiet", OPT_FLAG, &o.quiet, 0, 0, false},
        {"snapshot-every", OPT_INT, &o.snapshot_every, 1, 100000000, false},
        {"probe", OPT_STR, &o.probe, 0, 0, false},
        {"probe-text", OPT_LIST, &probe_text, 0, 0, false},
        {"snapshots", OPT_STR, &o.snapshots, 0, 0, false},
    };
    int nopts = (int)(sizeof opts / sizeof *opts), rc;
    if (!args_command(argc, argv, opts, nopts, help, &rc))
        return rc;
    bool probe = o.probe || probe_text.n;
    if ((o.snapshot_every > 0) != probe || (o.snapshots && !probe)) {
        attn_error("train: --snapshot-every and --probe (or --probe-text) go together "
                   "(--snapshots with them)");
        return ATTN_USAGE;
    }
    if (o.probe && probe_text.n) {
        attn_error("train: --probe or --probe-text, not both");
        return ATTN_USAGE;
    }
    char *snap_path = NULL;
    if (probe) {
        snap_path = o.snapshots ? strdup(o.snapshots) : snap_default_path(o.out);
        if (!snap_path || io_check_output("train", snap_path) != ATTN_OK) {
            free(snap_path);
            return ATTN_FAIL;
        }
        o.snapshots = snap_path;
    }
    if (strcmp(o.tok_model, "bpe") && strcmp(o.tok_model, "unigram")) {
        attn_error("train: --tokenizer-model is bpe or unigram, not '%.40s'", o.tok_model);
        return ATTN_USAGE;
    }
    bool files = o.train_src || o.train_tgt || o.valid_src || o.valid_tgt;
    if (o.data && files) {
        attn_error("train: give --data DIR or the four files, not both");
        return ATTN_USAGE;
    }
    if (!o.data && (!o.train_src || !o.train_tgt || !o.valid_src || !o.valid_tgt)) {
        attn_error("train: --task translate needs --data DIR (train.src, train.tgt, "
                   "valid.src, valid.tgt) or --train-src, --train-tgt, --valid-src and "
                   "--valid-tgt (see attn train --task translate --help)");
        return ATTN_USAGE;
    }
    if (o.resume && (opts[6].seen || opts[7].seen || opts[8].seen)) {
        attn_error("train: a resumed run keeps the checkpoint's tokenizer: --vocab-size, "
                   "--separate-vocab and --tokenizer-model do not apply");
        return ATTN_USAGE;
    }
    char *best = o.best ? NULL : best_path(o.out);
    if (!o.best && !(o.best = best)) {
        attn_error("train: out of memory");
        return ATTN_FAIL;
    }
    if (!strcmp(o.best, o.out)) {
        attn_error("train: --best and --out are the same file");
        rc = ATTN_USAGE;
    } else if (dist_rank() == 0 && (io_check_output("train", o.out) != ATTN_OK ||
                                    io_check_output("train", o.best) != ATTN_OK)) {
        rc = ATTN_FAIL;   /* before the work, not after it; rank 0 writes them */
    } else {
        if (o.threads > 0)
            at_set_threads(o.threads);
        else if (dist_threads() > 0)      /* ranks sharing a machine share its cores */
            at_set_threads(dist_threads());
        rc = train_run(&o, opts, nopts);
    }
    free(best);
    free(snap_path);
    return rc;
}
