/* The attention report: every chart of the last pass in a folder, with the
 * explorer as its index.html. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/fileio.h"
#include "report.h"

void report_defaults(report_opts *o)
{
    memset(o, 0, sizeof *o);
}

int report_write_file(const char *who, const char *path, const char *data, size_t len)
{
    file_out f;
    char err[1024];
    at_status s = file_out_begin(&f, path, err, sizeof err);
    if (s == AT_OK) {
        (void)fwrite(data, 1, len, f.fp);   /* file_out_commit sees a write error */
        s = file_out_commit(&f, err, sizeof err);
    }
    if (s != AT_OK) {
        attn_error("%s: %s", who, err);
        return ATTN_FAIL;
    }
    return ATTN_OK;
}

void tb_xml(tbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': tb_printf(b, "&amp;"); break;
        case '<': tb_printf(b, "&lt;"); break;
        case '>': tb_printf(b, "&gt;"); break;
        case '"': tb_printf(b, "&quot;"); break;
        default:
            if ((unsigned char)*s >= 0x20)
                tb_printf(b, "%c", *s);
        }
    }
}

void tb_printf(tbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *g = realloc(b->p, cap);
        if (!g) {
            b->oom = true;
            return;
        }
        b->p = g, b->cap = cap;
    }
}

typedef struct job {
    at_model *m;
    const at_viz_options *o;
    const report_opts *ro;
    const char *dir;     /* where the files go for now */
    const char *final;   /* where they will be, for messages */
    int files;
    double bytes;
} job;

static const char *who_of(const report_opts *ro)
{
    return ro->who ? ro->who : "viz";
}

static void mb_str(char *buf, size_t len, double bytes)
{
    if (bytes >= 1e9)
        snprintf(buf, len, "%.1f GB", bytes * 1e-9);
    else if (bytes >= 1e6)
        snprintf(buf, len, "%.1f MB", bytes * 1e-6);
    else
        snprintf(buf, len, "%.0f kB", bytes * 1e-3);
}

static int save(job *j, const char *name, at_viz_chart chart, at_viz_format fmt,
                at_attn_kind kind, int layer, int head)
{
    char path[4096];
    const char *who = who_of(j->ro);
    if (snprintf(path, sizeof path, "%s/%s%s", j->dir, name, at_viz_format_ext(fmt)) >=
        (int)sizeof path) {
        attn_error("%s: the output path '%s/%s' is too long", who, j->final, name);
        return ATTN_FAIL;
    }
    if (at_viz_save(path, j->m, chart, fmt, kind, layer, head, j->o) != AT_OK) {
        attn_error("%s: cannot write '%s/%s%s' (nothing was written): %s", who, j->final, name,
                   at_viz_format_ext(fmt), at_errmsg(j->m));
        return ATTN_FAIL;
    }
    struct stat st;
    if (stat(path, &st) == 0)
        j->bytes += (double)st.st_size;
    j->files++;
    if (j->ro->max_bytes > 0 && j->bytes > j->ro->max_bytes) {
        char got[32], cap[32];
        mb_str(got, sizeof got, j->bytes);
        mb_str(cap, sizeof cap, j->ro->max_bytes);
        char raise[64] = "";
        if (j->ro->max_flag)
            snprintf(raise, sizeof raise, " with %s %.0f", j->ro->max_flag,
                     ceil(2 * j->ro->max_bytes * 1e-6));
        attn_error("%s: the charts grew past the limit of %s (%s in the first %d files); "
                   "nothing was written. Chart a shorter input, or raise the limit%s", who,
                   cap, got, j->files, raise);
        return ATTN_FAIL;
    }
    return ATTN_OK;
}

/* Both formats of one chart. */
static int save2(job *j, const char *name, at_viz_chart chart, at_attn_kind kind, int layer,
                 int head)
{
    int rc = save(j, name, chart, AT_VIZ_SVG, kind, layer, head);
    return rc == ATTN_OK ? save(j, name, chart, AT_VIZ_VEGALITE, kind, layer, head) : rc;
}

