/* The charts of attn snapshots: small multiples of every head's normalised
 * entropy and final role's score against the training step (SVG), and a
 * timeline of the probe's attention (one self-contained HTML file, no
 * network: a step slider over a small heatmap per head, each with its role
 * at that step; timeline.html#step=N opens at the last snapshot <= N). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapchart.h"

#define INK "#222222"
#define MUTED "#666666"
#define GRID "#e4e4e4"
#define ENTROPY "#4e79a7"
#define SCORE "#e15759"
#define FONT "'Noto Sans', 'DejaVu Sans', Arial, sans-serif"
/* The timeline keeps at most this many attention weights (one byte each,
 * two hex digits in the file): beyond it, every m-th snapshot is shown. */
#define TIMELINE_MAX_CELLS 4000000

enum { PAD = 18, PW = 150, PH = 70, TITLE = 16, GAP_X = 14, GAP_Y = 40, ROWLAB = 100 };

static const char *role_name(int r) { return r >= 0 ? at_snapshot_role_name(r) : "-"; }

static double stat_at(const snap_data *d, const snap_block *b, int i, int h, int s)
{
    return b->stats[((size_t)i * d->heads + h) * AT_STAT_COUNT + s];
}

static double role_at(const snap_data *d, const snap_block *b, int i, int h, int r)
{
    return r < 0 || !b->roles ? NAN : b->roles[((size_t)i * d->heads + h) * AT_SNAPSHOT_ROLES + r];
}

/* ---------------------------------------------------------------- small multiples */

static double x_of(const snap_data *d, int i, double x0)
{
    double lo = (double)d->steps[0], hi = (double)d->steps[d->n - 1];
    return hi > lo ? x0 + ((double)d->steps[i] - lo) / (hi - lo) * PW : x0 + PW / 2.0;
}

/* A polyline of values in [0, 1] (NaN breaks it). */
static void series(tbuf *b, const snap_data *d, const snap_block *blk, int h, int what,
                   double x0, double y0, const char *colour, double width)
{
    bool open = false;
    for (int i = 0; i < d->n; i++) {
        double v = what < 0 ? role_at(d, blk, i, h, blk->role[h])
                            : stat_at(d, blk, i, h, what);
        if (!isfinite(v)) {
            if (open)
                tb_printf(b, "\"/>\n");
            open = false;
            continue;
        }
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        if (!open)
            tb_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\" "
                         "stroke-linejoin=\"round\" points=\"", colour, width);
        tb_printf(b, "%s%.1f,%.1f", open ? " " : "", x_of(d, i, x0), y0 + (1 - v) * PH);
        open = true;
    }
    if (open)
        tb_printf(b, "\"/>\n");
}

