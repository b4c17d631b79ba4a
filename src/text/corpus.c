/* libat_text: verses of SWORD Bible modules (libsword's C API, flatapi.h)
 * as plain text with the Strong's numbers of each word (include/at_text.h,
 * group "SWORD Bibles"). The OSIS markup is parsed here, not by libsword's
 * filters, so that each word keeps the lemma of the <w> it came from. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sword/flatapi.h>

#include "text_internal.h"

/* libsword keeps global state (its locale and string managers, the
 * versification systems): every call into it holds this lock. */
static pthread_mutex_t sword_lock = PTHREAD_MUTEX_INITIALIZER;

struct at_bible {
    SWHANDLE mgr, mod;      /* 0, 0 for a parser only */
    char *name;
    bool started, ended;
    /* the last book seen, for book_index */
    int32_t book_index, last_testament, last_book;
    char ref[96], book[32];
    tbuf markup;            /* the raw entry, NUL-terminated */
    tbuf text;              /* the plain text, NUL-terminated */
    int32_t *strongs, *starts;
    size_t n_strongs, cap_strongs, cap_starts;
    char *info;             /* at_bible_info's last answer */
};

/* The Debian packages of the modules this project uses. */
static const char *const debian_packages[][2] = {
    {"engKJV2006eb", "sword-text-kjv"},
    {"spaRV1909eb", "sword-text-sparv"},
    {"engWEB2015eb", "sword-text-web"},
    {"KJV", "sword-text-kjv"},
};

static const char *package_of(const char *module)
{
    for (size_t i = 0; i < sizeof debian_packages / sizeof *debian_packages; i++)
        if (strcmp(debian_packages[i][0], module) == 0)
            return debian_packages[i][1];
    return NULL;
}

/* ---------------------------------------------------------------- growable arrays */

static bool grow_i32(int32_t **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    int32_t *q = realloc(*p, c * sizeof *q);
    if (!q) {
        text_fail(AT_E_NOMEM, "out of memory (%zu Strong's numbers for a verse)", c);
        return false;
    }
    *p = q;
    *cap = c;
    return true;
}

/* ---------------------------------------------------------------- OSIS markup */

/* What the parser knows of an open element. */
typedef struct elem {
    char name[16];
    bool drops;          /* note, or a title that is not canonical */
    bool lemma;          /* a <w> with Strong's numbers: strongs[from .. to) of wstack */
    size_t from, to;
} elem;

enum { MAX_DEPTH = 64 };

typedef struct parser {
    at_bible *b;
    elem stack[MAX_DEPTH];
    int depth;
    int drop;            /* open elements whose text is dropped */
    int32_t lem[256];    /* the numbers of the open <w>s, innermost last */
    size_t n_lem;
    bool in_word, space; /* a word is open; a space is due before the next character */
    int32_t words;
    size_t word_start;   /* first strongs[] index of the open word */
} parser;

