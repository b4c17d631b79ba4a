/* Files: loading a checkpoint, reading token ids, writing the results of a
 * forward pass. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_viz.h"
#include "attn.h"

int io_load_model(const char *path, int heads, at_model **out, st_file *file)
{
    *out = NULL;
    char err[512];
    st_file f;
    if (st_read(&f, path, err, sizeof err) != AT_OK) {
        attn_error("cannot read model: %s", err);
        return ATTN_FAIL;
    }
    at_config *hint = NULL;
    if (heads > 0 && (at_config_create(&hint) != AT_OK ||
                      at_config_set(hint, AT_P_HEADS, heads) != AT_OK)) {
        attn_error("--heads %d: %s", heads, at_errmsg(NULL));
        at_config_free(hint);
        st_free(&f);
        return ATTN_USAGE;
    }
    at_status s = at_model_load_buffer(f.buf, f.len, hint, out);
    at_config_free(hint);
    if (s != AT_OK) {
        const char *msg = at_errmsg(NULL), *fn = "at_model_load_buffer: ";
        if (strncmp(msg, fn, strlen(fn)) == 0)   /* the caller knows no such function */
            msg += strlen(fn);
        attn_error("cannot load model '%s': %s", path, msg);
        st_free(&f);
        return ATTN_FAIL;
    }
    if (file)
        *file = f;
    else
        st_free(&f);
    return ATTN_OK;
}

int io_read_ids(const st_file *f, const char *fpath, const char *name, bool required,
                int32_t **out, int *rows, int *cols)
{
    *out = NULL;
    *rows = *cols = 0;
    const st_tensor *t = st_find(f, name);
    if (!t) {
        if (!required)
            return ATTN_OK;
        attn_error("%s: no tensor '%s' (the token ids, integers of shape (batch, length))",
                   fpath, name);
        return ATTN_FAIL;
    }
    if (t->dtype == ST_F16 || t->dtype == ST_BF16 || t->dtype == ST_F32 ||
        t->dtype == ST_F64 || t->dtype == ST_BOOL) {
        attn_error("%s: tensor '%s' has dtype %s; token ids must be integers (I32 or I64)",
                   fpath, name, st_dtype_name(t->dtype));
        return ATTN_FAIL;
    }
    if (t->ndim != 2 || t->shape[0] < 1 || t->shape[1] < 1 || t->shape[0] > INT32_MAX ||
        t->shape[1] > INT32_MAX) {
        char shape[96];
        size_t n = (size_t)snprintf(shape, sizeof shape, "(");
        for (int i = 0; i < t->ndim && n < sizeof shape; i++)
            n += (size_t)snprintf(shape + n, sizeof shape - n, "%s%lld", i ? ", " : "",
                                  (long long)t->shape[i]);
        if (n < sizeof shape)
            snprintf(shape + n, sizeof shape - n, ")");
        attn_error("%s: tensor '%s' has shape %s; expected (batch, length), both at least 1",
                   fpath, name, shape);
        return ATTN_FAIL;
    }
    size_t count = (size_t)t->numel;
    int64_t *wide = malloc(count * sizeof *wide);
    int32_t *ids = malloc(count * sizeof *ids);
    char err[512];
    if (!wide || !ids) {
        attn_error("%s: out of memory for tensor '%s'", fpath, name);
    } else if (st_to_i64(t, wide, err, sizeof err) != AT_OK) {
        attn_error("%s: %s", fpath, err);
    } else {
        size_t i = 0;
        for (; i < count; i++) {
            if (wide[i] < INT32_MIN || wide[i] > INT32_MAX)
                break;
            ids[i] = (int32_t)wide[i];
        }
        if (i == count) {
            free(wide);
            *out = ids;
            *rows = (int)t->shape[0];
            *cols = (int)t->shape[1];
            return ATTN_OK;
        }
        attn_error("%s: %s[%zu][%zu] = %lld is not a token id", fpath, name,
                   i / (size_t)t->shape[1], i % (size_t)t->shape[1], (long long)wide[i]);
    }
    free(wide);
    free(ids);
    return ATTN_FAIL;
}

