/* attn dump: run the forward pass on a batch from a file and write every
 * attention tensor and output to a safetensors file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "attn.h"
#include "dist.h"
#include "report.h"

static const char help[] =
    "usage: attn dump --model M.safetensors [--heads H] --input BATCH.safetensors\n"
    "                 [--pad ID] --out OUT.safetensors [--gate KIND:L:H=G ...]\n"
    "                 [--override F] [--taps SITE,...] [--keep KIND[:L[:H]] ...]\n"
    "\n"
    "Run the forward pass (evaluation mode) on the batch in BATCH and write all its\n"
    "attention tensors and outputs, float32, to OUT (atomically: a temporary file\n"
    "renamed into place).\n"
    "\n"
    "BATCH holds integer tensors (I32 or I64; other tensors are ignored):\n"
    "  src   (B, S) source ids, required\n"
    "  tgt   (B, T) decoder input ids; optional: without it only the encoder runs\n"
    "\n"
    "OUT holds, under the names of the PyTorch golden files (i = 0-based layer):\n"
    "  src_mask (B,1,S)  memory (B,S,d)  attn.enc_self.{i} (B,h,S,S)\n"
    "and with a tgt:\n"
    "  tgt_mask (B,T,T)  decoder_out (B,T,d)  logprobs (B,T,V)\n"
    "  attn.dec_self.{i} (B,h,T,T)  attn.cross.{i} (B,h,T,S)\n"
    "Masks are 1 (attended) or 0. The metadata records the model, input, pad and sizes.\n"
    "\n"
    "  --model M    the checkpoint\n"
    "  --heads H    attention heads, for a checkpoint without libat metadata\n"
    "  --input F    the batch\n"
    "  --pad ID     padding id: positions holding it are masked as keys (default 0,\n"
    "               the copy task's; the reference's Batch defaults to 2). An id\n"
    "               outside the vocabulary, e.g. -1, masks nothing.\n"
    "  --out F      where to write\n"
    "  -h, --help   this text\n"
    "\n"
    "Interventions (docs/interventions.md; L and H count from 1, * is every one,\n"
    "KIND is enc_self, dec_self or cross):\n"
    "  --gate KIND:L:H=G  multiply head H's output in layer L by G before the output\n"
    "               projection (0 removes the head; 1 is the plain model); repeatable,\n"
    "               a later one wins. The head's own attention is unchanged; what\n"
    "               follows it changes\n"
    "  --override F replace attention probabilities by F's: each tensor attn.KIND.i\n"
    "               (B,h,Lq,Lk) a layer's, attn.KIND.i.headj (B,Lq,Lk) one head's (i, j\n"
    "               from 0, as this command writes them). Other tensors attn dump\n"
    "               writes are ignored, so a dump may be given whole; any other name,\n"
    "               shape or dtype is refused before the pass. OUT's attn.* are then\n"
    "               the overridden ones\n"
    "  --taps SITES also write what the pass computes at these sites (comma-separated:\n"
    "               q, k, v, scores, probs, head_out, attn_out, ff_hidden, layer_out,\n"
    "               src_embed, tgt_embed, memory, decoder, logprobs) as {site}.{kind}.{i}\n"
    "               (layer sites: kind enc_self for encoder layers, dec_self for decoder\n"
    "               layers) or {site} for the model's (memory and logprobs are the\n"
    "               tensors of those names)\n"
    "  --keep SPEC  keep only this attention (KIND, KIND:L or KIND:L:H; repeatable):\n"
    "               the rest is computed in scratch memory and not written. A layer\n"
    "               kept in part is written head by head, attn.KIND.i.headj (B,Lq,Lk)\n"
    "\n"
    "Prints what it wrote and the activation memory of the pass.\n"
    "Compare OUT with another file (a PyTorch dump) with attn compare.\n"
    "\n"
    "Under mpirun -np K the ranks share the rows of the batch: each writes its rows\n"
    "to OUT with .r-of-K before the extension, and rank 0 then writes the index,\n"
    "OUT with .index.json for the extension (--override is refused there).\n";

/* Under mpirun: rank r's share of --out F is F with ".r-of-K" before its
 * extension, and the index, rank 0's, F with ".index.json" for it. */
static char *shard_path(const char *out, const char *what)
{
    const char *slash = strrchr(out, '/'), *dot = strrchr(out, '.');
    size_t stem = dot && dot != out && (!slash || dot > slash + 1) ? (size_t)(dot - out)
                                                                   : strlen(out);
    const char *ext = strcmp(what, "index") ? out + stem : ".json";
    size_t n = stem + strlen(what) + strlen(ext) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%.*s.%s%s", (int)stem, out, what, ext);
    return p;
}

