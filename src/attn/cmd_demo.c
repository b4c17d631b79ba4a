/* attn demo: the main job. Trains the copy task on a model small enough to
 * finish in about a minute, decodes held-out sequences and an example, and
 * writes the model and the example's attention to a folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"
#include "io/fileio.h"
#include "report.h"

/* The demo's model and schedule: the reference's copy task (vocabulary 11,
 * N 2, batches of 80 x 10, 20 per epoch, 5 evaluation batches, dropout 0.1)
 * with d_model 128, d_ff 512 instead of 512, 2048, warmup 200 instead of 400,
 * and 30 epochs: about a minute on 2 cores, and it copies held-out sequences
 * (99.8% of 1000 exactly when this was written). */
enum { D_MODEL = 128, HEADS = 8, D_FF = 512, WARMUP = 200, EPOCHS = 30, HELDOUT = 1000 };

static const char help[] =
    "usage: attn demo [--out DIR] [--seed N] [--epochs N] [--threads N] [--quiet]\n"
    "       attn demo translate [--minutes M] [--out DIR] ...   (attn demo translate --help)\n"
    "\n"
    "The main job, no arguments needed. Trains the annotated Transformer's copy\n"
    "task (its data generator and schedule: vocabulary 11, N 2, batches of 80 rows\n"
    "of 10 ids, 20 per epoch, 5 evaluation batches, dropout 0.1, Adam with base lr\n"
    "0.5 and the Noam rate) on a smaller model than the reference's, d_model 128,\n"
    "8 heads, d_ff 512, warmup 200, for 30 epochs: about a minute on 2 cores.\n"
    "Then it greedily decodes 1000 held-out random sequences and prints how many\n"
    "it copied exactly, decodes the reference's own example, decodes one held-out\n"
    "sequence and prints a cross-attention head of it, and writes into DIR:\n"
    "  model.safetensors      the trained weights (PyTorch state_dict names)\n"
    "  input.safetensors      the example's ids: src (1, 10), tgt (1, 9) int32\n"
    "  attention.safetensors  the attention of the decoded example (as attn decode\n"
    "                         --dump: every layer and head, outputs, masks, ids)\n"
    "  README.txt             what was done, how to reproduce and inspect it\n"
    "  report/index.html      the attention report of the decoded example: an\n"
    "                         offline explorer (kind, layer, head, heatmap and\n"
    "                         lines, statistics), beside every chart as SVG and\n"
    "                         Vega-Lite (the files attn viz writes)\n"
    "\n"
    "  --out DIR    where to write (default ./attn-demo; created if missing);\n"
    "               checked before training, written whole: a failure leaves no\n"
    "               half-written folder\n"
    "  --seed N     seed of the initialisation, dropout and data (default 0)\n"
    "  --epochs N   train this many epochs instead of 30 (e.g. 1 for a quick look)\n"
    "  --threads N  threads for OpenBLAS and libat (default: as configured)\n"
    "  --quiet      no epoch lines, no progress bar\n"
    "  -h, --help   this text\n"
    "\n"
    "attn train --task copy trains with the reference's own settings (d_model 512).\n";

