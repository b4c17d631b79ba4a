/* Checkpoints: safetensors under the reference's state_dict names, with the
 * configuration in __metadata__ (docs/checkpoints.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/internal.h"
#include "io/st.h"

#define FORMAT_TAG "libat"

static const st_tensor *find2(const st_file *f, const char *name, int ndim, char *err,
                              size_t errlen)
{
    const st_tensor *t = st_find(f, name);
    if (!t)
        snprintf(err, errlen, "missing tensor '%s'", name);
    else if (t->ndim != ndim) {
        snprintf(err, errlen, "tensor '%s' has %d dimensions, expected %d", name, t->ndim, ndim);
        t = NULL;
    }
    return t;
}

/* A metadata value as a number; a missing key leaves *out alone. */
static at_status meta_number(const st_file *f, const char *key, double *out, bool *found,
                             char *err, size_t errlen)
{
    const char *s = st_meta(f, key);
    *found = s != NULL;
    if (!s)
        return AT_OK;
    /* decimal only, as libat and Python write them: strtod alone would also
     * take leading spaces, hexadecimal ("0x10"), "inf" and "nan" */
    char *end;
    bool plain = *s == '-' || (*s >= '0' && *s <= '9');
    for (const char *c = s; *c && plain; c++)
        plain = strchr("0123456789+-.eE", *c) != NULL;
    double v = plain ? strtod(s, &end) : 0;
    if (!plain || end == s || *end != '\0' || !isfinite(v)) {
        snprintf(err, errlen, "metadata '%s' = '%s' is not a decimal number", key, s);
        return AT_E_FORMAT;
    }
    *out = v;
    return AT_OK;
}

/* Fills cfg from the shapes, then the metadata, then the caller's hint. The
 * shapes are the truth for sizes; metadata or hint that contradict them are
 * an error rather than a silent choice. */
static at_status infer_config(const st_file *f, const at_config *hint, at_config *cfg,
                              char *err, size_t errlen)
{
    const st_tensor *src = find2(f, "src_embed.0.lut.weight", 2, err, errlen);
    const st_tensor *tgt = src ? find2(f, "tgt_embed.0.lut.weight", 2, err, errlen) : NULL;
    const st_tensor *w1 = tgt ? find2(f, "encoder.layers.0.feed_forward.w_1.weight", 2, err,
                                      errlen) : NULL;
    const st_tensor *pe = w1 ? find2(f, "src_embed.1.pe", 3, err, errlen) : NULL;
    if (!pe)
        return AT_E_SHAPE;
    int layers = 0;
    char name[AT_NAME_MAX];
    for (;; layers++) {
        snprintf(name, sizeof name, "encoder.layers.%d.self_attn.linears.0.weight", layers);
        if (!st_find(f, name))
            break;
    }
    double shape_val[AT_PARAM_COUNT] = {0};
    shape_val[AT_P_SRC_VOCAB] = (double)src->shape[0];
    shape_val[AT_P_TGT_VOCAB] = (double)tgt->shape[0];
    shape_val[AT_P_D_MODEL] = (double)src->shape[1];
    shape_val[AT_P_D_FF] = (double)w1->shape[0];
    shape_val[AT_P_MAX_LEN] = (double)pe->shape[1];
    shape_val[AT_P_LAYERS] = layers;

    config_defaults(cfg);
    bool have_heads = false;
    for (int k = 1; k < AT_PARAM_COUNT; k++) {
        const char *key = at_param_name((at_param)k);
        bool in_meta;
        double v = cfg->val[k];
        at_status s = meta_number(f, key, &v, &in_meta, err, errlen);
        if (s != AT_OK)
            return s;
        if (shape_val[k] != 0 && in_meta && v != shape_val[k]) {
            snprintf(err, errlen, "metadata says %s = %g but the tensor shapes say %g", key, v,
                     shape_val[k]);
            return AT_E_FORMAT;
        }
        if (shape_val[k] != 0)
            v = shape_val[k];
        bool in_hint = hint && (hint->set >> k & 1);
        if (in_hint && shape_val[k] != 0 && hint->val[k] != v) {
            snprintf(err, errlen, "the file has %s = %g, the caller asked for %g", key, v,
                     hint->val[k]);
            return AT_E_SHAPE;
        }
        if (in_hint && k == AT_P_HEADS && in_meta && hint->val[k] != v) {
            snprintf(err, errlen, "the file's metadata has heads = %g, the caller asked for %g",
                     v, hint->val[k]);
            return AT_E_SHAPE;
        }
        if (in_hint)
            v = hint->val[k];
        if (k == AT_P_HEADS)
            have_heads = in_meta || in_hint;
        cfg->val[k] = v;
    }
    /* every value, from shapes, metadata or hint, within its bounds */
    at_config check;
    config_defaults(&check);
    for (int k = 1; k < AT_PARAM_COUNT; k++)
        if (at_config_set(&check, (at_param)k, cfg->val[k]) != AT_OK) {
            snprintf(err, errlen, "%s = %g is outside what libat accepts (see at_param_bounds)",
                     at_param_name((at_param)k), cfg->val[k]);
            return AT_E_FORMAT;
        }
    if (!have_heads) {
        snprintf(err, errlen, "the file has no libat metadata, so the number of heads is "
                 "unknown: pass it (AT_P_HEADS in the hint, --heads in attn)");
        return AT_E_ARG;
    }
    return AT_OK;
}

