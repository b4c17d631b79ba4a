/* libat_text: a hash table of n-gram counts (open addressing, linear
 * probing, FNV-1a over the bytes and the order). */
#include <stdlib.h>
#include <string.h>

#include "text_internal.h"

static uint64_t ng_hash(const char *p, size_t len, uint32_t n)
{
    uint64_t h = 1469598103934665603ULL ^ n;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static bool ng_grow(ng_table *t)
{
    size_t cap = t->cap ? t->cap * 2 : 256;
    if (cap > SIZE_MAX / sizeof(ng_entry)) {
        text_fail(AT_E_NOMEM, "out of memory (n-gram table)");
        return false;
    }
    ng_entry *slots = calloc(cap, sizeof *slots);
    size_t *list = malloc((cap / 2 + 1) * sizeof *list);
    if (!slots || !list) {
        free(slots);
        free(list);
        text_fail(AT_E_NOMEM, "out of memory (an n-gram table of %zu slots)", cap);
        return false;
    }
    for (size_t k = 0; k < t->used; k++) {
        const ng_entry *e = &t->slots[t->list[k]];
        size_t i = (size_t)e->hash & (cap - 1);
        while (slots[i].p)
            i = (i + 1) & (cap - 1);
        slots[i] = *e;
        list[k] = i;
    }
    free(t->slots);
    free(t->list);
    t->slots = slots;
    t->list = list;
    t->cap = cap;
    return true;
}

ng_entry *ng_get(ng_table *t, const char *p, size_t len, uint32_t n)
{
    if ((t->used + 1) * 2 > t->cap && !ng_grow(t))
        return NULL;
    uint64_t h = ng_hash(p, len, n);
    size_t i = (size_t)h & (t->cap - 1);
    for (;;) {
        ng_entry *e = &t->slots[i];
        if (!e->p) {
            memset(e, 0, sizeof *e);
            e->p = p;
            e->len = (uint32_t)len;
            e->n = n;
            e->hash = h;
            t->list[t->used++] = i;
            return e;
        }
        if (e->hash == h && e->len == len && e->n == n && memcmp(e->p, p, len) == 0)
            return e;
        i = (i + 1) & (t->cap - 1);
    }
}

void ng_clear(ng_table *t)
{
    for (size_t k = 0; k < t->used; k++)
        t->slots[t->list[k]].p = NULL;
    t->used = 0;
}

void ng_free(ng_table *t)
{
    free(t->slots);
    free(t->list);
    memset(t, 0, sizeof *t);
}
