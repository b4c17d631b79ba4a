"""torch_interv: libat's interventions (include/at.h, group "interventions":
taps, head gates and their gradients, attention overrides, the capture
policy) against the independent PyTorch reference (tests/torch/reference.py,
its Interventions), on test_torch_ref.py's model (common.make_model: N=2,
d_model=32, h=4, every parameter perturbed, saved by libat and loaded by the
reference).

  self      the reference against itself: gates at 1, a no-op tap and an
            override with its own attention change nothing; a gate equals
            the same scaling done by a head_out tap;
  gates     gates at 0 and 0.5 (single heads, whole blocks, AT_ALL): log-probs,
            memory, decoder output and every attention tensor;
  override  row-stochastic overrides (dec_self lower-triangular), and ones whose
            rows do not sum to 1 (a zero row): the same tensors;
  taps      a tap on every site, each copy (strides honoured) vs the reference's
            tensor; taps that edit (v scaled, ff_hidden zeroed, cross k scaled,
            scores shifted, a layer's output shifted) change what follows as
            the same edit does in the reference;
  gradgate  at_gate_gradients vs autograd with ξ a leaf (at ξ = 1 and at a
            mix with 0 and 0.5), its loss and at_eval_nll's vs the reference
            NLL; at_train_step's weight gradients with gates vs autograd;
            with overrides and with a tap that edits, the gradients
            docs/interventions.md defines (an edit passed through unchanged,
            an override differentiated as its softmax's output: the note
            gives how far that is from the exact gradient);
  bitident  gates set to 1, no-op taps, and overrides with the model's own
            attention: bit-identical to a plain pass;
  decode    greedy decoding with gates, with overrides (full and partial rows)
            vs the reference's cache-less greedy decoding; libat's decode vs
            libat's teacher-forced pass with the same override; the taps of a
            decode vs the reference's prefix passes; beam search with gates and
            with an override vs the reference's;
  order     the order and fields (pass, step, positions, batch, shape) of the
            tap events of a forward pass and of a greedy decode;
  errors    bad arguments and the statuses at.h documents;
  capture   a capture policy keeping one head: AT_E_STATE for the dropped,
            the kept head as in a plain pass, less arena memory, the same
            log-probs; at_model_share handles start without interventions.

Each table line: the largest |libat − ref64|, the same over the largest
|ref64|, what float32 PyTorch is off by (the float32 noise floor), the
tolerance. Exit status 0 when every check passes, 1 otherwise; torch
missing is a failure.

Usage: LIBAT_PATH=build/lib/libat.so.0 python3 tests/torch/test_torch_interv.py
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
    print("torch_interv: FAILED: %s (Debian: apt-get install python3-torch)" % e)
    sys.exit(1)

import capi  # noqa: E402
import reference as ref  # noqa: E402
from capi import ALL, CROSS, DEC_SELF, ENC_SELF, SITE  # noqa: E402
from common import (CFG, END, FAILS, NOTES, PAD, RESULTS, START, T, make_model,  # noqa: E402
                    padded, print_table, record, record_equal)

torch.set_num_threads(1)

N, H = CFG["layers"], CFG["heads"]
D = CFG["d_model"]
DK = D // H
NG = 3 * N * H
KIND_NAMES = ("enc_self", "dec_self", "cross")
F64, F32 = torch.float64, torch.float32
TOL = 1e-5  # test_torch_ref's forward bound (float32 torch is off by ~1e-6)
ATTN_SITES = ("q", "k", "v", "scores", "probs", "head_out", "attn_out")


def record_same(check, what, got, want):
    """Bit-identity of two arrays; on failure the largest difference and where."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        RESULTS.append((check, what, math.inf, None, None, 0.0, False))
        FAILS.append("%s %s: shape %s, expected %s" % (check, what, got.shape, want.shape))
        return
    same = np.array_equal(got, want)
    diff = np.abs(got - want)
    mabs = float(np.nanmax(diff)) if diff.size else 0.0
    RESULTS.append((check, what, mabs, None, None, 0.0, same))
    if not same:
        idx = np.unravel_index(int(np.nanargmax(diff)), diff.shape)
        FAILS.append("%s %s: not bit-identical: %d of %d elements differ, max |diff| %.3g at %s "
                     "(%r vs %r)" % (check, what, int((got != want).sum()), got.size, mabs,
                                     tuple(int(i) for i in idx), float(got[idx]),
                                     float(want[idx])))


def ok_status(check, what, got, want):
    record_equal(check, what, got, want,
                 "(%s vs %s)" % (capi.LIB.at_status_string(got).decode(),
                                 capi.LIB.at_status_string(want).decode()))


def ok_true(check, what, cond, detail=""):
    record_equal(check, what, bool(cond), True, detail)


# -------------------------------------------------------------------- inputs

def forward_batch():
    """test_torch_ref's forward batch: padded sources (a pad inside a row)
    and targets."""
    rng = np.random.default_rng(1)
    src = padded(rng, [9, 6, 3, 8], 9, CFG["src_vocab"], PAD)
    src[3, 4] = PAD
    tgt = padded(rng, [8, 5, 7, 2], 8, CFG["tgt_vocab"], PAD)
    tgt[:, 0] = START
    return src, tgt


def loss_batch():
    rng = np.random.default_rng(2)
    src = padded(rng, [9, 7, 4, 8], 9, CFG["src_vocab"], PAD)
    tgt = padded(rng, [9, 6, 9, 3], 9, CFG["tgt_vocab"], PAD)
    tgt[:, 0] = START
    return src, tgt