/* Rank 0's index of the shards: which rows each holds. */
static int write_index(const char *out, const char *model, const char *input, int B)
{
    char *index = shard_path(out, "index"), *text = NULL;
    cJSON *root = cJSON_CreateObject(), *shards = cJSON_CreateArray();
    int rc = index && root && shards ? ATTN_OK : ATTN_FAIL;
    if (rc == ATTN_OK) {
        cJSON_AddStringToObject(root, "format", "attn-dump-index");
        cJSON_AddStringToObject(root, "model", model);
        cJSON_AddStringToObject(root, "input", input);
        cJSON_AddNumberToObject(root, "batch", B);
        cJSON_AddItemToObject(root, "shards", shards);
        shards = NULL;                /* root's now */
        for (int r = 0, K = dist_size(); r < K && rc == ATTN_OK; r++) {
            char what[32];
            snprintf(what, sizeof what, "%d-of-%d", r, K);
            char *path = shard_path(out, what);
            cJSON *o = cJSON_CreateObject();
            if (!path || !o) {
                rc = ATTN_FAIL;
            } else {
                const char *name = strrchr(path, '/');
                cJSON_AddStringToObject(o, "file", name ? name + 1 : path);
                cJSON_AddNumberToObject(o, "row_offset", r * (B / K) + (r < B % K ? r : B % K));
                cJSON_AddNumberToObject(o, "rows", B / K + (r < B % K));
                cJSON_AddItemToArray(cJSON_GetObjectItem(root, "shards"), o);
                o = NULL;
            }
            cJSON_Delete(o);
            free(path);
        }
    }
    if (rc == ATTN_OK && !(text = cJSON_Print(root)))
        rc = ATTN_FAIL;
    if (rc != ATTN_OK)
        attn_error("dump: out of memory for the index");
    else
        rc = report_write_file("dump", index, text, strlen(text));
    if (rc == ATTN_OK)
        printf("wrote %s: the index of %d shards of %d rows\n", index, dist_size(), B);
    cJSON_free(text);
    cJSON_Delete(shards);
    cJSON_Delete(root);
    free(index);
    return rc;
}

/* Under mpirun: keeps this rank's contiguous rows of the batch; *first is
 * the global index of its first. */
static int shard_batch(int32_t *src, int32_t *tgt, int *B, int S, int T, int *first)
{
    int rows;
    if (*B < dist_size()) {
        attn_error("dump: %d rows of --input for %d ranks: every rank needs one", *B,
                   dist_size());
        return ATTN_FAIL;
    }
    dist_shard(*B, first, &rows);
    memmove(src, src + (size_t)*first * S, (size_t)rows * S * sizeof *src);
    if (tgt)
        memmove(tgt, tgt + (size_t)*first * T, (size_t)rows * T * sizeof *tgt);
    *B = rows;
    return ATTN_OK;
}

/* The file's metadata and the summary line. */
static int write_dump(at_model *m, const intv *iv, const char *model, const char *input,
                      const char *out, int pad, int B, int S, int T, int first)
{
    char s_pad[16], s_b[16], s_s[16], s_t[16], s_h[16], s_n[16];
    snprintf(s_pad, sizeof s_pad, "%d", pad);
    snprintf(s_b, sizeof s_b, "%d", B);
    snprintf(s_s, sizeof s_s, "%d", S);
    snprintf(s_t, sizeof s_t, "%d", T);
    snprintf(s_h, sizeof s_h, "%d", io_model_int(m, AT_P_HEADS));
    snprintf(s_n, sizeof s_n, "%d", io_model_int(m, AT_P_LAYERS));
    const char *meta[32] = {
        "format", "attn-dump", "libat_version", at_version_string(),
        "model", model, "input", input, "pad", s_pad, "heads", s_h, "layers", s_n,
        "batch", s_b, "src_len", s_s, "tgt_len", s_t,
    };
    int nmeta = 10;
    char s_r[16], s_k[16], s_first[16];
    if (dist_size() > 1) {            /* which shard of the batch this is */
        snprintf(s_r, sizeof s_r, "%d", dist_rank());
        snprintf(s_k, sizeof s_k, "%d", dist_size());
        snprintf(s_first, sizeof s_first, "%d", first);
        const char *kv[6] = {"shard", s_r, "shards", s_k, "row_offset", s_first};
        memcpy(meta + 2 * nmeta, kv, sizeof kv);
        nmeta += 3;
    }
    if (iv->override_path) {
        meta[2 * nmeta] = "override";
        meta[2 * nmeta++ + 1] = iv->override_path;
    }
    int rc = io_write_pass(m, out, iv, NULL, 0, meta, nmeta);
    if (rc != ATTN_OK)
        return rc;
    printf("wrote %s: batch %d, src_len %d, tgt_len %d, %d layers (%s)\n", out, B, S, T,
           io_model_int(m, AT_P_LAYERS), T ? "encoder and decoder" : "encoder only");
    /* not in the metadata: a dump's bytes do not depend on the arena's bookkeeping */
    size_t act = at_model_activation_bytes(m);
    printf("activation memory: %zu bytes (%.2f MB)%s\n", act, act / 1e6,
           iv->nkeeps ? ", under the --keep policy" : "");
    return ATTN_OK;
}

