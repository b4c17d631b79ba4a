/* One SVG of a value per attention head: a layers x heads grid for each
 * kind, coloured on the charts' sequential scale (from 0) or a diverging one
 * (around 0), the value in each cell and in its tooltip (attn importance,
 * attn patch, attn counterfactual). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

/* The library's sequential scale (ColorBrewer YlGnBu, as at_viz.h's charts)
 * for the importance, ColorBrewer RdBu for the ablation: blue where removing
 * the head lowers the loss, red where it raises it. */
static const char *const seq_stops[9] = {"#ffffd9", "#edf8b1", "#c7e9b4", "#7fcdbb", "#41b6c4",
                                         "#1d91c0", "#225ea8", "#253494", "#081d58"};
static const char *const div_stops[9] = {"#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7",
                                         "#fddbc7", "#f4a582", "#d6604d", "#b2182b"};
#define INK "#222222"
#define MUTED "#666666"
#define FONT "'Noto Sans', 'DejaVu Sans', Arial, sans-serif"

static int hexval(char c)
{
    return c >= 'a' ? c - 'a' + 10 : c - '0';
}

/* t in [0, 1] through the nine stops, interpolated in RGB. */
static void colour(const char *const *stops, double t, char hex[8])
{
    t = t > 0 ? (t < 1 ? t : 1) : 0;
    double x = t * 8;
    int k = x >= 8 ? 7 : (int)x;
    double f = x - k;
    int c[3];
    for (int ch = 0; ch < 3; ch++) {
        const char *a = stops[k] + 1 + 2 * ch, *b = stops[k + 1] + 1 + 2 * ch;
        double va = hexval(a[0]) * 16 + hexval(a[1]), vb = hexval(b[0]) * 16 + hexval(b[1]);
        c[ch] = (int)lround(va + (vb - va) * f);
    }
    snprintf(hex, 8, "#%02x%02x%02x", c[0], c[1], c[2]);
}

static double value_of(const headmap *c, int k, int l, int h)
{
    return c->v[((size_t)k * c->layers + l) * c->heads + h];
}

/* The colour of v and whether its text should be white. */
static bool cell_colour(const headmap *c, double v, char hex[8])
{
    if (isnan(v)) {
        snprintf(hex, 8, "#eeeeee");
        return false;
    }
    double t = c->max > 0 ? v / c->max : 0;
    colour(c->diverging ? div_stops : seq_stops, c->diverging ? (t + 1) / 2 : t, hex);
    return c->diverging ? fabs(t) > 0.6 : t > 0.55;
}

enum { PAD = 16, CW = 56, CH = 24, YLW = 56 };

/* One kind's layers x heads grid at (x, y). */
static void panel(tbuf *b, const headmap *c, int k, double x, double y)
{
    const char *kind = at_viz_kind_name((at_attn_kind)k);
    tb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" font-weight=\"bold\">%s</text>\n",
              x + YLW, y - 8, kind);
    for (int l = 0; l < c->layers; l++) {
        double gy = y + l * CH;
        tb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">layer %d"
                     "</text>\n", x + YLW - 6, gy + CH / 2 + 4, l + 1);
        for (int h = 0; h < c->heads; h++) {
            double v = value_of(c, k, l, h), gx = x + YLW + h * CW;
            char hex[8], txt[32];
            bool dark = cell_colour(c, v, hex);
            snprintf(txt, sizeof txt, isnan(v) ? "-" : "%.3g", v);
            tb_printf(b, "<g><title>%s \xc2\xb7 layer %d \xc2\xb7 head %d&#10;%s %s</title>"
                         "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"%s\" "
                         "stroke=\"#ffffff\"/><text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" "
                         "text-anchor=\"middle\" fill=\"%s\">%s</text></g>\n",
                      kind, l + 1, h + 1,
                      c->what, isnan(v) ? c->missing : txt, gx, gy, CW, CH, hex,
                      gx + CW / 2.0, gy + CH / 2 + 3.5, dark ? "#ffffff" : INK, txt);
        }
    }
    double below = y + c->layers * CH;
    for (int h = 0; h < c->heads; h++)
        tb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\">%d"
                     "</text>\n", x + YLW + (h + 0.5) * CW, below + 12, h + 1);
    tb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\" "
                 "fill=\"%s\">head</text>\n", x + YLW + c->heads * CW / 2.0, below + 25, MUTED);
}