def f32(a):
    """Values as libat receives them (float32), in float64."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def stochastic(rng, shape, causal=False, mask_keys=None):
    """Random rows summing to 1 (float32-rounded); causal: 0 above the
    diagonal; mask_keys (B, Lk) bool: 0 on those keys."""
    a = rng.gamma(0.7, size=shape) + 1e-3
    if causal:
        a = a * np.tril(np.ones(shape[-2:]))
    if mask_keys is not None:
        m = mask_keys.reshape((shape[0],) + (1,) * (len(shape) - 2) + (shape[-1],))
        a = np.where(m, 0.0, a)
    return f32(a / a.sum(-1, keepdims=True))


def models_of(path):
    return {F64: ref.load_model(path, H, F64), F32: ref.load_model(path, H, F32)}


# -------------------------------------------------------------------- both sides

def ref_pass(models, src, tgt, pad=PAD, gates=None, overrides=(), taps=(), record_taps=False):
    """A forward pass of each reference model with the interventions:
    {dtype: {name: ndarray}} with logprobs, memory, decoder, every attention
    tensor, and with record_taps the tensor of each (site, kind, layer)."""
    res = {}
    for dtype, model in models.items():
        iv = model.set_interventions(ref.Interventions())
        try:
            if gates is not None:
                iv.gates = torch.as_tensor(np.asarray(gates, dtype=np.float64)).to(dtype)
            for kind, layer, head, probs in overrides:
                iv.set_override(kind, layer, head, torch.as_tensor(probs).to(dtype))
            rec = {}

            def recorder(site, kind, layer, x, rec=rec):
                rec[(site, kind, layer)] = x.detach().double().numpy().copy()
            iv.taps = list(taps) + ([recorder] if record_taps else [])
            s, t = T(src), T(tgt)
            sm, tm = ref.src_mask_of(s, pad), ref.tgt_mask_of(t, pad)
            with torch.no_grad():
                memory = model.encode(s, sm)
                dec = model.decode(memory, sm, t, tm)
                logp = model.generator(dec)
            r = {"logprobs": logp, "memory": memory, "decoder": dec}
            for kind in KIND_NAMES:
                for i, a in enumerate(model.attention(kind)):
                    r["attn.%s|%d" % (kind, i)] = a
            r = {k: v.double().numpy() for k, v in r.items()}
            r["taps"] = rec
            res[dtype] = r
        finally:
            model.set_interventions(None)
    return res


def libat_pass(m, src, tgt, pad=PAD):
    m.forward(src, tgt, pad)
    r = {"logprobs": m.output(capi.OUT_LOGPROBS), "memory": m.output(capi.OUT_MEMORY),
         "decoder": m.output(capi.OUT_DECODER)}
    for kind in KIND_NAMES:
        for i in range(N):
            r["attn.%s|%d" % (kind, i)] = m.attention(kind, i)
    return r


def compare(check, tag, got, want, tol=TOL, keys=None):
    """Every tensor of a libat pass against the reference's (float64 and
    float32); table groups by tensor name."""
    for k in (keys or [k for k in got if k != "taps"]):
        name, _, layer = k.partition("|")
        what = "%s[%s%s]" % (name, tag, (" layer " + layer) if layer else "")
        record(check, what, got[k], want[F64][k], tol, want[F32][k])


def set_gates(m, gates):
    m.gate_set(ALL, ALL, ALL, 1.0)
    for k, l, h in np.ndindex(gates.shape):
        if gates[k, l, h] != 1.0:
            m.gate_set(k, l, h, float(gates[k, l, h]))


def gates_of(m):
    return np.array([[[m.gate_get(k, l, h) for h in range(H)] for l in range(N)]
                     for k in range(3)], dtype=np.float64)


class Recorder:
    """A libat tap that keeps every event: its fields and a float64 copy of
    its tensor (strides honoured); optionally edits it (edit(ev, view))."""

    def __init__(self, edit=None, status=0):
        self.events = []
        self.edit = edit
        self.status = status

    def __call__(self, ev):
        v = ev.view
        shape = tuple(v.shape[:v.ndim])
        self.events.append(dict(site=capi.SITES[ev.site] if 0 <= ev.site < len(capi.SITES)
                                else ev.site, kind=ev.kind, layer=ev.layer,
                                pass_=ev.pass_, step=ev.step, pos=(ev.pos_begin, ev.pos_end),
                                batch=ev.batch, shape=shape, same_data=ev.data == v.data,
                                value=v.array()))
        if self.edit is not None:
            self.edit(ev, v.writable(ev.data))
        return self.status

    def by_key(self):
        return {(e["site"], e["kind"], e["layer"], e["step"]): e for e in self.events}


def tap_all(m, rec, skip=()):
    """rec on every site (but skip): attention sites of every kind, layer
    sites of both stacks, model sites."""
    for site in capi.SITES:
        if site in skip:
            continue
        m.check(m.tap_add(SITE[site], ALL, ALL, rec), "at_tap_add " + site)


# -------------------------------------------------------------------- checks

def check_self(_m, path, _tmp):
    """The reference's interventions are what they claim to be."""
    models = {F64: ref.load_model(path, H, F64)}
    src, tgt = forward_batch()
    plain = ref_pass(models, src, tgt)[F64]
    ones = ref_pass(models, src, tgt, gates=np.ones((3, N, H)))[F64]
    noop = ref_pass(models, src, tgt, taps=[lambda *a: None], record_taps=True)[F64]
    own = [(k, l, ALL, torch.as_tensor(plain["attn.%s|%d" % (KIND_NAMES[k], l)]))
           for k in range(3) for l in range(N)]
    overridden = ref_pass(models, src, tgt, overrides=own)[F64]
    for k in plain:
        if k == "taps":
            continue
        record_same("self", "gates 1 == plain", ones[k], plain[k])
        record_same("self", "no-op tap == plain", noop[k], plain[k])
        record_same("self", "own-attention override == plain", overridden[k], plain[k])
    record_equal("self", "tap sites recorded", len(noop["taps"]),
                 5 + N * (7 + 2) + N * (7 + 2 + 5 + 2))
    g = np.ones((3, N, H))
    g[CROSS, 1, 2] = 0.5
    g[ENC_SELF, 0, 1] = 0.0
    gated = ref_pass(models, src, tgt, gates=g)[F64]

    def scale(site, kind, layer, x):
        if site == "head_out" and (kind, layer) in ((CROSS, 1), (ENC_SELF, 0)):
            x = x.clone()
            x[:, 2 if kind == CROSS else 1] *= g[kind, layer, 2 if kind == CROSS else 1]
            return x
    tapped = ref_pass(models, src, tgt, taps=[scale])[F64]
    for k in ("logprobs", "memory", "decoder"):
        record("self", "gate == head_out scaled by a tap", gated[k], tapped[k], 1e-12)
    changed = float(np.abs(gated["logprobs"] - plain["logprobs"]).max())
    ok_true("self", "gates change the log-probs", changed > 1e-3, "(%.3g)" % changed)

    # the reference's taps fire in the documented order
    seq = []
    ref_pass(models, src, tgt, taps=[lambda site, kind, layer, x: seq.append(
        (site, kind, layer, -1))])
    record_equal("self", "reference tap order (forward)", seq, expected_order(None))
    # batched greedy decoding without interventions == the batch-1 greedy_decode
    model = models[F64]
    ys, _ = ref.greedy_decode_batch(model, T(src), PAD, 7, START)
    for r in range(src.shape[0]):
        s1 = T(src[r:r + 1])
        y1, _ = ref.greedy_decode(model, s1, ref.src_mask_of(s1, PAD), 7, START)
        record_equal("self", "greedy_decode_batch == greedy_decode", ys[r].numpy(), y1[0].numpy())
    # a decode with an override == a teacher-forced pass over its ids with it
    rng = np.random.default_rng(3)
    B, S = src.shape
    ov = [(DEC_SELF, 1, ALL, torch.as_tensor(stochastic(rng, (B, H, 6, 6), causal=True))),
          (CROSS, 0, 2, torch.as_tensor(stochastic(rng, (B, 6, S))))]
    iv = model.set_interventions(ref.Interventions())
    for o in ov:
        iv.set_override(*o)
    try:
        ys, _ = ref.greedy_decode_batch(model, T(src), PAD, 7, START)
        steps = []
        for t in range(6):
            iv.decoding = True
            with torch.no_grad():
                mem = model.encode(T(src), ref.src_mask_of(T(src), PAD))
                out = model.decode(mem, ref.src_mask_of(T(src), PAD), ys[:, :t + 1],
                                   ref.subsequent_mask(t + 1))
                steps.append(model.generator(out)[:, -1].numpy())
            iv.decoding = False
        with torch.no_grad():
            full = model.generator(model(T(src), ys[:, :6], ref.src_mask_of(T(src), PAD),
                                         ref.subsequent_mask(6))).numpy()
        record("self", "reference: prefix passes == teacher-forced with override",
               np.stack(steps, 1), full, 1e-12)
        try:
            with torch.no_grad():
                model(T(src), ys[:, :5], ref.src_mask_of(T(src), PAD), ref.subsequent_mask(5))
            raised = False
        except ref.ShapeError:
            raised = True
        ok_true("self", "reference: a full pass of another length raises ShapeError", raised)
    finally:
        model.set_interventions(None)
    # dL/dξ of the reference vs central differences (float64)
    ls, lt = loss_batch()
    g0 = np.ones((3, N, H))
    g0[CROSS, 1, 1] = 0.5
    grad = ref_nll(models, ls, lt, g0, grad=True)[F64][1]
    fd = []
    for idx in ((ENC_SELF, 0, 1), (DEC_SELF, 1, 3), (CROSS, 1, 1)):
        e = np.zeros((3, N, H))
        e[idx] = 1e-6
        lp = ref_nll({F64: model}, ls, lt, g0 + e)[F64][0]
        lm = ref_nll({F64: model}, ls, lt, g0 - e)[F64][0]
        fd.append(((lp - lm) / 2e-6, grad[np.ravel_multi_index(idx, (3, N, H))]))
    fd = np.array(fd)
    record("self", "reference dL/dxi vs central differences", fd[:, 1], fd[:, 0], 1e-7)
    # the documented gradient semantics differ from the exact ones only where
    # something is overridden or edited
    doc = ref_nll(models, ls, lt, g0, grad=True, as_libat=True)[F64][1]
    record("self", "reference: as_libat without interventions == exact", doc, grad, 1e-15)


GATE_SETS = {
    # single heads at 0 and 0.5 in every kind, both layers
    "A": [(ENC_SELF, 0, 1, 0.0), (ENC_SELF, 1, 3, 0.5), (DEC_SELF, 1, 0, 0.0),
          (DEC_SELF, 1, 3, 0.0), (DEC_SELF, 0, 2, 0.5), (CROSS, 0, 2, 0.5), (CROSS, 1, 0, 0.0)],
    # whole blocks: every head of enc_self layer 0 at 0 (the block's output is
    # its bias), every head of every kind in layer 1 at 0.5 (AT_ALL kind, head)
    "B": [(ENC_SELF, 0, ALL, 0.0), (ALL, 1, ALL, 0.5)],
    # every gate of cross-attention at 0: the decoder ignores the source
    "C": [(CROSS, ALL, ALL, 0.0), (DEC_SELF, ALL, 1, 0.5)],
}


def gates_array(settings):
    g = np.ones((3, N, H))
    for k, l, h, v in settings:
        g[slice(None) if k == ALL else k, slice(None) if l == ALL else l,
          slice(None) if h == ALL else h] = v
    return g


def check_gates(m, path, _tmp):
    models = models_of(path)
    src, tgt = forward_batch()
    plain = libat_pass(m, src, tgt)
    for tag, settings in GATE_SETS.items():
        m.interventions_reset()
        for k, l, h, v in settings:
            m.gate_set(k, l, h, v)
        g = gates_array(settings)
        record_equal("gates", "at_gate_get[%s]" % tag, gates_of(m), g)
        got = libat_pass(m, src, tgt)
        want = ref_pass(models, src, tgt, gates=g)
        compare("gates", "gates " + tag, got, want)
        d = float(np.abs(got["logprobs"] - plain["logprobs"]).max())
        ok_true("gates", "gates change the log-probs[%s]" % tag, d > 1e-3, "(%.3g)" % d)
        if tag == "C":
            # no cross-attention: every row of a target sees the same source
            # contribution (the biases): the log-probs depend on the target only
            same = got["logprobs"][0, :2] - got["logprobs"][1, :2]
            ok_true("gates", "cross gates 0: first position independent of the source",
                    tgt[0, 0] == tgt[1, 0] and np.abs(same[0]).max() < 1e-5,
                    "(%.3g)" % np.abs(same[0]).max())
    m.interventions_reset()
    record_equal("gates", "at_interventions_reset: gates 1", gates_of(m), np.ones((3, N, H)))
    got = libat_pass(m, src, tgt)
    for k in got:
        record_same("gates", "after reset == plain", got[k], plain[k])


def override_sets(rng, src, tgt):
    B, S, Tl = src.shape[0], src.shape[1], tgt.shape[1]
    pad_keys = src == PAD
    return {
        # rows summing to 1; dec_self lower-triangular; one respecting the
        # source mask, one putting weight on padded keys
        "stochastic": [
            (ENC_SELF, 1, ALL, stochastic(rng, (B, H, S, S), mask_keys=pad_keys)),
            (DEC_SELF, 0, 2, stochastic(rng, (B, Tl, Tl), causal=True)),
            (CROSS, 1, ALL, stochastic(rng, (B, H, Tl, S))),
        ],
        # rows that do not sum to 1, a zero row, weights above 1
        "unnormalised": [
            (CROSS, 0, 3, f32(np.where(np.arange(Tl)[None, :, None] == 2, 0.0,
                                       rng.uniform(0, 1.5, size=(B, Tl, S))))),
            (DEC_SELF, 1, ALL, f32(np.tril(rng.uniform(0, 0.8, size=(B, H, Tl, Tl))))),
            (ENC_SELF, 0, 0, f32(np.zeros((B, S, S)))),
        ],
    }


