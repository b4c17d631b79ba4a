/* The seed corpora of the fuzz targets (tests/fuzz_*.c):
 *
 *   fuzz_make_seeds DIR          writes them into DIR/fuzz_NAME/ (DIR is
 *                                tests/data to refresh the committed ones)
 *   fuzz_make_seeds --check DIR  checks that the committed load seeds still
 *                                load as they are meant to (test fuzz_seeds)
 *
 * fuzz_api_load: real checkpoints of tiny models: model.safetensors
 *   (at_model_save, 2 layers, with libat's metadata), training.safetensors
 *   (at_model_save_training after two steps: Adam moments and step count),
 *   pytorch.safetensors (the state_dict alone, no metadata, as PyTorch
 *   writes it: loads only with the heads in the hint; the target passes 2).
 * fuzz_attn_input: id files for --input: good ones (I64, I32, U8) and ones
 *   attn must refuse (float ids, three dimensions, ids past int32, a U64
 *   past int64, a tgt of another batch), and one in the header-text form.
 * fuzz_attn_args, fuzz_attn_vocab, fuzz_api_viz: inputs in the formats their
 *   targets describe (NUL-separated arguments; text, NUL, vocabulary; 9
 *   setting bytes, then NUL-separated caption and labels).
 * fuzz_st's seeds are older and hand-made; they are left as they are. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "at.h"
#include "io/st.h"

static int failures;

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_make_seeds: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    failures++;
}

static void put(const char *dir, const char *target, const char *name, const void *data,
                size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        fail("cannot write", path);
}

#define PUT(dir, target, name, lit) put(dir, target, name, lit, sizeof lit - 1)

static at_model *tiny(int layers, int seed)
{
    const struct { at_param k; double v; } set[] = {
        {AT_P_SRC_VOCAB, 6}, {AT_P_TGT_VOCAB, 7}, {AT_P_LAYERS, layers}, {AT_P_D_MODEL, 4},
        {AT_P_HEADS, 2}, {AT_P_D_FF, 8}, {AT_P_MAX_LEN, 6}, {AT_P_SEED, seed},
        {AT_P_WARMUP, 2},
    };
    at_config *cfg = NULL;
    at_model *m = NULL;
    bool ok = at_config_create(&cfg) == AT_OK;
    for (size_t i = 0; ok && i < sizeof set / sizeof set[0]; i++)
        ok = at_config_set(cfg, set[i].k, set[i].v) == AT_OK;
    if (!ok || at_model_create(cfg, &m) != AT_OK)
        fail("cannot create a tiny model", at_errmsg(NULL));
    at_config_free(cfg);
    return m;
}

static void load_seeds(const char *dir)
{
    char path[4096], err[256];
    snprintf(path, sizeof path, "%s/fuzz_api_load", dir);
    mkdir(path, 0755);

    at_model *m = tiny(2, 1);
    snprintf(path, sizeof path, "%s/fuzz_api_load/model.safetensors", dir);
    if (m && at_model_save(m, path) != AT_OK)
        fail("at_model_save", at_errmsg(m));
    at_model_free(m);

    m = tiny(1, 2);
    const int32_t src[2 * 4] = {1, 2, 3, 4, 1, 5, 5, 0}, tgt[2 * 4] = {1, 6, 2, 3, 1, 4, 0, 0};
    for (int step = 0; m && step < 2; step++) {
        float loss;
        if (at_train_step(m, src, tgt, 2, 4, 4, 0, &loss, NULL) != AT_OK)
            fail("at_train_step", at_errmsg(m));
    }
    snprintf(path, sizeof path, "%s/fuzz_api_load/training.safetensors", dir);
    if (m && at_model_save_training(m, path) != AT_OK)
        fail("at_model_save_training", at_errmsg(m));
    at_model_free(m);

    /* the state_dict alone, in its order, as torch's save_file writes it */
    m = tiny(1, 3);
    int n = m ? at_model_tensor_count(m) : 0;
    st_out *outs = calloc((size_t)n + 1, sizeof *outs);
    for (int i = 0; outs && i < n; i++) {
        at_view v;
        const char *name;
        if (at_model_tensor(m, i, &name, &v) != AT_OK) {
            fail("at_model_tensor", at_errmsg(m));
            break;
        }
        outs[i] = (st_out){.name = name, .dtype = ST_F32, .ndim = v.ndim, .data = v.data};
        for (int d = 0; d < v.ndim; d++)
            outs[i].shape[d] = v.shape[d];
    }
    snprintf(path, sizeof path, "%s/fuzz_api_load/pytorch.safetensors", dir);
    if (m && outs && st_write(path, outs, n, NULL, 0, err, sizeof err) != AT_OK)
        fail("st_write", err);
    free(outs);
    at_model_free(m);
}

