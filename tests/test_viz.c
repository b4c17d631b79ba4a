/* Charts: every chart in every format is well-formed (SVG as XML, Vega-Lite
 * and the explorer's data as JSON), labels are escaped and repeated tokens
 * stay apart, colours agree across formats, bad input is refused without a
 * partial file, and a large chart is fast. (tests/viz/ checks the files in a
 * real XML parser, vega-lite and Chromium.) */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "at_viz.h"
#include "suites.h"
#include "testutil.h"

/* ---------------------------------------------------------------- helpers */

/* The chart as a string (malloc'd), or NULL with *st set. */
static char *chart(at_model *m, at_viz_chart c, at_viz_format f, at_attn_kind kind, int layer,
                   int head, const at_viz_options *o, at_status *st)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(mf);
    *st = at_viz_write(mf, m, c, f, kind, layer, head, o);
    fclose(mf);
    if (*st != AT_OK) {
        ck_assert_msg(len == 0, "a refused chart wrote %zu bytes", len);
        free(buf);
        return NULL;
    }
    return buf;
}

static char *chart_ok(at_model *m, at_viz_chart c, at_viz_format f, at_attn_kind kind,
                      int layer, int head, const at_viz_options *o)
{
    at_status st;
    char *s = chart(m, c, f, kind, layer, head, o, &st);
    ck_assert_msg(st == AT_OK, "%s as format %d: %s", at_viz_chart_name(c), (int)f,
                  at_errmsg(m));
    return s;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    size_t k = strlen(needle);
    for (const char *p = strstr(hay, needle); p; p = strstr(p + k, needle))
        n++;
    return n;
}

static bool valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
        if (!n)
            return false;
        for (int i = 1; i < n; i++)
            if ((p[i] & 0xc0) != 0x80)
                return false;
        p += n;
    }
    return true;
}

/* A small XML well-formedness check: balanced elements, quoted attributes,
 * no stray '<' or '&', only the five entities and numeric references.
 * Returns NULL or what is wrong. */
static const char *xml_check(const char *s, char *why, size_t len)
{
    const char *stack[256];
    size_t depth = 0, root = 0;
    const char *p = s;
    while (*p) {
        if (*p == '&') {
            const char *e = strchr(p, ';');
            bool ok = e && e - p < 12 &&
                      (!strncmp(p, "&amp;", 5) || !strncmp(p, "&lt;", 4) || !strncmp(p, "&gt;", 4) ||
                       !strncmp(p, "&quot;", 6) || !strncmp(p, "&apos;", 6) ||
                       (p[1] == '#' && strspn(p + 2, "0123456789") == (size_t)(e - p - 2)));
            if (!ok) {
                snprintf(why, len, "bad entity at byte %td: %.20s", p - s, p);
                return why;
            }
            p = e + 1;
            continue;
        }
        if (*p != '<') {
            if (*p == '>') {
                snprintf(why, len, "stray '>' at byte %td", p - s);
                return why;
            }
            p++;
            continue;
        }
        if (!strncmp(p, "<?", 2) || !strncmp(p, "<!--", 4)) {
            const char *e = strstr(p, !strncmp(p, "<?", 2) ? "?>" : "-->");
            if (!e) {
                snprintf(why, len, "unclosed declaration");
                return why;
            }
            p = e + 2;
            continue;
        }
        bool close = p[1] == '/';
        const char *name = p + (close ? 2 : 1);
        size_t nl = strcspn(name, " \t\n/>");
        if (nl == 0) {
            snprintf(why, len, "empty tag name at byte %td", p - s);
            return why;
        }
        const char *q = name + nl;
        /* attributes: name="value" with no '<' inside the value */
        for (;;) {
            while (*q == ' ' || *q == '\n' || *q == '\t')
                q++;
            if (*q == '>' || (*q == '/' && q[1] == '>') || !*q)
                break;
            size_t an = strcspn(q, "=> \n");
            if (an == 0 || q[an] != '=' || (q[an + 1] != '"' && q[an + 1] != '\'')) {
                snprintf(why, len, "bad attribute at byte %td: %.30s", q - s, q);
                return why;
            }
            char quote = q[an + 1];
            const char *v = q + an + 2, *ve = strchr(v, quote);
            if (!ve || memchr(v, '<', (size_t)(ve - v))) {
                snprintf(why, len, "bad attribute value at byte %td", v - s);
                return why;
            }
            for (const char *a = v; a < ve; a++)
                if (*a == '&' && strncmp(a, "&amp;", 5) && strncmp(a, "&lt;", 4) &&
                    strncmp(a, "&gt;", 4) && strncmp(a, "&quot;", 6) && strncmp(a, "&#", 2)) {
                    snprintf(why, len, "bad entity in attribute at byte %td", a - s);
                    return why;
                }
            q = ve + 1;
        }
        if (!*q) {
            snprintf(why, len, "unclosed tag at byte %td", p - s);
            return why;
        }
        bool empty = *q == '/';
        if (close) {
            if (depth == 0 || strncmp(stack[depth - 1], name, nl) ||
                strcspn(stack[depth - 1], " \t\n/>") != nl) {
                snprintf(why, len, "mismatched </%.*s> at byte %td", (int)nl, name, p - s);
                return why;
            }
            depth--;
        } else if (!empty) {
            if (depth == 256) {
                snprintf(why, len, "nested too deep");
                return why;
            }
            if (depth == 0)
                root++;
            stack[depth++] = name;
        } else if (depth == 0) {
            root++;
        }
        p = q + (empty ? 2 : 1);
    }
    if (depth != 0) {
        snprintf(why, len, "%zu unclosed elements", depth);
        return why;
    }
    if (root != 1) {
        snprintf(why, len, "%zu root elements", root);
        return why;
    }
    return NULL;
}

static void assert_xml(const char *svg, const char *what)
{
    char why[200];
    const char *bad = xml_check(svg, why, sizeof why);
    ck_assert_msg(!bad, "%s is not well-formed XML: %s", what, bad ? bad : "");
    ck_assert_msg(valid_utf8(svg), "%s is not valid UTF-8", what);
    ck_assert_msg(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""), "%s: no svg root", what);
}

static cJSON *assert_json(const char *text, const char *what)
{
    cJSON *j = cJSON_Parse(text);
    ck_assert_msg(j != NULL, "%s does not parse as JSON near: %.60s", what,
                  cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "?");
    ck_assert_msg(valid_utf8(text), "%s is not valid UTF-8", what);
    return j;
}

/* The data of the explorer: the JSON inside <script id="at-data">. */
static cJSON *explorer_data(const char *html)
{
    const char *tag = "<script type=\"application/json\" id=\"at-data\">";
    const char *a = strstr(html, tag);
    ck_assert_ptr_nonnull(a);
    a += strlen(tag);
    const char *e = strstr(a, "</script>");
    ck_assert_ptr_nonnull(e);
    char *json = strndup(a, (size_t)(e - a));
    cJSON *j = assert_json(json, "the explorer's data");
    free(json);
    return j;
}

/* A model after a forward pass: batch 2, source 6 (row 1 padded to 4), target 5. */
static at_model *pass_model(void)
{
    at_model *m = small_model(11);
    const int32_t src[12] = {1, 2, 3, 4, 5, 6, 1, 3, 3, 2, 0, 0};
    const int32_t tgt[10] = {1, 2, 3, 4, 5, 1, 3, 2, 0, 0};
    ck_assert_int_eq(at_forward(m, src, tgt, 2, 6, 5, 0), AT_OK);
    return m;
}

static const at_viz_chart all_charts[] = {AT_VIZ_HEATMAP, AT_VIZ_HEADS, AT_VIZ_LAYERS,
                                          AT_VIZ_MODEL, AT_VIZ_STATS, AT_VIZ_MASKS};

/* ---------------------------------------------------------------- tests */