int report_write(at_model *m, const report_opts *ro, const char *dir, int *nfiles)
{
    if (nfiles)
        *nfiles = 0;
    int layers = io_model_int(m, AT_P_LAYERS), heads = io_model_int(m, AT_P_HEADS);
    if (ro->layer < 0 || ro->layer > layers || ro->head < 0 || ro->head > heads) {
        attn_error("--layer must be 1 .. %d and --head 1 .. %d", layers, heads);
        return ATTN_USAGE;
    }
    at_viz_options *o = NULL;
    if (at_viz_options_create(&o) != AT_OK ||
        at_viz_options_set(o, AT_VIZ_ROW, ro->row) != AT_OK ||
        at_viz_options_set_labels(o, AT_VIZ_SRC, ro->src_labels, ro->src_labels ? ro->nsrc_labels : 0) != AT_OK ||
        at_viz_options_set_labels(o, AT_VIZ_TGT, ro->tgt_labels, ro->tgt_labels ? ro->ntgt_labels : 0) != AT_OK ||
        at_viz_options_set_ids(o, AT_VIZ_SRC, ro->src_ids, ro->src_ids ? ro->nsrc_ids : 0) != AT_OK ||
        at_viz_options_set_ids(o, AT_VIZ_TGT, ro->tgt_ids, ro->tgt_ids ? ro->ntgt_ids : 0) != AT_OK ||
        at_viz_options_set_caption(o, ro->caption) != AT_OK) {
        attn_error("chart settings: %s", at_errmsg(NULL));
        at_viz_options_free(o);
        return ATTN_FAIL;
    }
    if (ro->analysis && at_viz_options_copy_analysis(o, ro->analysis) != AT_OK) {
        attn_error("chart settings: %s", at_errmsg(NULL));
        at_viz_options_free(o);
        return ATTN_FAIL;
    }
    if (at_viz_options_set_font(o, ro->font) != AT_OK) {
        attn_error("--font: %s", at_errmsg(NULL));
        at_viz_options_free(o);
        return ATTN_USAGE;
    }
    const char *who = who_of(ro);
    at_view v;
    int64_t S = 0, T = 0;
    if (at_get_attention(m, AT_ATTN_ENC_SELF, 0, &v) == AT_OK)
        S = v.shape[2];
    if (at_get_attention(m, AT_ATTN_DEC_SELF, 0, &v) == AT_OK)
        T = v.shape[2];
    if (report_check_size(ro, layers, heads, S, T) != ATTN_OK) {
        at_viz_options_free(o);
        return ATTN_FAIL;
    }
    outdir od;
    int rc = outdir_begin(&od, who, dir);
    job j = {m, o, ro, od.tmp, dir, 0, 0};
    at_view probe;
    bool dec = at_get_attention(m, AT_ATTN_CROSS, 0, &probe) == AT_OK;
    at_attn_kind first = dec ? AT_ATTN_CROSS : AT_ATTN_ENC_SELF;
    if (rc == ATTN_OK)
        rc = save(&j, "index", AT_VIZ_EXPLORER, AT_VIZ_HTML, first,
                  ro->layer ? ro->layer - 1 : layers - 1, ro->head ? ro->head - 1 : 0);
    if (rc == ATTN_OK)
        rc = save2(&j, "masks", AT_VIZ_MASKS, 0, 0, 0);
    if (rc == ATTN_OK)
        rc = save2(&j, "stats", AT_VIZ_STATS, 0, 0, 0);
    char name[128];
    for (int k = 0; k < (dec ? 3 : 1) && rc == ATTN_OK; k++) {
        const char *kn = at_viz_kind_name((at_attn_kind)k);
        snprintf(name, sizeof name, "model-%s", kn);
        rc = save2(&j, name, AT_VIZ_MODEL, (at_attn_kind)k, 0, 0);
        for (int l = 0; l < layers && rc == ATTN_OK; l++) {
            snprintf(name, sizeof name, "heads-%s-l%d", kn, l + 1);
            rc = save2(&j, name, AT_VIZ_HEADS, (at_attn_kind)k, l, 0);
        }
        for (int h = 0; h < heads && rc == ATTN_OK; h++) {
            snprintf(name, sizeof name, "layers-%s-h%d", kn, h + 1);
            rc = save2(&j, name, AT_VIZ_LAYERS, (at_attn_kind)k, 0, h);
        }
        for (int l = 0; l < layers && rc == ATTN_OK; l++)
            for (int h = 0; h < heads && rc == ATTN_OK; h++) {
                if ((ro->layer && l != ro->layer - 1) || (ro->head && h != ro->head - 1))
                    continue;
                snprintf(name, sizeof name, "heatmap-%s-l%d-h%d", kn, l + 1, h + 1);
                rc = save2(&j, name, AT_VIZ_HEATMAP, (at_attn_kind)k, l, h);
            }
    }
    at_viz_options_free(o);
    if (rc == ATTN_OK)
        rc = outdir_commit(&od);
    else if (od.tmp)
        outdir_abort(&od);
    if (nfiles)
        *nfiles = rc == ATTN_OK ? j.files : 0;
    if (rc == ATTN_OK && !ro->quiet) {
        char size[32];
        mb_str(size, sizeof size, j.bytes);
        int n = (int)strlen(dir);
        while (n > 1 && dir[n - 1] == '/')
            n--;
        printf("wrote %d chart files (%s) to %.*s/: open %.*s/index.html in a browser (it "
               "works offline)\n", j.files, size, n, dir, n, dir);
    }
    return rc;
}