static const char readme[] =
    "attn demo - what is in this folder\n"
    "==================================\n"
    "\n"
    "libat %s trained the copy task of the annotated Transformer and decoded with it.\n"
    "\n"
    "What was done:\n"
    "1. A model was created as make_model(11, 11, N=2, d_model=%d, d_ff=%d, h=%d,\n"
    "   dropout=0.1) does (seed %d), smaller than the reference's d_model 512 so that\n"
    "   training takes about a minute on 2 cores.\n"
    "2. It was trained as the reference's example_simple_model trains: data_gen's\n"
    "   batches of 80 rows of 10 ids (column 0 the start symbol 1, the others uniform\n"
    "   in 1..10; source = target; pad 0), 20 batches per epoch and 5 evaluation\n"
    "   batches, label smoothing 0, Adam (0.9, 0.98, 1e-9) with base lr 0.5 times the\n"
    "   Noam rate, warmup %d; %d epoch(s), %d steps, in %.1f s with %d threads.\n"
    "   Last epoch: train loss %.4f, eval loss %.4f.\n"
    "3. %d held-out random sequences (a data stream training never draws from) were\n"
    "   greedily decoded: %d copied exactly (%.1f%%).\n"
    "4. The example, one more held-out sequence, was decoded (start symbol 1, pad 0,\n"
    "   max_len 10):\n"
    "     src     %s\n"
    "     decoded %s\n"
    "   and the attention of the decoded sequence was written.\n"
    "\n"
    "Files:\n"
    "  model.safetensors      the trained weights under the PyTorch state_dict names\n"
    "                         (94 tensors); PyTorch's load_state_dict takes it as is\n"
    "  input.safetensors      src (1, 10): the example; tgt (1, 9): the decoded ids\n"
    "                         but the last, i.e. what the decoder read; int32\n"
    "  attention.safetensors  as attn decode --dump writes it, float32 unless said:\n"
    "                         attn.enc_self.i (1,%d,10,10), attn.dec_self.i (1,%d,9,9),\n"
    "                         attn.cross.i (1,%d,9,10) for layer i = 0, 1 (batch, head,\n"
    "                         query, key); memory (1,10,%d), decoder_out (1,9,%d),\n"
    "                         logprobs (1,9,11), src_mask (1,1,10), tgt_mask (1,9,9);\n"
    "                         src (1,10) and ys (1,10), the decoded ids, int32\n"
    "\n"
    "Inspect:\n"
    "  attn info --model model.safetensors\n"
    "  attn decode --model model.safetensors --src \"1 2 3 4 5 6 7 8 9 10\"\n"
    "  attn decode --model model.safetensors --input input.safetensors \\\n"
    "              --dump again.safetensors\n"
    "  attn compare attention.safetensors again.safetensors --atol 0\n"
    "  attn dump --model model.safetensors --input input.safetensors \\\n"
    "            --out forward.safetensors    (one forward pass over the decoded ids)\n"
    "  attn compare attention.safetensors forward.safetensors --atol 1e-5\n"
    "\n"
    "Reproduce the training (the same weights bit for bit with the same number of\n"
    "threads; attn train also writes the Adam moments):\n"
    "  attn train --task copy --d-model %d --heads %d --d-ff %d --warmup %d \\\n"
    "             --epochs %d --seed %d --threads %d --heldout %d --out copy.safetensors\n"
    "  attn compare model.safetensors copy.safetensors --atol 0\n";

/* The files demo writes into DIR, and its folder. */
static const char *const demo_files[] = {"model.safetensors", "input.safetensors",
                                         "attention.safetensors", "README.txt", NULL};
static const char *const demo_dirs[] = {"report", NULL};

/* Writes text to path atomically (file_out). */
static int write_text(const char *path, const char *text)
{
    file_out f;
    char err[1024];
    at_status s = file_out_begin(&f, path, err, sizeof err);
    if (s == AT_OK) {
        (void)fputs(text, f.fp);   /* file_out_commit sees a write error */
        s = file_out_commit(&f, err, sizeof err);
    }
    if (s != AT_OK) {
        attn_error("demo: %s", err);
        return ATTN_FAIL;
    }
    return ATTN_OK;
}

static void ids_str(char *buf, size_t len, const int32_t *ids, int n)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, i ? " %d" : "%d", (int)ids[i]);
}

/* The cross-attention head whose rows are the most concentrated (the largest
 * mean top weight), as (layer, head, that mean). */
static void sharpest_head(at_model *m, int layers, int heads, int *layer, int *head,
                          double *sharp)
{
    double stats[64 * AT_STAT_COUNT];
    *layer = layers - 1, *head = 0, *sharp = -1;
    for (int l = 0; l < layers && heads <= 64; l++) {
        if (at_attention_stats(m, AT_ATTN_CROSS, l, 1, AT_STAT_COUNT, stats) != AT_OK)
            continue;
        for (int h = 0; h < heads; h++)
            if (stats[h * AT_STAT_COUNT + AT_STAT_MAX] > *sharp)
                *layer = l, *head = h, *sharp = stats[h * AT_STAT_COUNT + AT_STAT_MAX];
    }
}