static int dump_run(int argc, char **argv)
{
    const char *model = NULL, *input = NULL, *out = NULL;
    int heads = 0, pad = 0;
    double lo = 1, hi = 1 << 20;
    at_param_bounds(AT_P_HEADS, &lo, &hi);
    static intv iv;   /* two opt_lists: off the stack */
    opt opts[9] = {
        {"model", OPT_STR, &model, 0, 0, false},
        {"input", OPT_STR, &input, 0, 0, false},
        {"out", OPT_STR, &out, 0, 0, false},
        {"heads", OPT_INT, &heads, lo, hi, false},
        {"pad", OPT_INT, &pad, INT32_MIN, INT32_MAX, false},
    };
    int nopts = 5 + intv_opts(&iv, "dump", IV_GATE | IV_OVERRIDE | IV_TAPS | IV_KEEP,
                                opts + 5);
    int rc;
    if (!args_command(argc, argv, opts, nopts, help, &rc))
        return rc;
    for (int i = 0; i < 3; i++)
        if (args_require("dump", &opts[i]) != ATTN_OK)
            return ATTN_USAGE;
    if ((rc = intv_parse(&iv)) != ATTN_OK) {
        intv_free(&iv);
        return rc;
    }
    char *mine = NULL;                /* under mpirun: this rank's file */
    if (dist_size() > 1) {
        char what[32];
        snprintf(what, sizeof what, "%d-of-%d", dist_rank(), dist_size());
        if (iv.override_path) {
            attn_error("dump: --override holds the whole batch's attention; under mpirun "
                       "the ranks share the rows: run it on one process");
            intv_free(&iv);
            return ATTN_USAGE;
        }
        if (!(mine = shard_path(out, what))) {
            attn_error("dump: out of memory");
            intv_free(&iv);
            return ATTN_FAIL;
        }
    }
    const char *target = mine ? mine : out;
    if (io_check_output("dump", target) != ATTN_OK) {   /* before the work, not after it */
        intv_free(&iv);
        free(mine);
        return ATTN_FAIL;
    }

    at_model *m = NULL;
    int32_t *src = NULL, *tgt = NULL;
    int B = 0, S = 0, T = 0, first = 0, all = 0;
    rc = io_load_model(model, heads, &m, NULL);
    if (rc == ATTN_OK)
        rc = io_read_input("dump", "input", input, false, &src, &tgt, &B, &S, &T);
    all = B;
    if (rc == ATTN_OK && mine)
        rc = shard_batch(src, tgt, &B, S, T, &first);
    /* every intervention is checked and set before the pass */
    if (rc == ATTN_OK)
        rc = intv_apply(&iv, m);
    if (rc == ATTN_OK)
        rc = intv_load_override(&iv, m, B, S, tgt ? T : 0);
    if (rc == ATTN_OK)
        rc = intv_set_override(&iv, m);
    if (rc == ATTN_OK)
        rc = intv_add_taps(&iv, m);
    if (rc == ATTN_OK && at_forward(m, src, tgt, B, S, T, pad) != AT_OK) {
        attn_error("forward pass on '%s' failed: %s", input,
                   iv.tap_error ? "out of memory for the --taps copies" : at_errmsg(m));
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK)
        rc = write_dump(m, &iv, model, input, target, pad, B, S, tgt ? T : 0, first);
    /* the index once every shard is written */
    if (mine && dist_max(rc != ATTN_OK) == 0 && dist_rank() == 0)
        rc = write_index(out, model, input, all);
    free(mine);
    free(src);
    free(tgt);
    at_model_free(m);
    intv_free(&iv);
    return rc;
}

int cmd_dump(int argc, char **argv)
{
    int rc = dist_init("dump");
    if (rc == ATTN_OK)
        rc = dump_run(argc, argv);
    return dist_end(rc);
}
