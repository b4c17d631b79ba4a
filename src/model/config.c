/* Versions, status strings, error messages, the one-thread-per-handle
 * guard, and the hyperparameter set. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/internal.h"

/* The message of the last failing call that had no model to report on, or
 * that found its model in use by another thread (busy_on). */
static _Thread_local char thread_err[AT_ERR_MAX];
static _Thread_local const at_model *busy_on;
/* Its address tells this thread from the others (a pthread_t may not fit an
 * atomic). */
static _Thread_local char thread_tag;

unsigned at_version_number(void) { return AT_VERSION_NUMBER; }

const char *at_version_string(void) { return AT_VERSION_STRING; }

int at_blas_report(char *buf, size_t size)
{
    if (!buf && size)
        return -1;
    char line[400];
    int fallback = cpu_blas_report(line, sizeof line);
    if (size)
        snprintf(buf, size, "%s", line);
    return fallback;
}

const char *at_kernel_name(void)
{
    return gemm_kernel_name();
}

double at_kernel_peak(double seconds)
{
    if (!(seconds > 0.0 && seconds <= 60.0))
        return -1.0;
    return gemm_peak(seconds);
}

const char *at_status_string(at_status s)
{
    switch (s) {
    case AT_OK: return "AT_OK";
    case AT_E_ARG: return "AT_E_ARG";
    case AT_E_NOMEM: return "AT_E_NOMEM";
    case AT_E_IO: return "AT_E_IO";
    case AT_E_FORMAT: return "AT_E_FORMAT";
    case AT_E_SHAPE: return "AT_E_SHAPE";
    case AT_E_RANGE: return "AT_E_RANGE";
    case AT_E_STATE: return "AT_E_STATE";
    case AT_E_NUMERIC: return "AT_E_NUMERIC";
    case AT_E_CALLBACK: return "AT_E_CALLBACK";
    }
    return "unknown status";
}

at_status set_error(at_model *m, at_status s, const char *fmt, ...)
{
    char *buf = m ? m->err : thread_err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, AT_ERR_MAX, fmt, ap);
    va_end(ap);
    return s;
}

const char *at_errmsg(const at_model *m)
{
    return !m || m == busy_on ? thread_err : m->err;
}

/* A handle's message belongs to the thread inside a call: a thread turned
 * away keeps its own, thread_err, until it next enters a call on m. */
at_status guard_enter(at_model *m, const char *who)
{
    uintptr_t me = (uintptr_t)&thread_tag, none = 0;
    if (atomic_load_explicit(&m->owner, memory_order_relaxed) == me) {
        m->depth++;
        return AT_OK;
    }
    if (!atomic_compare_exchange_strong_explicit(&m->owner, &none, me, memory_order_acquire,
                                                 memory_order_relaxed)) {
        busy_on = m;
        snprintf(thread_err, sizeof thread_err, "%s: the handle is in use by another thread "
                 "(one thread at a time per handle; use at_model_share for more)", who);
        return AT_E_STATE;
    }
    if (busy_on == m)
        busy_on = NULL;
    m->depth = 1;
    return AT_OK;
}

void guard_leave(at_model *m)
{
    if (--m->depth == 0)
        atomic_store_explicit(&m->owner, 0, memory_order_release);
}

at_status weights_writable(at_model *m, const char *who)
{
    int n = atomic_load(&m->w->sh.owners);
    if (n > 1)
        return set_error(m, AT_E_STATE, "%s: the weights are shared by %d handles "
                         "(at_model_share); free the others first", who, n);
    return AT_OK;
}

/* ---- hyperparameters ---- */

typedef struct param_spec {
    const char *name;
    double def, lo, hi;
    bool whole;
} param_spec;

/* Defaults are make_model's (the vocabularies are the copy task's 11). */
static const param_spec specs[AT_PARAM_COUNT] = {
    [AT_P_SRC_VOCAB] = {"src_vocab", 11, 1, 1 << 24, true},
    [AT_P_TGT_VOCAB] = {"tgt_vocab", 11, 1, 1 << 24, true},
    [AT_P_LAYERS] = {"layers", 6, 1, 256, true},
    [AT_P_D_MODEL] = {"d_model", 512, 2, 65536, true},
    [AT_P_HEADS] = {"heads", 8, 1, 4096, true},
    [AT_P_D_FF] = {"d_ff", 2048, 1, 1 << 20, true},
    [AT_P_DROPOUT] = {"dropout", 0.1, 0, 0.999, false},
    [AT_P_MAX_LEN] = {"max_len", 5000, 1, 1 << 20, true},
    [AT_P_SEED] = {"seed", 0, 0, 9007199254740992.0, true},
    [AT_P_ATTN_DROPOUT] = {"attn_dropout", 0.1, 0, 0.999, false},
    [AT_P_LR] = {"lr", 0.5, 0, 1e6, false},
    [AT_P_WARMUP] = {"warmup", 400, 1, 1e12, true},
    [AT_P_FACTOR] = {"factor", 1, 0, 1e6, false},
    [AT_P_SMOOTHING] = {"smoothing", 0, 0, 0.999, false},
    [AT_P_BETA1] = {"beta1", 0.9, 0, 0.999999, false},
    [AT_P_BETA2] = {"beta2", 0.98, 0, 0.999999, false},
    [AT_P_ADAM_EPS] = {"adam_eps", 1e-9, 0, 1, false},
    [AT_P_PACKED] = {"packed", 1, 0, 1, true},
};

static bool key_ok(at_param key)
{
    return key > 0 && key < AT_PARAM_COUNT && specs[key].name;
}

