/* libat_text: version, thread-local error messages, the one-thread guard,
 * strict UTF-8, Python's white space, growable buffers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text_internal.h"

static _Thread_local char errbuf[1024];

AT_TEXT_API unsigned at_text_version_number(void)
{
    return AT_VERSION_NUMBER;
}

AT_TEXT_API const char *at_text_errmsg(void)
{
    return errbuf;
}

at_status text_fail(at_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    return s;
}

bool text_enter(atomic_flag *busy, const char *who)
{
    if (atomic_flag_test_and_set_explicit(busy, memory_order_acquire)) {
        text_fail(AT_E_STATE, "%s: the accumulator is in use by another thread", who);
        return false;
    }
    return true;
}

void text_leave(atomic_flag *busy)
{
    atomic_flag_clear_explicit(busy, memory_order_release);
}

size_t utf8_invalid_at(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        unsigned lo = 0x80, hi = 0xBF;   /* range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
            k = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 3;
            if (c == 0xE0)
                lo = 0xA0;               /* no overlong 3-byte forms */
            else if (c == 0xED)
                hi = 0x9F;               /* no surrogates U+D800..U+DFFF */
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 4;
            if (c == 0xF0)
                lo = 0x90;               /* no overlong 4-byte forms */
            else if (c == 0xF4)
                hi = 0x8F;               /* nothing above U+10FFFF */
        } else {
            return i;                    /* 80..C1, F5..FF never start a sequence */
        }
        if (i + 1 >= n || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t j = 2; j < k; j++)
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80)
                return i;
        i += k;
    }
    return n;
}

size_t ws_len(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned c = s[0];
    if ((c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20))
        return 1;
    if (c == 0xC2 && n >= 2 && (s[1] == 0x85 || s[1] == 0xA0))
        return 2;                                        /* U+0085, U+00A0 */
    if (n >= 3) {
        if (c == 0xE1 && s[1] == 0x9A && s[2] == 0x80)
            return 3;                                    /* U+1680 */
        if (c == 0xE2 && s[1] == 0x80 &&
            (s[2] <= 0x8A || s[2] == 0xA8 || s[2] == 0xA9 || s[2] == 0xAF))
            return 3;                                    /* U+2000..200A, 2028, 2029, 202F */
        if (c == 0xE2 && s[1] == 0x81 && s[2] == 0x9F)
            return 3;                                    /* U+205F */
        if (c == 0xE3 && s[1] == 0x80 && s[2] == 0x80)
            return 3;                                    /* U+3000 */
    }
    return 0;
}

size_t rstrip_len(const unsigned char *s, size_t n)
{
    while (n > 0) {
        /* the last code point starts at the last byte that is not a continuation */
        size_t st = n - 1;
        while (st > 0 && (s[st] & 0xC0) == 0x80 && n - st < 4)
            st--;
        if (ws_len(s + st, n - st) != n - st)
            break;
        n = st;
    }
    return n;
}

bool tbuf_reserve(tbuf *b, size_t need)
{
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        text_fail(AT_E_NOMEM, "out of memory (%zu bytes for a segment)", cap);
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void tbuf_free(tbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

bool tidx_reserve(tidx *x, size_t need)
{
    if (need <= x->cap)
        return true;
    size_t cap = x->cap ? x->cap : 64;
    while (cap < need)
        cap *= 2;
    if (cap > SIZE_MAX / sizeof *x->p) {
        text_fail(AT_E_NOMEM, "out of memory (a segment too long to index)");
        return false;
    }
    size_t *p = realloc(x->p, cap * sizeof *p);
    if (!p) {
        text_fail(AT_E_NOMEM, "out of memory (%zu offsets for a segment)", cap);
        return false;
    }
    x->p = p;
    x->cap = cap;
    return true;
}

void tidx_free(tidx *x)
{
    free(x->p);
    memset(x, 0, sizeof *x);
}