def check_override(m, path, _tmp):
    models = models_of(path)
    src, tgt = forward_batch()
    rng = np.random.default_rng(7)
    plain = libat_pass(m, src, tgt)
    for tag, sets in override_sets(rng, src, tgt).items():
        m.interventions_reset()
        for kind, layer, head, probs in sets:
            m.override(kind, layer, head, probs)
        got = libat_pass(m, src, tgt)
        want = ref_pass(models, src, tgt, overrides=sets)
        compare("override", tag, got, want)
        for kind, layer, head, probs in sets:
            a = got["attn.%s|%d" % (KIND_NAMES[kind], layer)]
            record("override", "view shows the override[%s]" % tag,
                   a if head == ALL else a[:, head], probs, 0.0)
        d = float(np.abs(got["logprobs"] - plain["logprobs"]).max())
        ok_true("override", "override changes the log-probs[%s]" % tag, d > 1e-3, "(%.3g)" % d)
        # NULL removes a block's override (and a head's)
        for kind, layer, head, _ in sets:
            m.check(m.override_status(kind, layer, head, None), "at_attention_override NULL")
        got = libat_pass(m, src, tgt)
        for k in got:
            record_same("override", "removed (NULL) == plain[%s]" % tag, got[k], plain[k])
    # gates and an override together, and at_eval_nll honours both
    m.interventions_reset()
    ls, lt = loss_batch()
    B, S, Tl = ls.shape[0], ls.shape[1], lt.shape[1] - 1
    o = stochastic(rng, (B, H, Tl, S))
    g = gates_array(GATE_SETS["A"])
    set_gates(m, g)
    m.override(CROSS, 0, ALL, o)
    nll, ntok = m.eval_nll(ls, lt, PAD)
    want = ref_nll(models, ls, lt, g, overrides=[(CROSS, 0, ALL, o)])
    w64, w32 = want[F64], want[F32]
    record("override", "at_eval_nll with gates and override", nll, w64[0], TOL, w32[0])
    record_equal("override", "at_eval_nll ntokens", ntok, w64[2])
    m.interventions_reset()


def ref_nll(models, src, tgt_full, gates=None, overrides=(), grad=False, pad=PAD,
            as_libat=False):
    """{dtype: (L, dL/dξ flattened or None, ntokens)}: L the mean NLL of
    tgt[:, 1:] over non-pad labels, ξ a leaf; as_libat: overrides
    differentiated as docs/interventions.md says (Interventions)."""
    out = {}
    for dtype, model in models.items():
        iv = model.set_interventions(ref.Interventions())
        iv.as_libat = as_libat
        try:
            g = torch.as_tensor(np.ones((3, N, H)) if gates is None
                                else np.asarray(gates, dtype=np.float64)).to(dtype)
            g.requires_grad_(grad)
            iv.gates = g
            for kind, layer, head, probs in overrides:
                iv.set_override(kind, layer, head, torch.as_tensor(probs).to(dtype))
            b = ref.Batch(T(src), T(tgt_full), pad)
            logp = model.generator(model(b.src, b.tgt, b.src_mask, b.tgt_mask))
            nll = -logp.gather(-1, b.tgt_y.unsqueeze(-1)).squeeze(-1)
            keep = b.tgt_y != pad
            loss = nll[keep].sum() / keep.sum()
            gg = None
            if grad:
                model.zero_grad(set_to_none=True)
                loss.backward()
                gg = g.grad.double().numpy().ravel().copy()
            out[dtype] = (loss.item(), gg, int(keep.sum()))
        finally:
            model.set_interventions(None)
    return out


def ref_attention_grads(models, src, tgt_full, target_pos, gates=None, pad=PAD):
    """{dtype: (L, {(kind, layer): ∂L/∂A})} from autograd: the probabilities
    kept with retain_grad as the pass makes them (a tap on "probs" that
    changes nothing); L the mean NLL, or Σ_b log p of the label at
    target_pos over rows whose label there is not pad."""
    out = {}
    for dtype, model in models.items():
        iv = model.set_interventions(ref.Interventions())
        kept = {}

        def keep(site, kind, layer, x):
            if site == "probs":
                x.retain_grad()
                kept[(KIND_NAMES[kind], layer)] = x
            return None
        iv.taps = [keep]
        try:
            if gates is not None:
                iv.gates = torch.as_tensor(np.asarray(gates, dtype=np.float64)).to(dtype)
            b = ref.Batch(T(src), T(tgt_full), pad)
            logp = model.generator(model(b.src, b.tgt, b.src_mask, b.tgt_mask))
            lp = logp.gather(-1, b.tgt_y.unsqueeze(-1)).squeeze(-1)
            keep_ = b.tgt_y != pad
            if target_pos < 0:
                loss = -lp[keep_].sum() / keep_.sum()
            else:
                loss = lp[:, target_pos][keep_[:, target_pos]].sum()
            model.zero_grad(set_to_none=True)
            loss.backward()
            out[dtype] = (loss.item(), {k: x.grad.double().numpy() for k, x in kept.items()})
        finally:
            model.set_interventions(None)
    return out


def check_agrad(m, path, _tmp):
    """at_attention_gradients: ∂L/∂A of every attention tensor vs autograd,
    for the mean NLL and for the log-probability at one position, with and
    without gates; and the bad input."""
    models = models_of(path)
    src, tgt = loss_batch()
    Tn = tgt.shape[1] - 1
    mix = np.ones((3, N, H))
    mix[0, 1, 2], mix[2, 0, 1], mix[1, 1, 0] = 0.0, 0.5, 1.5
    for tag, pos, g in (("NLL", -1, None), ("logp@3", 3, None), ("logp@0", 0, None),
                        ("NLL, gates", -1, mix)):
        m.interventions_reset()
        if g is not None:
            set_gates(m, g)
        value, got = m.attention_gradients(src, tgt, PAD, N, pos)
        want = ref_attention_grads(models, src, tgt, pos, g)
        w64, w32 = want[F64], want[F32]
        record("agrad", "L[%s]" % tag, value, w64[0], TOL, w32[0])
        for kind in KIND_NAMES:
            for layer in range(N):
                k = (kind, layer)
                record("agrad", "dL/dA %s[%s]" % (kind, tag), got[k], w64[1][k], 1e-8,
                       w32[1][k], scale_tol=1e-4)
        # relevance A ⊙ ∂L/∂A, from libat's own views of the same pass
        a = m.attention("cross", N - 1)
        rel = a * got[("cross", N - 1)]
        record("agrad", "relevance cross[%s]" % tag, rel,
               f32(a) * w64[1][("cross", N - 1)], 1e-8, None, scale_tol=1e-4)
    m.interventions_reset()
    s, sp = capi._ids(src)
    t, tp = capi._ids(tgt)
    v = capi.View()
    for pos, want_status in ((Tn, capi.E_RANGE), (-2, capi.E_RANGE)):
        st = capi.LIB.at_attention_gradients(m.ptr, sp, tp, s.shape[0], s.shape[1], t.shape[1],
                                             PAD, pos, None)
        record_equal("agrad", "target position %d refused" % pos, st, want_status)
    m.forward(src, tgt[:, :-1], PAD)
    st = capi.LIB.at_get_attention_grad(m.ptr, ENC_SELF, 0, ctypes.byref(v))
    record_equal("agrad", "no gradients after a plain pass: AT_E_STATE", st, capi.E_STATE)
    st = capi.LIB.at_get_attention_grad(m.ptr, ENC_SELF, N, ctypes.byref(v))
    record_equal("agrad", "layer out of range: AT_E_ARG", st, capi.E_ARG)


def ref_ig(model, dtype, src, tgt_full, kind, layer, steps, target_pos, pad=PAD):
    """Integrated gradients on one layer's attention in the reference: A from
    a plain pass, then F(k/m·A) with α·A as an override leaf, autograd for
    ∂F/∂(α·A); attributions A ⊙ mean_k ∂F, and F(A) − F(0)."""
    b = ref.Batch(T(src), T(tgt_full), pad)

    def value(iv):
        logp = model.generator(model(b.src, b.tgt, b.src_mask, b.tgt_mask))
        lp = logp.gather(-1, b.tgt_y.unsqueeze(-1)).squeeze(-1)
        keep = b.tgt_y != pad
        if target_pos < 0:
            return -lp[keep].sum() / keep.sum()
        return lp[:, target_pos][keep[:, target_pos]].sum()
    iv = model.set_interventions(ref.Interventions())
    kept = {}

    def keep_(site, k, l, x):
        if site == "probs" and (k, l) == (kind, layer):
            kept["a"] = x.detach().clone()
        return None
    try:
        iv.taps = [keep_]
        with torch.no_grad():
            value(iv)
        a = kept["a"]
        iv.taps = []
        total = torch.zeros_like(a)
        f = {}
        for k in range(0, steps + 1):
            p = (a * (k / steps)).requires_grad_(True)
            iv.overrides = {}
            iv.set_override(kind, layer, ALL, p)
            model.zero_grad(set_to_none=True)
            fk = value(iv)
            fk.backward()
            if k > 0:
                total += p.grad
            f[k] = fk.item()
        attr = (a * total / steps).double().numpy()
        return attr, f[steps] - f[0]
    finally:
        model.set_interventions(None)


def ref_chefer(a, g, L, pos_b=None):
    """Chefer et al. 2021, §3.2 (eqs. 5–11), in numpy from the attention a
    and gradients g {(kind, layer): (B, h, Lq, Lk)} of one target."""
    def abar(k, l, b):
        return np.clip(g[(k, l)][b] * a[(k, l)][b], 0, None).mean(axis=0)

    def norm(r):
        s = r - np.eye(r.shape[0])
        rows = s.sum(axis=1, keepdims=True)
        s = np.divide(s, rows, out=np.zeros_like(s), where=rows != 0)
        return s + np.eye(r.shape[0])
    out = []
    B = a[("enc_self", 0)].shape[0]
    for b in range(B):
        S = a[("enc_self", 0)].shape[2]
        T = a[("dec_self", 0)].shape[2]
        rss, rqq, rqs = np.eye(S), np.eye(T), np.zeros((T, S))
        for l in range(L):
            rss = rss + abar("enc_self", l, b) @ rss
        nss = norm(rss)
        for l in range(L):
            ab = abar("dec_self", l, b)
            rqs = rqs + ab @ rqs
            rqq = rqq + ab @ rqq
            rqs = rqs + norm(rqq).T @ abar("cross", l, b) @ nss
        out.append((rss, rqq, rqs))
    return [np.stack([o[i] for o in out]) for i in range(3)]