static void shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t n = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (n < len)
        snprintf(buf + n, len - n, "]");
}

#define MOMENT1 "adam.exp_avg."
#define MOMENT2 "adam.exp_avg_sq."

/* Checks the dtype and shape of the tensor called prefix+ti->name; with dst,
 * copies it there and checks that every value is finite (and, for the
 * second moments, not negative). */
static at_status take_tensor(const st_file *f, const char *prefix, const tensor_info *ti,
                             float *dst, char *err, size_t errlen)
{
    char name[AT_NAME_MAX + 32];
    snprintf(name, sizeof name, "%s%s", prefix, ti->name);
    const st_tensor *t = st_find(f, name);
    if (!t) {
        snprintf(err, errlen, "missing tensor '%s'", name);
        return AT_E_SHAPE;
    }
    if (t->dtype != ST_F32) {
        snprintf(err, errlen, "tensor '%s' has dtype %s; libat loads F32", name,
                 st_dtype_name(t->dtype));
        return AT_E_FORMAT;
    }
    if (t->ndim != ti->ndim || memcmp(t->shape, ti->shape, (size_t)t->ndim * 8)) {
        char got[96], want[96];
        shape_str(got, sizeof got, t->ndim, t->shape);
        shape_str(want, sizeof want, ti->ndim, ti->shape);
        snprintf(err, errlen, "tensor '%s' has shape %s, expected %s", name, got, want);
        return AT_E_SHAPE;
    }
    if (!dst)
        return AT_OK;
    memcpy(dst, t->data, ti->numel * sizeof(float));
    bool second = !strcmp(prefix, MOMENT2);
    for (size_t i = 0; i < ti->numel; i++)
        if (!isfinite(dst[i]) || (second && dst[i] < 0)) {
            snprintf(err, errlen, "tensor '%s' holds %g at element %zu: %s", name,
                     (double)dst[i], i, isfinite(dst[i]) ? "a second moment is never "
                     "negative" : "weights and optimizer state must be finite");
            return AT_E_NUMERIC;
        }
    return AT_OK;
}

static bool known_name(const at_model *m, const char *name, bool moments)
{
    if (moments && !strncmp(name, MOMENT1, strlen(MOMENT1)))
        name += strlen(MOMENT1);
    else if (moments && !strncmp(name, MOMENT2, strlen(MOMENT2)))
        name += strlen(MOMENT2);
    else
        moments = false;
    for (int i = 0; i < m->w->sh.ntensors; i++)
        if (!strcmp(name, m->w->table[i].name))
            return !(moments && m->w->table[i].is_buffer);
    return false;
}

/* Whether the file holds optimizer state. */
static bool has_moments(const st_file *f)
{
    for (int j = 0; j < f->count; j++)
        if (!strncmp(f->tensors[j].name, "adam.", 5))
            return true;
    return false;
}

/* The optimizer steps taken, which a file with moments must have. */
static at_status moments_step(const st_file *f, double *step, char *err, size_t errlen)
{
    bool found;
    at_status s = meta_number(f, "step", step, &found, err, errlen);
    if (s != AT_OK)
        return s;
    if (!found || *step < 1 || *step != floor(*step) || *step > 9007199254740992.0) {
        snprintf(err, errlen, "the file has Adam moments but no valid 'step' in its metadata");
        return AT_E_FORMAT;
    }
    return AT_OK;
}

/* Every tensor of the table (and both moments of each parameter, with
 * moments) present with its dtype and shape, and nothing else: checked
 * before any large allocation, so a file that describes another model is a
 * shape error, not an out-of-memory one. */