int io_read_input(const char *cmd, const char *what, const char *input, bool need_tgt,
                  int32_t **src, int32_t **tgt, int *B, int *S, int *T)
{
    st_file f;
    char err[512];
    *src = *tgt = NULL;
    *T = 0;
    if (st_read(&f, input, err, sizeof err) != AT_OK) {
        attn_error("%s: cannot read %s: %s", cmd, what, err);
        return ATTN_FAIL;
    }
    int Bt = 0;
    int rc = io_read_ids(&f, input, "src", true, src, B, S);
    if (rc == ATTN_OK)
        rc = io_read_ids(&f, input, "tgt", need_tgt, tgt, &Bt, T);
    st_free(&f);
    if (rc == ATTN_OK && *tgt && Bt != *B) {
        attn_error("%s: src has %d rows but tgt has %d; they must be the same batch", input,
                   *B, Bt);
        rc = ATTN_FAIL;
    }
    if (!*tgt)
        *T = 0;
    return rc;
}

int io_read_batch(const char *cmd, const char *input, int32_t **src, int32_t **tgt,
                  id_batch *b)
{
    int rc = io_read_input(cmd, "input", input, true, src, tgt, &b->B, &b->S, &b->T1);
    if (rc == ATTN_OK && b->T1 < 2) {
        attn_error("%s: tgt has %d column; it needs 2 or more (the decoder's input is tgt[:, :-1], "
                   "its labels tgt[:, 1:])", input, b->T1);
        rc = ATTN_FAIL;
    }
    b->src = *src;
    b->tgt = *tgt;
    return rc;
}

int io_model_int(const at_model *m, at_param key)
{
    double v = 0;
    return at_model_get(m, key, &v) == AT_OK ? (int)v : 0;
}

/* One output to write: its name and view. */
typedef struct out_item {
    char name[40];
    at_view v;
} out_item;

static bool add_view(at_model *m, out_item *items, int *n, const char *name, at_status s,
                     const at_view *v)
{
    if (s != AT_OK) {
        attn_error("cannot read '%s' after the forward pass: %s", name, at_errmsg(m));
        return false;
    }
    snprintf(items[*n].name, sizeof items[*n].name, "%s", name);
    items[*n].v = *v;
    (*n)++;
    return true;
}

static bool contiguous(const at_view *v)
{
    int64_t expect = 1;
    for (int i = v->ndim - 1; i >= 0; i--) {
        if (v->shape[i] != 1 && v->stride[i] != expect)
            return false;
        expect *= v->shape[i];
    }
    return true;
}

/* A contiguous copy of a strided view (not expected: views are contiguous). */
static float *packed_copy(const at_view *v)
{
    int64_t sh[4] = {1, 1, 1, 1}, n = 1;
    for (int i = 0; i < v->ndim; i++)
        sh[i] = v->shape[i], n *= v->shape[i];
    float *c = malloc((size_t)n * sizeof *c), *p = c;
    if (!c)
        return NULL;
    for (int64_t a = 0; a < sh[0]; a++)
        for (int64_t b = 0; b < sh[1]; b++)
            for (int64_t d = 0; d < sh[2]; d++)
                for (int64_t e = 0; e < sh[3]; e++)
                    *p++ = v->data[a * v->stride[0] + b * v->stride[1] + d * v->stride[2] +
                                   e * v->stride[3]];
    return c;
}

/* The attention of kind k, layer l as iv keeps it: the whole layer, its
 * kept heads one by one, or nothing. */
static bool add_attention(at_model *m, const intv *iv, out_item *items, int *n, int k, int l,
                          int heads)
{
    int kept = 0;
    for (int h = 0; h < heads; h++)
        kept += intv_kept(iv, k, l, h);
    const char *kind = at_viz_kind_name((at_attn_kind)k);
    char name[40];
    at_view v;
    if (kept == heads) {
        snprintf(name, sizeof name, "attn.%s.%d", kind, l);
        return add_view(m, items, n, name, at_get_attention(m, (at_attn_kind)k, l, &v), &v);
    }
    bool ok = true;
    for (int h = 0; ok && h < heads; h++) {
        if (!intv_kept(iv, k, l, h))
            continue;
        snprintf(name, sizeof name, "attn.%s.%d.head%d", kind, l, h);
        ok = add_view(m, items, n, name, at_get_attention_head(m, (at_attn_kind)k, l, h, &v),
                      &v);
    }
    return ok;
}

