/* The embedding, forward and backward: a row of the table scaled by √d
 * plus the positional encoding, and its gradient into the table. */
#include <math.h>

#include "core/core.h"

/* (B, L) ids -> (B, L, d): lut[id]·√d + pe[pos]  (paper §3.4, §3.5).
 * The scale is the double √d rounded to float, multiplied, as torch does. */
void embed_forward(float *out, const int32_t *ids, const float *lut, const float *pe,
                   int B, int L, int d)
{
    const float scale = (float)sqrt((double)d);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++) {
            const float *row = lut + (size_t)ids[b * L + t] * d;
            const float *pos = pe + (size_t)t * d;
            float *o = out + ((size_t)b * L + t) * d;
            for (int i = 0; i < d; i++)
                o[i] = row[i] * scale + pos[i];
        }
}

/* out = lut[id]·√d + pe  →  dlut[id] += dout·√d (pe is a buffer). */
void embed_backward(float *dlut, const float *dout, const int32_t *ids, int rows, int d)
{
    const float scale = (float)sqrt((double)d);
    for (int r = 0; r < rows; r++) {
        float *g = dlut + (size_t)ids[r] * d;
        const float *dr = dout + (size_t)r * d;
        for (int i = 0; i < d; i++)
            g[i] += dr[i] * scale;
    }
}
