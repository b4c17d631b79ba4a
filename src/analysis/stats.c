/* Statistics of attention heads over the valid region of the last pass. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/internal.h"

/* Where the valid rows and keys of one attention tensor are. */
typedef struct region {
    at_view v;                    /* (B, h, Lq, Lk) */
    const float *key_mask;        /* key_mask[b·kb + i·kq + j] != 0: key j of row i is valid */
    int64_t kb, kq;
    const float *row_mask;        /* row_mask[b·rb + i·rq] != 0: row i is valid */
    int64_t rb, rq;
} region;

static at_status find_region(at_model *m, at_attn_kind kind, int layer, region *r)
{
    at_status s = at_get_attention(m, kind, layer, &r->v);
    if (s != AT_OK)
        return s;
    int64_t S = m->S, Tl = m->Tl;
    const float *src = m->a.src_mask, *tgt = m->a.tgt_mask;
    if (kind == AT_ATTN_ENC_SELF) {
        *r = (region){r->v, src, S, 0, src, S, 1};
    } else if (kind == AT_ATTN_CROSS) {
        /* a target row is valid when its token is no pad: the diagonal of tgt_mask */
        *r = (region){r->v, src, S, 0, tgt, Tl * Tl, Tl + 1};
    } else {
        *r = (region){r->v, tgt, Tl * Tl, Tl, tgt, Tl * Tl, Tl + 1};
    }
    return AT_OK;
}

static const float *row_of(const region *r, int64_t b, int64_t h, int64_t i)
{
    return r->v.data + b * r->v.stride[0] + h * r->v.stride[1] + i * r->v.stride[2];
}

static bool row_valid(const region *r, int64_t b, int64_t i)
{
    return r->row_mask[b * r->rb + i * r->rq] != 0.0f;
}

static bool key_valid(const region *r, int64_t b, int64_t i, int64_t j)
{
    return r->key_mask[b * r->kb + i * r->kq + j] != 0.0f;
}

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

static at_status head_stats(at_model *m, at_attn_kind kind, int layer, int topk, int nstats,
                            double *out)
{
    const char *who = "at_attention_stats";
    if (!out || topk < 1 || nstats < 1 || nstats > AT_STAT_COUNT)
        return set_error(m, AT_E_ARG, "%s: need out, topk >= 1 and 1 <= nstats <= %d", who,
                         AT_STAT_COUNT);
    region r;
    at_status s = find_region(m, kind, layer, &r);
    if (s != AT_OK)
        return s;
    int64_t B = r.v.shape[0], H = r.v.shape[1], Lq = r.v.shape[2], Lk = r.v.shape[3];
    float *sorted = malloc((size_t)Lk * sizeof *sorted);
    if (!sorted)
        return set_error(m, AT_E_NOMEM, "%s: out of memory", who);
    for (int64_t h = 0; h < H; h++) {
        double acc[AT_STAT_COUNT] = {0};
        bool finite = true;
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < Lq; i++) {
                if (!row_valid(&r, b, i))
                    continue;
                const float *p = row_of(&r, b, h, i);
                int n = 0;
                double ent = 0, mx = 0, dist = 0;
                for (int64_t j = 0; j < Lk; j++) {
                    if (!key_valid(&r, b, i, j))
                        continue;
                    double w = p[j];
                    finite = finite && isfinite(w);
                    sorted[n++] = p[j];
                    if (w > 0)
                        ent -= w * log(w);
                    mx = w > mx ? w : mx;
                    dist += w * (double)llabs(i - j);
                }
                if (n == 0)
                    continue;
                qsort(sorted, (size_t)n, sizeof *sorted, cmp_desc);
                double top = 0;
                for (int k = 0; k < n && k < topk; k++)
                    top += sorted[k];
                acc[AT_STAT_ENTROPY] += ent;
                acc[AT_STAT_ENTROPY_NORM] += n > 1 ? ent / log((double)n) : 0.0;
                acc[AT_STAT_MAX] += mx;
                acc[AT_STAT_TOPK] += top;
                acc[AT_STAT_DISTANCE] += dist;
                acc[AT_STAT_ROWS] += 1;
            }
        double rows = acc[AT_STAT_ROWS];
        for (int k = 0; k < AT_STAT_COUNT; k++)
            if (k != AT_STAT_ROWS)
                acc[k] = rows > 0 ? acc[k] / rows : 0.0;
        acc[AT_STAT_DISPERSION] = rows > 0 ? 1.0 - acc[AT_STAT_MAX] : 0.0;
        /* NaN is not a number: no statistic of a head whose weights are not */
        for (int k = 0; k < AT_STAT_COUNT && !finite; k++)
            if (k != AT_STAT_ROWS)
                acc[k] = NAN;
        memcpy(out + h * nstats, acc, (size_t)nstats * sizeof *out);
    }
    free(sorted);
    return AT_OK;
}

/* JS(p, q) = ½ KL(p ‖ m) + ½ KL(q ‖ m), m = (p + q)/2, in bits. */
static double js_bits(const float *p, const float *q, const region *r, int64_t b, int64_t i,
                      int64_t Lk)
{
    double js = 0;
    for (int64_t j = 0; j < Lk; j++) {
        if (!key_valid(r, b, i, j))
            continue;
        double a = p[j], c = q[j], mid = 0.5 * (a + c);
        if (!isfinite(a) || !isfinite(c))
            return NAN;
        if (a > 0)
            js += 0.5 * a * log(a / mid);
        if (c > 0)
            js += 0.5 * c * log(c / mid);
    }
    return js / log(2.0);
}

static at_status head_js(at_model *m, at_attn_kind kind, int layer, double *out)
{
    const char *who = "at_attention_js";
    if (!out)
        return set_error(m, AT_E_ARG, "%s: out is NULL", who);
    region r;
    at_status s = find_region(m, kind, layer, &r);
    if (s != AT_OK)
        return s;
    int64_t B = r.v.shape[0], H = r.v.shape[1], Lq = r.v.shape[2], Lk = r.v.shape[3];
    for (int64_t x = 0; x < H; x++) {
        out[x * H + x] = 0.0;
        for (int64_t y = x + 1; y < H; y++) {
            double sum = 0;
            int64_t rows = 0;
            for (int64_t b = 0; b < B; b++)
                for (int64_t i = 0; i < Lq; i++)
                    if (row_valid(&r, b, i)) {
                        sum += js_bits(row_of(&r, b, x, i), row_of(&r, b, y, i), &r, b, i, Lk);
                        rows++;
                    }
            out[x * H + y] = out[y * H + x] = rows ? sum / (double)rows : 0.0;
        }
    }
    return AT_OK;
}

at_status at_attention_stats(at_model *m, at_attn_kind kind, int layer, int topk, int nstats,
                             double *out)
{
    GUARDED(m, "at_attention_stats", head_stats(m, kind, layer, topk, nstats, out));
}

at_status at_attention_js(at_model *m, at_attn_kind kind, int layer, double *out)
{
    GUARDED(m, "at_attention_js", head_js(m, kind, layer, out));
}
