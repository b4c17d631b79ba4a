/* libFuzzer target for the checkpoint loader, through the public API:
 * at_model_load_buffer over the bytes of a safetensors file (config inference
 * from the shapes, the metadata, the optimizer state of training checkpoints).
 *   cmake -S . -B build-fuzz -DAT_BUILD_FUZZ=ON ... (CC=clang); then
 *   ./build-fuzz/tests/fuzz_api_load -close_fd_mask=3 corpus/ tests/data/fuzz_api_load/
 * The seeds (tests/fuzz/make_seeds.c) are a model saved by at_model_save, a
 * training checkpoint with Adam state from at_model_save_training, and a file
 * without metadata (PyTorch's state_dict), which needs the heads in the hint.
 *
 * Besides crashes, leaks and undefined behaviour it checks what the API
 * promises: a failed load leaves *out NULL and a message; a loaded model
 * saves and loads back to the same configuration, tensors (bit for bit) and
 * step count; it runs a forward pass and a short greedy decode whose views and
 * ids are in range (or it says that the weights overflow, AT_E_NUMERIC); a
 * training checkpoint takes a training step. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "at.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_api_load: check failed: %s\n", what);
        abort();
    }
}

/* The heads a file without metadata is loaded with (the PyTorch-style seed
 * has 2). */
#define HINT_HEADS 2

static char save_path[4096];

/* Once: one thread (OpenBLAS's threads are not instrumented and only slow a
 * fuzzer down), and the file a round trip saves to, on tmpfs when there is
 * one (a save is flushed to the disk); it is removed as soon as it is read
 * back, since libFuzzer ends a run with _Exit. */
static void setup(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    at_set_threads(1);
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(save_path, sizeof save_path, "%s/fuzz_api_load.%ld.safetensors",
             dir && *dir ? dir : "/tmp", (long)getpid());
}

static int get_int(const at_model *m, at_param key)
{
    double v = 0;
    check(at_model_get(m, key, &v) == AT_OK, "at_model_get");
    return (int)v;
}

static int64_t view_numel(const at_view *v)
{
    int64_t n = 1;
    for (int d = 0; d < v->ndim; d++)
        n *= v->shape[d];
    return n;
}

/* Saves m (as a training checkpoint when it has a step count) and loads the
 * file back: the same hyperparameters, tensors and step count. */
static void round_trip(at_model *m)
{
    uint64_t steps = at_model_steps(m);
    at_status s = steps ? at_model_save_training(m, save_path) : at_model_save(m, save_path);
    if (s == AT_E_IO || s == AT_E_NOMEM)
        return;   /* the machine, not the model */
    check(s == AT_OK, "a loaded model saves");
    at_model *r = NULL;
    s = at_model_load(save_path, NULL, &r);
    unlink(save_path);
    check(s == AT_OK, "a saved model loads back");
    for (int k = 1; at_param_name((at_param)k); k++) {
        double a = 0, b = 0;
        check(at_model_get(m, (at_param)k, &a) == AT_OK &&
                  at_model_get(r, (at_param)k, &b) == AT_OK && a == b,
              "the same hyperparameters after a round trip");
    }
    check(at_model_steps(r) == steps, "the same step count after a round trip");
    int n = at_model_tensor_count(m);
    check(n == at_model_tensor_count(r), "the same tensor count after a round trip");
    for (int i = 0; i < n; i++) {
        const char *na, *nb;
        at_view va, vb;
        check(at_model_tensor(m, i, &na, &va) == AT_OK &&
                  at_model_tensor(r, i, &nb, &vb) == AT_OK && strcmp(na, nb) == 0 &&
                  va.ndim == vb.ndim && !memcmp(va.shape, vb.shape, sizeof va.shape),
              "the same tensors after a round trip");
        /* tensors are contiguous: element k at data[k] */
        check(!memcmp(va.data, vb.data, (size_t)view_numel(&va) * sizeof(float)),
              "the same weights, bit for bit, after a round trip");
    }
    at_model_free(r);
}