/* One head of the cross-attention of the decoded example as a text heatmap. */
static void print_head(at_model *m, const int32_t *src, int S, const int32_t *ys, int T,
                       int layers, int heads)
{
    int layer, head;
    double sharp;
    sharpest_head(m, layers, heads, &layer, &head, &sharp);
    at_view v;
    if (at_get_attention(m, AT_ATTN_CROSS, layer, &v) != AT_OK)
        return;
    static const char shades[] = " .:-=+*#%@";
    printf("\ncross-attention of the decoded example, layer %d, head %d (counting from 1;\n"
           "of the %d x %d heads the most concentrated: mean top weight %.3f). Row q is the decoder\n"
           "reading ys[q] and writing ys[q+1]; shade: weight 0 ' ' to 1 '@'. A copying\n"
           "head looks at the source id it is about to write, one column right of the\n"
           "diagonal:\n", layer + 1, head + 1, layers, heads, sharp);
    printf("%26s", "source:");
    for (int k = 0; k < S; k++)
        printf(" %2d", src[k]);
    printf("   argmax  weight\n");
    for (int q = 0; q < T; q++) {
        const float *row = v.data + head * v.stride[1] + q * v.stride[2];   /* batch 0 */
        int arg = 0;
        for (int k = 1; k < S; k++)
            if (row[k * v.stride[3]] > row[arg * v.stride[3]])
                arg = k;
        printf("  q %d: reads %2d, writes %2d", q, ys[q], ys[q + 1]);
        for (int k = 0; k < S; k++) {
            float x = row[k * v.stride[3]];
            int level = (int)(x * 9.0f + 0.5f);
            level = level < 0 ? 0 : level > 9 ? 9 : level;
            printf("  %c", shades[level]);
        }
        printf("   pos %d   %.3f\n", arg, row[arg * v.stride[3]]);
    }
}

