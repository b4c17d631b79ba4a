/* libFuzzer target for the chart writers' escaping of token labels and
 * captions, through the public API (at_viz.h): every chart in every format
 * of a tiny model's pass, with labels from the input.
 *   ./build-fuzz/tests/fuzz_api_viz -close_fd_mask=3 corpus/ tests/data/fuzz_api_viz/
 *
 * Input: 9 bytes of settings, then strings separated by NUL bytes:
 *   [0] chart  [1] format  [2] kind  [3] layer (low 4 bits), head (high 4)
 *   [4] flags: 1 trim, 2 pass unused arguments as they are (else 0),
 *       4 ids too, 8 a caption (the first string), 16 greedy decoding
 *       instead of a forward pass, 32 a font, 64/128 the batch row (0..2;
 *       the batch has 2)
 *   [5] source length S  [6] target length T (0: encoder only)
 *   [7] cell size (0: automatic)  [8] how many strings are source labels
 * the remaining strings label the target. Labels also choose the ids.
 *
 * What a successful write must be, checked cheaply: valid UTF-8 without
 * control characters (the labels' controls and invalid bytes are replaced);
 * SVG well-formed XML (a small checker below: tags nest, attributes are
 * quoted, every '&' starts an entity, so no raw '<', '&' or quote of a
 * label survives); Vega-Lite JSON that cJSON parses whole, every string in
 * it clean; HTML whose title is escaped text, whose SVG is well-formed and,
 * for the explorer, whose data block is JSON that cJSON parses and that no
 * label can end early (exactly two script elements). A refused call writes
 * nothing and says why. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cJSON.h>

#include "at.h"
#include "at_viz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what, const char *doc, size_t len)
{
    if (!ok) {
        fprintf(stderr, "fuzz_api_viz: check failed: %s\n", what);
        if (doc)
            fprintf(stderr, "--- output (%zu bytes) ---\n%.*s\n---\n", len,
                    (int)(len < 20000 ? len : 20000), doc);
        abort();
    }
}

/* ---------------------------------------------------------------- text */

/* Valid UTF-8 (no overlong forms, surrogates or code points past U+10FFFF)
 * with no control character but \n (and \t, \r when allow_ws); DEL and the
 * C1 controls count as controls, as the labels' cleaning has it. */
static bool clean_utf8(const char *s, size_t n, bool allow_ws)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + n;
    while (p < e) {
        unsigned c = *p;
        if (c < 0x80) {
            if ((c < 0x20 && c != '\n' && !(allow_ws && (c == '\t' || c == '\r'))) ||
                c == 0x7f)
                return false;
            p++;
            continue;
        }
        int len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
        if (len == 0 || c > 0xf4 || e - p < len)
            return false;
        uint32_t cp = c & (0x7f >> len);
        for (int i = 1; i < len; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < least[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
            (cp >= 0x80 && cp < 0xa0))
            return false;
        p += len;
    }
    return true;
}

/* ---------------------------------------------------------------- XML */

typedef struct xml {
    const char *p, *e;
    const char *why;
} xml;

static bool xfail(xml *x, const char *why)
{
    if (!x->why)
        x->why = why;
    return false;
}

static bool name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':';
}

static bool name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

static void skip_ws(xml *x)
{
    while (x->p < x->e && is_ws(*x->p))
        x->p++;
}

/* A name; its length, 0 if none. */
static size_t xname(xml *x)
{
    const char *s = x->p;
    if (x->p < x->e && name_start(*x->p))
        while (x->p < x->e && name_char(*x->p))
            x->p++;
    return (size_t)(x->p - s);
}

