/* Charts: the settings (at_viz_options_*), the context of one chart and the
 * entry points at_viz_write / at_viz_save, on top of the writers of the
 * formats (viz_svg.c, viz_vl.c, viz_html.c) and what they share (common.c). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "viz_internal.h"
#include "io/fileio.h"

/* ---------------------------------------------------------------- options */

at_status at_viz_options_create(at_viz_options **out)
{
    if (!out)
        return set_error(NULL, AT_E_ARG, "at_viz_options_create: out is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out)
        return set_error(NULL, AT_E_NOMEM, "at_viz_options_create: out of memory");
    (*out)->topk = 3;
    (*out)->trim = 1;
    return AT_OK;
}

static void free_labels(at_viz_options *o, int side)
{
    for (int i = 0; i < o->nlabels[side]; i++)
        free(o->labels[side][i]);
    free(o->labels[side]);
    o->labels[side] = NULL;
    o->nlabels[side] = 0;
}

void at_viz_options_free(at_viz_options *o)
{
    if (!o)
        return;
    for (int s = 0; s < 2; s++) {
        free_labels(o, s);
        free(o->ids[s]);
    }
    free(o->font);
    free(o->caption);
    at_viz_options_clear_analysis(o);
    free(o);
}

at_status at_viz_options_set(at_viz_options *o, at_viz_param key, int value)
{
    const char *who = "at_viz_options_set";
    if (!o)
        return set_error(NULL, AT_E_ARG, "%s: options are NULL", who);
    switch (key) {
    case AT_VIZ_ROW:
        if (value < 0)
            return set_error(NULL, AT_E_ARG, "%s: AT_VIZ_ROW %d is negative", who, value);
        o->row = value;
        return AT_OK;
    case AT_VIZ_TOPK:
        if (value < 1 || value > 1000)
            return set_error(NULL, AT_E_ARG, "%s: AT_VIZ_TOPK %d is outside 1 .. 1000", who,
                             value);
        o->topk = value;
        return AT_OK;
    case AT_VIZ_CELL:
        if (value != 0 && (value < 2 || value > 64))
            return set_error(NULL, AT_E_ARG, "%s: AT_VIZ_CELL %d is neither 0 nor in 2 .. 64",
                             who, value);
        o->cell = value;
        return AT_OK;
    case AT_VIZ_TRIM:
        if (value != 0 && value != 1)
            return set_error(NULL, AT_E_ARG, "%s: AT_VIZ_TRIM must be 0 or 1, not %d", who, value);
        o->trim = value;
        return AT_OK;
    }
    return set_error(NULL, AT_E_ARG, "%s: unknown setting %d", who, (int)key);
}

at_status at_viz_options_get(const at_viz_options *o, at_viz_param key, int *out)
{
    if (!o || !out)
        return set_error(NULL, AT_E_ARG, "at_viz_options_get: NULL argument");
    switch (key) {
    case AT_VIZ_ROW: *out = o->row; return AT_OK;
    case AT_VIZ_TOPK: *out = o->topk; return AT_OK;
    case AT_VIZ_CELL: *out = o->cell; return AT_OK;
    case AT_VIZ_TRIM: *out = o->trim; return AT_OK;
    }
    return set_error(NULL, AT_E_ARG, "at_viz_options_get: unknown setting %d", (int)key);
}

static at_status check_side(const char *who, const void *o, at_viz_side side, const void *list,
                            int count)
{
    if (!o)
        return set_error(NULL, AT_E_ARG, "%s: options are NULL", who);
    if (side != AT_VIZ_SRC && side != AT_VIZ_TGT)
        return set_error(NULL, AT_E_ARG, "%s: unknown side %d", who, (int)side);
    if (count < 0 || count > VIZ_MAX_LABELS || (count > 0 && !list))
        return set_error(NULL, AT_E_ARG, "%s: count %d with a %s list", who, count,
                         list ? "non-NULL" : "NULL");
    return AT_OK;
}

at_status at_viz_options_set_labels(at_viz_options *o, at_viz_side side,
                                    const char *const *labels, int count)
{
    const char *who = "at_viz_options_set_labels";
    at_status s = check_side(who, o, side, labels, count);
    if (s != AT_OK)
        return s;
    char **copy = NULL;
    if (count > 0) {
        copy = calloc((size_t)count, sizeof *copy);
        if (!copy)
            return set_error(NULL, AT_E_NOMEM, "%s: out of memory", who);
        for (int i = 0; i < count; i++) {
            if (!labels[i])
                continue;
            copy[i] = strdup(labels[i]);
            if (!copy[i]) {
                for (int k = 0; k < i; k++)
                    free(copy[k]);
                free(copy);
                return set_error(NULL, AT_E_NOMEM, "%s: out of memory", who);
            }
        }
    }
    free_labels(o, side);
    o->labels[side] = copy;
    o->nlabels[side] = count;
    return AT_OK;
}

at_status at_viz_options_set_ids(at_viz_options *o, at_viz_side side, const int32_t *ids,
                                 int count)
{
    const char *who = "at_viz_options_set_ids";
    at_status s = check_side(who, o, side, ids, count);
    if (s != AT_OK)
        return s;
    int32_t *copy = NULL;
    if (count > 0) {
        copy = malloc((size_t)count * sizeof *copy);
        if (!copy)
            return set_error(NULL, AT_E_NOMEM, "%s: out of memory", who);
        memcpy(copy, ids, (size_t)count * sizeof *copy);
    }
    free(o->ids[side]);
    o->ids[side] = copy;
    o->nids[side] = count;
    return AT_OK;
}

at_status at_viz_options_set_font(at_viz_options *o, const char *family)
{
    const char *who = "at_viz_options_set_font";
    if (!o)
        return set_error(NULL, AT_E_ARG, "%s: options are NULL", who);
    if (!family || !*family) {
        free(o->font);
        o->font = NULL;
        return AT_OK;
    }
    size_t n = strlen(family);
    if (n > VIZ_FONT_MAX)
        return set_error(NULL, AT_E_ARG, "%s: the family name is longer than %d bytes", who,
                         VIZ_FONT_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)family[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == ' ' || ch == '-' || ch == '_' ||
                  ch == '.';
        if (!ok)
            return set_error(NULL, AT_E_ARG,
                             "%s: the family name may hold letters, digits, spaces and - _ . "
                             "only (byte %zu is 0x%02x)", who, i, ch);
    }
    char *copy = strdup(family);
    if (!copy)
        return set_error(NULL, AT_E_NOMEM, "%s: out of memory", who);
    free(o->font);
    o->font = copy;
    return AT_OK;
}

at_status at_viz_options_set_caption(at_viz_options *o, const char *caption)
{
    const char *who = "at_viz_options_set_caption";
    if (!o)
        return set_error(NULL, AT_E_ARG, "%s: options are NULL", who);
    if (caption && strlen(caption) > VIZ_CAPTION_MAX)
        return set_error(NULL, AT_E_ARG, "%s: the caption is longer than %d bytes", who,
                         VIZ_CAPTION_MAX);
    char *copy = NULL;
    if (caption && *caption && !(copy = strdup(caption)))
        return set_error(NULL, AT_E_NOMEM, "%s: out of memory", who);
    free(o->caption);
    o->caption = copy;
    return AT_OK;
}


/* The position after the last non-zero entry of mask[0, stride, 2·stride, …). */
static int valid_len(const float *mask, int64_t stride, int n)
{
    int last = -1;
    for (int i = 0; i < n; i++)
        if (mask[(int64_t)i * stride] != 0.0f)
            last = i;
    return last < 0 ? n : last + 1;
}

static void ctx_free(viz_ctx *c)
{
    viz_seq_free(&c->src);
    viz_seq_free(&c->tgt);
    free(c->caption_buf);
}

static bool chart_uses(at_viz_chart chart, char what)
{
    switch (chart) {
    case AT_VIZ_HEATMAP: return true;
    case AT_VIZ_HEADS: return what != 'h';
    case AT_VIZ_LAYERS: return what != 'l';
    case AT_VIZ_MODEL: return what == 'k';
    case AT_VIZ_EXPLORER: return true;
    default: return false;
    }
}

static at_status ctx_make(viz_ctx *c, at_model *m, at_viz_chart chart, at_viz_format fmt,
                          at_attn_kind kind, int layer, int head, const at_viz_options *o)
{
    const char *who = "at_viz_write";
    memset(c, 0, sizeof *c);
    c->m = m;
    c->o = o;
    c->chart = chart;
    c->kind = kind;
    c->layer = layer;
    c->head = head;
    if ((int)chart < 0 || chart >= AT_VIZ_CHART_COUNT)
        return set_error(m, AT_E_ARG, "%s: unknown chart %d", who, (int)chart);
    if (fmt != AT_VIZ_SVG && fmt != AT_VIZ_VEGALITE && fmt != AT_VIZ_HTML)
        return set_error(m, AT_E_ARG, "%s: unknown format %d", who, (int)fmt);
    if (chart == AT_VIZ_EXPLORER && fmt != AT_VIZ_HTML)
        return set_error(m, AT_E_ARG, "%s: the explorer is written only as AT_VIZ_HTML", who);
    if (!at_viz_kind_name(kind))
        return set_error(m, AT_E_ARG, "%s: unknown attention kind %d", who, (int)kind);
    double v;
    at_model_get(m, AT_P_LAYERS, &v);
    c->layers = (int)v;
    at_model_get(m, AT_P_HEADS, &v);
    c->heads = (int)v;
    at_model_get(m, AT_P_D_MODEL, &v);
    c->d_model = (int)v;
    const char *name = at_viz_chart_name(chart);
    if (!chart_uses(chart, 'k') && kind != 0)
        return set_error(m, AT_E_ARG, "%s: the %s chart takes no kind (pass 0, not %d)", who, name,
                         (int)kind);
    if (chart_uses(chart, 'l') && (layer < 0 || layer >= c->layers))
        return set_error(m, AT_E_ARG, "%s: layer %d is outside 0 .. %d", who, layer,
                         c->layers - 1);
    if (!chart_uses(chart, 'l') && layer != 0)
        return set_error(m, AT_E_ARG, "%s: the %s chart takes no layer (pass 0, not %d)", who,
                         name, layer);
    if (chart_uses(chart, 'h') && (head < 0 || head >= c->heads))
        return set_error(m, AT_E_ARG, "%s: head %d is outside 0 .. %d", who, head, c->heads - 1);
    if (!chart_uses(chart, 'h') && head != 0)
        return set_error(m, AT_E_ARG, "%s: the %s chart takes no head (pass 0, not %d)", who,
                         name, head);
    at_view sm, tm;
    at_status s = at_get_output(m, AT_OUT_SRC_MASK, 0, &sm);
    if (s != AT_OK)
        return set_error(m, AT_E_STATE, "%s: no pass has been computed yet (run at_forward, "
                                      "at_greedy_decode or at_train_step first)", who);
    c->have_dec = at_get_output(m, AT_OUT_TGT_MASK, 0, &tm) == AT_OK;
    if (chart_uses(chart, 'k') && chart != AT_VIZ_EXPLORER && !viz_kind_ready(c, kind))
        return set_error(m, AT_E_STATE, "%s: the last pass computed no %s attention (it had no "
                                      "target)", who, viz_kind_short(kind));
    if (chart == AT_VIZ_EXPLORER && !viz_kind_ready(c, kind))
        c->kind = AT_ATTN_ENC_SELF;
    c->B = (int)sm.shape[0];
    c->S_all = (int)sm.shape[2];
    c->T_all = c->have_dec ? (int)tm.shape[1] : 0;
    c->row = o ? o->row : 0;
    if (c->row >= c->B)
        return set_error(m, AT_E_ARG, "%s: batch row %d is outside 0 .. %d", who, c->row,
                         c->B - 1);
    c->topk = o ? o->topk : 3;
    c->cell = o ? o->cell : 0;
    bool trim = (o ? o->trim != 0 : true) && chart != AT_VIZ_MASKS;
    c->S = c->S_all;
    c->T = c->T_all;
    if (trim) {
        c->S = valid_len(sm.data + (int64_t)c->row * sm.stride[0], sm.stride[2], c->S_all);
        if (c->have_dec)   /* the last query row sees every target token that is no pad */
            c->T = valid_len(tm.data + (int64_t)c->row * tm.stride[0] +
                                 (int64_t)(c->T_all - 1) * tm.stride[1],
                             tm.stride[2], c->T_all);
    }
    if (viz_seq_make(&c->src, o, AT_VIZ_SRC, c->S) != AT_OK ||
        viz_seq_make(&c->tgt, o, AT_VIZ_TGT, c->T) != AT_OK)
        return set_error(m, AT_E_NOMEM, "%s: out of memory", who);
    static const char stack[] =
        "'Noto Sans', 'DejaVu Sans', 'Noto Sans CJK SC', 'Noto Sans CJK JP', "
        "'Source Han Sans SC', 'PingFang SC', 'Hiragino Sans', 'Microsoft YaHei', "
        "'Malgun Gothic', Arial, sans-serif";
    if (o && o->font)   /* quoted: the family may hold spaces */
        snprintf(c->font, sizeof c->font, "'%s', %s", o->font, stack);
    else
        snprintf(c->font, sizeof c->font, "%s", stack);
    c->caption_buf = viz_clean_label(o && o->caption ? o->caption : "", 0);
    if (!c->caption_buf)
        return set_error(m, AT_E_NOMEM, "%s: out of memory", who);
    c->caption = c->caption_buf;
    return chart == AT_VIZ_EXPLORER ? viz_check_analysis(c) : AT_OK;
}

/* ---------------------------------------------------------------- entry points */

static at_status viz_write(FILE *out, at_model *m, at_viz_chart chart, at_viz_format fmt,
                           at_attn_kind kind, int layer, int head, const at_viz_options *opts)
{
    if (!out)
        return set_error(m, AT_E_ARG, "at_viz_write: the stream is NULL");
    viz_ctx c;
    at_status s = ctx_make(&c, m, chart, fmt, kind, layer, head, opts);
    if (s == AT_OK) {
        vout o = {out, false};
        if (chart == AT_VIZ_EXPLORER)
            s = viz_explorer(&c, &o);
        else if (fmt == AT_VIZ_VEGALITE)
            s = viz_vegalite(&c, &o);
        else
            s = viz_svg(&c, &o, fmt == AT_VIZ_HTML);
        if (s == AT_OK && (o.err || fflush(out) != 0 || ferror(out)))
            s = set_error(m, AT_E_IO, "at_viz_write: writing the chart failed (%s)",
                          errno ? strerror(errno) : "write error");
    }
    ctx_free(&c);
    return s;
}

at_status at_viz_write(FILE *out, at_model *m, at_viz_chart chart, at_viz_format fmt,
                       at_attn_kind kind, int layer, int head, const at_viz_options *opts)
{
    GUARDED(m, "at_viz_write", viz_write(out, m, chart, fmt, kind, layer, head, opts));
}

static at_status viz_save(const char *path, at_model *m, at_viz_chart chart, at_viz_format fmt,
                          at_attn_kind kind, int layer, int head, const at_viz_options *opts)
{
    const char *who = "at_viz_save";
    if (!path || !*path)
        return set_error(m, AT_E_ARG, "%s: path is NULL or empty", who);
    /* refuse bad arguments before any file exists */
    viz_ctx c;
    at_status s = ctx_make(&c, m, chart, fmt, kind, layer, head, opts);
    ctx_free(&c);
    if (s != AT_OK)
        return s;
    file_out f;
    char err[AT_ERR_MAX];
    s = file_out_begin(&f, path, err, sizeof err);
    if (s != AT_OK)
        return set_error(m, s, "%s: %s", who, err);
    s = viz_write(f.fp, m, chart, fmt, kind, layer, head, opts);
    if (s != AT_OK) {
        file_out_abort(&f);
        return s;
    }
    s = file_out_commit(&f, err, sizeof err);
    return s == AT_OK ? AT_OK : set_error(m, s, "%s: %s", who, err);
}

at_status at_viz_save(const char *path, at_model *m, at_viz_chart chart, at_viz_format fmt,
                      at_attn_kind kind, int layer, int head, const at_viz_options *opts)
{
    GUARDED(m, "at_viz_save", viz_save(path, m, chart, fmt, kind, layer, head, opts));
}

/* ---------------------------------------------------------------- analysis layers */

static void layer_free(viz_layer *a)
{
    if (a->labels)
        for (int i = 0; i < a->rows * a->cols; i++)
            free(a->labels[i]);
    free(a->labels);
    free(a->title);
    free(a->v);
    free(a->f);
}

at_status at_viz_options_clear_analysis(at_viz_options *o)
{
    if (!o)
        return set_error(NULL, AT_E_ARG, "at_viz_options_clear_analysis: options are NULL");
    for (int i = 0; i < o->nan; i++)
        layer_free(&o->an[i]);
    free(o->an);
    free(o->links);
    o->an = NULL;
    o->nan = 0;
    o->map_values = 0;
    o->grid_values = 0;
    o->label_bytes = 0;
    o->links = NULL;
    o->nlinks = 0;
    return AT_OK;
}

/* The checks a head grid and a map share: settings, title, room, shape. */
static at_status check_layer(const char *who, const at_viz_options *o, const char *title,
                             const void *values, int rows, int cols, int diverging)
{
    if (!o || !title || !values)
        return set_error(NULL, AT_E_ARG, "%s: %s is NULL", who,
                         !o ? "the options" : !title ? "title" : "values");
    size_t n = strlen(title);
    if (n == 0 || n > AT_VIZ_TITLE_MAX)
        return set_error(NULL, AT_E_ARG, "%s: the title must have 1 .. %d bytes, not %zu", who,
                         AT_VIZ_TITLE_MAX, n);
    if (rows < 1 || cols < 1 || rows > VIZ_MAX_LABELS || cols > VIZ_MAX_LABELS)
        return set_error(NULL, AT_E_ARG, "%s: the sizes %d x %d are outside 1 .. %d", who, rows,
                         cols, VIZ_MAX_LABELS);
    if (diverging != 0 && diverging != 1)
        return set_error(NULL, AT_E_ARG, "%s: diverging must be 0 or 1, not %d", who, diverging);
    if (o->nan >= AT_VIZ_ANALYSIS_MAX)
        return set_error(NULL, AT_E_RANGE, "%s: %d analysis layers are attached already (the "
                                           "most)", who, AT_VIZ_ANALYSIS_MAX);
    return AT_OK;
}

/* Appends a (filled) layer to o, taking its memory; frees it on failure. */
static at_status push_layer(const char *who, at_viz_options *o, viz_layer *a)
{
    viz_layer *grown = realloc(o->an, (size_t)(o->nan + 1) * sizeof *grown);
    if (!grown) {
        layer_free(a);
        return set_error(NULL, AT_E_NOMEM, "%s: out of memory", who);
    }
    o->an = grown;
    o->an[o->nan++] = *a;
    return AT_OK;
}

at_status at_viz_options_add_headmap(at_viz_options *o, const char *title, at_attn_kind kind,
                                     int layers, int heads, const double *values,
                                     const char *const *labels, int diverging)
{
    const char *who = "at_viz_options_add_headmap";
    at_status s = check_layer(who, o, title, values, layers, heads, diverging);
    if (s != AT_OK)
        return s;
    if (!at_viz_kind_name(kind))
        return set_error(NULL, AT_E_ARG, "%s: unknown attention kind %d", who, (int)kind);
    if ((long)layers * heads > AT_VIZ_GRID_VALUES_MAX - o->grid_values)
        return set_error(NULL, AT_E_RANGE, "%s: %d layers x %d heads would make the grids hold "
                                           "more than %d values (%ld attached)", who, layers,
                         heads, AT_VIZ_GRID_VALUES_MAX, o->grid_values);
    int n = layers * heads;
    long bytes = 0;
    for (int i = 0; i < n; i++) {
        if (isinf(values[i]))
            return set_error(NULL, AT_E_NUMERIC, "%s: value %d (layer %d, head %d) is infinite",
                             who, i, i / heads, i % heads);
        size_t len = labels && labels[i] ? strlen(labels[i]) : 0;
        if (len > AT_VIZ_TITLE_MAX)
            return set_error(NULL, AT_E_ARG, "%s: label %d is longer than %d bytes", who, i,
                             AT_VIZ_TITLE_MAX);
        bytes += (long)len;
    }
    if (bytes > AT_VIZ_LABEL_BYTES_MAX - o->label_bytes)
        return set_error(NULL, AT_E_RANGE, "%s: %ld bytes of labels would make the grids' "
                                           "labels more than %d bytes (%ld attached)", who,
                         bytes, AT_VIZ_LABEL_BYTES_MAX, o->label_bytes);
    viz_layer a = {.kind = (int)kind, .rows = layers, .cols = heads, .diverging = diverging};
    a.title = strdup(title);
    a.v = malloc((size_t)n * sizeof *a.v);
    bool ok = a.title && a.v;
    if (ok)
        memcpy(a.v, values, (size_t)n * sizeof *a.v);
    if (ok && labels) {
        ok = (a.labels = calloc((size_t)n, sizeof *a.labels)) != NULL;
        for (int i = 0; ok && i < n; i++)
            ok = !labels[i] || (a.labels[i] = strdup(labels[i])) != NULL;
    }
    if (!ok) {
        layer_free(&a);
        return set_error(NULL, AT_E_NOMEM, "%s: out of memory", who);
    }
    s = push_layer(who, o, &a);
    if (s == AT_OK) {
        o->grid_values += n;
        o->label_bytes += bytes;
    }
    return s;
}

at_status at_viz_options_add_map(at_viz_options *o, const char *title, at_viz_side rows,
                                 at_viz_side cols, int nrows, int ncols, const float *values,
                                 int diverging)
{
    const char *who = "at_viz_options_add_map";
    at_status s = check_layer(who, o, title, values, nrows, ncols, diverging);
    if (s != AT_OK)
        return s;
    if ((rows != AT_VIZ_SRC && rows != AT_VIZ_TGT) || (cols != AT_VIZ_SRC && cols != AT_VIZ_TGT))
        return set_error(NULL, AT_E_ARG, "%s: unknown side %d", who,
                         (int)(rows != AT_VIZ_SRC && rows != AT_VIZ_TGT ? rows : cols));
    long n = (long)nrows * ncols;
    if (n > AT_VIZ_MAP_VALUES_MAX - o->map_values)
        return set_error(NULL, AT_E_RANGE, "%s: %d x %d values would make the maps hold more "
                                           "than %d values (%ld attached)", who, nrows, ncols,
                         AT_VIZ_MAP_VALUES_MAX, o->map_values);
    for (long i = 0; i < n; i++)
        if (isinf(values[i]))
            return set_error(NULL, AT_E_NUMERIC, "%s: value (%ld, %ld) is infinite", who,
                             i / ncols, i % ncols);
    viz_layer a = {.kind = -1, .rows = nrows, .cols = ncols, .rside = (int)rows,
                   .cside = (int)cols, .diverging = diverging};
    a.title = strdup(title);
    a.f = malloc((size_t)n * sizeof *a.f);
    if (!a.title || !a.f) {
        layer_free(&a);
        return set_error(NULL, AT_E_NOMEM, "%s: out of memory", who);
    }
    memcpy(a.f, values, (size_t)n * sizeof *a.f);
    s = push_layer(who, o, &a);
    if (s == AT_OK)
        o->map_values += n;
    return s;
}

at_status at_viz_options_set_links(at_viz_options *o, const int32_t *pairs, int count)
{
    const char *who = "at_viz_options_set_links";
    if (!o)
        return set_error(NULL, AT_E_ARG, "%s: options are NULL", who);
    if (count < 0 || count > VIZ_MAX_LABELS || (count > 0 && !pairs))
        return set_error(NULL, AT_E_ARG, "%s: count %d with a %s list", who, count,
                         pairs ? "non-NULL" : "NULL");
    for (int i = 0; i < 2 * count; i++)
        if (pairs[i] < 0)
            return set_error(NULL, AT_E_ARG, "%s: link %d has a negative position (%d, %d)",
                             who, i / 2, (int)pairs[i & ~1], (int)pairs[i | 1]);
    int32_t *copy = NULL;
    if (count > 0) {
        copy = malloc((size_t)count * 2 * sizeof *copy);
        if (!copy)
            return set_error(NULL, AT_E_NOMEM, "%s: out of memory", who);
        memcpy(copy, pairs, (size_t)count * 2 * sizeof *copy);
    }
    free(o->links);
    o->links = copy;
    o->nlinks = count;
    return AT_OK;
}

/* A deep copy of one layer into *out; false when out of memory (nothing kept). */
static bool layer_copy(const viz_layer *a, viz_layer *out)
{
    size_t n = (size_t)a->rows * a->cols;
    *out = *a;
    out->title = strdup(a->title);
    out->v = NULL;
    out->f = NULL;
    out->labels = NULL;
    bool ok = out->title != NULL;
    if (ok && a->v && (ok = (out->v = malloc(n * sizeof *out->v)) != NULL))
        memcpy(out->v, a->v, n * sizeof *out->v);
    if (ok && a->f && (ok = (out->f = malloc(n * sizeof *out->f)) != NULL))
        memcpy(out->f, a->f, n * sizeof *out->f);
    if (ok && a->labels) {
        ok = (out->labels = calloc(n, sizeof *out->labels)) != NULL;
        for (size_t i = 0; ok && i < n; i++)
            ok = !a->labels[i] || (out->labels[i] = strdup(a->labels[i])) != NULL;
    }
    if (!ok)
        layer_free(out);
    return ok;
}

at_status at_viz_options_copy_analysis(at_viz_options *dst, const at_viz_options *src)
{
    const char *who = "at_viz_options_copy_analysis";
    if (!dst || !src)
        return set_error(NULL, AT_E_ARG, "%s: %s is NULL", who, dst ? "src" : "dst");
    if (dst == src)
        return AT_OK;
    at_viz_options tmp = {0};
    tmp.an = src->nan ? calloc((size_t)src->nan, sizeof *tmp.an) : NULL;
    tmp.links = src->nlinks ? malloc((size_t)src->nlinks * 2 * sizeof *tmp.links) : NULL;
    bool ok = (!src->nan || tmp.an) && (!src->nlinks || tmp.links);
    for (int i = 0; ok && i < src->nan; i++)
        if ((ok = layer_copy(&src->an[i], &tmp.an[i])))
            tmp.nan++;
    if (!ok) {
        at_viz_options_clear_analysis(&tmp);
        return set_error(NULL, AT_E_NOMEM, "%s: out of memory", who);
    }
    if (src->nlinks)
        memcpy(tmp.links, src->links, (size_t)src->nlinks * 2 * sizeof *tmp.links);
    tmp.nlinks = src->nlinks;
    tmp.map_values = src->map_values;
    tmp.grid_values = src->grid_values;
    tmp.label_bytes = src->label_bytes;
    at_viz_options_clear_analysis(dst);
    dst->an = tmp.an;
    dst->nan = tmp.nan;
    dst->links = tmp.links;
    dst->nlinks = tmp.nlinks;
    dst->map_values = tmp.map_values;
    dst->grid_values = tmp.grid_values;
    dst->label_bytes = tmp.label_bytes;
    return AT_OK;
}