int cmd_demo(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "translate"))   /* attn demo translate */
        return cmd_demo_translate(argc - 1, argv + 1);
    const char *dir = "attn-demo";
    int threads = 0;
    copy_opts o;
    copy_defaults(&o);
    o.d_model = D_MODEL, o.heads = HEADS, o.d_ff = D_FF, o.warmup = WARMUP;
    o.epochs = EPOCHS, o.heldout = HELDOUT, o.who = "demo";
    opt opts[] = {
        {"out", OPT_STR, &dir, 0, 0, false},
        {"seed", OPT_INT, &o.seed, 0, 2147483647, false},
        {"epochs", OPT_INT, &o.epochs, 1, 1000000, false},
        {"threads", OPT_INT, &threads, 1, 4096, false},
        {"quiet", OPT_FLAG, &o.quiet, 0, 0, false},
    };
    int rc;
    if (!args_command(argc, argv, opts, (int)(sizeof opts / sizeof *opts), help, &rc))
        return rc;
    if (strlen(dir) > 4000) {
        attn_error("demo: --out path is too long");
        return ATTN_USAGE;
    }
    if (outdir_check("demo", dir, demo_files, demo_dirs) != ATTN_OK)   /* before training */
        return ATTN_FAIL;
    if (threads > 0)
        at_set_threads(threads);

    at_model *m;
    rc = copy_create(&o, &m);
    if (rc != ATTN_OK)
        return rc;
    printf("attn demo: training the annotated Transformer's copy task - its data, batches\n"
           "and schedule, on a smaller model (d_model %d, %d heads, d_ff %d, N %d,\n"
           "%.2fM parameters; warmup %d) so that %d epochs take about a minute on 2 cores.\n"
           "Each epoch: %d training batches of %d x %d, then %d evaluation batches.\n"
           "This run: %d epoch%s, %d threads.\n", o.d_model, o.heads, o.d_ff, o.layers,
           (double)copy_parameters(m) * 1e-6, WARMUP, EPOCHS, o.batches, o.batch, o.seq_len,
           o.eval_batches, o.epochs, o.epochs == 1 ? "" : "s", at_get_threads());
    fflush(stdout);
    copy_result res = {0};
    copy_accuracy acc = {0};
    rc = copy_train(m, &o, &res);
    if (rc == ATTN_OK)
        printf("trained %d epoch%s (%d steps) in %.1f s (%.2f s per epoch)\n\n",
               res.epochs_run, res.epochs_run == 1 ? "" : "s", res.epochs_run * o.batches,
               res.seconds, res.seconds / res.epochs_run);
    if (rc == ATTN_OK && (rc = copy_heldout(m, &o, o.heldout, &acc)) == ATTN_OK)
        copy_print_heldout(&o, &acc);
    if (rc == ATTN_OK)
        rc = copy_reference_example(m, &o);

    /* the example: one more held-out row, decoded last so the views show it */
    enum { L = 10 };
    int32_t src[L], ys[L];
    int len = 0;
    copy_rng rng = copy_stream((uint64_t)o.seed, COPY_HELDOUT_STREAM - 1);
    copy_rows(&rng, src, 1, L, o.vocab);
    if (rc == ATTN_OK && at_greedy_decode(m, src, 1, L, 0, L, 1, -1, ys, &len) != AT_OK) {
        attn_error("demo: decoding the example failed: %s", at_errmsg(m));
        rc = ATTN_FAIL;
    }
    char s_src[64], s_ys[64];
    ids_str(s_src, sizeof s_src, src, L);
    ids_str(s_ys, sizeof s_ys, ys, len);
    if (rc == ATTN_OK) {
        printf("\nexample (held-out): src     %s\n"
               "                    decoded %s   (%s)\n", s_src, s_ys,
               memcmp(src, ys, sizeof src) == 0 ? "an exact copy" : "NOT an exact copy");
        print_head(m, src, L, ys, len - 1, o.layers, o.heads);
    }

    /* everything goes into a temporary folder, moved into place at the end */
    outdir od = {0};
    if (rc == ATTN_OK)
        rc = outdir_begin(&od, "demo", dir);
    char path[4300], s_seed[16], s_epochs[16];
    snprintf(s_seed, sizeof s_seed, "%d", o.seed);
    snprintf(s_epochs, sizeof s_epochs, "%d", res.epochs_run);
    const char *meta[] = {"format", "attn-demo", "libat_version", at_version_string(),
                          "model", "model.safetensors", "pad", "0", "start", "1",
                          "seed", s_seed, "epochs", s_epochs};
    int nmeta = (int)(sizeof meta / sizeof *meta / 2);
    if (rc == ATTN_OK) {
        snprintf(path, sizeof path, "%s/attention.safetensors", od.tmp);
        st_out ids[2] = {{"src", ST_I32, 2, {1, L}, src}, {"ys", ST_I32, 2, {1, len}, ys}};
        rc = io_write_outputs(m, path, ids, 2, meta, nmeta);
    }
    if (rc == ATTN_OK) {
        snprintf(path, sizeof path, "%s/input.safetensors", od.tmp);
        st_out ids[2] = {{"src", ST_I32, 2, {1, L}, src}, {"tgt", ST_I32, 2, {1, len - 1}, ys}};
        char err[512];
        if (st_write(path, ids, 2, meta, nmeta, err, sizeof err) != AT_OK) {
            attn_error("demo: cannot write '%s/input.safetensors': %s", dir, err);
            rc = ATTN_FAIL;
        }
    }
    if (rc == ATTN_OK) {
        snprintf(path, sizeof path, "%s/model.safetensors", od.tmp);
        if (at_model_save(m, path) != AT_OK) {
            attn_error("demo: %s", at_errmsg(m));
            rc = ATTN_FAIL;
        }
    }
    if (rc == ATTN_OK) {
        char text[sizeof readme + 1024];
        snprintf(path, sizeof path, "%s/README.txt", od.tmp);
        snprintf(text, sizeof text, readme, at_version_string(), o.d_model, o.d_ff, o.heads,
                 o.seed, WARMUP, res.epochs_run, res.epochs_run * o.batches, res.seconds,
                 at_get_threads(), res.train_loss, res.eval_loss, acc.rows, acc.exact,
                 100.0 * acc.exact / acc.rows, s_src, s_ys, o.heads, o.heads, o.heads,
                 o.d_model, o.d_model, o.d_model, o.heads, o.d_ff, WARMUP, res.epochs_run,
                 o.seed, at_get_threads(), o.heldout);
        rc = write_text(path, text);
    }
    /* the attention report of the decoded example (the views still show it) */
    int ncharts = 0;
    if (rc == ATTN_OK) {
        report_opts ro;
        report_defaults(&ro);
        ro.src_ids = src, ro.nsrc_ids = L;
        ro.tgt_ids = ys, ro.ntgt_ids = len - 1;
        ro.caption = "attn demo: the trained copy-task model decoding a held-out sequence";
        ro.quiet = true;
        ro.who = "demo";
        snprintf(path, sizeof path, "%s/report", od.tmp);
        rc = report_write(m, &ro, path, &ncharts);
    }
    if (rc == ATTN_OK)
        rc = outdir_commit(&od);
    else if (od.tmp)
        outdir_abort(&od);
    if (rc == ATTN_OK)
        printf("\nwrote %s/report/index.html      the attention report: open it in a browser "
               "(it works offline)\n"
               "      %s/report/*.svg, *.vl.json its other %d files: every chart as SVG and "
               "Vega-Lite\n", dir, dir, ncharts - 1);
    if (rc == ATTN_OK)
        printf("      %s/model.safetensors      the trained weights (PyTorch state_dict "
               "names)\n"
               "      %s/input.safetensors      the example's ids (src, tgt)\n"
               "      %s/attention.safetensors  the attention of the decoded example\n"
               "      %s/README.txt             what was done; how to reproduce and "
               "inspect it\n", dir, dir, dir, dir);
    at_model_free(m);
    return rc;
}