/* At '&': one of XML's five entities or a character reference. */
static bool xentity(xml *x)
{
    static const char *const named[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    size_t left = (size_t)(x->e - x->p);
    for (int i = 0; i < 5; i++) {
        size_t n = strlen(named[i]);
        if (left >= n && !memcmp(x->p, named[i], n)) {
            x->p += n;
            return true;
        }
    }
    const char *q = x->p + 1;
    if (q >= x->e || *q != '#')
        return xfail(x, "'&' that starts no entity");
    q++;
    bool hex = q < x->e && *q == 'x';
    q += hex;
    const char *d = q;
    while (q < x->e && ((*q >= '0' && *q <= '9') ||
                        (hex && ((*q >= 'a' && *q <= 'f') || (*q >= 'A' && *q <= 'F')))))
        q++;
    if (q == d || q >= x->e || *q != ';' || q - d > 6)
        return xfail(x, "malformed character reference");
    x->p = q + 1;
    return true;
}

/* Character data up to '<' (or the end); no "]]>". */
static bool xtext(xml *x)
{
    while (x->p < x->e && *x->p != '<') {
        if (*x->p == '&') {
            if (!xentity(x))
                return false;
            continue;
        }
        if (x->e - x->p >= 3 && !memcmp(x->p, "]]>", 3))
            return xfail(x, "']]>' in text");
        x->p++;
    }
    return true;
}

/* Skips to just after the first occurrence of end; false if there is none. */
static bool xskip_past(xml *x, const char *end)
{
    size_t n = strlen(end);
    for (const char *q = x->p; x->e - q >= (ptrdiff_t)n; q++)
        if (!memcmp(q, end, n)) {
            x->p = q + n;
            return true;
        }
    return false;
}

enum { XML_DEPTH = 64, XML_ATTRS = 32 };

/* A whole document: prolog, one element, nothing but misc after it. */
static bool xml_document(const char *s, size_t n, const char **why)
{
    xml x = {s, s + n, NULL};
    const char *stack[XML_DEPTH];
    size_t stack_len[XML_DEPTH];
    int depth = 0, roots = 0;
    bool ok = true;
    while (ok && x.p < x.e) {
        if (*x.p != '<') {
            const char *t = x.p;
            ok = xtext(&x);
            if (ok && depth == 0)
                for (; t < x.p; t++)
                    if (!is_ws(*t))
                        ok = xfail(&x, "text outside the root element");
            continue;
        }
        size_t left = (size_t)(x.e - x.p);
        if (left >= 4 && !memcmp(x.p, "<!--", 4)) {
            x.p += 4;
            const char *c = x.p;
            if (!xskip_past(&x, "-->"))
                ok = xfail(&x, "unterminated comment");
            else
                for (; c + 1 < x.p - 3; c++)
                    if (c[0] == '-' && c[1] == '-')
                        ok = xfail(&x, "'--' inside a comment");
        } else if (left >= 9 && !memcmp(x.p, "<![CDATA[", 9)) {
            if (depth == 0)
                ok = xfail(&x, "CDATA outside the root element");
            x.p += 9;
            if (ok && !xskip_past(&x, "]]>"))
                ok = xfail(&x, "unterminated CDATA section");
        } else if (left >= 2 && x.p[1] == '?') {
            if (!xskip_past(&x, "?>"))
                ok = xfail(&x, "unterminated processing instruction");
        } else if (left >= 9 && !memcmp(x.p, "<!DOCTYPE", 9)) {
            if (depth || roots)
                ok = xfail(&x, "DOCTYPE after the root element starts");
            while (ok && x.p < x.e && *x.p != '>')
                if (*x.p++ == '[')
                    ok = xfail(&x, "internal DTD subset");
            if (ok && x.p >= x.e)
                ok = xfail(&x, "unterminated DOCTYPE");
            x.p++;
        } else if (left >= 2 && x.p[1] == '/') {
            x.p += 2;
            const char *nm = x.p;
            size_t len = xname(&x);
            skip_ws(&x);
            if (!len || x.p >= x.e || *x.p != '>')
                ok = xfail(&x, "malformed end tag");
            else if (!depth || stack_len[depth - 1] != len || memcmp(stack[depth - 1], nm, len))
                ok = xfail(&x, "end tag that does not match its start tag");
            else
                depth--, x.p++;
        } else {
            x.p++;
            const char *nm = x.p;
            size_t len = xname(&x);
            if (!len) {
                ok = xfail(&x, "'<' that starts no tag");
                break;
            }
            if (depth == 0 && roots++)
                ok = xfail(&x, "a second root element");
            const char *an[XML_ATTRS];
            size_t al[XML_ATTRS];
            int na = 0;
            for (;;) {
                const char *before = x.p;
                skip_ws(&x);
                if (x.p >= x.e) {
                    ok = xfail(&x, "unterminated start tag");
                    break;
                }
                if (*x.p == '>' || (*x.p == '/' && x.p + 1 < x.e && x.p[1] == '>'))
                    break;
                if (x.p == before) {
                    ok = xfail(&x, "attribute not separated by white space");
                    break;
                }
                const char *a = x.p;
                size_t alen = xname(&x);
                if (!alen) {
                    ok = xfail(&x, "malformed attribute name");
                    break;
                }
                for (int i = 0; i < na; i++)
                    if (al[i] == alen && !memcmp(an[i], a, alen))
                        ok = xfail(&x, "duplicate attribute");
                if (na < XML_ATTRS)
                    an[na] = a, al[na] = alen, na++;
                skip_ws(&x);
                if (x.p >= x.e || *x.p != '=') {
                    ok = xfail(&x, "attribute without '='");
                    break;
                }
                x.p++;
                skip_ws(&x);
                if (x.p >= x.e || (*x.p != '"' && *x.p != '\'')) {
                    ok = xfail(&x, "unquoted attribute value");
                    break;
                }
                char q = *x.p++;
                while (ok && x.p < x.e && *x.p != q) {
                    if (*x.p == '<')
                        ok = xfail(&x, "'<' in an attribute value");
                    else if (*x.p == '&')
                        ok = xentity(&x);
                    else
                        x.p++;
                }
                if (!ok)
                    break;
                if (x.p >= x.e) {
                    ok = xfail(&x, "unterminated attribute value");
                    break;
                }
                x.p++;
            }
            if (!ok)
                break;
            if (*x.p == '/') {
                x.p += 2;
            } else {
                x.p++;
                if (depth == XML_DEPTH) {
                    ok = xfail(&x, "elements nested too deep for the checker");
                    break;
                }
                stack[depth] = nm, stack_len[depth] = len, depth++;
            }
        }
    }
    if (ok && depth)
        ok = xfail(&x, "unclosed element");
    if (ok && roots != 1)
        ok = xfail(&x, "no root element");
    *why = x.why;
    return ok;
}

/* Escaped text: no '<', every '&' an entity. */
static bool xml_text(const char *s, size_t n)
{
    xml x = {s, s + n, NULL};
    return xtext(&x) && x.p == x.e;
}

/* ---------------------------------------------------------------- JSON */

/* Every string in the tree (keys too) is clean. */
static bool json_clean(const cJSON *j)
{
    for (; j; j = j->next) {
        if (j->string && !clean_utf8(j->string, strlen(j->string), false))
            return false;
        if (cJSON_IsString(j) && !clean_utf8(j->valuestring, strlen(j->valuestring), false))
            return false;
        if (j->child && !json_clean(j->child))
            return false;
    }
    return true;
}

/* s[0, n) is one JSON value (white space around it allowed). */
static bool json_whole(const char *s, size_t n, cJSON **out)
{
    char *z = malloc(n + 1);
    check(z != NULL, "out of memory", NULL, 0);
    memcpy(z, s, n);
    z[n] = '\0';
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(z, &end, false);
    bool ok = j != NULL;
    for (; ok && end && *end; end++)
        ok = is_ws(*end);
    free(z);
    if (!ok) {
        cJSON_Delete(j);
        j = NULL;
    }
    *out = j;
    return ok;
}

static const char *find(const char *s, size_t n, const char *what)
{
    size_t k = strlen(what);
    for (const char *p = s, *e = s + n; (size_t)(e - p) >= k; p++) {
        p = memchr(p, what[0], (size_t)(e - p) - k + 1);
        if (!p)
            break;
        if (!memcmp(p, what, k))
            return p;
    }
    return NULL;
}

static int count_ci(const char *s, size_t n, const char *what)
{
    size_t k = strlen(what);
    int c = 0;
    for (size_t i = 0; i + k <= n; i++)
        c += s[i] == what[0] && !strncasecmp(s + i, what, k);   /* what starts with '<' */
    return c;
}

/* ---------------------------------------------------------------- the checks */

static void check_svg(const char *doc, size_t len)
{
    const char *why = NULL;
    check(xml_document(doc, len, &why), why ? why : "SVG is not well-formed XML", doc, len);
}

/* The title element's text of an HTML page. */
static void check_title(const char *doc, size_t len)
{
    const char *t = find(doc, len, "<title>");
    check(t != NULL, "HTML page without a title", doc, len);
    t += strlen("<title>");
    const char *e = find(t, len - (size_t)(t - doc), "</title>");
    check(e != NULL, "HTML title not closed", doc, len);
    check(xml_text(t, (size_t)(e - t)), "HTML title is not escaped text", doc, len);
}

static void check_html(const char *doc, size_t len, bool explorer)
{
    check_title(doc, len);
    if (!explorer) {
        /* the SVG inside a minimal page */
        const char *s = find(doc, len, "<svg"), *e = NULL;
        for (const char *q = s; q; q = find(q + 1, len - (size_t)(q + 1 - doc), "</svg>"))
            e = q;
        check(s && e && e > s, "HTML page without its SVG", doc, len);
        e += strlen("</svg>");
        check_svg(s, (size_t)(e - s));
        check(!strcmp(e, "\n</body>\n</html>\n"), "HTML page ends after its SVG", doc, len);
        check(count_ci(doc, len, "<script") == 0, "a script in a chart page", doc, len);
        return;
    }
    /* the explorer: its data block, then its script; a label must not end
     * either early or start another */
    check(count_ci(doc, len, "<script") == 2 && count_ci(doc, len, "</script") == 2,
          "the explorer has exactly its two script elements", doc, len);
    static const char open[] = "<script type=\"application/json\" id=\"at-data\">";
    const char *d = find(doc, len, open);
    check(d != NULL, "the explorer without its data", doc, len);
    d += strlen(open);
    const char *e = find(d, len - (size_t)(d - doc), "</script>");
    check(e != NULL, "the explorer's data not closed", doc, len);
    check(!find(d, (size_t)(e - d), "<!--"), "'<!--' in the explorer's data", doc, len);
    cJSON *j = NULL;
    check(json_whole(d, (size_t)(e - d), &j), "the explorer's data is not JSON", doc, len);
    check(json_clean(j), "a string of the explorer's data is not clean text", doc, len);
    check(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "src")) &&
              cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "kinds")),
          "the explorer's data holds src and kinds", doc, len);
    cJSON_Delete(j);
}