START_TEST(every_chart_every_format)
{
    at_model *m = pass_model();
    at_viz_options *o;
    ck_assert_int_eq(at_viz_options_create(&o), AT_OK);
    for (int row = 0; row < 2; row++) {
        ck_assert_int_eq(at_viz_options_set(o, AT_VIZ_ROW, row), AT_OK);
        for (int k = 0; k < 3; k++)
            for (size_t c = 0; c < sizeof all_charts / sizeof *all_charts; c++) {
                at_viz_chart ch = all_charts[c];
                bool kinds = ch <= AT_VIZ_MODEL;
                if (!kinds && k > 0)
                    continue;
                at_attn_kind kind = kinds ? (at_attn_kind)k : 0;
                int layer = ch == AT_VIZ_HEATMAP || ch == AT_VIZ_HEADS ? 1 : 0;
                int head = ch == AT_VIZ_HEATMAP || ch == AT_VIZ_LAYERS ? 1 : 0;
                char what[96];
                snprintf(what, sizeof what, "%s/%s row %d", at_viz_chart_name(ch),
                         at_viz_kind_name(kind), row);
                char *svg = chart_ok(m, ch, AT_VIZ_SVG, kind, layer, head, o);
                assert_xml(svg, what);
                free(svg);
                char *vl = chart_ok(m, ch, AT_VIZ_VEGALITE, kind, layer, head, o);
                cJSON *j = assert_json(vl, what);
                ck_assert_str_eq(cJSON_GetObjectItem(j, "$schema")->valuestring,
                                 "https://vega.github.io/schema/vega-lite/v5.json");
                cJSON_Delete(j);
                free(vl);
                char *html = chart_ok(m, ch, AT_VIZ_HTML, kind, layer, head, o);
                ck_assert(!strncmp(html, "<!DOCTYPE html>", 15));
                ck_assert(strstr(html, "<svg xmlns="));
                free(html);
            }
        char *ex = chart_ok(m, AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_CROSS, 1, 1, o);
        ck_assert(!strncmp(ex, "<!DOCTYPE html>", 15));
        cJSON *d = explorer_data(ex);
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(d, "kinds")), 3);
        cJSON_Delete(d);
        free(ex);
    }
    at_viz_options_free(o);
    at_model_free(m);
}
END_TEST

/* The heatmap's cells are the valid region of the row, and their weights in
 * the explorer and the Vega-Lite data are the view's. */
START_TEST(cells_and_weights)
{
    at_model *m = pass_model();
    at_viz_options *o;
    at_viz_options_create(&o);
    at_viz_options_set(o, AT_VIZ_ROW, 1);   /* source 4 tokens, target 3 */
    char *svg = chart_ok(m, AT_VIZ_HEATMAP, AT_VIZ_SVG, AT_ATTN_CROSS, 1, 0, o);
    ck_assert_int_eq(count(svg, "class=\"cell\""), 3 * 4);
    free(svg);
    at_viz_options_set(o, AT_VIZ_TRIM, 0);
    svg = chart_ok(m, AT_VIZ_HEATMAP, AT_VIZ_SVG, AT_ATTN_CROSS, 1, 0, o);
    ck_assert_int_eq(count(svg, "class=\"cell\""), 5 * 6);
    free(svg);
    at_viz_options_set(o, AT_VIZ_TRIM, 1);

    at_view v;
    ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, 1, &v), AT_OK);
    char *vl = chart_ok(m, AT_VIZ_HEATMAP, AT_VIZ_VEGALITE, AT_ATTN_CROSS, 1, 0, o);
    cJSON *j = assert_json(vl, "heatmap.vl.json");
    cJSON *rows = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "data"), "values");
    ck_assert_int_eq(cJSON_GetArraySize(rows), 3);
    for (int i = 0; i < 3; i++) {
        cJSON *r = cJSON_GetArrayItem(rows, i);
        ck_assert_int_eq(cJSON_GetObjectItem(r, "q")->valueint, i);
        ck_assert_int_eq(cJSON_GetObjectItem(r, "layer")->valueint, 2);   /* 1-based */
        ck_assert_int_eq(cJSON_GetObjectItem(r, "head")->valueint, 1);
        cJSON *w = cJSON_GetObjectItem(r, "w");
        ck_assert_int_eq(cJSON_GetArraySize(w), 4);
        for (int k = 0; k < 4; k++) {
            float want = v.data[1 * v.stride[0] + i * v.stride[2] + k * v.stride[3]];
            ck_assert_double_eq_tol(cJSON_GetArrayItem(w, k)->valuedouble, want, 5.1e-5);
        }
    }
    cJSON_Delete(j);
    free(vl);

    /* the explorer: base64 of uint16, (layer, head, query, key) */
    char *ex = chart_ok(m, AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_CROSS, 0, 0, o);
    cJSON *d = explorer_data(ex);
    cJSON *cross = cJSON_GetArrayItem(cJSON_GetObjectItem(d, "kinds"), 2);
    ck_assert_str_eq(cJSON_GetObjectItem(cross, "name")->valuestring, "cross");
    ck_assert_int_eq(cJSON_GetObjectItem(cross, "nq")->valueint, 3);
    ck_assert_int_eq(cJSON_GetObjectItem(cross, "nk")->valueint, 4);
    const char *b64 = cJSON_GetObjectItem(cross, "weights")->valuestring;
    size_t n = strlen(b64);
    ck_assert_uint_eq(n, (2 * 2 * 3 * 4 * 2 + 2) / 3 * 4);
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char *bytes = malloc(n);
    size_t nb = 0;
    for (size_t i = 0; i + 3 < n; i += 4) {
        uint32_t x = 0;
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            const char *c = b64[i + k] == '=' ? NULL : strchr(al, b64[i + k]);
            pad += !c;
            x = x << 6 | (c ? (uint32_t)(c - al) : 0);
        }
        bytes[nb++] = (unsigned char)(x >> 16);
        if (pad < 2)
            bytes[nb++] = (unsigned char)(x >> 8);
        if (pad < 1)
            bytes[nb++] = (unsigned char)x;
    }
    ck_assert_uint_eq(nb, 2 * 2 * 3 * 4 * 2);
    for (int l = 0; l < 2; l++) {
        ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, l, &v), AT_OK);
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < 3; i++)
                for (int k = 0; k < 4; k++) {
                    size_t at = (((size_t)l * 2 + h) * 3 + i) * 4 + k;
                    double got = (bytes[2 * at] | bytes[2 * at + 1] << 8) / 65535.0;
                    float want = v.data[v.stride[0] + h * v.stride[1] + i * v.stride[2] +
                                        k * v.stride[3]];
                    ck_assert_double_eq_tol(got, want, 1.0 / 65535);
                }
    }
    free(bytes);
    cJSON_Delete(d);
    free(ex);
    at_viz_options_free(o);
    at_model_free(m);
}
END_TEST

/* Labels with markup characters, quotes, CJK, control characters and bad
 * UTF-8 come out escaped and valid in every format; repeated tokens stay
 * separate rows and columns. */