static void input_seeds(const char *dir)
{
    char path[4096], err[256];
    snprintf(path, sizeof path, "%s/fuzz_attn_input", dir);
    mkdir(path, 0755);
    static const int64_t src64[2 * 4] = {1, 2, 3, 4, 1, 5, 0, 0};
    static const int32_t tgt32[2 * 3] = {1, 2, 3, 1, 5, 0}, src_3d[4] = {1, 2, 3, 4};
    static const uint8_t src8[5] = {1, 9, 8, 7, 0};
    static const float srcf[3] = {1, 2, 3};
    static const int64_t big[2] = {1, (int64_t)1 << 40};
    static const uint64_t u64[2] = {1, ((uint64_t)1 << 63) + 1};
    static const int32_t tgt_other[3 * 2] = {1, 2, 1, 3, 1, 4};
    const struct {
        const char *name;
        st_out t[2];
        int n;
    } files[] = {
        {"batch.safetensors",
         {{"src", ST_I64, 2, {2, 4}, src64}, {"tgt", ST_I32, 2, {2, 3}, tgt32}}, 2},
        {"src_u8.safetensors", {{"src", ST_U8, 2, {1, 5}, src8}}, 1},
        {"src_f32.safetensors", {{"src", ST_F32, 2, {1, 3}, srcf}}, 1},
        {"src_3d.safetensors", {{"src", ST_I32, 3, {1, 2, 2}, src_3d}}, 1},
        {"src_big.safetensors", {{"src", ST_I64, 2, {1, 2}, big}}, 1},
        {"src_u64.safetensors", {{"src", ST_U64, 2, {2, 1}, u64}}, 1},
        {"tgt_rows.safetensors",
         {{"src", ST_I64, 2, {2, 4}, src64}, {"tgt", ST_I32, 2, {3, 2}, tgt_other}}, 2},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/fuzz_attn_input/%s", dir, files[i].name);
        if (st_write(path, files[i].t, files[i].n, NULL, 0, err, sizeof err) != AT_OK)
            fail("st_write", err);
    }
    PUT(dir, "fuzz_attn_input", "header.json",
        "{\"src\":{\"dtype\":\"I32\",\"shape\":[1,2],\"data_offsets\":[0,8]},"
        "\"tgt\":{\"dtype\":\"I16\",\"shape\":[1,1],\"data_offsets\":[8,10]}}"
        "\x01\x00\x00\x00\x02\x00\x00\x00\x03\x00");
}