def check_relevance(m, path, _tmp):
    """Integrated gradients on attention (Hao et al. 2021) and Chefer et
    al. 2021's encoder–decoder relevance against the reference."""
    models = models_of(path)
    src, tgt = loss_batch()
    B, S, Tn = src.shape[0], src.shape[1], tgt.shape[1] - 1
    m.interventions_reset()
    shapes = {"enc_self": (B, H, S, S), "dec_self": (B, H, Tn, Tn), "cross": (B, H, Tn, S)}
    for kind, layer, pos in (("cross", 1, -1), ("enc_self", 0, 2), ("dec_self", 1, 3)):
        errs = []
        for steps in (1, 4, 16, 64):
            got, err = m.integrated_gradients(src, tgt, PAD, kind, layer, steps, shapes[kind],
                                              pos)
            errs.append(err)
            if steps == 16:
                want, _ = ref_ig(models[F64], torch.float64, src, tgt, KIND_NAMES.index(kind),
                                 layer, steps, pos)
                want32, _ = ref_ig(models[F32], torch.float32, src, tgt,
                                   KIND_NAMES.index(kind), layer, steps, pos)
                record("relevance", "integrated gradients %s, m 16" % kind, got, want, 1e-8,
                       want32, scale_tol=1e-4)
        NOTES.append("relevance: integrated gradients on %s layer %d (target %d): completeness "
                     "error |sum - (F(A) - F(0))| for m = 1, 4, 16, 64: %s"
                     % (kind, layer, pos, ", ".join("%.3g" % e for e in errs)))
        record_equal("relevance", "completeness error shrinks with m [%s]" % kind,
                     bool(errs[3] < errs[1] < errs[0]), True)
    # the handle's own override of the layer is back afterwards
    plain = libat_pass(m, src, tgt[:, :-1])
    m.override(CROSS, 1, ALL, plain["attn.cross|1"])
    m.integrated_gradients(src, tgt, PAD, "cross", 1, 2, shapes["cross"])
    again = libat_pass(m, src, tgt[:, :-1])
    record_same("relevance", "the layer's own override is back after IG", again["attn.cross|1"],
                plain["attn.cross|1"])
    m.interventions_reset()
    for pos in (0, 3):
        rss, rqq, rqs = m.relevance_chefer(src, tgt, PAD, pos)
        w = ref_attention_grads(models, src, tgt, pos)
        attn = {}
        for dtype, model in models.items():
            iv = model.set_interventions(ref.Interventions())
            kept = {}

            def keep_(site, k, l, x, kept=kept):
                if site == "probs":
                    kept[(KIND_NAMES[k], l)] = x.detach().double().numpy()
                return None
            iv.taps = [keep_]
            try:
                b_ = ref.Batch(T(src), T(tgt), PAD)
                with torch.no_grad():
                    model(b_.src, b_.tgt, b_.src_mask, b_.tgt_mask)
            finally:
                model.set_interventions(None)
            attn[dtype] = kept
        want = ref_chefer(attn[F64], w[F64][1], N)
        want32 = ref_chefer(attn[F32], w[F32][1], N)
        for name, got, w64, w32 in zip(("R^ss", "R^qq", "R^qs"), (rss, rqq, rqs), want, want32):
            record("relevance", "Chefer %s, target %d" % (name, pos), got, w64, 1e-6, w32,
                   scale_tol=1e-4)


def check_taps(m, path, _tmp):
    models = models_of(path)
    src, tgt = forward_batch()
    B = src.shape[0]
    plain = libat_pass(m, src, tgt)
    m.interventions_reset()
    # observing changes nothing: bit-identical with a tap on every site but
    # attn_out (a tap there makes libat compute the output projection and the
    # residual apart, which the plain pass folds into one GEMM: forward.c,
    # attend())
    tap_all(m, Recorder(), skip=("attn_out",))
    got = libat_pass(m, src, tgt)
    m.tap_clear()
    for k in got:
        record_same("taps", "taps that only read (not attn_out) == plain", got[k], plain[k])
    rec = Recorder()
    tap_all(m, rec)
    got = libat_pass(m, src, tgt)
    m.tap_clear()
    want = ref_pass(models, src, tgt, record_taps=True)
    worst = 0.0
    for k in got:
        worst = max(worst, float(np.abs(got[k] - plain[k]).max()))
        # not bit-identical (above); within float32 noise of the plain pass
        record("taps", "taps that only read (all sites) vs plain[%s]" % k, got[k], plain[k], TOL)
    NOTES.append("taps: read-only taps on every site incl. attn_out move the outputs by up to "
                 "%.3g from a plain pass (without attn_out: bit-identical)" % worst)
    seen = rec.by_key()
    record_equal("taps", "events of a forward pass", len(rec.events), len(want[F64]["taps"]))
    for (site, kind, layer), w in want[F64]["taps"].items():
        e = seen.get((site, kind, layer, -1))
        what = "%s[%s layer %d]" % (site, KIND_NAMES[kind], layer)
        if e is None:
            FAILS.append("taps %s: no event" % what)
            RESULTS.append(("taps", what, math.inf, None, None, 0.0, False))
            continue
        record("taps", what, e["value"], w, TOL, want[F32]["taps"][(site, kind, layer)])
        ok_true("taps", "event fields (forward)",
                e["pass_"] == capi.PASS_FORWARD and e["batch"] == B and e["same_data"]
                and e["pos"] == (0, e["shape"][2 if len(e["shape"]) == 4 else 1]),
                "%s: %r" % (what, {k: e[k] for k in ("pass_", "batch", "same_data", "pos",
                                                     "shape")}))

    # taps that edit: libat's tap writes into the view, the reference's
    # returns the edited tensor
    def ref_edit(site0, kind0, layer0, fn):
        def tap(site, kind, layer, x):
            if site == site0 and kind == kind0 and layer == layer0:
                return fn(x.clone())
        return tap

    def shift_head0(x):
        # softmax ignores a constant shift of a row: a ramp over the keys
        # (masked entries stay -1e9 in float32)
        x[:, 0] += 0.3 * np.arange(x.shape[-1]) if isinstance(x, np.ndarray) \
            else 0.3 * torch.arange(x.shape[-1], dtype=x.dtype)
        return x

    def ramp(x):
        # a layer norm ignores a constant shift of a row: a ramp over the features
        r = 0.1 * np.arange(x.shape[-1]) / x.shape[-1]
        return x + (r if isinstance(x, np.ndarray) else torch.as_tensor(r, dtype=x.dtype))

    def zero_head0(x):
        x[:, 0] = 0
        return x

    edits = [
        ("v enc_self l1 x0.5", "v", ENC_SELF, 1, lambda x: x * 0.5),
        ("ff_hidden dec l0 = 0", "ff_hidden", DEC_SELF, 0, lambda x: x * 0.0),
        ("k cross l1 x2", "k", CROSS, 1, lambda x: x * 2.0),
        ("scores dec_self l1 head 0 + a ramp", "scores", DEC_SELF, 1, shift_head0),
        ("layer_out enc l0 + a ramp", "layer_out", ENC_SELF, 0, ramp),
        ("attn_out cross l1 x1.5", "attn_out", CROSS, 1, lambda x: x * 1.5),
        ("probs enc_self l0 head 0 = 0", "probs", ENC_SELF, 0, zero_head0),
        ("head_out dec_self l0 x-1", "head_out", DEC_SELF, 0, lambda x: -x),
        ("memory x0.7", "memory", 0, 0, lambda x: x * 0.7),
        ("q cross l0 x0", "q", CROSS, 0, lambda x: x * 0.0),
    ]
    for tag, site, kind, layer, fn in edits:
        def lib_edit(_ev, view, fn=fn):
            view[...] = fn(view.astype(np.float64)).astype(np.float32)
        m.interventions_reset()
        m.check(m.tap_add(SITE[site], kind, layer, Recorder(edit=lib_edit)), "at_tap_add")
        got = libat_pass(m, src, tgt)
        m.tap_clear()
        want = ref_pass(models, src, tgt, taps=[ref_edit(site, kind, layer, fn)])
        compare("taps", "edit " + tag, got, want)
        d = float(np.abs(got["logprobs"] - plain["logprobs"]).max())
        ok_true("taps", "the edit changes the log-probs[%s]" % tag, d > 1e-3, "(%.3g)" % d)
    if m.tap_errors:
        FAILS.append("taps: exceptions in taps: %s" % m.tap_errors[:3])


def check_gradgate(m, path, _tmp):
    models = models_of(path)
    src, tgt = loss_batch()
    rng = np.random.default_rng(8)
    mix = f32(rng.choice([0.0, 0.5, 1.0, 0.25, 1.5, -0.5], size=(3, N, H)))
    mix[0, 0, 0], mix[1, 1, 1], mix[2, 0, 3] = 0.0, 0.5, 0.0
    B, S, Tl = src.shape[0], src.shape[1], tgt.shape[1] - 1
    ov = [(CROSS, 0, ALL, stochastic(rng, (B, H, Tl, S))),
          (DEC_SELF, 1, 2, stochastic(rng, (B, Tl, Tl), causal=True))]
    for tag, g, ovs in (("xi=1", np.ones((3, N, H)), []), ("xi mix", mix, []),
                        ("xi mix, cross 0", gates_array([(CROSS, ALL, ALL, 0.0)]), []),
                        ("xi mix + overrides", mix, ov)):
        m.interventions_reset()
        set_gates(m, g)
        before = libat_pass(m, src[:, :5], tgt[:, :5])
        for o in ovs:
            m.override(*o)
        loss, grad = m.gate_gradients(src, tgt, PAD, NG)
        nll, ntok = m.eval_nll(src, tgt, PAD)
        # exact autograd: an override is a constant, no gradient reaches the
        # scores it replaced
        want = ref_nll(models, src, tgt, g, overrides=ovs, grad=True)
        w64, w32 = want[F64], want[F32]
        record("gradgate", "loss[%s]" % tag, loss, w64[0], TOL, w32[0])
        record("gradgate", "at_eval_nll[%s]" % tag, nll, w64[0], TOL, w32[0])
        record_equal("gradgate", "at_eval_nll ntokens[%s]" % tag, ntok, w64[2])
        # gradients of a float32 pass: float32 torch is off by ~1e-6 of the
        # largest; test_torch_ref's weight-gradient bound, 1e-4 of the scale
        for k in range(3):
            sl = slice(k * N * H, (k + 1) * N * H)
            what = "dL/dxi %s[%s]" % (KIND_NAMES[k], tag)
            record("gradgate", what, grad[sl], w64[1][sl], 1e-8, w32[1][sl], scale_tol=1e-4)
        record_equal("gradgate", "gates unchanged[%s]" % tag, gates_of(m), g)
        for o in ovs:
            m.check(m.override_status(o[0], o[1], o[2], None), "at_attention_override NULL")
        after = libat_pass(m, src[:, :5], tgt[:, :5])
        for k in before:
            record_same("gradgate", "weights unchanged (a pass before == after)", after[k],
                         before[k])
    m.interventions_reset()

    # overrides and the tap differentiated as docs/interventions.md says
    half_v = ("v", ENC_SELF, 1, 0.5)
    for tag, ovs, edit in (("gates", [], None), ("gates+ovr", ov, None),
                           ("gates+v tap", [], half_v)):
        train_with(path, models, src, tgt, mix, ovs, edit, tag)