static bool is_space_byte(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void end_word(parser *p)
{
    if (p->in_word)
        p->in_word = false;
    if (p->b->text.len > 0)
        p->space = true;
}

/* Appends one code point's bytes (not white space) to the text. */
static bool put_char(parser *p, const char *s, size_t n)
{
    at_bible *b = p->b;
    if (!tbuf_reserve(&b->text, b->text.len + n + 2))
        return false;
    if (!p->in_word) {
        if (p->space && b->text.len > 0)
            b->text.p[b->text.len++] = ' ';
        p->space = false;
        p->in_word = true;
        if (!grow_i32(&b->starts, &b->cap_starts, (size_t)p->words + 2))
            return false;
        b->starts[p->words++] = (int32_t)b->n_strongs;
        p->word_start = b->n_strongs;
    }
    memcpy(b->text.p + b->text.len, s, n);
    b->text.len += n;
    /* the numbers of every open <w>, once per word */
    for (size_t i = 0; i < p->n_lem; i++) {
        bool seen = false;
        for (size_t j = p->word_start; j < b->n_strongs && !seen; j++)
            seen = b->strongs[j] == p->lem[i];
        if (seen)
            continue;
        if (!grow_i32(&b->strongs, &b->cap_strongs, b->n_strongs + 1))
            return false;
        b->strongs[b->n_strongs++] = p->lem[i];
    }
    return true;
}

/* A code point of text: white space ends the word, the pilcrow is dropped,
 * anything else is kept. */
static bool text_char(parser *p, const char *s, size_t n)
{
    if (p->drop > 0)
        return true;
    if (n == 2 && (unsigned char)s[0] == 0xC2 && (unsigned char)s[1] == 0xB6)
        return true;   /* ¶ */
    if (ws_len((const unsigned char *)s, n) == n) {
        end_word(p);
        return true;
    }
    return put_char(p, s, n);
}

static size_t utf8_encode(unsigned long cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* An entity at s[0..n) (s[0] is '&'): its bytes in out and the length of
 * the entity, or 0 when it is none (the '&' is then text). */
static size_t entity(const char *s, size_t n, char *out, size_t *out_len)
{
    static const struct { const char *name; char c; } named[] = {
        {"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''},
    };
    for (size_t i = 0; i < sizeof named / sizeof *named; i++) {
        size_t k = strlen(named[i].name);
        if (n >= 1 + k && memcmp(s + 1, named[i].name, k) == 0) {
            out[0] = named[i].c;
            *out_len = 1;
            return 1 + k;
        }
    }
    if (n < 4 || s[1] != '#')
        return 0;
    size_t i = 2;
    bool hex = s[2] == 'x' || s[2] == 'X';
    if (hex)
        i++;
    unsigned long cp = 0;
    size_t digits = 0;
    for (; i < n && digits < 8; i++, digits++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0'
              : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
              : hex && c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            break;
        cp = cp * (hex ? 16 : 10) + (unsigned long)d;
    }
    if (!digits || i >= n || s[i] != ';' || cp == 0 || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    *out_len = utf8_encode(cp, out);
    return i + 1;
}

/* The value of attribute `name` in the attributes a[0..n), or NULL. */
static const char *attr(const char *a, size_t n, const char *name, size_t *vlen)
{
    size_t k = strlen(name);
    for (size_t i = 0; i + k + 2 <= n; i++) {
        if ((i == 0 || is_space_byte((unsigned char)a[i - 1])) && memcmp(a + i, name, k) == 0) {
            size_t j = i + k;
            while (j < n && is_space_byte((unsigned char)a[j]))
                j++;
            if (j >= n || a[j] != '=')
                continue;
            j++;
            while (j < n && is_space_byte((unsigned char)a[j]))
                j++;
            if (j >= n || (a[j] != '"' && a[j] != '\''))
                continue;
            char q = a[j++];
            const char *end = memchr(a + j, q, n - j);
            if (!end)
                return NULL;
            *vlen = (size_t)(end - (a + j));
            return a + j;
        }
    }
    return NULL;
}

/* The Strong's numbers of a lemma attribute, appended to p->lem. */
static void lemma_numbers(parser *p, const char *v, size_t n)
{
    bool strong = false;
    size_t i = 0;
    while (i < n) {
        while (i < n && is_space_byte((unsigned char)v[i]))
            i++;
        size_t st = i;
        while (i < n && !is_space_byte((unsigned char)v[i]))
            i++;
        const char *t = v + st;
        size_t tl = i - st;
        if (!tl)
            break;
        const char *colon = memchr(t, ':', tl);
        if (colon) {
            strong = (size_t)(colon - t) == 6 && memcmp(t, "strong", 6) == 0;
            tl -= (size_t)(colon + 1 - t);
            t = colon + 1;
        }
        if (!strong || tl < 2 || (t[0] != 'H' && t[0] != 'G'))
            continue;
        long num = 0;
        size_t d = 1;
        for (; d < tl && d < 7 && t[d] >= '0' && t[d] <= '9'; d++)
            num = num * 10 + (t[d] - '0');
        if (d == 1 || num <= 0 || num >= AT_STRONG_GREEK)
            continue;
        int32_t code = (int32_t)num + (t[0] == 'G' ? AT_STRONG_GREEK : 0);
        if (p->n_lem < sizeof p->lem / sizeof *p->lem)
            p->lem[p->n_lem++] = code;
    }
}

static bool name_is(const char *name, size_t n, const char *what)
{
    return strlen(what) == n && memcmp(name, what, n) == 0;
}

/* One tag t[0..n) without its angle brackets. */
static void tag(parser *p, const char *t, size_t n)
{
    if (n == 0 || t[0] == '!' || t[0] == '?')
        return;   /* comments, declarations */
    bool end = t[0] == '/';
    bool empty = t[n - 1] == '/';
    const char *name = t + end;
    size_t nl = 0;
    while (end + nl < n - (empty ? 1 : 0) && !is_space_byte((unsigned char)name[nl]) &&
           name[nl] != '/')
        nl++;
    const char *attrs = name + nl;
    size_t al = n - (empty ? 1 : 0) - (size_t)end - nl;

    static const char *const blocks[] = {"div", "chapter", "verse", "p", "l", "lg", "lb",
                                         "milestone", "br", "list", "item", "table", "row",
                                         "cell", "title", "head", "note"};
    for (size_t i = 0; i < sizeof blocks / sizeof *blocks; i++)
        if (name_is(name, nl, blocks[i]) && p->drop == 0)
            end_word(p);

    if (end) {
        /* close the innermost open element of that name, and any inside it */
        for (int d = p->depth - 1; d >= 0; d--) {
            if (!name_is(name, nl, p->stack[d].name))
                continue;
            while (p->depth > d) {
                elem *e = &p->stack[--p->depth];
                if (e->drops)
                    p->drop--;
                if (e->lemma)
                    p->n_lem = e->from;
            }
            break;
        }
        return;
    }
    if (empty)
        return;
    if (p->depth >= MAX_DEPTH)
        return;   /* deeper than any Bible nests: ignored, its text kept */
    elem *e = &p->stack[p->depth++];
    memset(e, 0, sizeof *e);
    size_t cl = nl < sizeof e->name - 1 ? nl : sizeof e->name - 1;
    memcpy(e->name, name, cl);
    e->name[cl] = '\0';
    size_t vl;
    if (name_is(name, nl, "note")) {
        e->drops = true;
    } else if (name_is(name, nl, "title")) {
        const char *v = attr(attrs, al, "canonical", &vl);
        e->drops = !(v && vl == 4 && memcmp(v, "true", 4) == 0);
    } else if (name_is(name, nl, "w")) {
        const char *v = attr(attrs, al, "lemma", &vl);
        if (v) {
            e->lemma = true;
            e->from = p->n_lem;
            lemma_numbers(p, v, vl);
        }
    }
    if (e->drops)
        p->drop++;
}

static at_status parse(at_bible *b, const char *s, size_t n, at_bible_verse *out)
{
    size_t bad = utf8_invalid_at((const unsigned char *)s, n);
    if (bad < n)
        return text_fail(AT_E_FORMAT, "the markup is not valid UTF-8 (byte %zu)", bad);
    parser p;
    memset(&p, 0, sizeof p);
    p.b = b;
    b->text.len = 0;
    b->n_strongs = 0;
    if (!tbuf_reserve(&b->text, 1) || !grow_i32(&b->starts, &b->cap_starts, 1))
        return AT_E_NOMEM;
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '<') {
            const char *gt = memchr(s + i + 1, '>', n - i - 1);
            if (gt) {
                tag(&p, s + i + 1, (size_t)(gt - (s + i + 1)));
                i = (size_t)(gt - s) + 1;
                continue;
            }
            /* a lone '<' is text */
        }
        if (c == '&') {
            char buf[4];
            size_t bl = 0, k = entity(s + i, n - i, buf, &bl);
            if (k) {
                if (!text_char(&p, buf, bl))
                    return AT_E_NOMEM;
                i += k;
                continue;
            }
        }
        size_t k = utf8_seq_len((unsigned char)c);
        if (c == '\0')
            k = 1;
        if (c == '\0' ? !text_char(&p, " ", 1) : !text_char(&p, s + i, k))
            return AT_E_NOMEM;
        i += k;
    }
    b->text.p[b->text.len] = '\0';
    b->starts[p.words] = (int32_t)b->n_strongs;
    out->text = b->text.p;
    out->text_len = b->text.len;
    out->words = p.words;
    out->strong_start = b->starts;
    out->strongs = b->strongs ? b->strongs : b->starts + p.words;
    return AT_OK;
}

/* ---------------------------------------------------------------- the API */

static bool check_verse(const at_bible_verse *v, const char *who)
{
    if (!v) {
        text_fail(AT_E_ARG, "%s: the verse is NULL", who);
        return false;
    }
    if (v->struct_size < sizeof *v) {
        text_fail(AT_E_ARG, "%s: struct_size %zu is smaller than at_bible_verse (%zu)", who,
                  v->struct_size, sizeof *v);
        return false;
    }
    return true;
}

static char *copy_str(const char *s)
{
    size_t n = strlen(s ? s : "");
    char *p = malloc(n + 1);
    if (p)
        memcpy(p, s ? s : "", n + 1);
    return p;
}

/* The installed modules, for a message: "A, B, C" (at most size bytes). */
static void installed(SWHANDLE mgr, char *buf, size_t size)
{
    buf[0] = '\0';
    const struct org_crosswire_sword_ModInfo *m = org_crosswire_sword_SWMgr_getModInfoList(mgr);
    size_t len = 0;
    for (int i = 0; m && m[i].name && len + 4 < size; i++) {
        if (m[i].category && strcmp(m[i].category, "Biblical Texts") != 0)
            continue;
        int w = snprintf(buf + len, size - len, "%s%s", len ? ", " : "", m[i].name);
        if (w < 0 || (size_t)w >= size - len)
            break;
        len += (size_t)w;
    }
}

AT_TEXT_API at_status at_bible_open(const char *module, at_bible **out)
{
    if (!out)
        return text_fail(AT_E_ARG, "at_bible_open: out is NULL");
    *out = NULL;
    at_bible *b = calloc(1, sizeof *b);
    if (!b)
        return text_fail(AT_E_NOMEM, "at_bible_open: out of memory");
    if (!module) {
        *out = b;
        return AT_OK;
    }
    if (!*module || strlen(module) > 200) {
        free(b);
        return text_fail(AT_E_ARG, "at_bible_open: the module name is empty or too long");
    }
    b->name = copy_str(module);
    if (!b->name) {
        free(b);
        return text_fail(AT_E_NOMEM, "at_bible_open: out of memory");
    }
    at_status s = AT_OK;
    pthread_mutex_lock(&sword_lock);
    org_crosswire_sword_SWLog_setLogLevel(0);   /* libsword prints nothing */
    b->mgr = org_crosswire_sword_SWMgr_new();
    if (!b->mgr) {
        s = text_fail(AT_E_NOMEM, "libsword: cannot create its module manager");
    } else {
        b->mod = org_crosswire_sword_SWMgr_getModuleByName(b->mgr, module);
        if (!b->mod) {
            const char *pkg = package_of(module);
            char list[512];
            installed(b->mgr, list, sizeof list);
            if (pkg)
                s = text_fail(AT_E_IO, "no SWORD module '%s' is installed: it comes with the "
                              "Debian package %s (apt-get install %s)", module, pkg, pkg);
            else
                s = text_fail(AT_E_IO, "no SWORD module '%s' is installed (installed Bibles: "
                              "%s; Debian packages them as sword-text-*, e.g. "
                              "sword-text-kjv)", module, *list ? list : "none");
        } else {
            const char *cat = org_crosswire_sword_SWModule_getCategory(b->mod);
            const char *src = org_crosswire_sword_SWModule_getConfigEntry(b->mod, "SourceType");
            if (cat && *cat && strcmp(cat, "Biblical Texts") != 0)
                s = text_fail(AT_E_FORMAT, "SWORD module '%s' is not a Bible (its category "
                              "is '%s')", module, cat);
            else if (src && *src && strcmp(src, "OSIS") != 0)
                s = text_fail(AT_E_FORMAT, "SWORD module '%s' is marked up in %s; only OSIS "
                              "modules are read", module, src);
        }
    }
    pthread_mutex_unlock(&sword_lock);
    if (s != AT_OK) {
        at_bible_free(b);
        return s;
    }
    *out = b;
    return AT_OK;
}

AT_TEXT_API void at_bible_free(at_bible *b)
{
    if (!b)
        return;
    if (b->mgr) {
        pthread_mutex_lock(&sword_lock);
        org_crosswire_sword_SWMgr_delete(b->mgr);
        pthread_mutex_unlock(&sword_lock);
    }
    free(b->name);
    free(b->info);
    tbuf_free(&b->markup);
    tbuf_free(&b->text);
    free(b->strongs);
    free(b->starts);
    free(b);
}

AT_TEXT_API const char *at_bible_info(at_bible *b, const char *key)
{
    if (!b || !key || !b->mod)
        return "";
    pthread_mutex_lock(&sword_lock);
    const char *v = org_crosswire_sword_SWModule_getConfigEntry(b->mod, key);
    if ((!v || !*v) && strcmp(key, "Versification") == 0)
        v = "KJV";   /* libsword's default */
    char *c = copy_str(v);
    pthread_mutex_unlock(&sword_lock);
    if (!c)
        return "";
    free(b->info);
    b->info = c;
    return c;
}

/* The i-th string of a NULL-terminated array of n or more, or "". */
static const char *nth(const char **a, int i)
{
    for (int k = 0; k < i; k++)
        if (!a || !a[k])
            return "";
    return a && a[i] ? a[i] : "";
}

AT_TEXT_API at_status at_bible_next(at_bible *b, at_bible_verse *out, int *done)
{
    if (!b || !done)
        return text_fail(AT_E_ARG, "at_bible_next: a NULL argument");
    if (!check_verse(out, "at_bible_next"))
        return AT_E_ARG;
    *done = 0;
    if (!b->mod)
        return text_fail(AT_E_STATE, "at_bible_next: this at_bible parses markup only "
                         "(opened without a module)");
    if (b->ended) {
        *done = 1;
        return AT_OK;
    }
    at_status s = AT_OK;
    int32_t testament = 0, book = 0, chapter = 0, verse = 0;
    pthread_mutex_lock(&sword_lock);
    if (!b->started) {
        org_crosswire_sword_SWModule_begin(b->mod);
        b->started = true;
    } else {
        org_crosswire_sword_SWModule_next(b->mod);
    }
    if (org_crosswire_sword_SWModule_popError(b->mod)) {
        b->ended = true;
    } else {
        const char **k = org_crosswire_sword_SWModule_getKeyChildren(b->mod);
        testament = atoi(nth(k, 0));
        book = atoi(nth(k, 1));
        chapter = atoi(nth(k, 2));
        verse = atoi(nth(k, 3));
        const char *osis = nth(k, 7);   /* "Gen.1.1" */
        size_t bl = strcspn(osis, ".");
        if (bl >= sizeof b->book)
            bl = sizeof b->book - 1;
        memcpy(b->book, osis, bl);
        b->book[bl] = '\0';
        const char *raw = org_crosswire_sword_SWModule_getRawEntry(b->mod);
        size_t rl = strlen(raw ? raw : "");
        if (!tbuf_reserve(&b->markup, rl + 1))
            s = AT_E_NOMEM;
        else {
            memcpy(b->markup.p, raw ? raw : "", rl + 1);
            b->markup.len = rl;
        }
    }
    pthread_mutex_unlock(&sword_lock);
    if (s != AT_OK)
        return s;
    if (b->ended) {
        *done = 1;
        return AT_OK;
    }
    if (testament != b->last_testament || book != b->last_book) {
        b->book_index++;
        b->last_testament = testament;
        b->last_book = book;
    }
    snprintf(b->ref, sizeof b->ref, "%s %d:%d", b->book, (int)chapter, (int)verse);
    s = parse(b, b->markup.p, b->markup.len, out);
    if (s == AT_E_FORMAT) {
        char why[256];
        snprintf(why, sizeof why, "%s", at_text_errmsg());
        return text_fail(s, "SWORD module '%s', %s: %s", b->name, b->ref, why);
    }
    if (s != AT_OK)
        return s;
    out->ref = b->ref;
    out->book = b->book;
    out->book_index = b->book_index;
    out->chapter = chapter;
    out->verse = verse;
    out->markup = b->markup.p;
    out->markup_len = b->markup.len;
    return AT_OK;
}

AT_TEXT_API at_status at_bible_parse(at_bible *b, const char *markup, size_t len,
                                     at_bible_verse *out)
{
    if (!b || (!markup && len))
        return text_fail(AT_E_ARG, "at_bible_parse: a NULL argument");
    if (!check_verse(out, "at_bible_parse"))
        return AT_E_ARG;
    if (!tbuf_reserve(&b->markup, len + 1))
        return AT_E_NOMEM;
    if (len)
        memcpy(b->markup.p, markup, len);
    b->markup.p[len] = '\0';
    b->markup.len = len;
    at_status s = parse(b, b->markup.p, len, out);
    if (s != AT_OK)
        return s;
    out->ref = "";
    out->book = "";
    out->book_index = 0;
    out->chapter = 0;
    out->verse = 0;
    out->markup = b->markup.p;
    out->markup_len = len;
    return AT_OK;
}