START_TEST(labels_escaped_and_repeated)
{
    at_model *m = pass_model();
    at_viz_options *o;
    at_viz_options_create(&o);
    const char *src[6] = {"<b>&amp;", "\"q\" 'x'", "猫が座った", "a\tb\x01", "bad\xff\xfe", "猫"};
    const char *tgt[5] = {"の", "の", "</script>", "の", "x"};
    ck_assert_int_eq(at_viz_options_set_labels(o, AT_VIZ_SRC, src, 6), AT_OK);
    ck_assert_int_eq(at_viz_options_set_labels(o, AT_VIZ_TGT, tgt, 5), AT_OK);
    ck_assert_int_eq(at_viz_options_set_caption(o, "<i>caption</i> & \"more\"\x02"), AT_OK);

    char *svg = chart_ok(m, AT_VIZ_HEATMAP, AT_VIZ_SVG, AT_ATTN_CROSS, 0, 1, o);
    assert_xml(svg, "heatmap with hard labels");
    ck_assert(!strstr(svg, "<b>") && !strstr(svg, "</script>") && !strstr(svg, "<i>"));
    ck_assert(strstr(svg, "&lt;b&gt;&amp;amp;"));
    ck_assert(strstr(svg, "&quot;q&quot; &#39;x&#39;"));
    ck_assert(strstr(svg, "猫が座った"));
    ck_assert(strstr(svg, "bad\xef\xbf\xbd\xef\xbf\xbd"));   /* U+FFFD for each bad byte */
    ck_assert(strstr(svg, "&lt;i&gt;caption&lt;/i&gt; &amp; &quot;more&quot; <"));
    /* 5 target rows, three of them "の": each its own row label */
    ck_assert_int_eq(count(svg, ">の</text>"), 3);
    ck_assert_int_eq(count(svg, "class=\"cell\""), 5 * 6);
    ck_assert_int_eq(count(svg, "query #1 の&#10;"), 6);
    ck_assert_int_eq(count(svg, "query #2 の&#10;"), 6);
    free(svg);

    char *vl = chart_ok(m, AT_VIZ_HEATMAP, AT_VIZ_VEGALITE, AT_ATTN_CROSS, 0, 1, o);
    ck_assert(!strstr(vl, "</script>") && !strstr(vl, "<b>"));
    cJSON *j = assert_json(vl, "heatmap.vl.json with hard labels");
    cJSON *params = cJSON_GetObjectItem(j, "params");
    cJSON *rows = cJSON_GetObjectItem(cJSON_GetArrayItem(params, 0), "value");
    cJSON *cols = cJSON_GetObjectItem(cJSON_GetArrayItem(params, 1), "value");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(params, 0), "name")->valuestring,
                     "rowTokens");
    ck_assert_int_eq(cJSON_GetArraySize(rows), 5);
    ck_assert_int_eq(cJSON_GetArraySize(cols), 6);
    ck_assert_str_eq(cJSON_GetArrayItem(rows, 2)->valuestring, "</script>");
    ck_assert_str_eq(cJSON_GetArrayItem(rows, 0)->valuestring, "の");
    ck_assert_str_eq(cJSON_GetArrayItem(rows, 1)->valuestring, "の");
    ck_assert_str_eq(cJSON_GetArrayItem(cols, 0)->valuestring, "<b>&amp;");
    ck_assert_str_eq(cJSON_GetArrayItem(cols, 1)->valuestring, "\"q\" 'x'");
    ck_assert_str_eq(cJSON_GetArrayItem(cols, 3)->valuestring, "a b ");
    ck_assert_str_eq(cJSON_GetArrayItem(cols, 4)->valuestring, "bad\xef\xbf\xbd\xef\xbf\xbd");
    /* positions, not tokens, are the fields: three "の" rows stay three */
    cJSON *enc = cJSON_GetObjectItem(j, "encoding");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(enc, "y"), "field")->valuestring, "q");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(enc, "x"), "field")->valuestring, "k");
    cJSON_Delete(j);
    free(vl);

    char *ex = chart_ok(m, AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_CROSS, 0, 0, o);
    /* the only "</script>" are the two closing tags */
    ck_assert_int_eq(count(ex, "</script>"), 2);
    ck_assert(!strstr(ex, "<b>&amp;"));
    cJSON *d = explorer_data(ex);
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(d, "tgt"), 2)->valuestring,
                     "</script>");
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(d, "src"), 0)->valuestring,
                     "<b>&amp;");
    ck_assert_str_eq(cJSON_GetObjectItem(d, "caption")->valuestring,
                     "<i>caption</i> & \"more\" ");
    cJSON_Delete(d);
    free(ex);

    /* long labels are shortened on the axes, whole in tooltips */
    const char *lng[1] = {"abcdefghijklmnopqrstuvwxyz"};
    at_viz_options_set_labels(o, AT_VIZ_SRC, lng, 1);
    svg = chart_ok(m, AT_VIZ_HEATMAP, AT_VIZ_SVG, AT_ATTN_ENC_SELF, 0, 0, o);
    ck_assert(strstr(svg, ">abcdefghijklmnop\xe2\x80\xa6</text>"));
    ck_assert(strstr(svg, "abcdefghijklmnopqrstuvwxyz&#10;"));
    /* positions without a label show their number */
    ck_assert(strstr(svg, ">#2</text>"));
    free(svg);
    /* ids where no label is given */
    const int32_t ids[6] = {10, 11, 12, 13, 14, 15};
    at_viz_options_set_labels(o, AT_VIZ_SRC, NULL, 0);
    ck_assert_int_eq(at_viz_options_set_ids(o, AT_VIZ_SRC, ids, 6), AT_OK);
    svg = chart_ok(m, AT_VIZ_HEATMAP, AT_VIZ_SVG, AT_ATTN_ENC_SELF, 0, 0, o);
    ck_assert(strstr(svg, ">13</text>") && !strstr(svg, ">#2</text>"));
    free(svg);
    at_viz_options_free(o);
    at_model_free(m);
}
END_TEST

/* One colour scale in every format. */
START_TEST(colours_agree)
{
    at_model *m = pass_model();
    char *svg = chart_ok(m, AT_VIZ_HEATMAP, AT_VIZ_SVG, AT_ATTN_ENC_SELF, 0, 0, NULL);
    char *vl = chart_ok(m, AT_VIZ_HEATMAP, AT_VIZ_VEGALITE, AT_ATTN_ENC_SELF, 0, 0, NULL);
    char *ex = chart_ok(m, AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_ENC_SELF, 0, 0, NULL);
    static const char *const stops[9] = {"#ffffd9", "#edf8b1", "#c7e9b4", "#7fcdbb", "#41b6c4",
                                         "#1d91c0", "#225ea8", "#253494", "#081d58"};
    /* the largest weight of the head takes the darkest colour */
    ck_assert(strstr(svg, "fill=\"#081d58\""));
    cJSON *j = assert_json(vl, "heatmap.vl.json");
    cJSON *scale = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "encoding"), "color"), "scale");
    cJSON *range = cJSON_GetObjectItem(scale, "range");
    ck_assert_str_eq(cJSON_GetObjectItem(scale, "interpolate")->valuestring, "rgb");
    cJSON *d = explorer_data(ex);
    cJSON *pal = cJSON_GetObjectItem(d, "palette");
    for (int k = 0; k < 9; k++) {
        ck_assert_str_eq(cJSON_GetArrayItem(range, k)->valuestring, stops[k]);
        ck_assert_str_eq(cJSON_GetArrayItem(pal, k)->valuestring, stops[k]);
        char stop[40];
        snprintf(stop, sizeof stop, "stop-color=\"%s\"", stops[k]);
        ck_assert(strstr(svg, stop));
    }
    cJSON_Delete(j);
    cJSON_Delete(d);
    free(svg);
    free(vl);
    free(ex);
    at_model_free(m);
}
END_TEST

/* After decoding the charts show the decoded sequence; after an
 * encoder-only pass only encoder charts exist. */
START_TEST(decoded_and_encoder_only)
{
    at_model *m = small_model(12);
    const int32_t src[5] = {1, 2, 3, 4, 5};
    int32_t out[6];
    int out_len;
    ck_assert_int_eq(at_greedy_decode(m, src, 1, 5, 0, 6, 1, -1, out, &out_len), AT_OK);
    char *svg = chart_ok(m, AT_VIZ_HEATMAP, AT_VIZ_SVG, AT_ATTN_CROSS, 1, 1, NULL);
    ck_assert_int_eq(count(svg, "class=\"cell\""), (out_len - 1) * 5);
    free(svg);
    char *masks = chart_ok(m, AT_VIZ_MASKS, AT_VIZ_SVG, 0, 0, 0, NULL);
    assert_xml(masks, "masks after decoding");
    free(masks);

    ck_assert_int_eq(at_forward(m, src, NULL, 1, 5, 0, 0), AT_OK);
    at_status st;
    ck_assert_ptr_null(chart(m, AT_VIZ_HEATMAP, AT_VIZ_SVG, AT_ATTN_CROSS, 0, 0, NULL, &st));
    ck_assert_int_eq(st, AT_E_STATE);
    ck_assert_ptr_null(chart(m, AT_VIZ_MODEL, AT_VIZ_VEGALITE, AT_ATTN_DEC_SELF, 0, 0, NULL, &st));
    ck_assert_int_eq(st, AT_E_STATE);
    ck_assert(strstr(at_errmsg(m), "no target"));
    for (size_t c = 0; c < sizeof all_charts / sizeof *all_charts; c++) {
        bool kinds = all_charts[c] <= AT_VIZ_MODEL;
        char *s = chart_ok(m, all_charts[c], AT_VIZ_SVG, 0, 0, 0, NULL);
        assert_xml(s, at_viz_chart_name(all_charts[c]));
        free(s);
        s = chart_ok(m, all_charts[c], AT_VIZ_VEGALITE, 0, 0, 0, NULL);
        cJSON_Delete(assert_json(s, at_viz_chart_name(all_charts[c])));
        free(s);
        (void)kinds;
    }
    /* the explorer asked for cross-attention starts on the encoder */
    char *ex = chart_ok(m, AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_CROSS, 0, 0, NULL);
    cJSON *d = explorer_data(ex);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(d, "kinds")), 1);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(d, "initial"), "kind")->valuestring,
                     "enc_self");
    cJSON_Delete(d);
    free(ex);
    at_model_free(m);
}
END_TEST

