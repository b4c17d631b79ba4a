"""Head roles (include/at_analysis.h, group patterns): how much each head of
a model's last pass follows a template -- the roles of Voita et al. 2019
(positional heads, heads on boundary tokens, broad heads), cross-attention's
monotonic alignment, or a template of your own.

    import libat
    from libat import heads
    m.forward(src, tgt)
    heads.pattern_scores(m, "enc_self", 0, "prev")      # (h,) float64
    heads.template_scores(m, "cross", 1, mask)          # mask (Lq, Lk) or (B, Lq, Lk)
    heads.label_heads(m)   # {kind: [[(best, score, {name: score}) per head] per layer]}

A score is the mean over the valid query rows of Σ_j A_ij·T_ij / max_j T_ij
over the valid keys (the attention mass on a 0/1 mask); for "broad" the
row's overlap with uniform attention over its n valid keys, Σ_j min(A_ij, 1/n),
on the same scale. Rows where the
template has no weight are left out. See docs/heads.md.
"""

import ctypes
from ctypes import POINTER, c_double, c_float, c_int

import numpy as np

from . import model as _model
from .errors import ArgumentError, AtError, ShapeError

# The library the model module loaded (_capi.load: LIBAT_PATH, the source
# tree's lib/, the installed one); the same CDLL, with these prototypes added.
_lib = _model._lib
_PROTOS = {
    "at_pattern_name": (ctypes.c_char_p, [c_int]),
    "at_head_pattern_scores": (c_int, [ctypes.c_void_p, c_int, c_int, c_int, c_int,
                                       POINTER(c_double)]),
    "at_head_template_scores": (c_int, [ctypes.c_void_p, c_int, c_int, POINTER(c_float), c_int,
                                        c_int, c_int, POINTER(c_double)]),
    "at_head_role": (c_int, [c_int, POINTER(ctypes.c_char_p), POINTER(c_int), POINTER(c_int)]),
}
#: Whether the library has the head-role functions (libat 0.3: at_head_role).
HAVE_HEADS = all(hasattr(_lib, name) for name in _PROTOS)
if HAVE_HEADS:
    for _name, (_res, _args) in _PROTOS.items():
        _fn = getattr(_lib, _name)
        _fn.restype, _fn.argtypes = _res, _args

#: The built-in templates, in the order of enum at_pattern.
PATTERNS = ("diagonal", "offset", "prev", "next", "first", "eos", "broad", "monotonic")



def _roles():
    """The library's built-in roles (at_head_role), in their order."""
    out = {}
    for i in range(9):
        name, pat, k = ctypes.c_char_p(), c_int(), c_int()
        if _lib.at_head_role(i, ctypes.byref(name), ctypes.byref(pat), ctypes.byref(k)) != 0:
            break
        out[name.value.decode()] = (PATTERNS[pat.value], k.value)
    return out


#: The library attn heads labels with, from the C library (at_head_role):
#: name -> (pattern, k), in the order that breaks ties; monotonic is
#: cross-attention's only.
LIBRARY = _roles() if HAVE_HEADS else {}

_KINDS = ("enc_self", "dec_self", "cross")


def _need(who):
    if not HAVE_HEADS:
        raise AtError("this libat has no %s (an older library)" % who, who)


def _kind(kind, who):
    if isinstance(kind, str):
        if kind not in _KINDS:
            raise ArgumentError("unknown attention kind %r (one of %s)"
                                % (kind, ", ".join(_KINDS)), who)
        return _KINDS.index(kind)
    return int(kind)


def _pattern(pattern, who):
    if isinstance(pattern, str):
        if pattern not in PATTERNS:
            raise ArgumentError("unknown pattern %r (one of %s)"
                                % (pattern, ", ".join(PATTERNS)), who)
        return PATTERNS.index(pattern)
    return int(pattern)


def pattern_name(pattern):
    """The library's name of an at_pattern value, or None."""
    _need("at_pattern_name")
    name = _lib.at_pattern_name(int(pattern))
    return name.decode() if name else None


def pattern_scores(m, kind, layer, pattern, k=0):
    """Every head's score on a built-in pattern (name or enum value) in the
    last pass: float64 (heads,). k: the offset of "offset" (not 0), the band
    half-width of "monotonic" (>= 0), else 0."""
    who = "at_head_pattern_scores"
    _need(who)
    out = np.zeros(m.get("heads"), np.float64)
    m._call(who, _kind(kind, who), int(layer), _pattern(pattern, who), int(k),
            out.ctypes.data_as(POINTER(c_double)), role=_model._READ)
    return out


def template_scores(m, kind, layer, template):
    """Every head's score on a template of yours: non-negative weights
    (q_len, k_len), or (batch, q_len, k_len) one per batch row."""
    who = "at_head_template_scores"
    _need(who)
    arr = np.asarray(template)
    if arr.dtype.kind not in "biuf":
        raise ArgumentError("template must be real numbers, not %s" % arr.dtype, who)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ShapeError("template must be (q_len, k_len) or (batch, q_len, k_len), not %s"
                         % (arr.shape,), who)
    a = np.ascontiguousarray(arr, dtype=np.float32)
    out = np.zeros(m.get("heads"), np.float64)
    m._call(who, _kind(kind, who), int(layer), a.ctypes.data_as(POINTER(c_float)),
            int(a.shape[0]), int(a.shape[1]), int(a.shape[2]),
            out.ctypes.data_as(POINTER(c_double)), role=_model._READ)
    return out


def label_heads(m, kinds=None, templates=None):
    """attn heads in Python: {kind: [[(best, score, {name: score}) per head]
    per layer]} over LIBRARY and templates ({name: {kind: array}}); a
    template that does not apply to a kind is left out of its scores."""
    kinds = kinds or _KINDS
    templates = templates or {}
    res = {}
    for kind in kinds:
        layers = []
        for layer in range(m.get("layers")):
            cols = {}
            for name, (pat, k) in LIBRARY.items():
                if pat != "monotonic" or kind == "cross":
                    cols[name] = pattern_scores(m, kind, layer, pat, k)
            for name, per_kind in templates.items():
                if kind in per_kind:
                    cols[name] = template_scores(m, kind, layer, per_kind[kind])
            heads = []
            for h in range(m.get("heads")):
                scores = {n: float(v[h]) for n, v in cols.items()}
                best = max(scores, key=lambda n: (scores[n], -list(cols).index(n)))
                heads.append((best, scores[best], scores))
            layers.append(heads)
        res[kind] = layers
    return res