void config_defaults(at_config *c)
{
    memset(c, 0, sizeof *c);
    for (int k = 1; k < AT_PARAM_COUNT; k++)
        c->val[k] = specs[k].def;
}

at_status at_config_create(at_config **out)
{
    if (!out)
        return set_error(NULL, AT_E_ARG, "at_config_create: out is NULL");
    *out = malloc(sizeof **out);
    if (!*out)
        return set_error(NULL, AT_E_NOMEM, "at_config_create: out of memory");
    config_defaults(*out);
    return AT_OK;
}

void at_config_free(at_config *cfg) { free(cfg); }

at_status at_config_set(at_config *cfg, at_param key, double value)
{
    if (!cfg)
        return set_error(NULL, AT_E_ARG, "at_config_set: cfg is NULL");
    if (!key_ok(key))
        return set_error(NULL, AT_E_ARG, "at_config_set: unknown key %d", (int)key);
    const param_spec *s = &specs[key];
    if (!(value >= s->lo && value <= s->hi))   /* also refuses NaN */
        return set_error(NULL, AT_E_ARG, "at_config_set: %s = %g is outside [%g, %g]",
                         s->name, value, s->lo, s->hi);
    if (s->whole && value != floor(value))
        return set_error(NULL, AT_E_ARG, "at_config_set: %s must be a whole number, not %g",
                         s->name, value);
    cfg->val[key] = value;
    cfg->set |= 1u << key;
    return AT_OK;
}

at_status at_config_get(const at_config *cfg, at_param key, double *out)
{
    if (!cfg || !out)
        return set_error(NULL, AT_E_ARG, "at_config_get: NULL argument");
    if (!key_ok(key))
        return set_error(NULL, AT_E_ARG, "at_config_get: unknown key %d", (int)key);
    *out = cfg->val[key];
    return AT_OK;
}

at_status at_param_bounds(at_param key, double *lo, double *hi)
{
    if (!key_ok(key))
        return set_error(NULL, AT_E_ARG, "at_param_bounds: unknown key %d", (int)key);
    if (lo)
        *lo = specs[key].lo;
    if (hi)
        *hi = specs[key].hi;
    return AT_OK;
}

const char *at_param_name(at_param key)
{
    return key_ok(key) ? specs[key].name : NULL;
}

/* The relations between parameters that single bounds cannot express. */
at_status dims_from_config(const at_config *c, dims *out, char *err, size_t errlen)
{
    const double *v = c->val;
    dims dm = {
        .src_vocab = (int)v[AT_P_SRC_VOCAB], .tgt_vocab = (int)v[AT_P_TGT_VOCAB],
        .layers = (int)v[AT_P_LAYERS], .d = (int)v[AT_P_D_MODEL],
        .heads = (int)v[AT_P_HEADS], .d_ff = (int)v[AT_P_D_FF],
        .max_len = (int)v[AT_P_MAX_LEN], .dropout = v[AT_P_DROPOUT],
        .attn_dropout = v[AT_P_ATTN_DROPOUT], .seed = (uint64_t)v[AT_P_SEED],
        .lr = v[AT_P_LR], .warmup = v[AT_P_WARMUP], .factor = v[AT_P_FACTOR],
        .smoothing = v[AT_P_SMOOTHING], .beta1 = v[AT_P_BETA1], .beta2 = v[AT_P_BETA2],
        .adam_eps = v[AT_P_ADAM_EPS],
    };
    if (dm.d % 2) {
        snprintf(err, errlen, "d_model = %d must be even (sin and cos columns pair up)", dm.d);
        return AT_E_ARG;
    }
    if (dm.heads < 1 || dm.d % dm.heads) {
        snprintf(err, errlen, "d_model = %d is not a multiple of heads = %d", dm.d, dm.heads);
        return AT_E_ARG;
    }
    *out = dm;
    return AT_OK;
}

at_status at_model_get(const at_model *m, at_param key, double *out)
{
    if (!m || !out)
        return set_error(NULL, AT_E_ARG, "at_model_get: NULL argument");
    if (!key_ok(key))
        return set_error((at_model *)m, AT_E_ARG, "at_model_get: unknown key %d", (int)key);
    *out = m->cfg.val[key];
    return AT_OK;
}

static at_status model_set(at_model *m, at_param key, double value)
{
    switch (key) {
    case AT_P_SRC_VOCAB: case AT_P_TGT_VOCAB: case AT_P_LAYERS: case AT_P_D_MODEL:
    case AT_P_HEADS: case AT_P_D_FF: case AT_P_MAX_LEN:
        return set_error(m, AT_E_ARG, "at_model_set: %s fixes the model's shapes; it cannot "
                         "change after creation", at_param_name(key));
    default:
        break;
    }
    at_config c = m->cfg;
    if (at_config_set(&c, key, value) != AT_OK)
        return set_error(m, AT_E_ARG, "%s", at_errmsg(NULL));
    if (key == AT_P_PACKED) {
        /* a property of the shared weights: only their sole owner may drop the copy */
        if (weights_writable(m, "at_model_set") != AT_OK)
            return AT_E_STATE;
        packed_enable(&m->w->sh, value != 0);
    }
    char err[AT_ERR_MAX];
    dims dm;
    if (dims_from_config(&c, &dm, err, sizeof err) != AT_OK)
        return set_error(m, AT_E_ARG, "at_model_set: %s", err);
    m->cfg = c;
    m->dm = dm;
    return AT_OK;
}

at_status at_model_set(at_model *m, at_param key, double value)
{
    GUARDED(m, "at_model_set", model_set(m, key, value));
}
