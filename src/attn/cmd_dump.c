/* attn dump: run the forward pass on a batch from a file and write every
 * attention tensor and output to a safetensors file. */
#include <stdio.h>
#include <stdlib.h>

#include "attn.h"

static const char help[] =
    "usage: attn dump --model M.safetensors [--heads H] --input BATCH.safetensors\n"
    "                 [--pad ID] --out OUT.safetensors\n"
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
    "Compare OUT with another file (a PyTorch dump) with attn compare.\n";

int cmd_dump(int argc, char **argv)
{
    const char *model = NULL, *input = NULL, *out = NULL;
    int heads = 0, pad = 0;
    double lo = 1, hi = 1 << 20;
    at_param_bounds(AT_P_HEADS, &lo, &hi);
    opt opts[] = {
        {"model", OPT_STR, &model, 0, 0, false},
        {"input", OPT_STR, &input, 0, 0, false},
        {"out", OPT_STR, &out, 0, 0, false},
        {"heads", OPT_INT, &heads, lo, hi, false},
        {"pad", OPT_INT, &pad, INT32_MIN, INT32_MAX, false},
    };
    int rc;
    if (!args_command(argc, argv, opts, 5, help, &rc))
        return rc;
    for (int i = 0; i < 3; i++)
        if (args_require("dump", &opts[i]) != ATTN_OK)
            return ATTN_USAGE;
    if (io_check_output("dump", out) != ATTN_OK)   /* before the work, not after it */
        return ATTN_FAIL;

    at_model *m = NULL;
    st_file f = {0};
    int32_t *src = NULL, *tgt = NULL;
    int B, S, Bt, T;
    rc = io_load_model(model, heads, &m, NULL);
    if (rc == ATTN_OK) {
        char err[512];
        if (st_read(&f, input, err, sizeof err) != AT_OK) {
            attn_error("cannot read input: %s", err);
            rc = ATTN_FAIL;
        }
    }
    if (rc == ATTN_OK)
        rc = io_read_ids(&f, input, "src", true, &src, &B, &S);
    if (rc == ATTN_OK)
        rc = io_read_ids(&f, input, "tgt", false, &tgt, &Bt, &T);
    if (rc == ATTN_OK && tgt && Bt != B) {
        attn_error("%s: src has %d rows but tgt has %d; they must be the same batch", input,
                   B, Bt);
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK && at_forward(m, src, tgt, B, S, T, pad) != AT_OK) {
        attn_error("forward pass on '%s' failed: %s", input, at_errmsg(m));
        rc = ATTN_FAIL;
    }
    if (rc == ATTN_OK) {
        char s_pad[16], s_b[16], s_s[16], s_t[16], s_h[16], s_n[16];
        snprintf(s_pad, sizeof s_pad, "%d", pad);
        snprintf(s_b, sizeof s_b, "%d", B);
        snprintf(s_s, sizeof s_s, "%d", S);
        snprintf(s_t, sizeof s_t, "%d", T);
        snprintf(s_h, sizeof s_h, "%d", io_model_int(m, AT_P_HEADS));
        snprintf(s_n, sizeof s_n, "%d", io_model_int(m, AT_P_LAYERS));
        const char *meta[] = {
            "format", "attn-dump", "libat_version", at_version_string(),
            "model", model, "input", input, "pad", s_pad, "heads", s_h, "layers", s_n,
            "batch", s_b, "src_len", s_s, "tgt_len", s_t,
        };
        rc = io_write_outputs(m, out, NULL, 0, meta, (int)(sizeof meta / sizeof *meta / 2));
    }
    if (rc == ATTN_OK)
        printf("wrote %s: batch %d, src_len %d, tgt_len %d, %d layers (%s)\n", out, B, S, T,
               io_model_int(m, AT_P_LAYERS), tgt ? "encoder and decoder" : "encoder only");
    free(src);
    free(tgt);
    st_free(&f);
    at_model_free(m);
    return rc;
}
