"""Attention rollout and flow (Abnar & Zuidema 2020) and value-norm attention
(Kobayashi et al. 2020) of a Model's last pass, as numpy arrays: the group
"rollout" of include/at_analysis.h (docs/rollout.md says what each computes).

    import libat
    from libat import rollout
    m.forward(src, tgt)
    rollout.rollout(m, "enc_self")      # (B, S, S) = Ã_N ⋯ Ã_1
    rollout.rollout(m, "cross")         # (B, T, S), through the decoder
    rollout.flow(m)                     # (B, S, S) max-flow, at most 64 tokens
    rollout.value_norm(m, "cross", 1)   # (B, h, T, S) = ‖α·f(x)‖
"""

import ctypes

import numpy as np

from . import _capi
from .errors import StateError
from .model import _READ, Attn, Output, _enum, _int, _lib

__all__ = ["HAVE_ROLLOUT", "FLOW_MAX_LEN", "rollout", "flow", "value_norm"]

#: The longest sequence flow() takes (AT_FLOW_MAX_LEN).
FLOW_MAX_LEN = 64

# The library model.py loaded (through _capi.load()); these prototypes are
# the group "rollout" of at_analysis.h, declared when the library has it.
_PROTOS = {
    "at_rollout": (_capi.c_int, [_capi.c_void_p, _capi.c_int, _capi.c_void_p]),
    "at_attention_flow": (_capi.c_int, [_capi.c_void_p, _capi.c_int, _capi.c_void_p]),
    "at_value_norm": (_capi.c_int, [_capi.c_void_p, _capi.c_int, _capi.c_int,
                                    _capi.c_void_p]),
}

#: Whether the library has rollout, flow and value norms (libat 0.2).
HAVE_ROLLOUT = all(hasattr(_lib, name) for name in _PROTOS)
if HAVE_ROLLOUT:
    for _name, (_res, _args) in _PROTOS.items():
        _fn = getattr(_lib, _name)
        _fn.restype, _fn.argtypes = _res, _args


def _need(call):
    if not HAVE_ROLLOUT:
        raise StateError("this libat has no %s (libat 0.2 or later)" % call, call)


def _lengths(model):
    """(B, S, T) of the last pass; S and T are None without an encoder or a
    decoder pass (the call then says what is missing)."""
    try:
        b, _, s = model.output(Output.SRC_MASK).shape
    except StateError:
        return None, None, None
    try:
        t = model.output(Output.TGT_MASK).shape[1]
    except StateError:
        t = None
    return b, s, t


def _run(model, call, shape, *args):
    """Calls at_<call>(model, *args, out) into a new float32 array of shape
    (a one-float array when the pass lacks what shape needs: the call then
    fails with its own status and message)."""
    out = np.zeros(shape if shape else (1,), dtype=np.float32)
    model._call(call, *args, out.ctypes.data_as(ctypes.c_void_p), role=_READ)
    return out


def rollout(model, kind="enc_self"):
    """Attention rollout of the last pass (at_rollout): "enc_self" (B, S, S),
    "dec_self" (B, T, T) or "cross" (B, T, S), float32."""
    _need("at_rollout")
    kind = _enum(Attn, kind, "attention kind")
    with model.exclusive():
        b, s, t = _lengths(model)
        shape = {Attn.ENC_SELF: (b, s, s) if s else None,
                 Attn.DEC_SELF: (b, t, t) if t else None,
                 Attn.CROSS: (b, t, s) if t else None}[kind]
        return _run(model, "at_rollout", shape, int(kind))


def flow(model, kind="enc_self"):
    """Attention flow of the last pass (at_attention_flow): the maximum flow
    from each top-layer position to each input position, (B, L, L) for
    "enc_self" or "dec_self"; at most FLOW_MAX_LEN tokens (RangeError)."""
    _need("at_attention_flow")
    kind = _enum(Attn, kind, "attention kind")
    with model.exclusive():
        b, s, t = _lengths(model)
        n = s if kind == Attn.ENC_SELF else t
        shape = (b, n, n) if n and n <= FLOW_MAX_LEN and kind != Attn.CROSS else None
        return _run(model, "at_attention_flow", shape, int(kind))


def value_norm(model, kind, layer):
    """Value-norm attention of one layer (at_value_norm): ‖α_ij·f(x_j)‖ per
    head, shaped as model.attention(kind, layer), (B, h, Lq, Lk)."""
    _need("at_value_norm")
    kind = _enum(Attn, kind, "attention kind")
    layer = _int(layer, "layer", call="at_value_norm")
    with model.exclusive():
        b, s, t = _lengths(model)
        h = model.get("heads")
        lq = s if kind == Attn.ENC_SELF else t
        lk = t if kind == Attn.DEC_SELF else s
        shape = (b, h, lq, lk) if lq and lk else None
        return _run(model, "at_value_norm", shape, int(kind), layer)