/* What one chart of n cells takes in SVG: below the library's 40000 cells a
 * rectangle with a tooltip naming both tokens (about 130 bytes), above it an
 * image, about 4 bytes a pixel in base64. */
static double svg_bytes(double n, double label)
{
    return n <= 40000 ? n * (130 + 2 * label) : n * 5;
}

static double mean_label(const char *const *labels, int n, double otherwise)
{
    if (!labels || n <= 0)
        return otherwise;
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += labels[i] ? (double)strlen(labels[i]) : 0;
    return sum / n;
}

double report_estimate(const report_opts *ro, int layers, int heads, int64_t S, int64_t T)
{
    double L = layers, H = heads;
    double nh = (ro->layer ? 1 : L) * (ro->head ? 1 : H);
    double label = (mean_label(ro->src_labels, ro->nsrc_labels, 3) +
                    mean_label(ro->tgt_labels, ro->ntgt_labels, 3)) / 2;
    double total = 150e3;   /* the explorer's code, the statistics charts */
    double cells[3] = {(double)S * (double)S, (double)T * (double)T, (double)T * (double)S};
    for (int k = 0; k < (T > 0 ? 3 : 1); k++) {
        double c = cells[k];   /* of one head */
        total += nh * svg_bytes(c, label) + L * svg_bytes(H * c, label) +
                 H * svg_bytes(L * c, label) + svg_bytes(L * H * c, label);
        total += 7 * c * (nh + 3 * L * H);   /* Vega-Lite: a weight is "0.1234," */
        total += 3 * c * L * H;              /* the explorer */
    }
    if (T > 0)                               /* the masks chart: two T x T masks */
        total += svg_bytes(2 * cells[1], label) + 7 * 2 * cells[1];
    return total;
}

int report_check_size(const report_opts *ro, int layers, int heads, int64_t S, int64_t T)
{
    double estimate = report_estimate(ro, layers, heads, S, T);
    if (ro->max_bytes <= 0 || estimate <= ro->max_bytes)
        return ATTN_OK;
    char est[32], cap[32], shape[96], raise[64] = "";
    mb_str(est, sizeof est, estimate);
    mb_str(cap, sizeof cap, ro->max_bytes);
    snprintf(shape, sizeof shape, "%lld source positions", (long long)S);
    if (T > 0)
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape),
                 " and %lld target positions", (long long)T);
    if (ro->max_flag)
        snprintf(raise, sizeof raise, " with %s %.0f", ro->max_flag,
                 ceil(1.25 * estimate * 1e-6));
    attn_error("%s: these charts would take about %s (%s, %d layers x %d heads), more than "
               "the limit of %s; chart a shorter input, or raise the limit%s", who_of(ro), est,
               shape, layers, heads, cap, raise);
    return ATTN_FAIL;
}

void report_json_kinds(const float *v, int layers, int heads)
{
    for (int k = 0; k < 3; k++) {
        printf("%s\"%s\": [", k ? ", " : "", at_viz_kind_name((at_attn_kind)k));
        for (int l = 0; l < layers; l++) {
            printf("%s[", l ? ", " : "");
            for (int j = 0; j < heads; j++)
                printf("%s%.9g", j ? ", " : "", v[(k * layers + l) * heads + j]);
            printf("]");
        }
        printf("]");
    }
}

void report_kind_tables(const char *title, const float *v, int layers, int heads)
{
    for (int k = 0; k < 3; k++) {
        printf("%s, %s (rows: layers, columns: heads)\n", title,
               at_viz_kind_name((at_attn_kind)k));
        printf("%5s", "layer");
        for (int j = 0; j < heads; j++)
            printf(" %10d", j + 1);
        printf("\n");
        for (int l = 0; l < layers; l++) {
            printf("%5d", l + 1);
            for (int j = 0; j < heads; j++)
                printf(" %10.4g", v[(k * layers + l) * heads + j]);
            printf("\n");
        }
    }
}