def train_with(path, models, src, tgt, mix, ovs, edit, tag):
    """at_train_step with gates (and overrides, or a tap scaling a site):
    weight gradients vs autograd (smoothing 0.1), on a handle of its own;
    overrides and edits differentiated as docs/interventions.md says."""
    t = capi.Model.load(path)
    try:
        t.set(dropout=0.0, attn_dropout=0.0, smoothing=0.1)
        set_gates(t, mix)
        for o in ovs:
            t.override(*o)
        if edit is not None:
            def scale(_ev, view, f=edit[3]):
                view *= np.float32(f)
            t.check(t.tap_add(SITE[edit[0]], edit[1], edit[2], Recorder(edit=scale)), "tap")
        table = t.tensors()
        names = [n for _, n, tr in table if tr]
        loss, _ = t.train_step(src, tgt, PAD)
        grads = {n: t.grad(i) for i, n, tr in table if tr}
        want = {}
        for dtype, model in models.items():
            iv = model.set_interventions(ref.Interventions())
            iv.as_libat = True
            if edit is not None:
                def tap(site, kind, layer, x, e=edit):
                    if (site, kind, layer) == e[:3]:
                        return x * e[3]
                iv.taps = [tap]
            try:
                iv.gates = torch.as_tensor(mix).to(dtype)
                for kind, layer, head, probs in ovs:
                    iv.set_override(kind, layer, head, torch.as_tensor(probs).to(dtype))
                model.zero_grad(set_to_none=True)
                tl, _ = ref.loss_of(model, ref.Batch(T(src), T(tgt), PAD), 0.1, PAD)
                tl.backward()
                want[dtype] = (tl.item(), {n: p.grad.double().numpy()
                                           for n, p in model.named_parameters()})
            finally:
                model.set_interventions(None)
        record("gradgate", "train %s: loss" % tag, loss, want[F64][0], TOL, want[F32][0])
        for n in names:
            kb = " (key biases)" if n.endswith("linears.1.bias") else ""
            record("gradgate", "train %s: grad%s[%s]" % (tag, kb, n), grads[n],
                   want[F64][1][n], 1e-8, want[F32][1][n], scale_tol=1e-4)
        z = [n for n in names if n.startswith("encoder.layers.0.self_attn.linears.3.weight")]
        # with every gate of a block's head at 0, W_o's columns of that head get 0
        if mix[ENC_SELF, 0, 0] == 0.0:
            record("gradgate", "train: W_o columns of a gated-off head", grads[z[0]][:, :DK],
                   np.zeros((D, DK)), 0.0)
    finally:
        t.close()


def check_bitident(m, path, _tmp):
    src, tgt = forward_batch()
    m.interventions_reset()
    plain = libat_pass(m, src, tgt)
    m.gate_set(ALL, ALL, ALL, 1.0)
    for k, l, h in np.ndindex(3, N, H):
        m.gate_set(k, l, h, 1.0)
    got = libat_pass(m, src, tgt)
    for k in got:
        record_same("bitident", "every gate set to 1", got[k], plain[k])
    m.interventions_reset()
    rec = Recorder(edit=lambda ev, view: view.__setitem__(Ellipsis, view.copy()))
    tap_all(m, rec, skip=("attn_out",))  # attn_out: see check_taps
    got = libat_pass(m, src, tgt)
    m.tap_clear()
    for k in got:
        record_same("bitident", "taps on every site but attn_out writing the same values",
                    got[k], plain[k])
    # the model's own attention as overrides: every block, all heads
    for k in range(3):
        for l in range(N):
            m.override(k, l, ALL, plain["attn.%s|%d" % (KIND_NAMES[k], l)])
    got = libat_pass(m, src, tgt)
    for k in got:
        record_same("bitident", "own attention as override (all blocks)", got[k], plain[k])
    m.interventions_reset()
    for k, l, h in ((ENC_SELF, 1, 2), (DEC_SELF, 0, 0), (CROSS, 1, 3)):
        m.override(k, l, h, plain["attn.%s|%d" % (KIND_NAMES[k], l)][:, h])
    got = libat_pass(m, src, tgt)
    for k in got:
        record_same("bitident", "own attention as override (single heads)", got[k], plain[k])
    m.interventions_reset()


def decode_model(path, tmp):
    """A sharper generator that never emits the pad id (so a decoded
    sequence can be fed back with pad 0 and nothing masked) and emits the
    end id now and then (beam search)."""
    d = capi.Model.load(path)
    for i, name, _ in d.tensors():
        if name == "generator.proj.weight":
            d.write_tensor(i, d.tensor(i) * 3.0)
        elif name == "generator.proj.bias":
            v = d.tensor(i)
            v[PAD] -= 30.0
            v[END] += 4.0
            d.write_tensor(i, v)
    dpath = os.path.join(tmp, "decode.safetensors")
    d.save(dpath)
    return d, dpath


def scaling_taps(edits):
    """Reference taps scaling (site, kind, layer) by a factor."""
    def tap(site, kind, layer, x):
        for e in edits:
            if (site, kind, layer) == e[:3]:
                return x * e[3]
    return [tap] if edits else []


def lib_scaling_taps(m, edits):
    for site, kind, layer, f in edits:
        def scale(_ev, view, f=f):
            view *= np.float32(f)
        m.check(m.tap_add(SITE[site], kind, layer, Recorder(edit=scale)), "at_tap_add")


def ref_greedy(model, src, max_len, gates=None, overrides=(), record_taps=False, edits=()):
    iv = model.set_interventions(ref.Interventions())
    rec, step = {}, [None]
    try:
        if gates is not None:
            iv.gates = torch.as_tensor(gates).to(model.generator.proj.weight.dtype)
        for kind, layer, head, probs in overrides:
            iv.set_override(kind, layer, head, torch.as_tensor(probs))
        iv.taps = scaling_taps(edits)
        if record_taps:
            def recorder(site, kind, layer, x):
                rec[(site, kind, layer, step[0])] = x.detach().double().numpy().copy()
            iv.taps.append(recorder)

        def before(t):
            step[0] = t
        ys, margins = ref.greedy_decode_batch(model, T(src), PAD, max_len, START, before)
        return ys.numpy(), margins, rec
    finally:
        model.set_interventions(None)


def ref_forced(model, src, ids, gates=None, overrides=(), edits=()):
    """Attention of a teacher-forced reference pass over ids (no target pad)."""
    iv = model.set_interventions(ref.Interventions())
    iv.decoding = True  # an override of fewer rows: the rows after it are the model's
    iv.taps = scaling_taps(edits)
    try:
        if gates is not None:
            iv.gates = torch.as_tensor(gates).to(model.generator.proj.weight.dtype)
        for kind, layer, head, probs in overrides:
            iv.set_override(kind, layer, head, torch.as_tensor(probs))
        s, t = T(src), T(ids)
        with torch.no_grad():
            model(s, t, ref.src_mask_of(s, PAD), ref.subsequent_mask(t.size(1)))
        return {"attn.%s|%d" % (k, i): a.numpy().copy() for k in ("dec_self", "cross")
                for i, a in enumerate(model.attention(k))}
    finally:
        model.set_interventions(None)


