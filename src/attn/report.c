/* The attention report: every chart of the last pass in a folder, with the
 * explorer as its index.html. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "report.h"

void report_defaults(report_opts *o)
{
    memset(o, 0, sizeof *o);
}

/* mkdir -p */
static int make_dirs(const char *dir)
{
    size_t n = strlen(dir);
    char *p = malloc(n + 1);
    if (!p) {
        attn_error("out of memory");
        return ATTN_FAIL;
    }
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        struct stat st;
        if (mkdir(p, 0777) != 0 && !(errno == EEXIST && stat(p, &st) == 0 && S_ISDIR(st.st_mode))) {
            if (errno == EEXIST)
                attn_error("'%s' exists and is not a directory", p);
            else
                attn_error("cannot create directory '%s': %s", p, strerror(errno));
            free(p);
            return ATTN_FAIL;
        }
        p[i] = c;
    }
    free(p);
    return ATTN_OK;
}

int report_write_file(const char *path, const char *data, size_t len)
{
    size_t n = strlen(path);
    char *tmp = malloc(n + 16);
    if (!tmp) {
        attn_error("out of memory");
        return ATTN_FAIL;
    }
    snprintf(tmp, n + 16, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    FILE *f = NULL;
    const char *step = NULL;
    if (fd < 0)
        step = "create a temporary file for";
    else if (fchmod(fd, 0644) != 0 || !(f = fdopen(fd, "wb")))
        step = "open a temporary file for";
    else if (fwrite(data, 1, len, f) != len || fflush(f) != 0)
        step = "write";
    if (f) {
        if (fclose(f) != 0 && !step)
            step = "write";
    } else if (fd >= 0) {
        close(fd);
    }
    if (!step && rename(tmp, path) != 0)
        step = "rename a temporary file to";
    if (step) {
        attn_error("cannot %s '%s': %s", step, path, strerror(errno));
        if (fd >= 0)
            unlink(tmp);
        free(tmp);
        return ATTN_FAIL;
    }
    free(tmp);
    return ATTN_OK;
}

typedef struct job {
    at_model *m;
    const at_viz_options *o;
    const char *dir;
    int files;
} job;

static int save(job *j, const char *name, at_viz_chart chart, at_viz_format fmt,
                at_attn_kind kind, int layer, int head)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s%s", j->dir, name, at_viz_format_ext(fmt)) >=
        (int)sizeof path) {
        attn_error("the output path '%s/%s' is too long", j->dir, name);
        return ATTN_FAIL;
    }
    if (at_viz_save(path, j->m, chart, fmt, kind, layer, head, j->o) != AT_OK) {
        attn_error("cannot write '%s': %s", path, at_errmsg(j->m));
        return ATTN_FAIL;
    }
    j->files++;
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
    if (at_viz_options_set_font(o, ro->font) != AT_OK) {
        attn_error("--font: %s", at_errmsg(NULL));
        at_viz_options_free(o);
        return ATTN_USAGE;
    }
    int rc = make_dirs(dir);
    job j = {m, o, dir, 0};
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
    if (nfiles)
        *nfiles = j.files;
    if (rc == ATTN_OK && !ro->quiet)
        printf("wrote %d chart files to %s/: open %s/index.html in a browser (it works offline)\n",
               j.files, dir, dir);
    return rc;
}