START_TEST(bad_arguments)
{
    at_model *fresh = small_model(13);
    at_status st;
    /* nothing computed yet */
    ck_assert_ptr_null(chart(fresh, AT_VIZ_HEATMAP, AT_VIZ_SVG, 0, 0, 0, NULL, &st));
    ck_assert_int_eq(st, AT_E_STATE);
    ck_assert_ptr_null(chart(fresh, AT_VIZ_MASKS, AT_VIZ_SVG, 0, 0, 0, NULL, &st));
    ck_assert_int_eq(st, AT_E_STATE);
    ck_assert_ptr_null(chart(fresh, AT_VIZ_EXPLORER, AT_VIZ_HTML, 0, 0, 0, NULL, &st));
    ck_assert_int_eq(st, AT_E_STATE);
    at_model_free(fresh);

    at_model *m = pass_model();
    ck_assert_int_eq(at_viz_write(stdout, NULL, AT_VIZ_HEATMAP, AT_VIZ_SVG, 0, 0, 0, NULL),
                     AT_E_ARG);
    ck_assert(strstr(at_errmsg(NULL), "NULL"));
    ck_assert_int_eq(at_viz_write(NULL, m, AT_VIZ_HEATMAP, AT_VIZ_SVG, 0, 0, 0, NULL), AT_E_ARG);
    struct { at_viz_chart c; at_viz_format f; int kind, layer, head; const char *msg; } bad[] = {
        {(at_viz_chart)7, AT_VIZ_SVG, 0, 0, 0, "unknown chart"},
        {(at_viz_chart)-1, AT_VIZ_SVG, 0, 0, 0, "unknown chart"},
        {AT_VIZ_HEATMAP, (at_viz_format)3, 0, 0, 0, "unknown format"},
        {AT_VIZ_HEATMAP, AT_VIZ_SVG, 3, 0, 0, "unknown attention kind"},
        {AT_VIZ_HEATMAP, AT_VIZ_SVG, -1, 0, 0, "unknown attention kind"},
        {AT_VIZ_HEATMAP, AT_VIZ_SVG, 0, 2, 0, "layer 2"},
        {AT_VIZ_HEATMAP, AT_VIZ_SVG, 0, -1, 0, "layer -1"},
        {AT_VIZ_HEATMAP, AT_VIZ_SVG, 0, 0, 2, "head 2"},
        {AT_VIZ_HEADS, AT_VIZ_SVG, 0, 0, 1, "takes no head"},
        {AT_VIZ_LAYERS, AT_VIZ_VEGALITE, 0, 1, 0, "takes no layer"},
        {AT_VIZ_MODEL, AT_VIZ_SVG, 0, 1, 0, "takes no layer"},
        {AT_VIZ_STATS, AT_VIZ_SVG, 1, 0, 0, "takes no kind"},
        {AT_VIZ_MASKS, AT_VIZ_SVG, 0, 0, 1, "takes no head"},
        {AT_VIZ_EXPLORER, AT_VIZ_SVG, 0, 0, 0, "only as AT_VIZ_HTML"},
        {AT_VIZ_EXPLORER, AT_VIZ_VEGALITE, 0, 0, 0, "only as AT_VIZ_HTML"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_ptr_null(chart(m, bad[i].c, bad[i].f, (at_attn_kind)bad[i].kind, bad[i].layer,
                                 bad[i].head, NULL, &st));
        ck_assert_int_eq(st, AT_E_ARG);
        ck_assert_msg(strstr(at_errmsg(m), bad[i].msg), "case %zu: '%s' lacks '%s'", i,
                      at_errmsg(m), bad[i].msg);
    }
    /* a batch row beyond the batch */
    at_viz_options *o;
    ck_assert_int_eq(at_viz_options_create(&o), AT_OK);
    ck_assert_int_eq(at_viz_options_set(o, AT_VIZ_ROW, 2), AT_OK);
    ck_assert_ptr_null(chart(m, AT_VIZ_HEATMAP, AT_VIZ_SVG, 0, 0, 0, o, &st));
    ck_assert_int_eq(st, AT_E_ARG);
    ck_assert(strstr(at_errmsg(m), "batch row 2"));

    /* options */
    ck_assert_int_eq(at_viz_options_create(NULL), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_set(NULL, AT_VIZ_ROW, 0), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_set(o, AT_VIZ_ROW, -1), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_set(o, AT_VIZ_TOPK, 0), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_set(o, AT_VIZ_CELL, 1), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_set(o, AT_VIZ_CELL, 65), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_set(o, AT_VIZ_TRIM, 2), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_set(o, (at_viz_param)0, 0), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_set(o, (at_viz_param)5, 0), AT_E_ARG);
    int v = -7;
    ck_assert_int_eq(at_viz_options_get(o, AT_VIZ_ROW, &v), AT_OK);
    ck_assert_int_eq(v, 2);
    ck_assert_int_eq(at_viz_options_get(o, AT_VIZ_TOPK, &v), AT_OK);
    ck_assert_int_eq(v, 3);
    ck_assert_int_eq(at_viz_options_get(o, AT_VIZ_TRIM, &v), AT_OK);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(at_viz_options_get(o, (at_viz_param)9, &v), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_get(o, AT_VIZ_ROW, NULL), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_set_labels(o, AT_VIZ_SRC, NULL, 3), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_set_labels(o, (at_viz_side)2, NULL, 0), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_set_labels(o, AT_VIZ_SRC, NULL, -1), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_set_ids(o, AT_VIZ_TGT, NULL, 1), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_set_font(o, "Noto Serif CJK JP"), AT_OK);
    ck_assert_int_eq(at_viz_options_set_font(o, "x'; } body { color: red"), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_set_font(o, "\"x\""), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_set_font(o, NULL), AT_OK);
    char big[1100];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ck_assert_int_eq(at_viz_options_set_caption(o, big), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_set_caption(NULL, "x"), AT_E_ARG);
    at_viz_options_free(o);
    at_viz_options_free(NULL);

    /* names */
    ck_assert_str_eq(at_viz_chart_name(AT_VIZ_MODEL), "model");
    ck_assert_ptr_null(at_viz_chart_name((at_viz_chart)AT_VIZ_CHART_COUNT));
    ck_assert_str_eq(at_viz_kind_name(AT_ATTN_DEC_SELF), "dec_self");
    ck_assert_ptr_null(at_viz_kind_name((at_attn_kind)3));
    ck_assert_str_eq(at_viz_format_ext(AT_VIZ_VEGALITE), ".vl.json");
    ck_assert_ptr_null(at_viz_format_ext((at_viz_format)3));
    at_model_free(m);
}
END_TEST

/* The files in dir other than keep. */
static int stray_files(const char *dir, const char *keep)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, keep))
            n++;
    closedir(d);
    return n;
}