static void panel(tbuf *b, const snap_data *d, int k, int l, int h, double x0, double y0)
{
    const snap_block *blk = &d->blk[k][l];
    int r = blk->role ? blk->role[h] : -1;
    tb_printf(b, "<g>\n<title>%s layer %d head %d: %s", snap_kind(k), l + 1, h + 1,
              role_name(r));
    if (r >= 0)
        tb_printf(b, " (score %.3f) since step %" PRId64, role_at(d, blk, d->n - 1, h, r),
                  d->steps[blk->since[h]]);
    tb_printf(b, "; normalised entropy %.3f at step %" PRId64 ", %.3f at step %" PRId64
                 "</title>\n", stat_at(d, blk, 0, h, AT_STAT_ENTROPY_NORM), d->steps[0],
              stat_at(d, blk, d->n - 1, h, AT_STAT_ENTROPY_NORM), d->steps[d->n - 1]);
    tb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\"><tspan font-weight=\"bold\">"
                 "H%d</tspan> %s", x0, y0 - 5, h + 1, role_name(r));
    if (r >= 0)
        tb_printf(b, "<tspan fill=\"%s\"> since %" PRId64 "</tspan>", MUTED,
                  d->steps[blk->since[h]]);
    tb_printf(b, "</text>\n");
    tb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"#ffffff\" "
                 "stroke=\"#bbbbbb\"/>\n", x0, y0, PW, PH);
    tb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n", x0,
              y0 + PH / 2.0, x0 + PW, y0 + PH / 2.0, GRID);
    if (r >= 0) {
        double xs = x_of(d, blk->since[h], x0);
        tb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                     "stroke-dasharray=\"3,2\"/>\n", xs, y0, xs, y0 + PH, MUTED);
    }
    /* the role's score under the entropy, wider: a broad head's score is its
     * normalised entropy, and both lines stay visible */
    if (r >= 0)
        series(b, d, blk, h, -1, x0, y0, SCORE, 2.6);
    series(b, d, blk, h, AT_STAT_ENTROPY_NORM, x0, y0, ENTROPY, 1.4);
    if (h == 0)
        tb_printf(b, "<g font-size=\"9\" fill=\"%s\" text-anchor=\"end\"><text x=\"%.1f\" "
                     "y=\"%.1f\">1</text><text x=\"%.1f\" y=\"%.1f\">0.5</text><text "
                     "x=\"%.1f\" y=\"%.1f\">0</text></g>\n", MUTED, x0 - 3, y0 + 7, x0 - 3,
                  y0 + PH / 2.0 + 3, x0 - 3, y0 + PH);
    tb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" fill=\"%s\">%" PRId64 "</text>\n"
                 "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" fill=\"%s\" "
                 "text-anchor=\"end\">%" PRId64 "</text>\n</g>\n",
              x0, y0 + PH + 11, MUTED, d->steps[0], x0 + PW, y0 + PH + 11, MUTED,
              d->steps[d->n - 1]);
}

static void legend(tbuf *b, double x, double y)
{
    tb_printf(b, "<g font-size=\"11\">\n"
                 "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                 "stroke-width=\"2\"/><text x=\"%.1f\" y=\"%.1f\">normalised entropy</text>\n",
              x, y - 4, x + 22, y - 4, ENTROPY, x + 28, y);
    x += 150;
    tb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                 "stroke-width=\"2\"/><text x=\"%.1f\" y=\"%.1f\">score of the final role"
                 "</text>\n", x, y - 4, x + 22, y - 4, SCORE, x + 28, y);
    x += 170;
    tb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                 "stroke-dasharray=\"3,2\"/><text x=\"%.1f\" y=\"%.1f\">since: the role kept "
                 "from this step on</text>\n</g>\n", x + 11, y - 11, x + 11, y + 2, MUTED,
              x + 20, y);
}

void snapchart_svg(tbuf *b, const snap_data *d)
{
    int rows = d->kinds * d->layers;
    int w = 2 * PAD + ROWLAB + d->heads * PW + (d->heads - 1) * GAP_X;
    int top = PAD + 62, h = top + rows * (PH + GAP_Y) + PAD;
    if (w < 2 * PAD + 520)
        w = 2 * PAD + 520;
    tb_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                 "viewBox=\"0 0 %d %d\" font-family=\"%s\" fill=\"%s\">\n"
                 "<rect width=\"100%%\" height=\"100%%\" fill=\"#fafafa\"/>\n",
              w, h, w, h, FONT, INK);
    tb_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"16\" font-weight=\"bold\">Heads forming "
                 "during training</text>\n<text x=\"%d\" y=\"%d\" font-size=\"11\" "
                 "fill=\"%s\">", PAD, PAD + 8, PAD, PAD + 24, MUTED);
    tb_xml(b, d->path);
    tb_printf(b, " \xc2\xb7 %d snapshots, steps %" PRId64 " to %" PRId64 " \xc2\xb7 probe %d x %d",
              d->n, d->steps[0], d->steps[d->n - 1], d->B, d->S);
    if (d->T)
        tb_printf(b, " \xe2\x86\x92 %d", d->T);
    tb_printf(b, " \xc2\xb7 y from 0 to 1</text>\n");
    legend(b, PAD, PAD + 44);
    for (int k = 0; k < d->kinds; k++)
        for (int l = 0; l < d->layers; l++) {
            double y0 = top + (k * d->layers + l) * (PH + GAP_Y) + TITLE;
            tb_printf(b, "<text x=\"%d\" y=\"%.1f\" font-size=\"12\" font-weight=\"bold\">%s"
                         "</text>\n<text x=\"%d\" y=\"%.1f\" font-size=\"12\">layer %d</text>\n",
                      PAD, y0 + PH / 2.0 - 2, snap_kind(k), PAD, y0 + PH / 2.0 + 13, l + 1);
            for (int hd = 0; hd < d->heads; hd++)
                panel(b, d, k, l, hd, PAD + ROWLAB + hd * (PW + GAP_X), y0);
        }
    tb_printf(b, "</svg>\n");
}

