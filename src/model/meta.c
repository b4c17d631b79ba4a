/* The host's metadata: text the checkpoint carries beside the weights in its
 * __metadata__ (a tokenizer, a corpus name, a note), kept with the weights so
 * that handles sharing them (at_model_share) see the same. libat's own keys
 * (the configuration, "format", "libat_version", "step") are reserved: they
 * are written from the model itself and never taken from the host. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/internal.h"
#include "io/st.h"

#define META_KEY_MAX 256

bool meta_reserved(const char *key)
{
    if (!strcmp(key, "format") || !strcmp(key, "libat_version") || !strcmp(key, "step"))
        return true;
    for (int p = 1; p < AT_PARAM_COUNT; p++)
        if (!strcmp(key, at_param_name((at_param)p)))
            return true;
    return false;
}

static int meta_find(const shared_weights *sh, const char *key)
{
    for (int i = 0; i < sh->meta_count; i++)
        if (!strcmp(sh->meta_keys[i], key))
            return i;
    return -1;
}

void meta_free(shared_weights *sh)
{
    for (int i = 0; i < sh->meta_count; i++) {
        free(sh->meta_keys[i]);
        free(sh->meta_vals[i]);
    }
    free(sh->meta_keys);
    free(sh->meta_vals);
    sh->meta_keys = sh->meta_vals = NULL;
    sh->meta_count = 0;
}

static void meta_remove(shared_weights *sh, int i)
{
    free(sh->meta_keys[i]);
    free(sh->meta_vals[i]);
    sh->meta_count--;
    memmove(sh->meta_keys + i, sh->meta_keys + i + 1,
            (size_t)(sh->meta_count - i) * sizeof *sh->meta_keys);
    memmove(sh->meta_vals + i, sh->meta_vals + i + 1,
            (size_t)(sh->meta_count - i) * sizeof *sh->meta_vals);
}

/* Sets key to a copy of value (appended when new, replaced in place when
 * not, so the order of the keys is the order they were first set in). */
static at_status meta_put(shared_weights *sh, const char *key, const char *value)
{
    char *v = strdup(value);
    if (!v)
        return AT_E_NOMEM;
    int i = meta_find(sh, key);
    if (i >= 0) {
        free(sh->meta_vals[i]);
        sh->meta_vals[i] = v;
        return AT_OK;
    }
    char *k = strdup(key);
    char **ks = realloc(sh->meta_keys, (size_t)(sh->meta_count + 1) * sizeof *ks);
    if (ks)
        sh->meta_keys = ks;
    char **vs = ks ? realloc(sh->meta_vals, (size_t)(sh->meta_count + 1) * sizeof *vs) : NULL;
    if (vs)
        sh->meta_vals = vs;
    if (!k || !ks || !vs) {
        free(k);
        free(v);
        return AT_E_NOMEM;
    }
    sh->meta_keys[sh->meta_count] = k;
    sh->meta_vals[sh->meta_count++] = v;
    return AT_OK;
}

at_status meta_take(shared_weights *sh, const st_file *f, char *err, size_t errlen)
{
    for (int i = 0; i < f->meta_count; i++) {
        if (meta_reserved(f->meta_keys[i]))
            continue;
        if (meta_put(sh, f->meta_keys[i], f->meta_vals[i]) != AT_OK) {
            snprintf(err, errlen, "out of memory for the metadata '%.64s'", f->meta_keys[i]);
            return AT_E_NOMEM;
        }
    }
    return AT_OK;
}

int meta_pairs(const shared_weights *sh, const char **kv)
{
    for (int i = 0; i < sh->meta_count; i++) {
        kv[2 * i] = sh->meta_keys[i];
        kv[2 * i + 1] = sh->meta_vals[i];
    }
    return sh->meta_count;
}

static at_status set_meta(at_model *m, const char *key, const char *value)
{
    const char *who = "at_model_set_meta";
    if (!key)
        return set_error(m, AT_E_ARG, "%s: key is NULL", who);
    size_t n = strlen(key);
    if (n == 0 || n > META_KEY_MAX)
        return set_error(m, AT_E_ARG, "%s: a key has 1 to %d bytes, not %zu", who,
                         META_KEY_MAX, n);
    if (!st_utf8_ok(key) || (value && !st_utf8_ok(value)))
        return set_error(m, AT_E_FORMAT, "%s: the %s of '%.64s' is not valid UTF-8", who,
                         st_utf8_ok(key) ? "value" : "key", st_utf8_ok(key) ? key : "");
    if (meta_reserved(key))
        return set_error(m, AT_E_ARG, "%s: '%s' is one of libat's own keys (the "
                         "configuration is set with at_config_set or at_model_set)", who, key);
    at_status s = weights_writable(m, who);
    if (s != AT_OK)
        return s;
    if (!value) {
        int i = meta_find(&m->w->sh, key);
        if (i >= 0)
            meta_remove(&m->w->sh, i);
        return AT_OK;
    }
    if (meta_put(&m->w->sh, key, value) != AT_OK)
        return set_error(m, AT_E_NOMEM, "%s: out of memory for '%.64s' (%zu bytes)", who, key,
                         strlen(value));
    return AT_OK;
}

at_status at_model_set_meta(at_model *m, const char *key, const char *value)
{
    if (!m)
        return set_error(NULL, AT_E_ARG, "at_model_set_meta: m is NULL");
    GUARDED(m, "at_model_set_meta", set_meta(m, key, value));
}

static at_status get_meta(at_model *m, const char *key, const char **value)
{
    if (!key || !value)
        return set_error(m, AT_E_ARG, "at_model_get_meta: %s is NULL", key ? "value" : "key");
    int i = meta_find(&m->w->sh, key);
    *value = i >= 0 ? m->w->sh.meta_vals[i] : NULL;
    return AT_OK;
}

at_status at_model_get_meta(at_model *m, const char *key, const char **value)
{
    if (value)
        *value = NULL;
    if (!m)
        return set_error(NULL, AT_E_ARG, "at_model_get_meta: m is NULL");
    GUARDED(m, "at_model_get_meta", get_meta(m, key, value));
}

int at_model_meta_count(const at_model *m)
{
    return m ? m->w->sh.meta_count : 0;
}

const char *at_model_meta_key(const at_model *m, int index)
{
    if (!m || index < 0 || index >= m->w->sh.meta_count)
        return NULL;
    return m->w->sh.meta_keys[index];
}