START_TEST(files_atomic)
{
    at_model *m = pass_model();
    const char *path = tmp_path("chart.svg");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';

    ck_assert_int_eq(at_viz_save(path, m, AT_VIZ_HEATMAP, AT_VIZ_SVG, 0, 0, 0, NULL), AT_OK);
    size_t len;
    unsigned char *svg = read_all(path, &len);
    ck_assert_ptr_nonnull(svg);
    svg = realloc(svg, len + 1);
    svg[len] = '\0';
    assert_xml((const char *)svg, "chart.svg");
    free(svg);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0644);

    /* refused arguments leave the file as it was and no other behind */
    ck_assert(write_all(path, "old", 3));
    ck_assert_int_eq(at_viz_save(path, m, AT_VIZ_HEATMAP, AT_VIZ_SVG, 0, 9, 0, NULL), AT_E_ARG);
    unsigned char *old = read_all(path, &len);
    ck_assert(len == 3 && !memcmp(old, "old", 3));
    free(old);
    ck_assert_int_eq(stray_files(dir, "chart.svg"), 0);
    ck_assert_int_eq(at_viz_save(NULL, m, AT_VIZ_HEATMAP, AT_VIZ_SVG, 0, 0, 0, NULL), AT_E_ARG);
    ck_assert_int_eq(at_viz_save("", m, AT_VIZ_HEATMAP, AT_VIZ_SVG, 0, 0, 0, NULL), AT_E_ARG);
    ck_assert_int_eq(at_viz_save(path, NULL, AT_VIZ_HEATMAP, AT_VIZ_SVG, 0, 0, 0, NULL),
                     AT_E_ARG);

    /* a directory that does not exist */
    char missing[1100];
    snprintf(missing, sizeof missing, "%s/no/such/dir/chart.svg", dir);
    ck_assert_int_eq(at_viz_save(missing, m, AT_VIZ_HEATMAP, AT_VIZ_SVG, 0, 0, 0, NULL),
                     AT_E_IO);
    ck_assert(strstr(at_errmsg(m), "temporary file"));
    /* the path is a directory: refused before anything is written */
    char sub[1100];
    snprintf(sub, sizeof sub, "%s/adir", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    ck_assert_int_eq(at_viz_save(sub, m, AT_VIZ_STATS, AT_VIZ_VEGALITE, 0, 0, 0, NULL), AT_E_IO);
    ck_assert(strstr(at_errmsg(m), "is a directory"));
    ck_assert_int_eq(stray_files(dir, "adir"), 1);   /* chart.svg, and nothing else */
    rmdir(sub);

    /* a stream that cannot be written */
    FILE *full = fopen("/dev/full", "w");
    if (full) {
        ck_assert_int_eq(at_viz_write(full, m, AT_VIZ_MODEL, AT_VIZ_SVG, 0, 0, 0, NULL), AT_E_IO);
        fclose(full);
    }
    tmp_cleanup();
    at_model_free(m);
}
END_TEST

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* A 100-token pair through 6 layers of 8 heads: every chart well under a second. */
START_TEST(large_chart)
{
    at_config *cfg;
    at_config_create(&cfg);
    at_config_set(cfg, AT_P_LAYERS, 6);
    at_config_set(cfg, AT_P_HEADS, 8);
    at_config_set(cfg, AT_P_D_MODEL, 64);
    at_config_set(cfg, AT_P_D_FF, 128);
    at_config_set(cfg, AT_P_SRC_VOCAB, 200);
    at_config_set(cfg, AT_P_TGT_VOCAB, 200);
    at_config_set(cfg, AT_P_MAX_LEN, 128);
    at_model *m;
    ck_assert_int_eq(at_model_create(cfg, &m), AT_OK);
    at_config_free(cfg);
    int32_t src[100], tgt[100];
    for (int i = 0; i < 100; i++)
        src[i] = 1 + (i * 37) % 199, tgt[i] = 1 + (i * 53) % 199;
    ck_assert_int_eq(at_forward(m, src, tgt, 1, 100, 100, 0), AT_OK);
    at_viz_options *o;
    at_viz_options_create(&o);
    char lab[100][16];
    const char *labels[100];
    for (int i = 0; i < 100; i++) {
        snprintf(lab[i], sizeof lab[i], "tok%d", (i * 7) % 50);
        labels[i] = lab[i];
    }
    at_viz_options_set_labels(o, AT_VIZ_SRC, labels, 100);
    at_viz_options_set_labels(o, AT_VIZ_TGT, labels, 100);
    const char *path = tmp_path("big");
    struct { at_viz_chart c; at_viz_format f; int layer, head; } jobs[] = {
        {AT_VIZ_HEATMAP, AT_VIZ_SVG, 5, 7},   {AT_VIZ_HEATMAP, AT_VIZ_VEGALITE, 5, 7},
        {AT_VIZ_HEADS, AT_VIZ_SVG, 5, 0},     {AT_VIZ_HEADS, AT_VIZ_VEGALITE, 5, 0},
        {AT_VIZ_LAYERS, AT_VIZ_SVG, 0, 7},    {AT_VIZ_LAYERS, AT_VIZ_VEGALITE, 0, 7},
        {AT_VIZ_MODEL, AT_VIZ_SVG, 0, 0},     {AT_VIZ_MODEL, AT_VIZ_VEGALITE, 0, 0},
        {AT_VIZ_STATS, AT_VIZ_SVG, 0, 0},     {AT_VIZ_MASKS, AT_VIZ_SVG, 0, 0},
        {AT_VIZ_EXPLORER, AT_VIZ_HTML, 0, 0},
    };
    for (size_t i = 0; i < sizeof jobs / sizeof *jobs; i++) {
        at_attn_kind kind = jobs[i].c == AT_VIZ_STATS || jobs[i].c == AT_VIZ_MASKS ? 0
                                                                                   : AT_ATTN_CROSS;
        double t0 = now();
        ck_assert_int_eq(at_viz_save(path, m, jobs[i].c, jobs[i].f, kind, jobs[i].layer,
                                     jobs[i].head, o), AT_OK);
        double t = now() - t0;
        struct stat sb;
        stat(path, &sb);
        printf("100 tokens, 6 layers x 8 heads: %-8s %-8s %.3f s, %lld bytes\n",
               at_viz_chart_name(jobs[i].c), at_viz_format_ext(jobs[i].f), t,
               (long long)sb.st_size);
        /* the time is a figure to read, not a pass mark: CI machines are shared */
        ck_assert_int_gt(sb.st_size, 1000);
    }
    tmp_cleanup();
    at_viz_options_free(o);
    at_model_free(m);
}
END_TEST

/* base64 to bytes (returns the count) */
static size_t unb64(const char *b64, unsigned char *bytes)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(b64), nb = 0;
    for (size_t i = 0; i + 3 < n; i += 4) {
        uint32_t x = 0;
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            const char *c = b64[i + k] == '=' ? NULL : strchr(al, b64[i + k]);
            pad += !c;
            x = x << 6 | (c ? (uint32_t)(c - al) : 0);
        }
        bytes[nb++] = (unsigned char)(x >> 16);
        if (pad < 2)
            bytes[nb++] = (unsigned char)(x >> 8);
        if (pad < 1)
            bytes[nb++] = (unsigned char)x;
    }
    return nb;
}

/* A kind of more than 2^20 weights goes into the explorer with 8 bits a
 * weight, one base64 string per head, scaled by the head's largest weight
 * (docs/explorer.md); smaller kinds keep their uint16 string. */