/* ---------------------------------------------------------------- the timeline */

static const char style[] =
    "body{font-family:'Noto Sans','DejaVu Sans',Arial,sans-serif;color:#222;background:#fafafa;"
    "margin:18px}h1{font-size:18px;margin:0 0 4px}.sub{color:#666;font-size:12px}"
    "#bar{position:sticky;top:0;background:#fafafa;padding:8px 0;z-index:1;display:flex;"
    "align-items:center;gap:12px;font-size:13px}#slider{width:420px}"
    "#step{font-weight:bold;min-width:110px}#tip{color:#444;font-size:12px;min-height:16px}"
    "h2{font-size:14px;margin:14px 0 4px}.row{display:flex;gap:10px;align-items:flex-start;"
    "margin-bottom:6px}.lab{width:58px;font-size:12px;padding-top:4px}.head{font-size:11px;"
    "text-align:center}.head canvas{display:block;border:1px solid #bbb;image-rendering:"
    "pixelated;margin:2px auto}.kept{font-weight:bold}.moving{color:#999}"
    "button{font-size:13px}.scale{display:inline-block;width:120px;height:10px;vertical-align:"
    "middle;background:linear-gradient(90deg,#ffffd9,#c7e9b4,#41b6c4,#225ea8,#081d58)}";

static const char script[] =
    "(function(){var D=JSON.parse(document.getElementById('data').textContent);"
    "var stops=[[255,255,217],[237,248,177],[199,233,180],[127,205,187],[65,182,196],"
    "[29,145,192],[34,94,168],[37,52,148],[8,29,88]];"
    "function col(v){var x=v*8,k=Math.min(7,Math.floor(x)),f=x-k,a=stops[k],b=stops[k+1];"
    "return[0,1,2].map(function(c){return Math.round(a[c]+(b[c]-a[c])*f);});}"
    "var heads=[],main=document.getElementById('heads');"
    "D.kinds.forEach(function(K){var h2=document.createElement('h2');h2.textContent=K.name;"
    "main.appendChild(h2);K.layers.forEach(function(L,li){var row=document.createElement('div');"
    "row.className='row';var lab=document.createElement('div');lab.className='lab';"
    "lab.textContent='layer '+(li+1);row.appendChild(lab);var px=Math.max(3,Math.min(14,"
    "Math.floor(150/Math.max(L.lq,L.lk))));L.heads.forEach(function(H,hi){"
    "var box=document.createElement('div');box.className='head';var c=document.createElement"
    "('canvas');c.width=L.lk*px;c.height=L.lq*px;var cap=document.createElement('div');"
    "box.appendChild(document.createTextNode('H'+(hi+1)));box.appendChild(c);"
    "box.appendChild(cap);row.appendChild(box);var o={K:K,L:L,li:li,H:H,hi:hi,c:c,cap:cap,px:px};"
    "heads.push(o);c.addEventListener('mousemove',function(e){var r=c.getBoundingClientRect(),"
    "j=Math.floor((e.clientX-r.left)/px),i=Math.floor((e.clientY-r.top)/px);"
    "if(i<0||j<0||i>=L.lq||j>=L.lk)return;var s=+slider.value,v=parseInt(H.a[s].substr(2*"
    "(i*L.lk+j),2),16)/255;var qi=K.q[i],kj=K.k[j];document.getElementById('tip').textContent="
    "K.name+' layer '+(li+1)+' head '+(hi+1)+' \\u00b7 step '+D.steps[s]+' \\u00b7 query '+i+"
    "' (id '+qi+') \\u2192 key '+j+' (id '+kj+'): '+v.toFixed(2);});});"
    "main.appendChild(row);});});"
    "var slider=document.getElementById('slider');slider.max=D.steps.length-1;"
    "function draw(){var s=+slider.value;document.getElementById('step').textContent='step '+"
    "D.steps[s]+' ('+(s+1)+' of '+D.steps.length+')';heads.forEach(function(o){var L=o.L,"
    "g=o.c.getContext('2d'),hex=o.H.a[s];for(var i=0;i<L.lq;i++)for(var j=0;j<L.lk;j++){"
    "var rgb=col(parseInt(hex.substr(2*(i*L.lk+j),2),16)/255);g.fillStyle='rgb('+rgb.join(',')"
    "+')';g.fillRect(j*o.px,i*o.px,o.px,o.px);}var r=o.H.best[s],sc=o.H.score[s];"
    "o.cap.textContent=(r<0?'-':D.roles[r])+(sc===null?'':' '+sc.toFixed(2));"
    "o.cap.className=r>=0&&r===o.H.role&&D.steps[s]>=o.H.since?'kept':'moving';});}"
    "slider.addEventListener('input',draw);var timer=null,btn=document.getElementById('play');"
    "btn.addEventListener('click',function(){if(timer){clearInterval(timer);timer=null;"
    "btn.textContent='play';return;}btn.textContent='pause';if(+slider.value>=+slider.max)"
    "slider.value=0;timer=setInterval(function(){if(+slider.value>=+slider.max){"
    "clearInterval(timer);timer=null;btn.textContent='play';return;}slider.value=+slider.value+1;"
    "draw();},400);});var at=/step=(\\d+)/.exec(location.hash),pick=D.steps.length-1;"
    "if(at){pick=0;D.steps.forEach(function(v,i){if(v<=+at[1])pick=i;});}"
    "slider.value=pick;draw();})();";

