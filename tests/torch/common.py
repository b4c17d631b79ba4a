"""What tests/torch/test_torch_ref.py and test_torch_interv.py share: the
model's configuration, the bookkeeping of comparisons (one table line per
group, max |libat − ref64|, relative, the float32 noise floor), random
padded inputs and the perturbed model libat creates and saves for the
reference to load.
"""

import math
import os

import numpy as np
import torch

import capi

CFG = dict(src_vocab=53, tgt_vocab=50, layers=2, d_model=32, heads=4, d_ff=64, max_len=24,
           seed=11)
PAD = 0
START = 1
END = 3

# -------------------------------------------------------------------- bookkeeping

RESULTS = []  # (check, what, max_abs, max_rel, f32_abs, tol, ok)
FAILS = []
NOTES = []  # what the decoding checks covered


def record(check, what, got, want64, tol, want32=None, scale_tol=None):
    """Compare libat's `got` with the float64 reference `want64`: passes when
    max |got − want64| <= tol (+ scale_tol · max |want64| when given)."""
    got = np.asarray(got, dtype=np.float64)
    want64 = np.asarray(want64, dtype=np.float64)
    if got.shape != want64.shape:
        FAILS.append("%s %s: shape %s, reference %s" % (check, what, got.shape, want64.shape))
        RESULTS.append((check, what, math.inf, math.inf, None, tol, False))
        return
    diff = np.abs(got - want64)
    mabs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(want64).max()) if diff.size else 0.0
    mrel = mabs / scale if scale > 0 else (0.0 if mabs == 0 else math.inf)
    f32 = None
    if want32 is not None:
        f32 = float(np.abs(np.asarray(want32, dtype=np.float64) - want64).max())
    bound = tol + (scale_tol * scale if scale_tol else 0.0)
    ok = bool(np.isfinite(diff).all()) and mabs <= bound
    RESULTS.append((check, what, mabs, mrel, f32, bound, ok))
    if not ok:
        idx = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else ()
        FAILS.append("%s %s: max |diff| %.3g > %.3g at %s (libat %r, reference %r)"
                     % (check, what, mabs, bound, tuple(int(i) for i in idx),
                        float(got[idx]), float(want64[idx])))


def record_equal(check, what, got, want, detail=""):
    got, want = np.asarray(got), np.asarray(want)
    ok = got.shape == want.shape and bool((got == want).all())
    RESULTS.append((check, what, 0.0 if ok else math.inf, None, None, 0.0, ok))
    if not ok:
        FAILS.append("%s %s: libat %s, reference %s %s"
                     % (check, what, got.tolist(), want.tolist(), detail))


def summarise(results, check):
    """One line per group of a check (the name before "["): the count, the
    largest differences, and the tolerance of the line nearest to its own."""
    groups = {}
    for c, what, mabs, mrel, f32, tol, ok in results:
        if c != check:
            continue
        key = what.split("[")[0]
        g = groups.setdefault(key, [0, 0.0, 0.0, None, 0.0, True, -1.0])
        g[0] += 1
        g[1] = max(g[1], mabs)
        g[2] = max(g[2], mrel or 0.0)
        if f32 is not None:
            g[3] = max(g[3] or 0.0, f32)
        ratio = mabs / tol if tol > 0 else (0.0 if mabs == 0 else math.inf)
        if ratio > g[6]:
            g[4], g[6] = tol, ratio
        g[5] = g[5] and ok
    return {k: v[:6] for k, v in groups.items()}


# -------------------------------------------------------------------- inputs

def padded(rng, lens, width, vocab, pad, low=1):
    """Rows of random ids in low..vocab-1 (never pad) followed by pad."""
    out = np.full((len(lens), width), pad, dtype=np.int64)
    for r, n in enumerate(lens):
        ids = rng.integers(low, vocab, size=n)
        ids[ids == pad] = (pad + 1) % vocab or 1
        out[r, :n] = ids
    return out


def T(a):
    return torch.as_tensor(np.asarray(a, dtype=np.int64))


# -------------------------------------------------------------------- the model

def make_model(tmp):
    """libat creates and perturbs the model, then saves it; returns the handle,
    the checkpoint path and the tensor table."""
    m = capi.Model.create(dropout=0.0, attn_dropout=0.0, **CFG)
    rng = np.random.default_rng(20240601)
    table = m.tensors()
    for i, name, trainable in table:
        if not trainable:
            continue
        v = m.tensor(i)
        if name.endswith(".a_2"):
            v = 1.0 + 0.25 * rng.standard_normal(v.shape)
        elif name.endswith(".b_2") or name.endswith(".bias"):
            v = 0.1 * rng.standard_normal(v.shape)
        else:
            v = v * (1.0 + 0.2 * rng.standard_normal(v.shape))
        m.write_tensor(i, v)
    path = os.path.join(tmp, "model.safetensors")
    m.save(path)
    return m, path, table




def print_table(checks):
    """The table of RESULTS, one line per group of each check."""
    print("%-8s %-40s %5s %10s %10s %10s %10s  %s"
          % ("check", "what", "n", "max abs", "abs/scale", "f32 torch", "tolerance", ""))
    for check in checks:
        for key, (n, mabs, mrel, f32, tol, ok) in summarise(RESULTS, check).items():
            print("%-8s %-40s %5d %10.3g %10.3g %10s %10.3g  %s"
                  % (check, key[:40], n, mabs, mrel, "-" if f32 is None else "%.3g" % f32, tol,
                     "ok" if ok else "FAIL"))
