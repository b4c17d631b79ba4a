/* attn info: a checkpoint's configuration and tensor table. */
#include <stdio.h>
#include <string.h>

#include "attn.h"

static const char help[] =
    "usage: attn info --model M.safetensors [--heads H]\n"
    "\n"
    "Print a checkpoint's configuration (every hyperparameter, and the file format\n"
    "and libat version when the file has libat's metadata), its tensor table in\n"
    "state_dict order (index, name, shape, elements) and the totals.\n"
    "\n"
    "  --model M    the safetensors checkpoint (saved by libat or exported from the\n"
    "               PyTorch reference's state_dict)\n"
    "  --heads H    number of attention heads; needed when the file has no libat\n"
    "               metadata (a PyTorch export), since the shapes do not tell it\n"
    "  -h, --help   this text\n";

static bool is_param_name(const char *key)
{
    for (int k = 1; at_param_name((at_param)k); k++)
        if (strcmp(at_param_name((at_param)k), key) == 0)
            return true;
    return false;
}

static void print_info(const char *path, at_model *m, const st_file *f, bool heads_given)
{
    printf("model: %s (%zu bytes)\n", path, f->len);
    const char *format = st_meta(f, "format"), *version = st_meta(f, "libat_version");
    if (format || version)
        printf("format: %s, written by libat %s\n", format ? format : "?",
               version ? version : "(version not recorded)");
    else
        printf("format: plain safetensors (no libat metadata)\n");
    bool other = false;
    for (int i = 0; i < f->meta_count; i++) {
        const char *k = f->meta_keys[i];
        if (strcmp(k, "format") == 0 || strcmp(k, "libat_version") == 0 || is_param_name(k))
            continue;
        size_t n = strlen(f->meta_vals[i]);
        if (n > 80)   /* a tokenizer's base64, say: its size, not its text */
            printf("%s %s = %.40s... (%zu bytes)\n", other ? "         " : "metadata:", k,
                   f->meta_vals[i], n);
        else
            printf("%s %s = %s\n", other ? "         " : "metadata:", k, f->meta_vals[i]);
        other = true;
    }

    if (format || version)
        printf("\nconfiguration:\n");
    else
        printf("\nconfiguration (sizes from the tensor shapes; the file does not record\n"
               "dropout or seed, so those are the defaults):\n");
    for (int k = 1; at_param_name((at_param)k); k++) {
        double v = 0;
        const char *name = at_param_name((at_param)k);
        if (at_model_get(m, (at_param)k, &v) != AT_OK)
            continue;
        bool from_flag = k == AT_P_HEADS && heads_given && !st_meta(f, name);
        printf("  %-14s %g%s\n", name, v, from_flag ? "   (from --heads)" : "");
    }

    int count = at_model_tensor_count(m);
    int64_t params = 0, buffers = 0;
    printf("\ntensors:\n  %5s  %-48s %-16s %12s\n", "index", "name", "shape", "elements");
    for (int i = 0; i < count; i++) {
        const char *name = "?";
        at_view v;
        if (at_model_tensor(m, i, &name, &v) != AT_OK)
            continue;
        char shape[64];
        size_t n = (size_t)snprintf(shape, sizeof shape, "[");
        int64_t numel = 1;
        for (int d = 0; d < v.ndim; d++) {
            numel *= v.shape[d];
            if (n < sizeof shape)
                n += (size_t)snprintf(shape + n, sizeof shape - n, "%s%lld", d ? ", " : "",
                                      (long long)v.shape[d]);
        }
        if (n < sizeof shape)
            snprintf(shape + n, sizeof shape - n, "]");
        printf("  %5d  %-48s %-16s %12lld\n", i, name, shape, (long long)numel);
        size_t len = strlen(name);
        bool buffer = len >= 3 && strcmp(name + len - 3, ".pe") == 0;
        *(buffer ? &buffers : &params) += numel;
    }
    printf("\ntotals: %d tensors; %lld parameters (%lld bytes as float32), not counting\n"
           "        the positional-encoding buffers (%lld values, %lld bytes)\n",
           count, (long long)params, (long long)params * 4, (long long)buffers,
           (long long)buffers * 4);
}

int cmd_info(int argc, char **argv)
{
    const char *model = NULL;
    int heads = 0;
    double lo = 1, hi = 1 << 20;
    at_param_bounds(AT_P_HEADS, &lo, &hi);
    opt opts[] = {
        {"model", OPT_STR, &model, 0, 0, false},
        {"heads", OPT_INT, &heads, lo, hi, false},
    };
    int rc;
    if (!args_command(argc, argv, opts, 2, help, &rc))
        return rc;
    if (args_require("info", &opts[0]) != ATTN_OK)
        return ATTN_USAGE;

    at_model *m;
    st_file f;
    rc = io_load_model(model, heads, &m, &f);
    if (rc != ATTN_OK)
        return rc;
    print_info(model, m, &f, opts[1].seen);
    at_model_free(m);
    st_free(&f);
    return ATTN_OK;
}