/* A forward pass and a short greedy decode on ids taken from the input. */
static void run(at_model *m, const uint8_t *data, size_t size)
{
    int sv = get_int(m, AT_P_SRC_VOCAB), tv = get_int(m, AT_P_TGT_VOCAB);
    int maxlen = get_int(m, AT_P_MAX_LEN), layers = get_int(m, AT_P_LAYERS);
    int heads = get_int(m, AT_P_HEADS);
    enum { B = 2, SMAX = 5, TMAX = 4 };
    int S = maxlen < SMAX ? maxlen : SMAX, T = maxlen < TMAX ? maxlen : TMAX;
    int32_t src[B * SMAX], tgt[B * TMAX];
    for (int i = 0; i < B * S; i++)
        src[i] = size ? (int32_t)(data[(size_t)i * 7919 % size] % sv) : 0;
    for (int i = 0; i < B * T; i++)
        tgt[i] = size ? (int32_t)(data[(size_t)i * 104729 % size] % tv) : 0;
    src[0] = 1 % sv;   /* not every position padding */
    tgt[0] = 1 % tv;
    at_status s = at_forward(m, src, tgt, B, S, T, 0);
    if (s == AT_E_NOMEM)
        return;
    check(s == AT_OK, "a loaded model runs a forward pass");
    for (int l = 0; l < layers; l++) {
        static const at_attn_kind kinds[] = {AT_ATTN_ENC_SELF, AT_ATTN_DEC_SELF, AT_ATTN_CROSS};
        for (int k = 0; k < 3; k++) {
            at_view v;
            check(at_get_attention(m, kinds[k], l, &v) == AT_OK, "attention views");
            int64_t q = kinds[k] == AT_ATTN_ENC_SELF ? S : T;
            int64_t key = kinds[k] == AT_ATTN_DEC_SELF ? T : S;
            check(v.ndim == 4 && v.shape[0] == B && v.shape[1] == heads && v.shape[2] == q &&
                      v.shape[3] == key, "attention view shapes");
        }
    }
    at_view lp;
    check(at_get_output(m, AT_OUT_LOGPROBS, 0, &lp) == AT_OK && lp.shape[0] == B &&
              lp.shape[1] == T && lp.shape[2] == tv, "log-probabilities");

    int dec_len = maxlen < 4 ? maxlen : 4, out_len = -1;
    int32_t out[B * 4];
    s = at_greedy_decode(m, src, B, S, 0, dec_len, 1 % tv, tv > 2 ? 2 : -1, out, &out_len);
    if (s == AT_E_NOMEM)
        return;
    /* finite weights can still overflow: then decoding stops and says so */
    check(s == AT_OK || (s == AT_E_NUMERIC && *at_errmsg(m)), "a loaded model decodes");
    if (s != AT_OK)
        return;
    check(out_len >= 1 && out_len <= dec_len, "decoded length");
    for (int i = 0; i < B * dec_len; i++)
        check(out[i] >= 0 && out[i] < tv, "decoded ids inside the target vocabulary");

    if (at_model_steps(m) > 0 && T >= 2) {
        /* the restored Adam state in use; weights or moments from the file may
         * be anything, so only the status is bounded */
        float loss;
        s = at_train_step(m, src, tgt, B, S, T, 0, &loss, NULL);
        check(s == AT_OK || s == AT_E_NOMEM || s == AT_E_ARG || s > AT_E_STATE,
              "a training step on a training checkpoint");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    at_model *m = (at_model *)&m;   /* must be set to NULL on failure */
    at_status s = at_model_load_buffer(size ? (const void *)data : "", size, NULL, &m);
    if (s == AT_E_ARG) {
        /* a file without metadata: say the heads, as attn's --heads does */
        check(m == NULL, "a failed load leaves *out NULL");
        at_config *hint = NULL;
        check(at_config_create(&hint) == AT_OK &&
                  at_config_set(hint, AT_P_HEADS, HINT_HEADS) == AT_OK, "hint");
        m = (at_model *)&m;
        s = at_model_load_buffer(size ? (const void *)data : "", size, hint, &m);
        at_config_free(hint);
    }
    if (s != AT_OK) {
        check(m == NULL, "a failed load leaves *out NULL");
        check(*at_errmsg(NULL) != '\0', "a failed load says why");
        return 0;
    }
    check(m != NULL, "a load gives a model");
    round_trip(m);
    run(m, data, size);
    at_model_free(m);
    return 0;
}