static at_status check_tensors(const at_model *m, const st_file *f, bool moments, char *err,
                               size_t errlen)
{
    int expected = m->w->sh.ntensors;
    double step;
    at_status s = moments ? moments_step(f, &step, err, errlen) : AT_OK;
    for (int i = 0; i < m->w->sh.ntensors && s == AT_OK; i++) {
        const tensor_info *ti = &m->w->table[i];
        s = take_tensor(f, "", ti, NULL, err, errlen);
        if (s == AT_OK && moments && !ti->is_buffer) {
            expected += 2;
            s = take_tensor(f, MOMENT1, ti, NULL, err, errlen);
            if (s == AT_OK)
                s = take_tensor(f, MOMENT2, ti, NULL, err, errlen);
        }
    }
    for (int j = 0; j < f->count && s == AT_OK && f->count != expected; j++)
        if (!known_name(m, f->tensors[j].name, moments)) {
            snprintf(err, errlen, "unexpected tensor '%s' for a model of %d layers",
                     f->tensors[j].name, m->dm.layers);
            s = AT_E_SHAPE;
        }
    return s;
}

/* A training checkpoint also holds both Adam moments of every parameter and
 * the step count (docs/checkpoints.md); restore them. */
static at_status take_optimizer(at_model *m, const st_file *f, char *err, size_t errlen)
{
    double step = 0;
    at_status s = moments_step(f, &step, err, errlen);
    if (s != AT_OK)
        return s;
    if ((s = train_alloc(m, "load")) != AT_OK) {
        snprintf(err, errlen, "%s", m->err);
        return s;
    }
    for (int i = 0; i < m->w->sh.ntensors && s == AT_OK; i++) {
        const tensor_info *ti = &m->w->table[i];
        if (ti->is_buffer)
            continue;
        s = take_tensor(f, MOMENT1, ti, m->tr.m1 + ti->offset, err, errlen);
        if (s == AT_OK)
            s = take_tensor(f, MOMENT2, ti, m->tr.m2 + ti->offset, err, errlen);
    }
    m->tr.step = (uint64_t)step;
    return s;
}

/* Copies every table entry out of the file, then the optimizer state when
 * the file has it (check_tensors has passed). */
static at_status fill_from_file(at_model *m, const st_file *f, bool moments, char *err,
                                size_t errlen)
{
    at_status s = AT_OK;
    for (int i = 0; i < m->w->sh.ntensors && s == AT_OK; i++) {
        const tensor_info *ti = &m->w->table[i];
        float *dst = (ti->is_buffer ? m->w->buffer_mem : m->w->sh.param_mem) + ti->offset;
        s = take_tensor(f, "", ti, dst, err, errlen);
    }
    if (s == AT_OK && moments)
        s = take_optimizer(m, f, err, errlen);
    return s;
}

static at_status load_parsed(const st_file *f, const at_config *hint, at_model **out,
                             const char *what)
{
    char err[AT_ERR_MAX] = "";
    at_config cfg;
    at_model *m = NULL;
    bool moments = has_moments(f);
    at_status s = infer_config(f, hint, &cfg, err, sizeof err);
    if (s == AT_OK)
        s = model_plan(&cfg, &m, err, sizeof err);
    if (s == AT_OK)
        s = check_tensors(m, f, moments, err, sizeof err);
    if (s == AT_OK)
        s = model_slabs(m, err, sizeof err);
    if (s == AT_OK)
        s = fill_from_file(m, f, moments, err, sizeof err);
    if (s == AT_OK)
        s = meta_take(&m->w->sh, f, err, sizeof err);
    if (s != AT_OK) {
        at_model_free(m);
        return set_error(NULL, s, "%s: %s", what, err);
    }
    *out = m;
    return AT_OK;
}

at_status at_model_load(const char *path, const at_config *hint, at_model **out)
{
    if (!out)
        return set_error(NULL, AT_E_ARG, "at_model_load: out is NULL");
    *out = NULL;
    if (!path)
        return set_error(NULL, AT_E_ARG, "at_model_load: path is NULL");
    st_file f;
    char err[AT_ERR_MAX];
    at_status s = st_read(&f, path, err, sizeof err);
    if (s != AT_OK)
        return set_error(NULL, s, "at_model_load: %s", err);
    char what[AT_ERR_MAX / 2];
    snprintf(what, sizeof what, "at_model_load: %s", path);
    s = load_parsed(&f, hint, out, what);
    st_free(&f);
    return s;
}