static void check_vegalite(const char *doc, size_t len)
{
    cJSON *j = NULL;
    check(json_whole(doc, len, &j), "Vega-Lite output is not JSON", doc, len);
    check(json_clean(j), "a string of the Vega-Lite spec is not clean text", doc, len);
    check(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "$schema")),
          "the Vega-Lite spec has its $schema", doc, len);
    cJSON_Delete(j);
}

/* ---------------------------------------------------------------- the model */

enum { LAYERS = 2, HEADS = 2, VOCAB = 16, MAXLEN = 32, B = 2, SMAX = 10, TMAX = 10 };

static at_model *model(void)
{
    static at_model *m;
    if (m)
        return m;
    at_set_threads(1);
    at_config *cfg = NULL;
    bool ok = at_config_create(&cfg) == AT_OK;
    const struct { at_param k; double v; } set[] = {
        {AT_P_SRC_VOCAB, VOCAB}, {AT_P_TGT_VOCAB, VOCAB}, {AT_P_LAYERS, LAYERS},
        {AT_P_D_MODEL, 8}, {AT_P_HEADS, HEADS}, {AT_P_D_FF, 16}, {AT_P_MAX_LEN, MAXLEN},
        {AT_P_SEED, 1},
    };
    for (size_t i = 0; ok && i < sizeof set / sizeof set[0]; i++)
        ok = at_config_set(cfg, set[i].k, set[i].v) == AT_OK;
    ok = ok && at_model_create(cfg, &m) == AT_OK;
    at_config_free(cfg);
    check(ok, "the tiny model", NULL, 0);
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum { HEAD = 9, MAXSTR = 64 };
    if (size < HEAD)
        return 0;
    at_model *m = model();
    at_viz_chart chart = (at_viz_chart)(data[0] % AT_VIZ_CHART_COUNT);
    at_viz_format fmt = (at_viz_format)(data[1] % 3);
    at_attn_kind kind = (at_attn_kind)(data[2] % 3);
    int layer = (data[3] & 15) % (LAYERS + 1), head = (data[3] >> 4) % (HEADS + 1);
    int flags = data[4], S = 1 + data[5] % SMAX, T = data[6] % (TMAX + 1);
    int cell = data[7] ? 2 + data[7] % 63 : 0, nsrc = data[8];

    /* the strings: NUL-separated, the last one need not be terminated */
    const char *str[MAXSTR];
    int nstr = 0;
    char *text = malloc(size - HEAD + 1);
    check(text != NULL, "out of memory", NULL, 0);
    memcpy(text, data + HEAD, size - HEAD);
    text[size - HEAD] = '\0';
    for (char *p = text; nstr < MAXSTR && p <= text + (size - HEAD);) {
        str[nstr++] = p;
        p += strlen(p) + 1;
    }
    if (size == HEAD)
        nstr = 0;
    int first = 0;
    const char *caption = NULL;
    if ((flags & 8) && nstr > 0)
        caption = str[first++];
    const char *const *src_lab = str + first;
    nsrc = nsrc < nstr - first ? nsrc : nstr - first;
    const char *const *tgt_lab = src_lab + nsrc;
    int ntgt = nstr - first - nsrc;

    /* ids from the labels (an empty label is the pad id 0), the second row
     * shifted */
    int32_t src[B * SMAX], tgt[B * TMAX];
    for (int i = 0; i < S; i++) {
        src[i] = i < nsrc ? (int32_t)((unsigned char)src_lab[i][0] % VOCAB) : 1 + i % (VOCAB - 1);
        src[S + i] = (src[i] + 1) % VOCAB;
    }
    for (int i = 0; i < T; i++) {
        tgt[i] = i < ntgt ? (int32_t)((unsigned char)tgt_lab[i][0] % VOCAB) : 1 + i % (VOCAB - 1);
        tgt[T + i] = (tgt[i] + 3) % VOCAB;
    }
    at_status s;
    if ((flags & 16) && T > 0) {
        int32_t out[B * (TMAX + 1)];
        int out_len = 0;
        s = at_greedy_decode(m, src, B, S, 0, T + 1, 1, -1, out, &out_len);
        check(s == AT_OK, "greedy decoding of the tiny model", NULL, 0);
    } else {
        s = at_forward(m, src, T ? tgt : NULL, B, S, T, 0);
        check(s == AT_OK, "a forward pass of the tiny model", NULL, 0);
    }

    at_viz_options *o = NULL;
    check(at_viz_options_create(&o) == AT_OK, "options", NULL, 0);
    check(at_viz_options_set_labels(o, AT_VIZ_SRC, src_lab, nsrc) == AT_OK &&
              at_viz_options_set_labels(o, AT_VIZ_TGT, tgt_lab, ntgt) == AT_OK,
          "labels of any content are taken", NULL, 0);
    if (flags & 4) {
        int32_t ids[SMAX + TMAX];
        for (int i = 0; i < SMAX + TMAX; i++)
            ids[i] = (int32_t)(i * 2654435761u);   /* negative ones too */
        check(at_viz_options_set_ids(o, AT_VIZ_SRC, ids, SMAX) == AT_OK &&
                  at_viz_options_set_ids(o, AT_VIZ_TGT, ids + SMAX, TMAX) == AT_OK,
              "ids", NULL, 0);
    }
    if (caption) {
        s = at_viz_options_set_caption(o, caption);
        check(s == AT_OK || (s == AT_E_ARG && strlen(caption) > 1000), "a caption", NULL, 0);
    }
    if (flags & 32)
        check(at_viz_options_set_font(o, "Noto Sans CJK JP") == AT_OK, "a font", NULL, 0);
    check(at_viz_options_set(o, AT_VIZ_TRIM, flags & 1) == AT_OK &&
              at_viz_options_set(o, AT_VIZ_CELL, cell) == AT_OK &&
              at_viz_options_set(o, AT_VIZ_ROW, flags >> 6) == AT_OK,
          "settings", NULL, 0);
    if (!(flags & 2)) {
        /* only the arguments the chart uses, and the explorer in HTML */
        bool k = chart != AT_VIZ_STATS && chart != AT_VIZ_MASKS;
        bool l = chart == AT_VIZ_HEATMAP || chart == AT_VIZ_HEADS || chart == AT_VIZ_EXPLORER;
        bool h = chart == AT_VIZ_HEATMAP || chart == AT_VIZ_LAYERS || chart == AT_VIZ_EXPLORER;
        kind = k ? kind : 0;
        layer = l ? layer % LAYERS : 0;
        head = h ? head % HEADS : 0;
        if (chart == AT_VIZ_EXPLORER)
            fmt = AT_VIZ_HTML;
    }

    char *doc = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&doc, &len);
    check(f != NULL, "open_memstream", NULL, 0);
    s = at_viz_write(f, m, chart, fmt, kind, layer, head, o);
    check(fclose(f) == 0, "fclose", NULL, 0);
    if (s != AT_OK) {
        check(*at_errmsg(m) != '\0', "a refused chart says why", NULL, 0);
        check(s == AT_E_NOMEM || s == AT_E_IO || len == 0, "a refused chart writes nothing",
              doc, len);
    } else {
        check(len > 0, "a chart is written", NULL, 0);
        check(clean_utf8(doc, len, false),
              "the output is UTF-8 without control characters", doc, len);
        if (fmt == AT_VIZ_SVG)
            check_svg(doc, len);
        else if (fmt == AT_VIZ_VEGALITE)
            check_vegalite(doc, len);
        else
            check_html(doc, len, chart == AT_VIZ_EXPLORER);
    }
    free(doc);
    at_viz_options_free(o);
    free(text);
    return 0;
}
