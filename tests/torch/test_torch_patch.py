"""torch_patch: libat's activation patching and counterfactual attention
(include/at_analysis.h, group "patching") against the independent PyTorch
reference (tests/torch/reference.py, its Interventions), on
test_torch_ref.py's model (common.make_model: N=2, d_model=32, h=4).

  patch     at_activation_patch vs the reference with the same patching: a
            tap on the corrupted run keeps every head_out, then per head a tap
            on the clean run writes that head's columns (mean NLL, and the
            log-probability at a target position); corrupt == clean gives
            exactly 0;
  cf        at_counterfactual_attention vs the reference with the same
            overrides: each head's attention permuted over each row's valid
            keys (Fisher-Yates on splitmix64, reimplemented here from
            docs/patching.md) or uniform over them; the total variation of
            the next-token distribution averaged over non-pad positions;
  errors    NULL, a target position out of range, a handle with taps, a
            handle with overrides: the status and a message.

Usage: LIBAT_PATH=build/lib/libat.so python3 tests/torch/test_torch_patch.py
"""

import ctypes
import math
import os
import shutil
import sys
import tempfile
import time

T0 = time.time()
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

try:
    import numpy as np
    import torch
except ImportError as e:  # a failure, not a skip
    print("torch_patch: FAILED: %s (Debian: apt-get install python3-torch)" % e)
    sys.exit(1)

import capi  # noqa: E402
import reference as ref  # noqa: E402
from capi import ALL, SITE  # noqa: E402
from common import (CFG, FAILS, PAD, RESULTS, START, T, make_model, padded,  # noqa: E402
                    print_table, record, record_equal)

torch.set_num_threads(1)

N, H = CFG["layers"], CFG["heads"]
NG = 3 * N * H
F64 = torch.float64
P, c_int32, c_float, c_double = ctypes.POINTER, ctypes.c_int32, ctypes.c_float, ctypes.c_double
MASK64 = (1 << 64) - 1


def ids(a):
    a = np.ascontiguousarray(a, dtype=np.int32)
    return a, a.ctypes.data_as(P(c_int32))