def check_decode(_m, path, tmp):
    d, dpath = decode_model(path, tmp)
    model = ref.load_model(dpath, H, F64)
    try:
        rng = np.random.default_rng(9)
        src = padded(rng, [9, 5, 7, 2, 9], 9, CFG["src_vocab"], PAD)
        B, S = src.shape
        max_len = 12
        Tl = max_len - 1
        plain_ids, _ = d.greedy_decode(src, PAD, max_len, START, -1)
        g = gates_array(GATE_SETS["A"])
        pad_keys = src == PAD
        cases = [
            ("gates A", g, []),
            ("gates B", gates_array(GATE_SETS["B"]), []),
            ("override dec_self l1 + cross l0 h1", None,
             [(DEC_SELF, 1, ALL, stochastic(rng, (B, H, Tl, Tl), causal=True)),
              (CROSS, 0, 1, stochastic(rng, (B, Tl, S), mask_keys=pad_keys))]),
            ("override 5 rows (dec_self l0, cross l1) + gates", gates_array(GATE_SETS["C"][1:]),
             [(DEC_SELF, 0, ALL, stochastic(rng, (B, H, 5, 5), causal=True)),
              (CROSS, 1, 2, f32(rng.uniform(0, 1.2, size=(B, 5, S))))]),
            ("override enc_self l0 unnormalised", None,
             [(ENC_SELF, 0, ALL, f32(rng.uniform(0, 0.5, size=(B, H, S, S))))]),
        ]
        cases = [c + ([],) for c in cases]
        # taps that edit, seen by later steps through the cache: a decoder
        # self-attention value, a cross-attention key (computed once), a
        # feed-forward hidden layer
        cases.append(("taps: v dec_self l0 x0.5, k cross l1 x2, ff_hidden dec l1 x0", None, [],
                      [("v", DEC_SELF, 0, 0.5), ("k", CROSS, 1, 2.0),
                       ("ff_hidden", DEC_SELF, 1, 0.0)]))
        cases.append(("taps: q dec_self l1 x3 + gates A", g, [], [("q", DEC_SELF, 1, 3.0)]))
        smallest = math.inf
        for tag, gates, overrides, edits in cases:
            d.interventions_reset()
            if gates is not None:
                set_gates(d, gates)
            for kind, layer, head, probs in overrides:
                d.override(kind, layer, head, probs)
            lib_scaling_taps(d, edits)
            rec = Recorder()
            d.check(d.tap_add(SITE["logprobs"], ALL, ALL, rec), "at_tap_add")
            ids, n = d.greedy_decode(src, PAD, max_len, START, -1)
            d.tap_clear()
            views = {"attn.%s|%d" % (k, i): d.attention(k, i)
                     for k in ("dec_self", "cross") for i in range(N)}
            want, margins, _ = ref_greedy(model, src, max_len, gates, overrides, edits=edits)
            smallest = min(smallest, min(margins))
            record_equal("decode", "greedy ids[%s]" % tag, ids, want,
                         "(smallest top-1 margin %.2g)" % min(margins))
            record_equal("decode", "out_len[%s]" % tag, n, max_len)
            ok_true("decode", "the intervention changes the decoded ids[%s]" % tag,
                    not np.array_equal(ids, plain_ids))
            ok_true("decode", "decoded ids hold no pad", (ids != PAD).all())
            # views after decoding vs the reference's teacher-forced pass
            # over the reference's ids, with the same interventions
            forced = ref_forced(model, src, want[:, :Tl], gates, overrides, edits)
            for k, v in views.items():
                name, _, layer = k.partition("|")
                record("decode", "%s after greedy[%s layer %s]" % (name, tag, layer), v,
                       forced[k], TOL)
            # libat's decode vs libat's teacher-forced pass (same interventions;
            # a full pass needs overrides of all T rows)
            if any(p.shape[-2] != (S if k == ENC_SELF else Tl) for k, _, _, p in overrides):
                continue
            lib_scaling_taps(d, edits)
            d.forward(src, ids[:, :Tl], PAD)
            d.tap_clear()
            fviews = {"attn.%s|%d" % (k, i): d.attention(k, i)
                      for k in ("dec_self", "cross") for i in range(N)}
            flogp = d.output(capi.OUT_LOGPROBS)
            steps = [e for e in rec.events if e["site"] == "logprobs"]
            dlogp = np.concatenate([e["value"] for e in steps], axis=1) if steps else None
            worst, bit = 0.0, True
            for k in views:
                diff = float(np.abs(views[k] - fviews[k]).max())
                worst, bit = max(worst, diff), bit and np.array_equal(views[k], fviews[k])
                record("decode", "decode == teacher-forced, libat: attention[%s]" % tag,
                       views[k], fviews[k], 1e-6)
            if dlogp is None or dlogp.shape != flogp.shape:
                FAILS.append("decode %s: logprobs taps of the decode %s, forward %s"
                             % (tag, None if dlogp is None else dlogp.shape, flogp.shape))
            else:
                worst = max(worst, float(np.abs(dlogp - flogp).max()))
                bit = bit and np.array_equal(dlogp, flogp)
                # elementwise relative: 1e-6 absolute is below one float32 ulp
                # of the pad id's log-prob (~ -40 on this generator, ulp 3.8e-6)
                # 1e-6 of the scale: 1e-6 absolute is below one float32 ulp of
                # the largest log-probs (the pad id's, ~ -40 on this generator,
                # ulp 3.8e-6), and log_softmax's error follows the logits' (~30)
                record("decode", "decode == teacher-forced, libat: logprobs[%s]" % tag, dlogp,
                       flogp, 1e-6, scale_tol=1e-6)
            NOTES.append("decode %s: libat decode vs libat teacher-forced: max |diff| %.3g%s"
                         % (tag, worst, " (bit-identical)" if bit else ""))
        NOTES.append("decode: smallest top-1 minus top-2 margin of the reference's greedy "
                     "decodes %.2g" % smallest)
        d.interventions_reset()
        check_decode_taps(d, model, src)
        check_beam(d, model, src)
    finally:
        d.close()


def check_decode_taps(d, model, src):
    """Every tap of a greedy decode (gates A, an override) vs the rows of the
    reference's prefix pass of the same step."""
    rng = np.random.default_rng(10)
    B, S = src.shape
    max_len = 6
    g = gates_array(GATE_SETS["A"])
    ov = [(DEC_SELF, 1, ALL, stochastic(rng, (B, H, 5, 5), causal=True))]
    set_gates(d, g)
    for o in ov:
        d.override(*o)
    rec = Recorder()
    tap_all(d, rec)
    ids, _ = d.greedy_decode(src, PAD, max_len, START, -1)
    d.tap_clear()
    d.interventions_reset()
    want, _, wrec = ref_greedy(model, src, max_len, g, ov, record_taps=True)
    record_equal("decode", "greedy ids (taps on every site)", ids, want)
    kv_rows = set()
    for e in rec.events:
        site, kind, layer, step = e["site"], e["kind"], e["layer"], e["step"]
        what = "tap %s[%s layer %d]" % (site, KIND_NAMES[kind] if kind in (0, 1, 2) else kind,
                                        layer)
        if step < 0:  # encoder side, cross k/v: the reference's encode (or step 0)
            w = wrec.get((site, kind, layer, -1), wrec.get((site, kind, layer, 0)))
        else:
            w = wrec.get((site, kind, layer, step))
            if w is not None:
                if site in ("k", "v") and kind == DEC_SELF:
                    rows = e["shape"][2] if len(e["shape"]) == 4 else 0
                    kv_rows.add(rows)
                    w = w[:, :, step + 1 - rows:step + 1]
                elif w.ndim == 4:
                    w = w[:, :, step:step + 1]
                else:
                    w = w[:, step:step + 1]
        if w is None:
            FAILS.append("decode %s step %d: no reference tensor" % (what, step))
            continue
        record("decode", what + " (greedy)", e["value"], w, TOL)
    NOTES.append("decode taps: dec_self k/v of a step have %s rows" % sorted(kv_rows))


def check_beam(d, model, src):
    """Beam search with gates, and with an override (every hypothesis of a
    source uses its rows), vs the reference's beam search."""
    rng = np.random.default_rng(11)
    B, S = src.shape
    n_x = (src != PAD).sum(axis=1)
    a, b = 4.0, 1.0
    longest = int(min(np.floor(a + b * n_x).max(), CFG["max_len"] + 1))
    cases = [("gates A", gates_array(GATE_SETS["A"]), []),
             ("override cross l1 + gates B", gates_array(GATE_SETS["B"]),
              [(CROSS, 1, ALL, stochastic(rng, (B, H, longest - 1, S), mask_keys=src == PAD))]),
             ("override dec_self l0 h3", None,
              [(DEC_SELF, 0, 3, stochastic(rng, (B, longest - 1, longest - 1), causal=True))])]
    for tag, gates, overrides in cases:
        d.interventions_reset()
        if gates is not None:
            set_gates(d, gates)
        for o in overrides:
            d.override(*o)
        iv = model.set_interventions(ref.Interventions())
        try:
            if gates is not None:
                iv.gates = torch.as_tensor(gates)
            for kind, layer, head, probs in overrides:
                iv.set_override(kind, layer, head, torch.as_tensor(probs))
            for beam in (2, 4):
                out, lens, scores = d.beam_decode(src, PAD, START, END, beam, 0.6, a, b, longest)
                found = ref.beam_search(model, T(src), PAD, START, END, beam, 0.6, a, b,
                                        CFG["max_len"])
                for r, (ids, score, _, gap) in enumerate(found):
                    record_equal("decode", "beam ids[%s K=%d row %d]" % (tag, beam, r),
                                 out[r, :lens[r]], ids, "(smallest deciding gap %.2g)" % gap)
                    record("decode", "beam score[%s K=%d row %d]" % (tag, beam, r), scores[r],
                           score, 1e-4)
        finally:
            model.set_interventions(None)
    d.interventions_reset()


def expected_order(steps):
    """(site, kind, layer, step) in the documented order; steps None: a
    forward pass, else the greedy steps."""
    seq = [("src_embed", 0, 0, -1)]
    for l in range(N):
        seq += [(s, ENC_SELF, l, -1) for s in ATTN_SITES]
        seq += [("ff_hidden", ENC_SELF, l, -1), ("layer_out", ENC_SELF, l, -1)]
    seq.append(("memory", 0, 0, -1))
    for l in range(N):
        seq += [("k", CROSS, l, -1), ("v", CROSS, l, -1)]
    for t in ([-1] if steps is None else range(steps)):
        seq.append(("tgt_embed", 0, 0, t))
        for l in range(N):
            seq += [(s, DEC_SELF, l, t) for s in ATTN_SITES]
            seq += [(s, CROSS, l, t) for s in ("q", "scores", "probs", "head_out", "attn_out")]
            seq += [("ff_hidden", DEC_SELF, l, t), ("layer_out", DEC_SELF, l, t)]
        seq += [("decoder", 0, 0, t), ("logprobs", 0, 0, t)]
    return seq