/* The colour bar at (x, y), h tall, with its lowest, middle and top values. */
static void legend(tbuf *b, const headmap *c, double x, double y, double h)
{
    const char *const *stops = c->diverging ? div_stops : seq_stops;
    tb_printf(b, "<defs><linearGradient id=\"scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">");
    for (int k = 0; k < 9; k++)
        tb_printf(b, "<stop offset=\"%g\" stop-color=\"%s\"/>", k / 8.0, stops[k]);
    tb_printf(b, "</linearGradient></defs>\n<text x=\"%.1f\" y=\"%.1f\" font-weight=\"bold\">"
                 "%s</text>\n", x, y - 8, c->legend);
    tb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"%.1f\" fill=\"url(#scale)\" "
                 "stroke=\"#999999\" stroke-width=\"0.5\"/>\n", x, y, h);
    double lo = c->diverging ? -c->max : 0;
    for (int k = 0; k < 3; k++) {
        double v = lo + (c->max - lo) * k / 2.0, ty = y + h - h * k / 2.0;
        tb_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#555555\"/>"
                     "<text x=\"%.1f\" y=\"%.1f\">%.3g</text>\n", x + 12, x + 15, ty, ty,
                  x + 18, ty + 4, v);
    }
}

static void draw(tbuf *b, const headmap *c)
{
    unsigned kinds = c->kinds ? c->kinds : 7;
    int shown = (kinds & 1) + (kinds >> 1 & 1) + (kinds >> 2 & 1);
    double pw = YLW + c->heads * CW + 30, gh = c->layers * CH;
    double lh = gh > 100 ? gh : 100;   /* the colour bar, beside the grids */
    double top = PAD + 15 + 20 + 16 + 22 + 14;
    double w = PAD + shown * pw + 80, h = top + (gh + 34 > lh + 10 ? gh + 34 : lh + 10) + PAD;
    size_t text = strlen(c->sub) > strlen(c->note) ? strlen(c->sub) : strlen(c->note);
    double tw = PAD * 2 + 6.0 * (double)text;   /* the subtitle and the note fit */
    w = tw > w ? tw : w;
    tb_printf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/"
                 "2000/svg\" version=\"1.1\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f "
                 "%.0f\" font-size=\"11\" fill=\"%s\" font-family=\"%s\">\n<title>", ceil(w),
              ceil(h), ceil(w), ceil(h), INK, FONT);
    tb_xml(b, c->title);
    tb_printf(b, "</title>\n<desc>libat %s: attn %s</desc>\n<rect width=\"100%%\" "
                 "height=\"100%%\" fill=\"#ffffff\"/>\n", at_version_string(), c->who);
    tb_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"15\" font-weight=\"bold\">", PAD, PAD + 15);
    tb_xml(b, c->title);
    tb_printf(b, "</text>\n<text x=\"%d\" y=\"%d\" fill=\"%s\">", PAD, PAD + 15 + 20, MUTED);
    tb_xml(b, c->sub);
    tb_printf(b, "</text>\n<text x=\"%d\" y=\"%d\" fill=\"%s\">", PAD, PAD + 15 + 36, MUTED);
    tb_xml(b, c->note);
    tb_printf(b, "</text>\n");
    for (int k = 0, at = 0; k < 3; k++)
        if (kinds >> k & 1)
            panel(b, c, k, PAD + at++ * pw, top);
    legend(b, c, PAD + shown * pw + 6, top, lh);
    tb_printf(b, "</svg>\n");
}

int headmap_write(const outdir *od, const headmap *c, const char *name)
{
    headmap m = *c;
    if (m.max <= 0)   /* the scale: the largest magnitude shown */
        for (size_t i = 0; i < (size_t)3 * m.layers * m.heads; i++)
            if (!isnan(m.v[i]))
                m.max = fmax(m.max, fabs(m.v[i]));
    tbuf b = {0};
    draw(&b, &m);
    char *path = outdir_path(od, name);
    int rc = ATTN_FAIL;
    if (b.oom || !path)
        attn_error("%s: out of memory for %s", m.who, name);
    else
        rc = report_write_file(m.who, path, b.p, b.len);
    free(path);
    free(b.p);
    return rc;
}


int headmap_save(const char *dir, const headmap *maps, const char *const *names, int n)
{
    outdir od;
    int rc = outdir_begin(&od, maps[0].who, dir);
    for (int i = 0; rc == ATTN_OK && i < n; i++)
        rc = headmap_write(&od, &maps[i], names[i]);
    if (rc == ATTN_OK)
        return outdir_commit(&od);
    outdir_abort(&od);
    return rc;
}

double *headmap_values(const float *v, int layers, int heads)
{
    size_t n = (size_t)3 * layers * heads;
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; d && i < n; i++)
        d[i] = v[i];
    return d;
}