def batches():
    """A clean batch and a corrupted one of the same shapes: some source
    tokens and some target tokens changed, padding where the clean has it."""
    rng = np.random.default_rng(5)
    src = padded(rng, [9, 7, 4, 8], 9, CFG["src_vocab"], PAD)
    tgt = padded(rng, [8, 6, 8, 3], 8, CFG["tgt_vocab"], PAD)
    tgt[:, 0] = START
    csrc, ctgt = src.copy(), tgt.copy()
    for r, n in enumerate([9, 7, 4, 8]):
        csrc[r, : n // 2] = rng.integers(4, CFG["src_vocab"], size=n // 2)
    ctgt[1, 2] = 7 if ctgt[1, 2] != 7 else 8
    return src, tgt, csrc, ctgt


# -------------------------------------------------------------------- patching

def lib_patch(m, src, tgt, csrc, ctgt, pos):
    s, ps = ids(src)
    t, pt = ids(tgt)
    cs, pcs = ids(csrc)
    ct, pct = ids(ctgt)
    out = np.zeros(NG, dtype=np.float32)
    vc, vx = c_double(), c_double()
    st = capi.LIB.at_activation_patch(m.ptr, ps, pt, pcs, pct, s.shape[0], s.shape[1],
                                      t.shape[1], PAD, pos, out.ctypes.data_as(P(c_float)),
                                      ctypes.byref(vc), ctypes.byref(vx))
    m.check(st, "at_activation_patch")
    return out.astype(np.float64), vc.value, vx.value


def ref_value(model, src, tgt_in_full, labels_full, pos, taps=()):
    """The value (mean NLL, or Σ log p at pos) of one reference pass whose
    decoder reads tgt_in_full[:, :-1], measured on labels_full[:, 1:]."""
    iv = model.set_interventions(ref.Interventions())
    try:
        iv.taps = list(taps)
        b = ref.Batch(T(src), T(tgt_in_full), PAD)
        with torch.no_grad():
            logp = model.generator(model(b.src, b.tgt, b.src_mask, b.tgt_mask))
        y = T(labels_full)[:, 1:]
        lp = logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
        keep = y != PAD
        if pos < 0:
            return float(-(lp[keep].sum() / keep.sum()))
        return float(lp[:, pos][keep[:, pos]].sum())
    finally:
        model.set_interventions(None)


def ref_patch(model, src, tgt, csrc, ctgt, pos):
    rec = {}

    def recorder(site, kind, layer, x):
        if site == "head_out":
            rec[(kind, layer)] = x.detach().clone()

    clean = ref_value(model, src, tgt, tgt, pos)
    corrupt = ref_value(model, csrc, ctgt, tgt, pos, [recorder])
    out = np.zeros((3, N, H))
    for k in range(3):
        for l in range(N):
            for j in range(H):
                def writer(site, kind, layer, x, k=k, l=l, j=j):
                    if site != "head_out" or (kind, layer) != (k, l):
                        return None
                    y = x.clone()
                    y[:, j] = rec[(k, l)][:, j]
                    return y
                out[k, l, j] = ref_value(model, src, tgt, tgt, pos, [writer]) - clean
    return out.ravel(), clean, corrupt


def check_patch(m, path, _tmp):
    model = ref.load_model(path, H, F64)
    src, tgt, csrc, ctgt = batches()
    for pos in (-1, 0, 3):
        tag = "nll" if pos < 0 else "pos %d" % pos
        got, vc, vx = lib_patch(m, src, tgt, csrc, ctgt, pos)
        want, rc, rx = ref_patch(model, src, tgt, csrc, ctgt, pos)
        record("patch", "delta[%s]" % tag, got, want, 2e-5)
        record("patch", "clean, corrupt[%s]" % tag, [vc, vx], [rc, rx], 2e-5)
        record_equal("patch", "some head matters[%s]" % tag, bool(np.abs(want).max() > 1e-3),
                     True)
        same, vs, vs2 = lib_patch(m, src, tgt, src, tgt, pos)
        record_equal("patch", "corrupt == clean: exactly 0[%s]" % tag, same, np.zeros(NG))
        record_equal("patch", "corrupt == clean: equal values[%s]" % tag, vs, vs2)
    # the handle keeps no taps afterwards: a plain pass is the same as before
    record_equal("patch", "no taps left", m.tap_add(SITE["head_out"], ALL, ALL,
                                                   lambda ev: 0), capi.OK)
    m.tap_clear()


# -------------------------------------------------------------------- counterfactual

def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def counterfactual(p, valid, state, uniform):
    """docs/patching.md: each row's weights on its valid keys shuffled by
    Fisher-Yates (rows in (b, i) order, one splitmix64 stream per head) or
    1/n on each; rows without valid keys unchanged."""
    out = p.copy()
    B, Lq, _ = p.shape
    for b in range(B):
        for i in range(Lq):
            idx = np.nonzero(valid[b, i])[0]
            n = len(idx)
            if n == 0:
                continue
            out[b, i] = 0.0
            if uniform:
                out[b, i, idx] = 1.0 / n
                continue
            w = list(p[b, i, idx])
            for j in range(n - 1, 0, -1):
                state, x = splitmix64(state)
                r = x % (j + 1)
                w[j], w[r] = w[r], w[j]
            out[b, i, idx] = w
    return out, state


def ref_cf(model, src, tgt_in, seed):
    s, t = T(src), T(tgt_in)
    sm, tm = ref.src_mask_of(s, PAD), ref.tgt_mask_of(t, PAD)

    def run(overrides=()):
        iv = model.set_interventions(ref.Interventions())
        try:
            for kind, layer, head, probs in overrides:
                iv.set_override(kind, layer, head, torch.as_tensor(probs))
            with torch.no_grad():
                lp = model.generator(model.decode(model.encode(s, sm), sm, t, tm))
            attn = {k: [a.double().numpy().copy() for a in model.attention(name)]
                    for k, name in enumerate(("enc_self", "dec_self", "cross"))}
            return lp.exp().double().numpy(), attn
        finally:
            model.set_interventions(None)

    base, attn = run()
    keep = tgt_in != PAD
    masks = {0: np.broadcast_to(sm.numpy(), (s.shape[0], s.shape[1], s.shape[1])),
             1: tm.numpy(),
             2: np.broadcast_to(sm.numpy(), (s.shape[0], t.shape[1], s.shape[1]))}
    tvp, tvu = np.zeros((3, N, H)), np.zeros((3, N, H))
    for k in range(3):
        for l in range(N):
            for j in range(H):
                index = (k * N + l) * H + j
                state = seed ^ ((index * 0xD1B54A32D192ED03) & MASK64)
                for u, dest in ((False, tvp), (True, tvu)):
                    probs, state = counterfactual(attn[k][l][:, j], masks[k], state, u)
                    p2, _ = run([(k, l, j, probs)])
                    tv = 0.5 * np.abs(base - p2).sum(-1)
                    dest[k, l, j] = tv[keep].mean()
    return tvp.ravel(), tvu.ravel()


def lib_cf(m, src, tgt_in, seed):
    s, ps = ids(src)
    t, pt = ids(tgt_in)
    tvp, tvu = np.zeros(NG, dtype=np.float32), np.zeros(NG, dtype=np.float32)
    st = capi.LIB.at_counterfactual_attention(m.ptr, ps, pt, s.shape[0], s.shape[1],
                                              t.shape[1], PAD, seed,
                                              tvp.ctypes.data_as(P(c_float)),
                                              tvu.ctypes.data_as(P(c_float)))
    m.check(st, "at_counterfactual_attention")
    return tvp.astype(np.float64), tvu.astype(np.float64)


def check_cf(m, path, _tmp):
    model = ref.load_model(path, H, F64)
    src, tgt, _, _ = batches()
    src[3, 4] = PAD  # a pad inside a row
    tgt_in = tgt[:, :-1]
    for seed in (0, 12345, 2**63 + 7):
        gp, gu = lib_cf(m, src, tgt_in, seed)
        wp, wu = ref_cf(model, src, tgt_in, seed)
        record("cf", "permuted[seed %d]" % seed, gp, wp, 5e-6)
        record("cf", "uniform[seed %d]" % seed, gu, wu, 5e-6)
        again, _ = lib_cf(m, src, tgt_in, seed)
        record_equal("cf", "deterministic[seed %d]" % seed, again, gp)
    other, _ = lib_cf(m, src, tgt_in, 1)
    record_equal("cf", "another seed, other permutations", bool((other != gp).any()), True)


# -------------------------------------------------------------------- errors



def check_errors(m, _path, _tmp):
    src, tgt, csrc, ctgt = batches()
    s, ps = ids(src)
    t, pt = ids(tgt)
    out = np.zeros(NG, dtype=np.float32)
    po = out.ctypes.data_as(P(c_float))
    B, S, TF = s.shape[0], s.shape[1], t.shape[1]
    L = capi.LIB

    def expect(what, st, want, needle):
        msg = (L.at_errmsg(m.ptr) or b"").decode()
        record_equal("errors", what, st, want, msg)
        record_equal("errors", what + ": message", needle in msg, True, repr(msg))

    expect("patch NULL corrupt", L.at_activation_patch(m.ptr, ps, pt, None, pt, B, S, TF, PAD,
                                                      -1, po, None, None), capi.E_ARG, "NULL")
    expect("patch NULL out", L.at_activation_patch(m.ptr, ps, pt, ps, pt, B, S, TF, PAD, -1,
                                                   None, None, None), capi.E_ARG, "NULL")
    expect("patch target = T", L.at_activation_patch(m.ptr, ps, pt, ps, pt, B, S, TF, PAD,
                                                     TF - 1, po, None, None), capi.E_RANGE,
           "target position")
    expect("patch target -2", L.at_activation_patch(m.ptr, ps, pt, ps, pt, B, S, TF, PAD, -2,
                                                    po, None, None), capi.E_RANGE,
           "target position")
    expect("patch tgt_len 1", L.at_activation_patch(m.ptr, ps, pt, ps, pt, B, S, 1, PAD, -1,
                                                    po, None, None), capi.E_ARG, "tgt_len")
    m.check(m.tap_add(SITE["q"], ALL, ALL, lambda ev: 0), "at_tap_add")
    expect("patch with a tap of the handle's", L.at_activation_patch(
        m.ptr, ps, pt, ps, pt, B, S, TF, PAD, -1, po, None, None), capi.E_STATE, "taps")
    m.tap_clear()
    record_equal("errors", "patch NULL model", L.at_activation_patch(
        None, ps, pt, ps, pt, B, S, TF, PAD, -1, po, None, None), capi.E_ARG)
    ti, pti = ids(tgt[:, :-1])
    expect("cf NULL tv_uniform", L.at_counterfactual_attention(m.ptr, ps, pti, B, S, TF - 1,
                                                               PAD, 0, po, None),
           capi.E_ARG, "NULL")
    probs = np.full((B, TF - 1, S), 1.0 / S, dtype=np.float32)
    m.check(L.at_attention_override(m.ptr, 2, 0, 1, probs.ctypes.data_as(P(c_float)), B,
                                    TF - 1, S), "at_attention_override")
    expect("cf with an override of the handle's", L.at_counterfactual_attention(
        m.ptr, ps, pti, B, S, TF - 1, PAD, 0, po, po), capi.E_STATE, "overrides")
    L.at_interventions_reset(m.ptr)


def main():
    if capi.MISSING_PATCH:
        print("torch_patch: FAILED: %s does not export %s"
              % (capi.LIBRARY_PATH, ", ".join(capi.MISSING_PATCH)))
        return 1
    tmp = tempfile.mkdtemp(prefix="torch_patch.")
    checks = (("patch", check_patch), ("cf", check_cf), ("errors", check_errors))
    times = {}
    try:
        print("torch_patch: libat %s, torch %s, numpy %s"
              % (capi.LIBRARY_PATH, torch.__version__, np.__version__))
        m, path, _ = make_model(tmp)
        try:
            for name, fn in checks:
                t = time.time()
                try:
                    fn(m, path, tmp)
                except Exception as e:  # noqa: BLE001 (a check that cannot run fails)
                    import traceback
                    traceback.print_exc()
                    FAILS.append("%s: stopped: %s: %s" % (name, type(e).__name__, e))
                    RESULTS.append((name, "stopped", math.inf, None, None, 0.0, False))
                times[name] = time.time() - t
        finally:
            m.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table([c for c, _ in checks])
    print("times: " + ", ".join("%s %.1f s" % kv for kv in times.items())
          + "; total %.1f s" % (time.time() - T0))
    if FAILS:
        print("\n%d FAILED comparisons:" % len(FAILS))
        for f in FAILS[:80]:
            print("  " + f)
        return 1
    print("torch_patch: all %d comparisons passed" % len(RESULTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