def check_order(m, _path, _tmp):
    src, tgt = forward_batch()
    B = src.shape[0]
    m.interventions_reset()
    rec = Recorder()
    tap_all(m, rec)
    m.forward(src, tgt, PAD)
    got = [(e["site"], e["kind"], e["layer"], e["step"]) for e in rec.events]
    want = expected_order(None)
    first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)
    record_equal("order", "forward pass: sequence of events", len(got) == len(want)
                 and first is None, True,
                 "(%d events, %d expected; first difference at %s: %s vs %s)"
                 % (len(got), len(want), first, got[first] if first is not None else None,
                    want[first] if first is not None else None))
    ok_true("order", "forward: pass field", all(e["pass_"] == capi.PASS_FORWARD
                                                for e in rec.events))
    # greedy decoding
    rec.events.clear()
    max_len = 4
    m.greedy_decode(src, PAD, max_len, START, -1)
    got = [(e["site"], e["kind"], e["layer"], e["step"]) for e in rec.events]
    want = expected_order(max_len - 1)
    first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)
    record_equal("order", "greedy decode: sequence of events", len(got) == len(want)
                 and first is None, True,
                 "(%d events, %d expected; first difference at %s: %s vs %s)"
                 % (len(got), len(want), first, got[first] if first is not None else None,
                    want[first] if first is not None else None))
    bad = []
    for e in rec.events:
        t = e["step"]
        if e["pass_"] != capi.PASS_GREEDY or e["batch"] != B or not e["same_data"]:
            bad.append(e)
        elif t >= 0:
            qdim = e["shape"][2] if len(e["shape"]) == 4 else e["shape"][1]
            if e["pos"] != (t, t + 1) or (qdim != 1 and e["site"] not in ("k", "v")):
                bad.append(e)
            if e["site"] in ("scores", "probs") and e["kind"] == DEC_SELF \
                    and e["shape"][3] != t + 1:
                bad.append(e)
    ok_true("order", "greedy: fields (pass, batch, step = pos_begin, pos_end = step + 1, "
                     "query dimension 1)", not bad,
            "; ".join("%s %s l%d step %d pos %s shape %s pass %d batch %d"
                      % (e["site"], e["kind"], e["layer"], e["step"], e["pos"], e["shape"],
                         e["pass_"], e["batch"]) for e in bad[:4]))
    # two taps on one site fire in the order they were added
    m.tap_clear()
    order = []
    m.check(m.tap_add(SITE["probs"], CROSS, 1, lambda ev: order.append("first")), "tap")
    m.check(m.tap_add(SITE["probs"], CROSS, 1, lambda ev: order.append("second")), "tap")
    m.forward(src, tgt, PAD)
    record_equal("order", "two taps on a site: order added", order, ["first", "second"])
    m.tap_clear()

    # the pass field and the batch of each call (a handle of its own: training)
    t = capi.Model.load(_path)
    try:
        t.set(dropout=0.0, attn_dropout=0.0)
        ls, lt = loss_batch()
        rec = Recorder()
        t.check(t.tap_add(SITE["logprobs"], 0, 0, rec), "at_tap_add")
        t.check(t.tap_add(SITE["probs"], CROSS, 1, rec), "at_tap_add")
        seen = {}
        for what, call, want in (
                ("at_forward", lambda: t.forward(ls, lt[:, :-1], PAD), capi.PASS_FORWARD),
                ("at_eval_loss", lambda: t.eval_loss(ls, lt, PAD), capi.PASS_FORWARD),
                ("at_eval_nll", lambda: t.eval_nll(ls, lt, PAD), capi.PASS_FORWARD),
                ("at_gate_gradients", lambda: t.gate_gradients(ls, lt, PAD, NG),
                 capi.PASS_FORWARD),
                ("at_greedy_decode", lambda: t.greedy_decode(ls, PAD, 4, START, -1),
                 capi.PASS_GREEDY),
                ("at_beam_decode", lambda: t.beam_decode(ls, PAD, START, -1, 3, 0.6, 4, 0, 4),
                 capi.PASS_BEAM),
                ("at_train_step", lambda: t.train_step(ls, lt, PAD), capi.PASS_TRAIN)):
            rec.events.clear()
            call()
            passes = sorted({e["pass_"] for e in rec.events})
            record_equal("order", "pass field[%s]" % what, passes, [want])
            seen[what] = rec.events[:]
        beam = seen["at_beam_decode"]
        batches = [e["batch"] for e in beam if e["site"] == "logprobs"]
        steps = [e["step"] for e in beam if e["site"] == "logprobs"]
        # beam 3, no end id: docs/interventions.md, B·K rows at every step
        # (at step 0 too, where each source has one hypothesis)
        B = ls.shape[0]
        record_equal("order", "beam: batch = B*K per step", batches, [3 * B] * len(batches))
        record_equal("order", "beam: steps", steps, list(range(len(steps))))
        fw = [e for e in seen["at_forward"] if e["site"] == "logprobs"]
        record_equal("order", "at_forward: step -1, batch B", [(e["step"], e["batch"]) for e in fw],
                     [(-1, B)])
    finally:
        t.close()


def check_errors(m, path, _tmp):
    src, tgt = forward_batch()
    B, S, Tl = src.shape[0], src.shape[1], tgt.shape[1]
    m.interventions_reset()
    plain = libat_pass(m, src, tgt)
    L = capi.LIB
    E = "errors"

    def noop(ev):
        return 0
    # taps
    for what, args, want in (
            ("unknown site 14", (14, ALL, ALL), capi.E_ARG),
            ("unknown site -1", (-1, ALL, ALL), capi.E_ARG),
            ("unknown kind 3", (SITE["q"], 3, 0), capi.E_ARG),
            ("unknown kind -2", (SITE["q"], -2, 0), capi.E_ARG),
            ("layer N", (SITE["q"], ENC_SELF, N), capi.E_ARG),
            ("layer -2", (SITE["probs"], CROSS, -2), capi.E_ARG),
            ("layer site with the cross kind", (SITE["ff_hidden"], CROSS, 0), capi.E_ARG),
            ("model site, layer 1", (SITE["memory"], 0, 1), capi.E_ARG),
            ("model site, layer AT_ALL", (SITE["logprobs"], 0, ALL), capi.OK),
            ("layer site, AT_ALL", (SITE["layer_out"], ALL, ALL), capi.OK)):
        ok_status(E, "at_tap_add " + what, m.tap_add(*args, noop), want)
    ok_status(E, "at_tap_add NULL fn", L.at_tap_add(m.ptr, SITE["q"], 0, 0, capi.TAP_FN(), None),
              capi.E_ARG)
    ok_status(E, "at_tap_add NULL model", L.at_tap_add(None, SITE["q"], 0, 0, capi.TAP_FN(noop),
                                                       None), capi.E_ARG)
    m.tap_clear()
    n_ok = sum(m.tap_add(SITE["q"], ALL, ALL, noop) == capi.OK for _ in range(256))
    record_equal(E, "256 taps accepted", n_ok, 256)
    ok_status(E, "the 257th tap", m.tap_add(SITE["q"], ALL, ALL, noop), capi.E_NOMEM)
    m.tap_clear()
    # site names
    names = [L.at_site_name(i) for i in range(len(capi.SITES))]
    record_equal(E, "at_site_name", [n.decode() if n else None for n in names], list(capi.SITES))
    ok_true(E, "at_site_name(14) is NULL", L.at_site_name(14) is None)
    for i, name in enumerate(capi.SITES):
        out = capi.c_int(-5)
        st = L.at_site_from_name(name.encode(), capi.ctypes.byref(out))
        record_equal(E, "at_site_from_name", (st, out.value), (0, i))
    out = capi.c_int()
    ok_status(E, "at_site_from_name unknown", L.at_site_from_name(b"value",
                                                                  capi.ctypes.byref(out)),
              capi.E_ARG)
    # gates
    for what, args, want in (("kind 3", (3, 0, 0, 0.5), capi.E_ARG),
                             ("kind -2", (-2, 0, 0, 0.5), capi.E_ARG),
                             ("layer N", (0, N, 0, 0.5), capi.E_ARG),
                             ("head h", (0, 0, H, 0.5), capi.E_ARG),
                             ("head -2", (0, 0, -2, 0.5), capi.E_ARG),
                             ("NaN", (0, 0, 0, float("nan")), capi.E_NUMERIC),
                             ("inf", (ALL, ALL, ALL, float("inf")), capi.E_NUMERIC)):
        ok_status(E, "at_gate_set " + what, L.at_gate_set(m.ptr, *args), want)
    record_equal(E, "gates unchanged after refused at_gate_set", gates_of(m), np.ones((3, N, H)))
    v = capi.c_float()
    ok_status(E, "at_gate_get head h", L.at_gate_get(m.ptr, 0, 0, H, capi.ctypes.byref(v)),
              capi.E_ARG)
    ok_status(E, "at_gate_get AT_ALL kind", L.at_gate_get(m.ptr, ALL, 0, 0,
                                                          capi.ctypes.byref(v)), capi.E_ARG)
    # overrides: refused when set
    rng = np.random.default_rng(12)
    good = stochastic(rng, (B, H, Tl, Tl), causal=True)
    ahead = good.copy()
    ahead[1, 2, 3, 5] = 0.1
    nan = good.copy()
    nan[0, 0, 4, 1] = float("nan")
    inf = stochastic(rng, (B, Tl, S))
    inf[2, 1, 1] = float("inf")
    for what, args, want in (
            ("look-ahead in dec_self", (DEC_SELF, 0, ALL, ahead), capi.E_ARG),
            ("look-ahead in dec_self (a head)", (DEC_SELF, 1, 2, ahead[:, 2]), capi.E_ARG),
            ("NaN", (DEC_SELF, 0, ALL, nan), capi.E_NUMERIC),
            ("inf", (CROSS, 0, 1, inf), capi.E_NUMERIC),
            ("kind 3", (3, 0, ALL, good), capi.E_ARG),
            ("layer N", (DEC_SELF, N, ALL, good), capi.E_ARG),
            ("head h", (DEC_SELF, 0, H, good[:, 0]), capi.E_ARG),
            ("dec_self k_len != q_len", (DEC_SELF, 0, 1, good[:, 0, :, :Tl - 1]), capi.E_ARG)):
        ok_status(E, "at_attention_override " + what, m.override_status(*args), want)
    ok_status(E, "at_attention_override batch 0",
              m.override_status(CROSS, 0, 1, inf, batch=0), capi.E_ARG)
    ok_status(E, "at_attention_override NULL model",
              L.at_attention_override(None, 0, 0, ALL, None, 1, 1, 1), capi.E_ARG)
    long_q = CFG["max_len"] + 1
    big = np.full((1, long_q, S), 1.0 / S, dtype=np.float32)
    ok_status(E, "at_attention_override q_len > max_len",
              m.override_status(CROSS, 0, 0, big), capi.E_RANGE)
    got = libat_pass(m, src, tgt)
    for k in got:
        record_same(E, "refused overrides leave the plain pass", got[k], plain[k])
    # overrides of the wrong shape: accepted, the pass fails with AT_E_SHAPE
    for what, probs, kind in (
            ("q_len T+1 (cross)", stochastic(rng, (B, H, Tl + 1, S)), CROSS),
            ("k_len S-1 (cross)", stochastic(rng, (B, H, Tl, S - 1)), CROSS),
            ("q_len T-1 (dec_self)", stochastic(rng, (B, H, Tl - 1, Tl - 1), causal=True),
             DEC_SELF),
            ("S+1 (enc_self)", stochastic(rng, (B, H, S + 1, S + 1)), ENC_SELF),
            ("batch B-1 (cross)", stochastic(rng, (B - 1, H, Tl, S)), CROSS)):
        m.interventions_reset()
        st = m.override_status(kind, 1, ALL, probs)
        ok_status(E, "override %s: accepted when set" % what, st, capi.OK)
        ok_status(E, "override %s: the pass fails" % what, m.forward_status(src, tgt, PAD),
                  capi.E_SHAPE)
    m.interventions_reset()
    got = libat_pass(m, src, tgt)
    for k in got:
        record_same(E, "a pass after a failed one == plain", got[k], plain[k])
    # a tap returning non-zero stops the pass: AT_E_CALLBACK
    for status in (1, 5, -3):
        m.tap_clear()
        m.check(m.tap_add(SITE["probs"], DEC_SELF, 1, Recorder(status=status)), "at_tap_add")
        ok_status(E, "tap returning %d: at_forward" % status, m.forward_status(src, tgt, PAD),
                  capi.E_CALLBACK)
    s_ids = np.ascontiguousarray(src, dtype=np.int32)
    out = np.zeros((B, 5), dtype=np.int32)
    n = capi.c_int()
    st = L.at_greedy_decode(m.ptr, s_ids.ctypes.data_as(capi.P(capi.c_int32)), B, S, PAD, 5,
                            START, -1, out.ctypes.data_as(capi.P(capi.c_int32)),
                            capi.ctypes.byref(n))
    ok_status(E, "tap returning -3: at_greedy_decode", st, capi.E_CALLBACK)
    lt = np.ascontiguousarray(np.concatenate([tgt, tgt[:, :1]], axis=1), dtype=np.int32)
    loss = capi.c_double()
    st = L.at_eval_nll(m.ptr, s_ids.ctypes.data_as(capi.P(capi.c_int32)),
                       lt.ctypes.data_as(capi.P(capi.c_int32)), B, S, lt.shape[1], PAD,
                       capi.ctypes.byref(loss), None)
    ok_status(E, "tap returning -3: at_eval_nll", st, capi.E_CALLBACK)
    m.tap_clear()
    # a tap that fails only at the last site of the encoder
    m.check(m.tap_add(SITE["memory"], 0, 0, lambda ev: 7), "at_tap_add")
    ok_status(E, "tap on memory returning 7", m.forward_status(src, tgt, PAD), capi.E_CALLBACK)
    m.tap_clear()
    got = libat_pass(m, src, tgt)
    for k in got:
        record_same(E, "a pass after a stopped one == plain", got[k], plain[k])
    # at_gate_gradients argument checks
    g = np.zeros(NG, dtype=np.float32)
    st = L.at_gate_gradients(m.ptr, s_ids.ctypes.data_as(capi.P(capi.c_int32)),
                             lt.ctypes.data_as(capi.P(capi.c_int32)), B, S, 1, PAD, None,
                             g.ctypes.data_as(capi.P(capi.c_float)))
    record_equal(E, "at_gate_gradients tgt_len 1 refused", st != capi.OK, True)
    # at_capture_set argument checks
    for what, args in (("kind 3", (3, 0, 0, 0)), ("layer N", (0, N, 0, 0)),
                       ("head h", (0, 0, H, 1)), ("head -2", (0, 0, -2, 1))):
        ok_status(E, "at_capture_set " + what, L.at_capture_set(m.ptr, *args), capi.E_ARG)
    ok_status(E, "at_get_attention_head head h", m.attention_head_status("cross", 0, H),
              capi.E_ARG)
    ok_status(E, "at_interventions_reset NULL", L.at_interventions_reset(None), capi.E_ARG)
    ok_status(E, "at_tap_clear NULL", L.at_tap_clear(None), capi.E_ARG)
    m.interventions_reset()