at_status at_model_load_buffer(const void *data, size_t size, const at_config *hint,
                               at_model **out)
{
    if (!out)
        return set_error(NULL, AT_E_ARG, "at_model_load_buffer: out is NULL");
    *out = NULL;
    if (!data)
        return set_error(NULL, AT_E_ARG, "at_model_load_buffer: data is NULL");
    st_file f;
    char err[AT_ERR_MAX];
    at_status s = st_parse(&f, data, size, err, sizeof err);
    if (s != AT_OK)
        return set_error(NULL, s, "at_model_load_buffer: %s", err);
    s = load_parsed(&f, hint, out, "at_model_load_buffer");
    st_free(&f);
    return s;
}

/* The shortest of %.15g and %.17g that reads back as the same double, so 0.1
 * is written "0.1" and large seeds stay exact. */
static void number_str(char *buf, size_t len, double v)
{
    snprintf(buf, len, "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, len, "%.17g", v);
}

/* Writes the state_dict (and, for a training checkpoint, both Adam moments
 * of every parameter and the step count), with the configuration as metadata. */
static at_status save(at_model *m, const char *path, bool training, const char *who)
{
    if (!path)
        return set_error(m, AT_E_ARG, "%s: path is NULL", who);
    bool moments = training && m->tr.m1;
    st_out *outs = calloc((size_t)m->w->sh.ntensors * 3, sizeof *outs);
    char (*names)[AT_NAME_MAX + 32] = moments ? calloc((size_t)m->w->sh.ntensors * 2,
                                                       sizeof *names) : NULL;
    if (!outs || (moments && !names)) {
        free(outs);
        free(names);
        return set_error(m, AT_E_NOMEM, "%s: out of memory", who);
    }
    int n = 0;
    for (int i = 0; i < m->w->sh.ntensors; i++) {
        const tensor_info *ti = &m->w->table[i];
        st_out o = {.name = ti->name, .dtype = ST_F32, .ndim = ti->ndim};
        memcpy(o.shape, ti->shape, sizeof ti->shape);
        o.data = (ti->is_buffer ? m->w->buffer_mem : m->w->sh.param_mem) + ti->offset;
        outs[n++] = o;
    }
    for (int i = 0; i < m->w->sh.ntensors && moments; i++) {
        const tensor_info *ti = &m->w->table[i];
        if (ti->is_buffer)
            continue;
        st_out o = outs[i];
        snprintf(names[2 * i], sizeof names[0], MOMENT1 "%s", ti->name);
        o.name = names[2 * i];
        o.data = m->tr.m1 + ti->offset;
        outs[n++] = o;
        snprintf(names[2 * i + 1], sizeof names[0], MOMENT2 "%s", ti->name);
        o.name = names[2 * i + 1];
        o.data = m->tr.m2 + ti->offset;
        outs[n++] = o;
    }
    const at_config cfg = m->cfg;
    char vals[AT_PARAM_COUNT + 1][32];
    const char **kv = malloc((size_t)(AT_PARAM_COUNT + 2 + m->w->sh.meta_count) * 2 * sizeof *kv);
    if (!kv) {
        free(outs);
        free(names);
        return set_error(m, AT_E_NOMEM, "%s: out of memory", who);
    }
    int k = 0;
    kv[2 * k] = "format", kv[2 * k + 1] = FORMAT_TAG, k++;
    kv[2 * k] = "libat_version", kv[2 * k + 1] = AT_VERSION_STRING, k++;
    for (int p = 1; p < AT_PARAM_COUNT; p++) {
        number_str(vals[p], sizeof vals[p], cfg.val[p]);
        kv[2 * k] = at_param_name((at_param)p), kv[2 * k + 1] = vals[p], k++;
    }
    if (moments) {
        number_str(vals[0], sizeof vals[0], (double)m->tr.step);
        kv[2 * k] = "step", kv[2 * k + 1] = vals[0], k++;
    }
    k += meta_pairs(&m->w->sh, kv + 2 * k);   /* the host's, after libat's own */
    char err[AT_ERR_MAX];
    at_status s = st_write(path, outs, n, kv, k, err, sizeof err);
    free(kv);
    free(outs);
    free(names);
    if (s != AT_OK)
        return set_error(m, s, "%s: %s", who, err);
    return AT_OK;
}

at_status at_model_save(at_model *m, const char *path)
{
    GUARDED(m, "at_model_save", save(m, path, false, "at_model_save"));
}

at_status at_model_save_training(at_model *m, const char *path)
{
    GUARDED(m, "at_model_save_training", save(m, path, true, "at_model_save_training"));
}