START_TEST(explorer_compact)
{
    enum { N = 520, L = 2, H = 2 };   /* 2 * 2 * 520 * 520 > 2^20 */
    at_config *cfg;
    at_config_create(&cfg);
    at_config_set(cfg, AT_P_LAYERS, L);
    at_config_set(cfg, AT_P_HEADS, H);
    at_config_set(cfg, AT_P_D_MODEL, 16);
    at_config_set(cfg, AT_P_D_FF, 32);
    at_config_set(cfg, AT_P_SRC_VOCAB, 50);
    at_config_set(cfg, AT_P_TGT_VOCAB, 50);
    at_config_set(cfg, AT_P_MAX_LEN, N + 8);
    at_model *m;
    ck_assert_int_eq(at_model_create(cfg, &m), AT_OK);
    at_config_free(cfg);
    static int32_t src[N], tgt[N];
    for (int i = 0; i < N; i++)
        src[i] = 1 + (i * 37) % 49, tgt[i] = 1 + (i * 53) % 49;
    ck_assert_int_eq(at_forward(m, src, tgt, 1, N, N, 0), AT_OK);
    char *ex = chart_ok(m, AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_CROSS, 1, 0, NULL);
    cJSON *d = explorer_data(ex);
    unsigned char *bytes = malloc((size_t)N * N + 3);
    cJSON *kinds = cJSON_GetObjectItem(d, "kinds");
    ck_assert_int_eq(cJSON_GetArraySize(kinds), 3);
    for (int kd = 0; kd < 3; kd++) {
        cJSON *k = cJSON_GetArrayItem(kinds, kd);
        ck_assert_str_eq(cJSON_GetObjectItem(k, "enc")->valuestring, "u8");
        ck_assert_int_eq(cJSON_GetObjectItem(k, "omitted")->valueint, 0);
        ck_assert_int_eq(cJSON_GetObjectItem(k, "cap")->valueint, 40000000);
        cJSON *w = cJSON_GetObjectItem(k, "weights"), *mx = cJSON_GetObjectItem(k, "max");
        ck_assert(cJSON_IsArray(w));
        ck_assert_int_eq(cJSON_GetArraySize(w), L * H);
        for (int l = 0; l < L; l++) {
            at_view v;
            ck_assert_int_eq(at_get_attention(m, (at_attn_kind)kd, l, &v), AT_OK);
            for (int h = 0; h < H; h++) {
                size_t nb = unb64(cJSON_GetArrayItem(w, l * H + h)->valuestring, bytes);
                ck_assert_uint_eq(nb, (size_t)N * N);
                double top = cJSON_GetArrayItem(mx, l * H + h)->valuedouble, seen = 0;
                int full = 0;
                for (int i = 0; i < N; i++)
                    for (int j = 0; j < N; j++) {
                        float want = v.data[h * v.stride[1] + i * v.stride[2] + j * v.stride[3]];
                        if (want > seen)
                            seen = want;
                        double got = bytes[(size_t)i * N + j] * top / 255;
                        /* max is written with 6 decimals: half a step and its rounding */
                        ck_assert_double_eq_tol(got, want, top / 510 + 1e-6);
                        full += bytes[(size_t)i * N + j] == 255;
                    }
                ck_assert_double_eq_tol(top, seen, 1e-6);
                ck_assert_int_ge(full, 1);   /* the largest weight is 255 */
            }
        }
    }
    free(bytes);
    cJSON_Delete(d);
    free(ex);
    at_model_free(m);
}
END_TEST

/* ---------------------------------------------------------------- analysis layers */

/* The float32 values of a map's base64 string (little-endian), malloc'd. */
static float *map_values(const cJSON *m, int n)
{
    const char *b64 = cJSON_GetObjectItem(m, "values")->valuestring;
    unsigned char *bytes = malloc(strlen(b64) + 4);
    float *v = malloc((size_t)n * sizeof *v + 1);
    ck_assert_uint_eq(unb64(b64, bytes), (size_t)n * 4);
    for (int i = 0; i < n; i++) {
        uint32_t u = 0;
        for (int k = 0; k < 4; k++)
            u |= (uint32_t)bytes[4 * i + k] << (8 * k);
        memcpy(&v[i], &u, 4);
    }
    free(bytes);
    return v;
}

/* Head grids, maps and gold links go into the explorer's data exactly: grid
 * values to the last bit (NaN as null), labels, maps cut to the positions
 * charted, links once each; the gold figures per head are those computed
 * here from the views. */
START_TEST(explorer_analysis)
{
    at_model *m = pass_model();   /* 2 layers x 2 heads; row 1: source 4 of 6, target 3 of 5 */
    at_viz_options *o;
    at_viz_options_create(&o);
    double imp[4] = {0.125, 1.0 / 3.0, NAN, 2.5e-7};
    const char *roles[4] = {"prev 0.91", NULL, "diagonal \"x\" <b>", "first 1.0"};
    double abl[4] = {-0.5, 0.25, 0.0, 1e-300};
    ck_assert_int_eq(at_viz_options_add_headmap(o, "importance", AT_ATTN_CROSS, 2, 2, imp,
                                                roles, 0), AT_OK);
    ck_assert_int_eq(at_viz_options_add_headmap(o, "ablation", AT_ATTN_ENC_SELF, 2, 2, abl,
                                                NULL, 1), AT_OK);
    float ss[36], ts[30], tt[9];
    for (int i = 0; i < 36; i++)
        ss[i] = (float)(i * 0.1 + 1.0 / 7.0);
    for (int i = 0; i < 30; i++)
        ts[i] = (float)(-1.0 / (i + 3));
    for (int i = 0; i < 9; i++)
        tt[i] = (float)i / 3.0f;
    ck_assert_int_eq(at_viz_options_add_map(o, "rollout", AT_VIZ_SRC, AT_VIZ_SRC, 6, 6, ss, 0),
                     AT_OK);
    ck_assert_int_eq(at_viz_options_add_map(o, "relevance", AT_VIZ_TGT, AT_VIZ_SRC, 5, 6, ts, 1),
                     AT_OK);
    const int32_t links[] = {0, 1, 2, 3, 2, 3, 4, 5, 1, 0, 2, 0};   /* (2, 3) twice */
    ck_assert_int_eq(at_viz_options_set_links(o, links, 6), AT_OK);

    for (int row = 0; row < 2; row++) {
        at_viz_options_set(o, AT_VIZ_ROW, row);
        int S = row ? 4 : 6, T = row ? 3 : 5;
        if (row)   /* a map of the lengths charted is taken as it is */
            ck_assert_int_eq(at_viz_options_add_map(o, "tt", AT_VIZ_TGT, AT_VIZ_TGT, 3, 3, tt, 0),
                             AT_OK);
        char *ex = chart_ok(m, AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_CROSS, 1, 0, o);
        cJSON *d = explorer_data(ex), *an = cJSON_GetObjectItem(d, "analysis");
        cJSON *grids = cJSON_GetObjectItem(an, "grids"), *maps = cJSON_GetObjectItem(an, "maps");
        ck_assert_int_eq(cJSON_GetArraySize(grids), 2);
        cJSON *g0 = cJSON_GetArrayItem(grids, 0), *g1 = cJSON_GetArrayItem(grids, 1);
        ck_assert_str_eq(cJSON_GetObjectItem(g0, "title")->valuestring, "importance");
        ck_assert_str_eq(cJSON_GetObjectItem(g0, "kind")->valuestring, "cross");
        ck_assert_str_eq(cJSON_GetObjectItem(g1, "kind")->valuestring, "enc_self");
        ck_assert_int_eq(cJSON_GetObjectItem(g0, "diverging")->valueint, 0);
        ck_assert_int_eq(cJSON_GetObjectItem(g1, "diverging")->valueint, 1);
        ck_assert_int_eq(cJSON_GetObjectItem(g0, "layers")->valueint, 2);
        ck_assert_int_eq(cJSON_GetObjectItem(g0, "heads")->valueint, 2);
        cJSON *v0 = cJSON_GetObjectItem(g0, "values"), *v1 = cJSON_GetObjectItem(g1, "values");
        cJSON *lab = cJSON_GetObjectItem(g0, "labels");
        for (int i = 0; i < 4; i++) {
            if (isnan(imp[i]))
                ck_assert(cJSON_IsNull(cJSON_GetArrayItem(v0, i)));
            else
                ck_assert(cJSON_GetArrayItem(v0, i)->valuedouble == imp[i]);
            ck_assert(cJSON_GetArrayItem(v1, i)->valuedouble == abl[i]);
            if (roles[i])
                ck_assert_str_eq(cJSON_GetArrayItem(lab, i)->valuestring, roles[i]);
            else
                ck_assert(cJSON_IsNull(cJSON_GetArrayItem(lab, i)));
        }
        ck_assert(cJSON_IsNull(cJSON_GetObjectItem(g1, "labels")));
        /* escaped inside the script: a label cannot end it */
        ck_assert_int_eq(count(ex, "\"diagonal \\\"x\\\" \\u003cb\\u003e\""), 1);

        ck_assert_int_eq(cJSON_GetArraySize(maps), row ? 3 : 2);
        struct { const float *v; int cols, nr, nc; const char *r, *c; } want[3] = {
            {ss, 6, S, S, "source", "source"}, {ts, 6, T, S, "target", "source"},
            {tt, 3, T, T, "target", "target"}};
        for (int k = 0; k < (row ? 3 : 2); k++) {
            cJSON *mp = cJSON_GetArrayItem(maps, k);
            ck_assert_int_eq(cJSON_GetObjectItem(mp, "nrows")->valueint, want[k].nr);
            ck_assert_int_eq(cJSON_GetObjectItem(mp, "ncols")->valueint, want[k].nc);
            ck_assert_str_eq(cJSON_GetObjectItem(mp, "rows")->valuestring, want[k].r);
            ck_assert_str_eq(cJSON_GetObjectItem(mp, "cols")->valuestring, want[k].c);
            ck_assert_str_eq(cJSON_GetObjectItem(mp, "enc")->valuestring, "f32");
            float *v = map_values(mp, want[k].nr * want[k].nc);
            for (int i = 0; i < want[k].nr; i++)
                for (int j = 0; j < want[k].nc; j++)
                    ck_assert(memcmp(&v[i * want[k].nc + j], &want[k].v[i * want[k].cols + j], 4) == 0);
            free(v);
        }

        /* the links inside the chart, each once, in (target, source) order */
        static const int in0[][2] = {{0, 1}, {1, 0}, {2, 0}, {2, 3}, {4, 5}};
        static const int in1[][2] = {{0, 1}, {1, 0}, {2, 0}, {2, 3}};
        const int (*in)[2] = row ? in1 : in0;
        int nin = row ? 4 : 5;
        cJSON *jl = cJSON_GetObjectItem(an, "links");
        ck_assert_int_eq(cJSON_GetArraySize(jl), nin);
        for (int i = 0; i < nin; i++) {
            ck_assert_int_eq(cJSON_GetArrayItem(cJSON_GetArrayItem(jl, i), 0)->valueint, in[i][0]);
            ck_assert_int_eq(cJSON_GetArrayItem(cJSON_GetArrayItem(jl, i), 1)->valueint, in[i][1]);
        }
        cJSON *gold = cJSON_GetObjectItem(an, "gold");
        int rows = 0;
        for (int t = 0; t < T; t++) {
            bool has = false;
            for (int i = 0; i < nin; i++)
                has |= in[i][0] == t;
            rows += has;
        }
        ck_assert_int_eq(cJSON_GetObjectItem(gold, "rows")->valueint, rows);
        ck_assert_int_eq(cJSON_GetObjectItem(gold, "links")->valueint, nin);
        for (int l = 0; l < 2; l++) {
            at_view v;
            ck_assert_int_eq(at_get_attention(m, AT_ATTN_CROSS, l, &v), AT_OK);
            for (int h = 0; h < 2; h++) {
                const float *a = v.data + row * v.stride[0] + h * v.stride[1];
                double mass = 0;
                int hit = 0;
                for (int t = 0; t < T; t++) {
                    int best = 0;
                    bool has = false;
                    for (int j = 1; j < S; j++)
                        if (a[t * v.stride[2] + j * v.stride[3]] > a[t * v.stride[2] + best * v.stride[3]])
                            best = j;
                    for (int i = 0; i < nin; i++)
                        if (in[i][0] == t) {
                            has = true;
                            mass += a[t * v.stride[2] + in[i][1] * v.stride[3]];
                            hit += in[i][1] == best;
                        }
                    (void)has;
                }
                double aer = 1.0 - 2.0 * hit / (rows + nin);
                ck_assert_double_eq_tol(cJSON_GetArrayItem(cJSON_GetObjectItem(gold, "mass"), l * 2 + h)->valuedouble,
                                        mass / rows, 1e-7);
                ck_assert_double_eq_tol(cJSON_GetArrayItem(cJSON_GetObjectItem(gold, "aer"), l * 2 + h)->valuedouble,
                                        aer, 1e-7);
            }
        }
        cJSON_Delete(d);
        free(ex);
    }

    /* a copy gives the same page; the copy outlives the original's layers */
    at_viz_options *o2;
    at_viz_options_create(&o2);
    at_viz_options_set(o2, AT_VIZ_ROW, 1);
    ck_assert_int_eq(at_viz_options_copy_analysis(o2, o), AT_OK);
    ck_assert_int_eq(at_viz_options_copy_analysis(o2, o2), AT_OK);
    ck_assert_int_eq(at_viz_options_copy_analysis(NULL, o), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_copy_analysis(o2, NULL), AT_E_ARG);
    char *p1 = chart_ok(m, AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_CROSS, 1, 0, o);
    at_viz_options_clear_analysis(o);
    char *p2 = chart_ok(m, AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_CROSS, 1, 0, o2);
    ck_assert_str_eq(p1, p2);
    free(p1);
    free(p2);
    ck_assert_int_eq(at_viz_options_copy_analysis(o, o2), AT_OK);
    at_viz_options_free(o2);

    /* cleared: the page as without, empty lists */
    ck_assert_int_eq(at_viz_options_clear_analysis(o), AT_OK);
    at_viz_options_set(o, AT_VIZ_ROW, 0);
    char *ex = chart_ok(m, AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_CROSS, 1, 0, o);
    cJSON *d = explorer_data(ex), *an = cJSON_GetObjectItem(d, "analysis");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(an, "grids")), 0);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(an, "maps")), 0);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(an, "links")), 0);
    ck_assert_ptr_null(cJSON_GetObjectItem(an, "gold"));
    cJSON_Delete(d);
    free(ex);
    at_viz_options_free(o);
    at_model_free(m);
}
END_TEST