def check_capture(m, _path, _tmp):
    rng = np.random.default_rng(13)
    B = 6
    src = padded(rng, [20, 18, 23, 12, 23, 9], 23, CFG["src_vocab"], PAD)
    tgt = padded(rng, [22, 15, 23, 23, 10, 19], 23, CFG["tgt_vocab"], PAD)
    tgt[:, 0] = START
    m.interventions_reset()
    plain = libat_pass(m, src, tgt)
    plain_bytes = m.activation_bytes()
    m.capture_set(ALL, ALL, ALL, 0)
    m.capture_set(CROSS, 0, 1, 1)
    m.forward(src, tgt, PAD)
    kept_bytes = m.activation_bytes()
    record_same("capture", "logprobs == plain", m.output(capi.OUT_LOGPROBS), plain["logprobs"])
    record_same("capture", "memory == plain", m.output(capi.OUT_MEMORY), plain["memory"])
    record_same("capture", "decoder == plain", m.output(capi.OUT_DECODER), plain["decoder"])
    record_same("capture", "kept head == plain's", m.attention_head("cross", 0, 1),
                 plain["attn.cross|0"][:, 1])
    for kind in KIND_NAMES:
        for l in range(N):
            ok_status("capture", "at_get_attention of a dropped layer",
                      m.attention_status(kind, l), capi.E_STATE)
            for h in range(H):
                if (kind, l, h) != ("cross", 0, 1):
                    ok_status("capture", "at_get_attention_head of a dropped head",
                              m.attention_head_status(kind, l, h), capi.E_STATE)
    ok_true("capture", "activation bytes smaller", 0 < kept_bytes < plain_bytes,
            "(%d kept vs %d plain)" % (kept_bytes, plain_bytes))
    full = B * H * (23 * 23 * 2 + 23 * 23) * 4 * N
    NOTES.append("capture: activation bytes %d with one head kept, %d plain (all attention "
                 "would be %d bytes)" % (kept_bytes, plain_bytes, full))
    # a tap on probs, or an override, keeps its block whole regardless
    m.check(m.tap_add(SITE["probs"], DEC_SELF, 1, lambda ev: 0), "at_tap_add")
    m.override(ENC_SELF, 0, ALL, plain["attn.enc_self|0"])
    m.forward(src, tgt, PAD)
    record_same("capture", "a block with a probs tap is kept", m.attention("dec_self", 1),
                 plain["attn.dec_self|1"])
    record_same("capture", "a block with an override is kept", m.attention("enc_self", 0),
                 plain["attn.enc_self|0"])
    ok_status("capture", "other blocks still dropped", m.attention_status("cross", 1),
              capi.E_STATE)
    m.tap_clear()
    # training needs all attention
    ls, lt = loss_batch()
    g = np.zeros(NG, dtype=np.float32)
    s_ids = np.ascontiguousarray(ls, dtype=np.int32)
    t_ids = np.ascontiguousarray(lt, dtype=np.int32)
    st = capi.LIB.at_gate_gradients(m.ptr, s_ids.ctypes.data_as(capi.P(capi.c_int32)),
                                    t_ids.ctypes.data_as(capi.P(capi.c_int32)), ls.shape[0],
                                    ls.shape[1], lt.shape[1], PAD, None,
                                    g.ctypes.data_as(capi.P(capi.c_float)))
    ok_status("capture", "at_gate_gradients under a dropping policy", st, capi.E_STATE)
    m.interventions_reset()
    got = libat_pass(m, src, tgt)
    for k in got:
        record_same("capture", "after reset: every view == plain", got[k], plain[k])
    record_equal("capture", "after reset: activation bytes", m.activation_bytes(), plain_bytes)

    # at_model_share: a new handle starts with no taps, gates 1, no override
    fs, ft = forward_batch()
    base = libat_pass(m, fs, ft)
    set_gates(m, gates_array(GATE_SETS["A"]))
    m.override(CROSS, 1, 2, np.full((fs.shape[0], ft.shape[1], fs.shape[1]), 1.0 / fs.shape[1]))
    m.check(m.tap_add(SITE["q"], ALL, ALL, lambda ev: 1), "at_tap_add")
    m.capture_set(ALL, ALL, ALL, 0)
    shared = m.share()
    try:
        got = libat_pass(shared, fs, ft)
        for k in got:
            record_same("capture", "at_model_share: a plain handle", got[k], base[k])
        record_equal("capture", "at_model_share: gates 1", gates_of(shared), np.ones((3, N, H)))
        ok_status("capture", "the first handle keeps its tap", m.forward_status(fs, ft, PAD),
                  capi.E_CALLBACK)
    finally:
        shared.close()
    m.tap_clear()
    m.interventions_reset()


def main():
    only = set(sys.argv[1:])
    if capi.MISSING and not only <= {"self"}:
        print("torch_interv: FAILED: %s does not export %s"
              % (capi.LIBRARY_PATH, ", ".join(capi.MISSING)))
        return 1
    tmp = tempfile.mkdtemp(prefix="torch_interv.")
    times = {}
    checks = (("self", check_self), ("gates", check_gates), ("override", check_override),
              ("taps", check_taps), ("gradgate", check_gradgate), ("bitident", check_bitident),
              ("decode", check_decode), ("order", check_order), ("errors", check_errors),
              ("capture", check_capture), ("agrad", check_agrad),
              ("relevance", check_relevance))
    try:
        print("torch_interv: libat %s, torch %s, numpy %s"
              % (capi.LIBRARY_PATH, torch.__version__, np.__version__))
        m, path, _ = make_model(tmp)
        try:
            for name, fn in checks:
                if only and name not in only:
                    continue
                t = time.time()
                try:
                    fn(m, path, tmp)
                except Exception as e:  # noqa: BLE001 (a check that cannot run fails)
                    import traceback
                    traceback.print_exc()
                    FAILS.append("%s: stopped: %s: %s" % (name, type(e).__name__, e))
                    RESULTS.append((name, "stopped", math.inf, None, None, 0.0, False))
                    m.close()
                    m = capi.Model.load(path)
                    m.set(dropout=0.0, attn_dropout=0.0)
                times[name] = time.time() - t
        finally:
            m.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table([c for c, _ in checks])
    for line in NOTES:
        print(line)
    print("times: " + ", ".join("%s %.1f s" % kv for kv in times.items())
          + "; total %.1f s" % (time.time() - T0))
    if FAILS:
        print("\n%d FAILED comparisons:" % len(FAILS))
        for f in FAILS[:80]:
            print("  " + f)
        return 1
    print("torch_interv: all %d comparisons passed" % len(RESULTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