static void ids(tbuf *b, const int64_t *v, int n)
{
    tb_printf(b, "[");
    for (int i = 0; i < n; i++)
        tb_printf(b, "%s%" PRId64, i ? "," : "", v[i]);
    tb_printf(b, "]");
}

/* Head h of block blk: its role at each shown snapshot, the score of that
 * role, its final role and since, and its attention of probe row 0. */
static void head_json(tbuf *b, const snap_data *d, const snap_block *blk, int h, int every)
{
    int r = blk->role ? blk->role[h] : -1;
    tb_printf(b, "{\"role\":%d,\"since\":%" PRId64 ",\"best\":[", r,
              r >= 0 ? d->steps[blk->since[h]] : (int64_t)-1);
    for (int i = 0, c = 0; i < d->n; i++)
        if (i % every == 0 || i == d->n - 1)
            tb_printf(b, "%s%d", c++ ? "," : "", snap_best(d, blk, i, h));
    tb_printf(b, "],\"score\":[");
    for (int i = 0, c = 0; i < d->n; i++)
        if (i % every == 0 || i == d->n - 1) {
            double v = role_at(d, blk, i, h, snap_best(d, blk, i, h));
            if (isfinite(v))
                tb_printf(b, "%s%.3f", c++ ? "," : "", v);
            else
                tb_printf(b, "%snull", c++ ? "," : "");
        }
    tb_printf(b, "],\"a\":[");
    size_t plane = (size_t)blk->lq * blk->lk;
    for (int i = 0, c = 0; i < d->n; i++) {
        if (i % every != 0 && i != d->n - 1)
            continue;
        const float *a = blk->attn + (((size_t)i * d->B) * d->heads + h) * plane;
        tb_printf(b, "%s\"", c++ ? "," : "");
        for (size_t j = 0; j < plane; j++) {
            float v = isfinite(a[j]) ? a[j] : 0.0f;
            tb_printf(b, "%02x", (unsigned)lroundf((v < 0 ? 0 : v > 1 ? 1 : v) * 255.0f));
        }
        tb_printf(b, "\"");
    }
    tb_printf(b, "]}");
}

