/* attn demo: the main job. Until training lands, it runs the forward pass of a
 * freshly initialised copy-task model and writes its attention to a folder. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "attn.h"

enum { V = 11, LAYERS = 2, D = 512, HEADS = 8, D_FF = 2048, B = 8, S = 10, T = S - 1 };

static const char help[] =
    "usage: attn demo [--out DIR] [--seed N]\n"
    "\n"
    "The main job, no arguments needed. Training arrives in a later release; until\n"
    "then the demo creates the annotated Transformer's copy-task model (vocabulary\n"
    "11, N 2, d_model 512, h 8, d_ff 2048) freshly initialised, UNTRAINED, runs the\n"
    "forward pass on the reference's example source 0 1 2 ... 9 plus 7 random\n"
    "copy-task rows, and writes into DIR:\n"
    "  model.safetensors      the weights (PyTorch state_dict names)\n"
    "  input.safetensors      the ids: src (8, 10), tgt (8, 9), int32\n"
    "  attention.safetensors  every attention tensor and output (names as attn dump)\n"
    "  README.txt             what was done\n"
    "and prints one cross-attention head. Untrained attention is not meaningful.\n"
    "\n"
    "  --out DIR    where to write (default ./attn-demo; created if missing)\n"
    "  --seed N     seed of the initialisation and the random rows (default 0)\n"
    "  -h, --help   this text\n";

static const char readme[] =
    "attn demo - what is in this folder\n"
    "==================================\n"
    "\n"
    "libat %s, seed %d.\n"
    "\n"
    "The weights are FRESHLY INITIALISED AND UNTRAINED (training arrives in a later\n"
    "release of libat), so the attention in attention.safetensors is not meaningful\n"
    "yet: it shows what the model computes, not what it has learnt.\n"
    "\n"
    "What was done:\n"
    "1. The copy-task model of the annotated Transformer was created as its\n"
    "   make_model(11, 11, N=2) does: d_model 512, 8 heads, d_ff 2048, vocabulary 11,\n"
    "   xavier-uniform matrices (seed %d).\n"
    "2. The forward pass (evaluation mode, no dropout) ran on a batch of 8 rows:\n"
    "   row 0 is the reference's example source 0 1 2 3 4 5 6 7 8 9; rows 1-7 are\n"
    "   random copy-task rows (start symbol 1, then ids 1..10). The decoder input is\n"
    "   the source without its last token (teacher forcing, as in training). Nothing\n"
    "   is padded: the reference's example uses a mask of ones, so the pad id is -1.\n"
    "\n"
    "Files:\n"
    "  model.safetensors      weights under the PyTorch state_dict names (94 tensors);\n"
    "                         PyTorch's load_state_dict takes it as it is\n"
    "  input.safetensors      src (8, 10) and tgt (8, 9), int32\n"
    "  attention.safetensors  float32: src_mask (8,1,10), tgt_mask (8,9,9),\n"
    "                         memory (8,10,512), decoder_out (8,9,512),\n"
    "                         logprobs (8,9,11), and for layer i = 0, 1:\n"
    "                         attn.enc_self.i (8,8,10,10)  (batch, head, query, key)\n"
    "                         attn.dec_self.i (8,8,9,9)\n"
    "                         attn.cross.i    (8,8,9,10)\n"
    "\n"
    "Reproduce attention.safetensors, or inspect the model:\n"
    "  attn dump --model model.safetensors --input input.safetensors --pad -1 \\\n"
    "            --out again.safetensors\n"
    "  attn compare attention.safetensors again.safetensors\n"
    "  attn info --model model.safetensors\n";

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int make_dir(const char *dir)
{
    struct stat st;
    if (mkdir(dir, 0777) == 0 || (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)))
        return ATTN_OK;
    if (errno == EEXIST)
        attn_error("demo: '%s' exists and is not a directory", dir);
    else
        attn_error("demo: cannot create directory '%s': %s", dir, strerror(errno));
    return ATTN_FAIL;
}

/* Writes text to path through a temporary file renamed into place. */
static int write_text(const char *path, const char *text)
{
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int ok = f && fputs(text, f) >= 0;
    ok = f && fclose(f) == 0 && ok;
    if (ok && rename(tmp, path) == 0)
        return ATTN_OK;
    attn_error("demo: cannot write '%s': %s", path, strerror(errno));
    remove(tmp);
    return ATTN_FAIL;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

static at_model *create_model(int seed)
{
    at_config *cfg;
    at_model *m = NULL;
    const struct { at_param k; double v; } set[] = {
        {AT_P_SRC_VOCAB, V}, {AT_P_TGT_VOCAB, V}, {AT_P_LAYERS, LAYERS}, {AT_P_D_MODEL, D},
        {AT_P_HEADS, HEADS}, {AT_P_D_FF, D_FF}, {AT_P_SEED, seed},
    };
    at_status s = at_config_create(&cfg);
    for (size_t i = 0; s == AT_OK && i < sizeof set / sizeof *set; i++)
        s = at_config_set(cfg, set[i].k, set[i].v);
    if (s == AT_OK)
        s = at_model_create(cfg, &m);
    if (s != AT_OK)
        attn_error("demo: cannot create the model: %s", at_errmsg(NULL));
    at_config_free(cfg);
    return m;
}

/* One head of the last layer's cross-attention for row 0, as shades and the
 * argmax source position per target position. */
static void print_head(at_model *m, const int32_t *src, const int32_t *tgt)
{
    at_view v;
    if (at_get_attention(m, AT_ATTN_CROSS, LAYERS - 1, &v) != AT_OK)
        return;
    static const char shades[] = " .:-=+*#%@";
    printf("\ncross-attention of the last layer (%d), head 0, row 0: how much each\n"
           "target position attends to each source position (shade: the weight between\n"
           "the row's min and max; uniform would be %.3f):\n", LAYERS - 1, 1.0 / S);
    printf("               source:");
    for (int k = 0; k < S; k++)
        printf(" %d", src[k]);
    printf("   argmax  weight\n");
    for (int q = 0; q < T; q++) {
        const float *row = v.data + q * v.stride[2];   /* batch 0, head 0 */
        float lo = row[0], hi = row[0];
        int arg = 0;
        for (int k = 1; k < S; k++) {
            lo = row[k * v.stride[3]] < lo ? row[k * v.stride[3]] : lo;
            if (row[k * v.stride[3]] > hi)
                hi = row[k * v.stride[3]], arg = k;
        }
        printf("  target %d (id %2d):     ", q, tgt[q]);
        for (int k = 0; k < S; k++) {
            float x = row[k * v.stride[3]];
            int level = hi > lo ? (int)((x - lo) / (hi - lo) * 9.0f + 0.5f) : 9;
            printf(" %c", shades[level]);
        }
        printf("   %6d  %.3f\n", src[arg], hi);
    }
}

int cmd_demo(int argc, char **argv)
{
    const char *dir = "attn-demo";
    int seed = 0;
    opt opts[] = {
        {"out", OPT_STR, &dir, 0, 0, false},
        {"seed", OPT_INT, &seed, 0, 2147483647, false},
    };
    char *pos[1];
    int npos;
    int r = args_parse(argc, argv, opts, 2, pos, 0, &npos);
    if (r == ARGS_HELP) {
        fputs(help, stdout);
        return ATTN_OK;
    }
    if (r != ARGS_OK)
        return ATTN_USAGE;
    if (strlen(dir) > 4000) {
        attn_error("demo: --out path is too long");
        return ATTN_USAGE;
    }
    if (make_dir(dir) != ATTN_OK)
        return ATTN_FAIL;

    /* row 0: the reference's example; rows 1..: data_gen's (start symbol 1, ids 1..10) */
    int32_t src[B * S], tgt[B * T];
    uint64_t rng = 0x2545f4914f6cdd1du ^ (uint64_t)seed;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < S; k++)
            src[b * S + k] = b == 0 ? k : k == 0 ? 1 : 1 + (int32_t)(rng_next(&rng) % (V - 1));
    for (int b = 0; b < B; b++)
        memcpy(tgt + b * T, src + b * S, T * sizeof *tgt);

    at_model *m = create_model(seed);
    if (!m)
        return ATTN_FAIL;
    char path[4200], s_seed[16], text[sizeof readme + 64];
    int rc = ATTN_OK;
    double t0 = now_ms();
    if (at_forward(m, src, tgt, B, S, T, -1) != AT_OK) {
        attn_error("demo: forward pass failed: %s", at_errmsg(m));
        rc = ATTN_FAIL;
    }
    double ms = now_ms() - t0;
    snprintf(s_seed, sizeof s_seed, "%d", seed);
    const char *meta[] = {"format", "attn-demo", "libat_version", at_version_string(),
                          "model", "model.safetensors", "pad", "-1", "seed", s_seed,
                          "trained", "no"};
    if (rc == ATTN_OK) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (at_model_save(m, path) != AT_OK) {
            attn_error("demo: %s", at_errmsg(m));
            rc = ATTN_FAIL;
        }
    }
    if (rc == ATTN_OK) {
        snprintf(path, sizeof path, "%s/input.safetensors", dir);
        st_out ids[2] = {{"src", ST_I32, 2, {B, S}, src}, {"tgt", ST_I32, 2, {B, T}, tgt}};
        char err[512];
        if (st_write(path, ids, 2, meta, 6, err, sizeof err) != AT_OK) {
            attn_error("demo: cannot write '%s': %s", path, err);
            rc = ATTN_FAIL;
        }
    }
    if (rc == ATTN_OK) {
        snprintf(path, sizeof path, "%s/attention.safetensors", dir);
        rc = io_write_outputs(m, path, meta, (int)(sizeof meta / sizeof *meta / 2));
    }
    if (rc == ATTN_OK) {
        snprintf(path, sizeof path, "%s/README.txt", dir);
        snprintf(text, sizeof text, readme, at_version_string(), seed, seed);
        rc = write_text(path, text);
    }
    if (rc == ATTN_OK) {
        printf("attn demo: the copy-task model (vocab %d, N %d, d_model %d, h %d, d_ff %d),\n"
               "freshly initialised with seed %d and UNTRAINED (training arrives in a later\n"
               "release), so its attention is not meaningful yet.\n"
               "forward pass on %d rows of length %d (row 0: the reference's example\n"
               "0 1 ... 9; the others random), decoder input = source minus its last\n"
               "token: %.1f ms\n"
               "wrote %s/model.safetensors, input.safetensors, attention.safetensors,\n"
               "      README.txt (what was done, how to reproduce it)\n",
               V, LAYERS, D, HEADS, D_FF, seed, B, S, ms, dir);
        print_head(m, src, tgt);
    }
    at_model_free(m);
    return rc;
}