/* Bad analysis layers: a status and nothing attached; shapes that do not fit
 * the pass are refused when the explorer is written, with no byte out. */
START_TEST(analysis_bad_arguments)
{
    at_model *m = pass_model();
    at_viz_options *o;
    at_viz_options_create(&o);
    double v4[4] = {1, 2, 3, 4}, inf4[4] = {1, INFINITY, 3, 4};
    float f36[36] = {0}, finf[36] = {0};
    finf[7] = -INFINITY;
    char longt[AT_VIZ_TITLE_MAX + 2];
    memset(longt, 'x', sizeof longt - 1);
    longt[sizeof longt - 1] = '\0';
    const char *badlab[4] = {"a", longt, "c", "d"};
    ck_assert_int_eq(at_viz_options_add_headmap(NULL, "t", AT_ATTN_CROSS, 2, 2, v4, NULL, 0), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_add_headmap(o, NULL, AT_ATTN_CROSS, 2, 2, v4, NULL, 0), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_add_headmap(o, "", AT_ATTN_CROSS, 2, 2, v4, NULL, 0), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_add_headmap(o, longt, AT_ATTN_CROSS, 2, 2, v4, NULL, 0), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_add_headmap(o, "t", AT_ATTN_CROSS, 2, 2, NULL, NULL, 0), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_add_headmap(o, "t", (at_attn_kind)3, 2, 2, v4, NULL, 0), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_add_headmap(o, "t", AT_ATTN_CROSS, 0, 2, v4, NULL, 0), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_add_headmap(o, "t", AT_ATTN_CROSS, 2, -1, v4, NULL, 0), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_add_headmap(o, "t", AT_ATTN_CROSS, 1000001, 1, v4, NULL, 0), AT_E_ARG);
    /* 250,000 grid values at most, over all grids: refused before reading them */
    ck_assert_int_eq(at_viz_options_add_headmap(o, "t", AT_ATTN_CROSS, 501, 500, v4, NULL, 0), AT_E_RANGE);
    ck_assert_int_eq(at_viz_options_add_headmap(o, "t", AT_ATTN_CROSS, 2, 2, v4, NULL, 2), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_add_headmap(o, "t", AT_ATTN_CROSS, 2, 2, inf4, NULL, 0), AT_E_NUMERIC);
    ck_assert_int_eq(at_viz_options_add_headmap(o, "t", AT_ATTN_CROSS, 2, 2, v4, badlab, 0), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_add_map(NULL, "t", AT_VIZ_SRC, AT_VIZ_SRC, 6, 6, f36, 0), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_add_map(o, "t", (at_viz_side)2, AT_VIZ_SRC, 6, 6, f36, 0), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_add_map(o, "t", AT_VIZ_SRC, (at_viz_side)-1, 6, 6, f36, 0), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_add_map(o, "t", AT_VIZ_SRC, AT_VIZ_SRC, 0, 6, f36, 0), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_add_map(o, "t", AT_VIZ_SRC, AT_VIZ_SRC, 6, 6, NULL, 0), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_add_map(o, "t", AT_VIZ_SRC, AT_VIZ_SRC, 6, 6, finf, 0), AT_E_NUMERIC);
    /* 4,000,000 values at most, over all maps: refused before reading them */
    ck_assert_int_eq(at_viz_options_add_map(o, "t", AT_VIZ_SRC, AT_VIZ_SRC, 2001, 2000, f36, 0), AT_E_RANGE);
    ck_assert_int_eq(at_viz_options_set_links(NULL, NULL, 0), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_set_links(o, NULL, 2), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_set_links(o, (const int32_t[]){0, 0}, -1), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_set_links(o, (const int32_t[]){0, 0}, 1000001), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_set_links(o, (const int32_t[]){1, -2}, 1), AT_E_ARG);
    ck_assert_int_eq(at_viz_options_clear_analysis(NULL), AT_E_ARG);
    /* nothing was attached */
    char *ex = chart_ok(m, AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_CROSS, 0, 0, o);
    cJSON *d = explorer_data(ex);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(d, "analysis"), "grids")), 0);
    cJSON_Delete(d);
    free(ex);

    /* at most AT_VIZ_ANALYSIS_MAX layers */
    for (int i = 0; i < AT_VIZ_ANALYSIS_MAX; i++)
        ck_assert_int_eq(at_viz_options_add_headmap(o, "t", AT_ATTN_CROSS, 2, 2, v4, NULL, 0), AT_OK);
    ck_assert_int_eq(at_viz_options_add_headmap(o, "t", AT_ATTN_CROSS, 2, 2, v4, NULL, 0), AT_E_RANGE);
    ck_assert_int_eq(at_viz_options_add_map(o, "t", AT_VIZ_SRC, AT_VIZ_SRC, 6, 6, f36, 0), AT_E_RANGE);
    at_viz_options_clear_analysis(o);

    /* the budgets add up over the layers attached, and clearing frees them */
    double *big = calloc(250000, sizeof *big);
    float *fbig = calloc(4000000, sizeof *fbig);
    ck_assert_int_eq(at_viz_options_add_headmap(o, "t", AT_ATTN_CROSS, 500, 499, big, NULL, 0), AT_OK);
    ck_assert_int_eq(at_viz_options_add_headmap(o, "t", AT_ATTN_CROSS, 1, 500, big, NULL, 0), AT_OK);
    ck_assert_int_eq(at_viz_options_add_headmap(o, "t", AT_ATTN_CROSS, 1, 1, big, NULL, 0), AT_E_RANGE);
    ck_assert_int_eq(at_viz_options_add_map(o, "t", AT_VIZ_SRC, AT_VIZ_SRC, 2000, 1999, fbig, 0), AT_OK);
    ck_assert_int_eq(at_viz_options_add_map(o, "t", AT_VIZ_SRC, AT_VIZ_SRC, 1, 2000, fbig, 0), AT_OK);
    ck_assert_int_eq(at_viz_options_add_map(o, "t", AT_VIZ_SRC, AT_VIZ_SRC, 1, 1, fbig, 0), AT_E_RANGE);
    at_viz_options_clear_analysis(o);
    char lab200[AT_VIZ_TITLE_MAX + 1];
    memset(lab200, 'r', AT_VIZ_TITLE_MAX);
    lab200[AT_VIZ_TITLE_MAX] = '\0';
    const char **labs = malloc(20000 * sizeof *labs);
    for (int i = 0; i < 20000; i++)
        labs[i] = lab200;   /* 20,000 x 200 bytes: the 4,000,000 of AT_VIZ_LABEL_BYTES_MAX */
    ck_assert_int_eq(at_viz_options_add_headmap(o, "t", AT_ATTN_CROSS, 100, 200, big, labs, 0), AT_OK);
    const char *one[1] = {"x"}, *none[1] = {NULL};
    ck_assert_int_eq(at_viz_options_add_headmap(o, "t", AT_ATTN_CROSS, 1, 1, big, one, 0), AT_E_RANGE);
    ck_assert_int_eq(at_viz_options_add_headmap(o, "t", AT_ATTN_CROSS, 1, 1, big, none, 0), AT_OK);
    at_viz_options_clear_analysis(o);
    ck_assert_int_eq(at_viz_options_add_headmap(o, "t", AT_ATTN_CROSS, 1, 1, big, one, 0), AT_OK);
    ck_assert_int_eq(at_viz_options_add_headmap(o, "t", AT_ATTN_CROSS, 500, 499, big, NULL, 0), AT_OK);
    at_viz_options_clear_analysis(o);
    free(labs);
    free(big);
    free(fbig);

    /* shapes the pass does not have: refused by the explorer alone */
    at_status st;
    struct { int kind, r, c, rs, cs; } bad[] = {
        {AT_ATTN_CROSS, 3, 2, 0, 0},            /* 3 layers: the model has 2 */
        {AT_ATTN_CROSS, 2, 4, 0, 0},            /* 4 heads */
        {-1, 5, 6, AT_VIZ_SRC, AT_VIZ_SRC},     /* 5 source rows: the pass has 6 */
        {-1, 6, 5, AT_VIZ_TGT, AT_VIZ_SRC},     /* 6 target rows: 5 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        at_viz_options_clear_analysis(o);
        double g[8] = {0};
        if (bad[i].kind >= 0)
            ck_assert_int_eq(at_viz_options_add_headmap(o, "g", (at_attn_kind)bad[i].kind, bad[i].r,
                                                        bad[i].c, g, NULL, 0), AT_OK);
        else
            ck_assert_int_eq(at_viz_options_add_map(o, "m", (at_viz_side)bad[i].rs,
                                                    (at_viz_side)bad[i].cs, bad[i].r, bad[i].c,
                                                    f36, 0), AT_OK);
        ck_assert_ptr_null(chart(m, AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_CROSS, 0, 0, o, &st));
        ck_assert_int_eq(st, AT_E_SHAPE);
        ck_assert(strstr(at_errmsg(m), bad[i].kind >= 0 ? "'g'" : "'m'"));
        /* the other charts do not read them */
        char *svg = chart_ok(m, AT_VIZ_HEATMAP, AT_VIZ_SVG, AT_ATTN_CROSS, 0, 0, o);
        free(svg);
    }
    at_viz_options_clear_analysis(o);
    ck_assert_int_eq(at_viz_options_set_links(o, (const int32_t[]){5, 0}, 1), AT_OK);   /* T = 5 */
    ck_assert_ptr_null(chart(m, AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_CROSS, 0, 0, o, &st));
    ck_assert_int_eq(st, AT_E_RANGE);
    ck_assert_int_eq(at_viz_options_set_links(o, (const int32_t[]){0, 6}, 1), AT_OK);   /* S = 6 */
    ck_assert_ptr_null(chart(m, AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_CROSS, 0, 0, o, &st));
    ck_assert_int_eq(st, AT_E_RANGE);
    /* at_viz_save leaves no file */
    const char *path = tmp_path("refused.html");
    ck_assert_int_eq(at_viz_save(path, m, AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_CROSS, 0, 0, o),
                     AT_E_RANGE);
    ck_assert_int_ne(access(path, F_OK), 0);
    tmp_cleanup();

    /* an encoder-only pass: a map over the target cannot be shown */
    at_viz_options_clear_analysis(o);
    const int32_t src[6] = {1, 2, 3, 4, 5, 6};
    ck_assert_int_eq(at_forward(m, src, NULL, 1, 6, 0, 0), AT_OK);
    ck_assert_int_eq(at_viz_options_add_map(o, "m", AT_VIZ_TGT, AT_VIZ_SRC, 1, 6, f36, 0), AT_OK);
    ck_assert_ptr_null(chart(m, AT_VIZ_EXPLORER, AT_VIZ_HTML, AT_ATTN_ENC_SELF, 0, 0, o, &st));
    ck_assert_int_eq(st, AT_E_SHAPE);
    at_viz_options_free(o);
    at_model_free(m);
}
END_TEST

Suite *suite_viz(void)
{
    Suite *s = suite_create("viz");
    struct { const char *name; const TTest *t; } cases[] = {
        {"formats", every_chart_every_format},
        {"weights", cells_and_weights},
        {"labels", labels_escaped_and_repeated},
        {"colours", colours_agree},
        {"passes", decoded_and_encoder_only},
        {"bad_arguments", bad_arguments},
        {"files", files_atomic},
        {"large", large_chart},
        {"compact", explorer_compact},
        {"analysis", explorer_analysis},
        {"analysis_bad_arguments", analysis_bad_arguments},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_test(tc, cases[i].t);
        suite_add_tcase(s, tc);
    }
    return s;
}
