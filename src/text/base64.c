/* Base64 (RFC 4648, the standard alphabet with '=' padding): how a
 * tokenizer's serialized model travels in a checkpoint's __metadata__, whose
 * values are JSON strings of UTF-8 text. */
#include <stdlib.h>

#include "text_internal.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const unsigned char *p, size_t n, size_t *out_len)
{
    if (n > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    size_t len = (n + 2) / 3 * 4;
    char *s = malloc(len + 1), *o = s;
    if (!s)
        return NULL;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = alphabet[v >> 18];
        *o++ = alphabet[v >> 12 & 63];
        *o++ = alphabet[v >> 6 & 63];
        *o++ = alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = alphabet[v >> 18];
        *o++ = alphabet[v >> 12 & 63];
        *o++ = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    *out_len = len;
    return s;
}

static int sextet(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

size_t base64_decode(const char *s, size_t n, unsigned char *out)
{
    if (n % 4 != 0)
        return SIZE_MAX;
    size_t w = 0;
    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        int pad = last ? (s[i + 3] == '=') + (s[i + 2] == '=' && s[i + 3] == '=') : 0;
        uint32_t v = 0;
        for (int k = 0; k < 4; k++) {
            int x = k >= 4 - pad ? 0 : sextet((unsigned char)s[i + k]);
            if (x < 0)
                return SIZE_MAX;
            v = v << 6 | (uint32_t)x;
        }
        out[w++] = (unsigned char)(v >> 16);
        if (pad < 2)
            out[w++] = (unsigned char)(v >> 8);
        if (pad < 1)
            out[w++] = (unsigned char)v;
    }
    return w;
}