/* Whether one of the first n outputs is called name. */
static bool written(const st_out *outs, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(outs[i].name, name) == 0)
            return true;
    return false;
}

int io_write_outputs(at_model *m, const char *path, const st_out *extra, int nextra,
                     const char *const *meta_kv, int nmeta)
{
    return io_write_pass(m, path, NULL, extra, nextra, meta_kv, nmeta);
}

int io_write_pass(at_model *m, const char *path, const intv *iv, const st_out *extra,
                  int nextra, const char *const *meta_kv, int nmeta)
{
    int layers = io_model_int(m, AT_P_LAYERS), heads = io_model_int(m, AT_P_HEADS);
    int ntaps = iv ? iv->ntaps : 0;
    int cap = 5 + 3 * layers * heads + nextra + ntaps, n = 0, rc = ATTN_FAIL;
    out_item *items = calloc((size_t)cap, sizeof *items);
    st_out *outs = calloc((size_t)cap, sizeof *outs);
    float **copies = calloc((size_t)cap, sizeof *copies);
    if (!items || !outs || !copies) {
        attn_error("out of memory");
        goto done;
    }
    at_view v;
    at_view probe;
    bool dec = at_get_output(m, AT_OUT_DECODER, 0, &probe) == AT_OK;
    bool ok = add_view(m, items, &n, "src_mask", at_get_output(m, AT_OUT_SRC_MASK, 0, &v), &v);
    if (ok && dec)
        ok = add_view(m, items, &n, "tgt_mask", at_get_output(m, AT_OUT_TGT_MASK, 0, &v), &v);
    if (ok)
        ok = add_view(m, items, &n, "memory", at_get_output(m, AT_OUT_MEMORY, 0, &v), &v);
    if (ok && dec)
        ok = add_view(m, items, &n, "decoder_out", at_get_output(m, AT_OUT_DECODER, 0, &v), &v);
    if (ok && dec)
        ok = add_view(m, items, &n, "logprobs", at_get_output(m, AT_OUT_LOGPROBS, 0, &v), &v);
    for (int k = 0; ok && k < (dec ? 3 : 1); k++)
        for (int l = 0; ok && l < layers; l++)
            ok = add_attention(m, iv, items, &n, k, l, heads);
    if (!ok)
        goto done;
    for (int i = 0; i < n; i++) {
        const at_view *w = &items[i].v;
        outs[i].name = items[i].name;
        outs[i].dtype = ST_F32;
        outs[i].ndim = w->ndim;
        for (int d = 0; d < w->ndim; d++)
            outs[i].shape[d] = w->shape[d];
        outs[i].data = w->data;
        if (!contiguous(w)) {
            copies[i] = packed_copy(w);
            if (!copies[i]) {
                attn_error("out of memory");
                goto done;
            }
            outs[i].data = copies[i];
        }
    }
    /* the memory and logprobs sites are the tensors of those names already written */
    for (int i = 0, have = n; i < ntaps; i++) {
        const tap_copy *t = &iv->taps[i];
        if (written(outs, have, t->name))
            continue;
        outs[n] = (st_out){t->name, ST_F32, t->ndim, {0}, t->data};
        for (int d = 0; d < t->ndim; d++)
            outs[n].shape[d] = t->shape[d];
        n++;
    }
    for (int i = 0; i < nextra; i++)
        outs[n++] = extra[i];
    char err[512];
    if (st_write(path, outs, n, meta_kv, nmeta, err, sizeof err) != AT_OK) {
        attn_error("cannot write '%s': %s", path, err);
        goto done;
    }
    rc = ATTN_OK;
done:
    for (int i = 0; copies && i < cap; i++)
        free(copies[i]);
    free(copies);
    free(outs);
    free(items);
    return rc;
}

char *io_join(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    if (p)
        sprintf(p, "%s/%s", dir, name);
    return p;
}