static void data_json(tbuf *b, const snap_data *d, int every)
{
    tb_printf(b, "{\"steps\":[");
    for (int i = 0, c = 0; i < d->n; i++)
        if (i % every == 0 || i == d->n - 1)
            tb_printf(b, "%s%" PRId64, c++ ? "," : "", d->steps[i]);
    tb_printf(b, "],\"roles\":[");
    for (int r = 0; r < AT_SNAPSHOT_ROLES; r++)
        tb_printf(b, "%s\"%s\"", r ? "," : "", at_snapshot_role_name(r));
    tb_printf(b, "],\"kinds\":[");
    for (int k = 0; k < d->kinds; k++) {
        const int64_t *q = k == AT_ATTN_ENC_SELF ? d->src : d->tgt;
        const int64_t *key = k == AT_ATTN_DEC_SELF ? d->tgt : d->src;
        tb_printf(b, "%s{\"name\":\"%s\",\"q\":", k ? "," : "", snap_kind(k));
        ids(b, q, k == AT_ATTN_ENC_SELF ? d->S : d->T);
        tb_printf(b, ",\"k\":");
        ids(b, key, k == AT_ATTN_DEC_SELF ? d->T : d->S);
        tb_printf(b, ",\"layers\":[");
        for (int l = 0; l < d->layers; l++) {
            const snap_block *blk = &d->blk[k][l];
            tb_printf(b, "%s{\"lq\":%d,\"lk\":%d,\"heads\":[", l ? "," : "", blk->lq, blk->lk);
            for (int h = 0; h < d->heads; h++) {
                tb_printf(b, "%s", h ? "," : "");
                head_json(b, d, blk, h, every);
            }
            tb_printf(b, "]}");
        }
        tb_printf(b, "]}");
    }
    tb_printf(b, "]}");
}

/* The first ids of a probe row, for the subtitle. */
static void row_ids(tbuf *b, const int64_t *v, int n)
{
    for (int i = 0; i < n && i < 24; i++)
        tb_printf(b, " %" PRId64, v[i]);
    if (n > 24)
        tb_printf(b, " \xe2\x80\xa6");
}

/* Every m-th snapshot (and the last), so that the weights stay bounded. */
static int stride_of(const snap_data *d)
{
    size_t per = 0;
    for (int k = 0; k < d->kinds; k++)
        per += (size_t)d->layers * d->heads * d->blk[k][0].lq * d->blk[k][0].lk;
    size_t most = per ? TIMELINE_MAX_CELLS / per : 1;
    if (most < 2)
        most = 2;
    return d->n <= (int)most ? 1 : (int)((d->n + most - 2) / (most - 1));
}

void snapchart_html(tbuf *b, const snap_data *d)
{
    int every = stride_of(d);
    tb_printf(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                 "<title>Heads forming during training</title>\n<style>%s</style>\n</head>\n"
                 "<body>\n<h1>Heads forming during training</h1>\n<div class=\"sub\">", style);
    tb_xml(b, d->path);
    tb_printf(b, " \xc2\xb7 %d snapshots, steps %" PRId64 " to %" PRId64 " \xc2\xb7 the "
                 "attention of the probe's first row, src", d->n, d->steps[0],
              d->steps[d->n - 1]);
    row_ids(b, d->src, d->S);
    if (d->T) {
        tb_printf(b, ", tgt");
        row_ids(b, d->tgt, d->T);
    }
    tb_printf(b, " \xc2\xb7 under each head its best role at that step and its score, in "
                 "bold once it is the role the head keeps to the end");
    if (every > 1)
        tb_printf(b, " \xc2\xb7 one snapshot in %d shown (and the last), to bound the "
                     "file's size", every);
    tb_printf(b, "</div>\n<div id=\"bar\"><button id=\"play\">play</button><input id=\"slider\" "
                 "type=\"range\" min=\"0\" value=\"0\" step=\"1\"><span id=\"step\"></span>"
                 "<span>0 <span class=\"scale\"></span> 1</span></div>\n<div id=\"tip\">"
                 "</div>\n<div id=\"heads\"></div>\n<script type=\"application/json\" "
                 "id=\"data\">");
    data_json(b, d, every);
    tb_printf(b, "</script>\n<script>%s</script>\n<noscript>The timeline needs JavaScript; "
                 "snapshots.svg shows the same heads without it.</noscript>\n</body>\n</html>\n",
              script);
}
