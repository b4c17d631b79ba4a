"""Activation patching and counterfactual attention (Jain & Wallace 2019) of
a Model, as numpy arrays: the group "patching" of include/at_analysis.h
(docs/patching.md says what each computes).

    import libat
    from libat import patching
    r = patching.activation_patch(m, src, tgt, corrupt_src, corrupt_tgt)
    r["patch"]["cross"]        # (N, h): value(patched) - value(clean)
    r["clean"], r["corrupt"]   # the two base values
    cf = patching.counterfactual_attention(m, src, tgt_in, seed=1)
    cf["permuted"]["enc_self"] # (N, h) total variation of the next token
"""

import ctypes

import numpy as np

from . import _capi
from .errors import RangeError, ShapeError, StateError
from .model import _INT32, _PASS, _ids, _int, _lib

__all__ = ["HAVE_PATCHING", "activation_patch", "counterfactual_attention"]

KINDS = ("enc_self", "dec_self", "cross")

# The library model.py loaded (through _capi.load()); these prototypes are
# the group "patching" of at_analysis.h, declared when the library has it.
_V, _I = _capi.c_void_p, _capi.c_int
_PROTOS = {
    "at_activation_patch": (_I, [_V, _V, _V, _V, _V, _I, _I, _I, ctypes.c_int32, _I, _V,
                                 ctypes.POINTER(ctypes.c_double),
                                 ctypes.POINTER(ctypes.c_double)]),
    "at_counterfactual_attention": (_I, [_V, _V, _V, _I, _I, _I, ctypes.c_int32,
                                         ctypes.c_uint64, _V, _V]),
}

#: Whether the library has activation patching and counterfactual attention.
HAVE_PATCHING = all(hasattr(_lib, name) for name in _PROTOS)
if HAVE_PATCHING:
    for _name, (_res, _args) in _PROTOS.items():
        _fn = getattr(_lib, _name)
        _fn.restype, _fn.argtypes = _res, _args


def _need(call):
    if not HAVE_PATCHING:
        raise StateError("this libat has no %s (libat 0.2 or later)" % call, call)


def _ptr(arr):
    return arr.ctypes.data_as(ctypes.c_void_p)


def _by_kind(flat, layers, heads):
    a = flat.reshape(3, layers, heads)
    return {k: a[i].copy() for i, k in enumerate(KINDS)}


def activation_patch(model, src, tgt, corrupt_src, corrupt_tgt, pad=0, target=None):
    """Per head, value(clean run with that head's output taken from the
    corrupted run) - value(clean run) (at_activation_patch). tgt and
    corrupt_tgt are whole targets (B, T+1); the value is measured on tgt's
    labels: the mean NLL, or with ``target`` = POS the log-probability of
    the label at decoder position POS summed over rows. The model must have
    no taps. Returns {"clean", "corrupt", "patch": {kind: (N, h) array}}."""
    who = "at_activation_patch"
    _need(who)
    pad = _int(pad, "pad", _INT32, RangeError, who)
    arrays = [_ids(a, n) for a, n in ((src, "src"), (tgt, "tgt"),
                                      (corrupt_src, "corrupt_src"),
                                      (corrupt_tgt, "corrupt_tgt"))]
    s, t, cs, ct = arrays
    if cs.shape != s.shape or ct.shape != t.shape or t.shape[0] != s.shape[0]:
        raise ShapeError("clean src %s, tgt %s; corrupted src %s, tgt %s: the clean and the "
                         "corrupted batch must have the same shapes"
                         % (s.shape, t.shape, cs.shape, ct.shape), who)
    pos = -1 if target is None else _int(target, "target", call=who)
    layers, heads = model.get("layers"), model.get("heads")
    out = np.zeros(3 * layers * heads, dtype=np.float32)
    vc, vx = ctypes.c_double(), ctypes.c_double()
    model._call(who, _ptr(s), _ptr(t), _ptr(cs), _ptr(ct), s.shape[0], s.shape[1],
                t.shape[1], pad, pos, _ptr(out), ctypes.byref(vc), ctypes.byref(vx),
                role=_PASS)
    return {"clean": vc.value, "corrupt": vx.value, "patch": _by_kind(out, layers, heads)}


def counterfactual_attention(model, src, tgt_in, pad=0, seed=0):
    """Per head, the total variation of the next-token distribution (mean
    over non-pad positions of tgt_in, the decoder's input (B, T)) when that
    head's attention is permuted over each row's valid keys, or uniform over
    them (at_counterfactual_attention). The model must have no overrides.
    Returns {"permuted": {kind: (N, h)}, "uniform": {kind: (N, h)}}."""
    who = "at_counterfactual_attention"
    _need(who)
    pad = _int(pad, "pad", _INT32, RangeError, who)
    seed = _int(seed, "seed", (0, 2**64 - 1), RangeError, who)
    s, t = _ids(src, "src"), _ids(tgt_in, "tgt_in")
    if t.shape[0] != s.shape[0]:
        raise ShapeError("src has %d rows, tgt_in %d" % (s.shape[0], t.shape[0]), who)
    layers, heads = model.get("layers"), model.get("heads")
    tvp = np.zeros(3 * layers * heads, dtype=np.float32)
    tvu = np.zeros_like(tvp)
    model._call(who, _ptr(s), _ptr(t), s.shape[0], s.shape[1], t.shape[1], pad, seed,
                _ptr(tvp), _ptr(tvu), role=_PASS)
    return {"permuted": _by_kind(tvp, layers, heads), "uniform": _by_kind(tvu, layers, heads)}