static void text_seeds(const char *dir)
{
    /* fuzz_attn_args: the arguments after the subcommand, NUL-separated */
    const char *a = "fuzz_attn_args";
    PUT(dir, a, "decode", "--model\0m.safetensors\0--src\0001 2 3 4\0--src\0004,5\0--pad\0000");
    PUT(dir, a, "decode_nopad", "--src\0001 2\0--src\0001 2 3\0--pad\0-1");
    PUT(dir, a, "equals", "--heads=4\0--dropout\0000.25\0--lr=1e-3\0--quiet\0pos\0--\0--pos2");
    PUT(dir, a, "viz_ids", "--tgt\0005, 6\t7\0--start\0-12\0--max-len\00032");
    PUT(dir, a, "bad_values", "--max-len\000abc\0--heads\0009999999999999");
    PUT(dir, a, "bad_ids", "--src\000 99999999999 \0--tgt\0001,-2\0--start\000x");
    PUT(dir, a, "twice", "--model\0a\0--model\0b");
    PUT(dir, a, "missing_value", "--model\0--heads\0002");
    PUT(dir, a, "unknown", "-x\0--nope=1\0--quiet=1");
    PUT(dir, a, "help", "--src\0001\0-h");

    /* fuzz_attn_vocab: the --src text, NUL, the vocabulary file */
    const char *v = "fuzz_attn_vocab";
    PUT(dir, v, "words", "the cat sat\0<pad>\n<s>\nthe\ncat\nsat\n");
    PUT(dir, v, "repeated", "the\0<pad>\nthe\ncat\nthe\n");
    PUT(dir, v, "crlf_utf8", "<s> \xc3\xa9 \xe7\x8c\xab\r\n\0<s>\r\n\xc3\xa9\r\n\xe7\x8c\xab");
    PUT(dir, v, "number", "5\0a\nb\n");
    PUT(dir, v, "unknown", "a z\0a\nb\n\n");
    PUT(dir, v, "nul", "x y\0x\0y\n");
    PUT(dir, v, "empty", "x\0");

    /* fuzz_api_viz: chart, format, kind, layer|head<<4, flags, S, T, cell,
     * number of source labels; then caption (flag 8) and labels */
    const char *z = "fuzz_api_viz";
    PUT(dir, z, "heatmap_svg",
        "\x00\x00\x02\x11\x01\x05\x04\x00\x05"
        "<b>&amp;\0\"quoted\" 'x'\0tab\there\0\xff\xfe bad\0"
        "a-very-long-token-that-is-shortened\0"
        "\xe7\x8c\xab\0]]>\0<!--\0&#0;");
    PUT(dir, z, "heads_vl",
        "\x01\x01\x00\x01\x09\x04\x03\x00\x02"
        "caption \"<\\u0000>\" \n new line\0\\\0\x7f\xc2\x85\0\xed\xa0\x80\0\xf4\x90\x80\x80");
    PUT(dir, z, "explorer", "\x06\x02\x02\x00\x0d\x03\x03\x00\x02"
        "</script><script>alert(1)</script>\0<!--\0</SCRIPT \0\xe2\x80\xa8\0\0x");
    PUT(dir, z, "masks_html", "\x05\x02\x00\x00\x00\x06\x05\x00\x06"
        "\0\0a\0b\0</svg>\0<svg>\0</title>\0c");
    PUT(dir, z, "model_decode", "\x03\x00\x01\x00\x31\x04\x04\x07\x02"
        "<\0>\0&\0\"\0'");
    PUT(dir, z, "stats_vl", "\x04\x01\x00\x00\x41\x02\x02\x00\x01" "x\0y");
    PUT(dir, z, "layers_html_raw", "\x02\x02\x01\x13\x02\x03\x03\x00\x01" "p\0q");
}

/* The committed load seeds still load as meant. */
static void check_seeds(const char *dir)
{
    char path[4096];
    at_model *m = NULL;
    snprintf(path, sizeof path, "%s/fuzz_api_load/model.safetensors", dir);
    if (at_model_load(path, NULL, &m) != AT_OK)
        fail("model.safetensors does not load", at_errmsg(NULL));
    at_model_free(m);

    snprintf(path, sizeof path, "%s/fuzz_api_load/training.safetensors", dir);
    if (at_model_load(path, NULL, &m) != AT_OK)
        fail("training.safetensors does not load", at_errmsg(NULL));
    else if (at_model_steps(m) != 2)
        fail("training.safetensors has no optimizer state of 2 steps", NULL);
    at_model_free(m);

    snprintf(path, sizeof path, "%s/fuzz_api_load/pytorch.safetensors", dir);
    if (at_model_load(path, NULL, &m) != AT_E_ARG)
        fail("pytorch.safetensors loads without the heads", NULL);
    at_model_free(m);
    m = NULL;
    at_config *hint = NULL;
    if (at_config_create(&hint) != AT_OK || at_config_set(hint, AT_P_HEADS, 2) != AT_OK ||
        at_model_load(path, hint, &m) != AT_OK)
        fail("pytorch.safetensors does not load with heads 2", at_errmsg(NULL));
    at_config_free(hint);
    at_model_free(m);

    snprintf(path, sizeof path, "%s/fuzz_attn_input/batch.safetensors", dir);
    st_file f;
    char err[256];
    if (st_read(&f, path, err, sizeof err) != AT_OK || !st_find(&f, "src") ||
        !st_find(&f, "tgt"))
        fail("fuzz_attn_input/batch.safetensors does not hold src and tgt", err);
    st_free(&f);
}

int main(int argc, char **argv)
{
    at_set_threads(1);
    if (argc == 3 && !strcmp(argv[1], "--check")) {
        check_seeds(argv[2]);
        if (!failures)
            printf("fuzz_make_seeds: the seeds in %s load as meant\n", argv[2]);
    } else if (argc == 2 && argv[1][0] != '-') {
        load_seeds(argv[1]);
        input_seeds(argv[1]);
        text_seeds(argv[1]);
        if (!failures)
            printf("fuzz_make_seeds: seeds written into %s/fuzz_*/\n", argv[1]);
    } else {
        fprintf(stderr, "usage: fuzz_make_seeds DIR | fuzz_make_seeds --check DIR\n");
        return 2;
    }
    return failures ? 1 : 0;
}
