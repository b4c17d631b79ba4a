"""Pruning curves (Michel et al. 2019) of a Model: the group "pruning" of
include/at_analysis.h, as `attn prune` computes them (docs/pruning.md).

A head is one index over every kind, layer and head, the layout of
Model.gate_gradients(): i = (kind * N + layer) * h + head, kinds in the
order enc_self, dec_self, cross (head_index(), head_of()).

    from libat import prune
    imp = prune.importance_order(m, src, tgt, pad=0)   # least important first
    copies = prune.copy_metric(src, tgt)                # the copy task's metric
    curve = prune.prune_curve(m, copies, imp.order)     # 11 points: 0 %, 10 %, ...
    rnd = prune.prune_curve(m, copies, prune.random_order(m, 3, imp.order))
    order, again = prune.reestimated_curve(m, copies, src, tgt)   # Michel et al.'s variant
    prune.prune_curve(m, lambda model: my_score(model), imp.order, steps=4)

A metric is a callable ``metric(model) -> float`` run with the gates of
each step (it may run any pass on the model; a gate it changes is put back
before the next step), or copy_metric() / bleu_metric(). If it raises, the
curve stops and raises CallbackError whose ``__cause__`` is that exception;
the model's gates are the caller's again either way.
"""

import collections
import ctypes

import numpy as np

from . import _capi
from .errors import ArgumentError, AtError, CallbackError, RangeError, StateError
from .model import _INT32, _PASS, _ids, _int, _lib

__all__ = ["HAVE_PRUNING", "KINDS", "Importance", "head_count", "head_index", "head_of",
           "order_by_scores", "importance_order", "random_order", "prune_metric",
           "prune_curve", "reestimated_curve", "copy_metric", "bleu_metric", "CopyMetric",
           "BleuMetric"]

KINDS = ("enc_self", "dec_self", "cross")

_V, _I = _capi.c_void_p, _capi.c_int
_DP = ctypes.POINTER(ctypes.c_double)
#: at_metric_fn: at_status (*)(at_model *m, void *user, double *value)
_METRIC_FN = ctypes.CFUNCTYPE(_I, _V, _V, _DP)
_AT_E_CALLBACK = 9


class _CopyTask(ctypes.Structure):
    """struct at_copy_task of include/at_analysis.h (final)."""

    _fields_ = [("src", _V), ("tgt", _V), ("batch", ctypes.c_int32),
                ("src_len", ctypes.c_int32), ("tgt_len", ctypes.c_int32),
                ("pad", ctypes.c_int32)]


_PROTOS = {
    "at_head_count": (_I, [_V, ctypes.POINTER(_I)]),
    "at_prune_order": (_I, [_V, _V, _V]),
    "at_prune_shuffle": (_I, [_V, _V, _I, ctypes.c_uint64]),
    "at_prune_metric": (_I, [_V, _V, _I, _METRIC_FN, _V, _DP]),
    "at_prune_curve": (_I, [_V, _V, _I, _I, _METRIC_FN, _V, _DP]),
    "at_prune_curve_reestimated": (_I, [_V, _V, _V, _I, _I, _I, ctypes.c_int32, _I,
                                        _METRIC_FN, _V, _V, _DP]),
    "at_metric_copy": (_I, [_V, _V, _DP]),
}

#: Whether the library has the pruning group.
HAVE_PRUNING = all(hasattr(_lib, name) for name in _PROTOS)
if HAVE_PRUNING:
    for _name, (_res, _args) in _PROTOS.items():
        _fn = getattr(_lib, _name)
        _fn.restype, _fn.argtypes = _res, _args
    # the library's own copy metric, as an at_metric_fn pointer
    _C_COPY = _METRIC_FN(("at_metric_copy", _lib))


def _need(call):
    if not HAVE_PRUNING:
        raise StateError("this libat has no %s (libat 0.3 or later)" % call, call)


def _ptr(arr):
    return arr.ctypes.data_as(ctypes.c_void_p)


def head_count(model):
    """3 * layers * heads: how many heads the model has (at_head_count)."""
    who = "at_head_count"
    _need(who)
    n = _I()
    model._call(who, ctypes.byref(n))
    return n.value


def head_index(model, kind, layer, head):
    """The index of head ``head`` of layer ``layer`` of ``kind`` (a name of
    KINDS or 0..2): (kind * N + layer) * h + head."""
    layers, heads = model.get("layers"), model.get("heads")
    k = KINDS.index(kind) if isinstance(kind, str) and kind in KINDS else kind
    k = _int(k, "kind", (0, 2))
    layer = _int(layer, "layer", (0, layers - 1))
    head = _int(head, "head", (0, heads - 1))
    return (k * layers + layer) * heads + head


def head_of(model, index):
    """(kind name, layer, head) of a head index, all 0-based."""
    layers, heads = model.get("layers"), model.get("heads")
    i = _int(index, "index", (0, 3 * layers * heads - 1))
    return KINDS[i // (layers * heads)], i // heads % layers, i % heads


def _order(model, order, what, empty_ok=False):
    """An order as a C-contiguous int32 array (the library checks it)."""
    arr = np.asarray(order)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ArgumentError("%s must be a 1-D sequence of head indices, not %s %s"
                            % (what, arr.dtype, arr.shape))
    if arr.size == 0 and not empty_ok:
        raise ArgumentError("%s is empty" % what)
    if arr.size and (arr.min() < _INT32[0] or arr.max() > _INT32[1]):
        raise ArgumentError("%s: index %d is not a head index" % (what, arr.max()))
    return np.ascontiguousarray(arr, dtype=np.int32)


def order_by_scores(model, scores):
    """Every head by ascending score, equal scores in index order
    (at_prune_order). ``scores``: 3 N h values by head index, or (3, N, h)."""
    who = "at_prune_order"
    _need(who)
    n = head_count(model)
    s = np.ascontiguousarray(np.asarray(scores, dtype=np.float32).reshape(-1))
    if s.size != n:
        raise ArgumentError("%d scores for %d heads" % (s.size, n), who)
    out = np.zeros(n, np.int32)
    model._call(who, _ptr(s), _ptr(out))
    return out


#: importance_order()'s answer: the order (least important first), each
#: head's |dL/dxi| in that order, and L.
Importance = collections.namedtuple("Importance", ["order", "importance", "loss"])


def importance_order(model, src, tgt, pad=0):
    """Michel et al.'s order: |dL/dxi| of every head from one
    Model.gate_gradients() pass at the current gates (every gate 1 unless
    set: then it is their importance), least important first, ties in
    index order -- `attn prune`'s importance order. tgt is the full target
    (B, T+1). Returns an Importance (order int32, importance float32 in that
    order, loss). A pass."""
    loss, grad = model.gate_gradients(src, tgt, pad)
    imp = np.abs(grad).reshape(-1)
    order = order_by_scores(model, imp)
    return Importance(order, imp[order], loss)


def random_order(model, seed, base=None):
    """A random order of the heads of ``base`` (default every head, in index
    order): at_prune_shuffle's Fisher-Yates on splitmix64, the same on
    every machine. `attn prune --seed S` shuffles its importance order
    with seeds S, S+1, ...: random_order(model, S + i, imp.order)."""
    who = "at_prune_shuffle"
    _need(who)
    seed = _int(seed, "seed", (0, 2**64 - 1), RangeError, who)
    out = (np.arange(head_count(model), dtype=np.int32) if base is None
           else _order(model, base, "base").copy())
    model._call(who, _ptr(out), out.size, seed)
    return out


class CopyMetric:
    """The copy task's metric (at_metric_copy): the share of rows of src
    that greedy decoding (start tgt[0, 0], max_len T+1, no end id) gives
    back exactly, every label tgt[:, 1:] that is not ``pad``. Call it on a
    model, or give it to prune_curve (it then runs in C)."""

    def __init__(self, src, tgt, pad=0):
        who = "at_metric_copy"
        self.pad = _int(pad, "pad", _INT32, RangeError, who)
        self.src, self.tgt = _ids(src, "src"), _ids(tgt, "tgt")
        if self.tgt.shape[0] != self.src.shape[0]:
            raise ArgumentError("src has %d rows, tgt %d" % (self.src.shape[0],
                                                            self.tgt.shape[0]), who)
        self._task = _CopyTask(_ptr(self.src), _ptr(self.tgt), self.src.shape[0],
                               self.src.shape[1], self.tgt.shape[1], self.pad)

    def __call__(self, model):
        who = "at_metric_copy"
        _need(who)
        v = ctypes.c_double()
        model._call(who, ctypes.byref(self._task), ctypes.byref(v), role=_PASS)
        return v.value

    def _c(self):
        """The C function and its user pointer (valid while self lives)."""
        return _C_COPY, ctypes.addressof(self._task)


def copy_metric(src, tgt, pad=0):
    """A CopyMetric: exact copies of src's rows against tgt (B, T+1)."""
    return CopyMetric(src, tgt, pad)


class BleuMetric:
    """Corpus BLEU (sacreBLEU's defaults, libat.text) of greedy decoding
    (beam 1) of ``sources`` by a Translator against ``references``, one per
    line -- `attn prune --metric bleu`. Call it on the translator's model."""

    def __init__(self, translator, sources, references, batch=32):
        if not hasattr(translator, "evaluate"):
            raise ArgumentError("translator must be a libat.Translator, not %s"
                                % type(translator).__name__)
        self.translator, self.batch = translator, batch
        self.sources, self.references = list(sources), list(references)
        if len(self.sources) != len(self.references) or not self.sources:
            raise ArgumentError("%d sources and %d references: need as many, at least one"
                                % (len(self.sources), len(self.references)))

    def __call__(self, model):
        if model is not self.translator.model:
            raise ArgumentError("the BLEU metric translates with its translator's model; "
                                "prune that model")
        e = self.translator.evaluate(self.sources, self.references, beam=1, batch=self.batch)
        return e.bleu.score


def bleu_metric(translator, sources, references, batch=32):
    """A BleuMetric: BLEU of translator's greedy translations of sources."""
    return BleuMetric(translator, sources, references, batch)


def _python_metric(model, metric, errors):
    """An at_metric_fn calling metric(model) under the GIL; what it raises
    (or a value that is not a number) goes to ``errors`` and stops the
    curve."""
    def call(_m, _user, value):
        try:
            value[0] = float(metric(model))
            return 0
        except BaseException as e:  # noqa: B902 -- nothing may escape into C
            errors.append(e)
            return _AT_E_CALLBACK
    return _METRIC_FN(call)


def _run(model, who, metric, args_before, args_after):
    """Calls who(model, *args_before, fn, user, *args_after) with metric as
    an at_metric_fn; a Python metric's exception becomes the cause of the
    CallbackError raised."""
    if not callable(metric):
        raise ArgumentError("the metric must be callable (metric(model) -> float), not %s"
                            % type(metric).__name__, who)
    errors = []
    if isinstance(metric, CopyMetric):
        fn, user = metric._c()
    else:
        fn, user = _python_metric(model, metric, errors), None
    try:
        model._call(who, *args_before, fn, user, *args_after, role=_PASS)
    except AtError as err:
        if not errors:
            raise
        exc = errors[0]
        if not isinstance(exc, Exception):   # KeyboardInterrupt, SystemExit: as they are
            raise exc from None
        if isinstance(err, CallbackError):
            err.message = "%s; the metric raised %s: %s" % (err.message, type(exc).__name__,
                                                            exc)
        raise err from exc


def prune_metric(model, metric, heads):
    """The metric with ``heads`` (head indices; may be empty) removed --
    gates 0, the others as they are -- then every gate put back
    (at_prune_metric). Returns a float."""
    who = "at_prune_metric"
    _need(who)
    h = _order(model, heads, "heads", empty_ok=True)
    v = ctypes.c_double()
    _run(model, who, metric, (_ptr(h) if h.size else None, h.size), (ctypes.byref(v),))
    return v.value


def prune_curve(model, metric, order, steps=10):
    """The metric as the heads of ``order`` are removed cumulatively, first
    first (at_prune_curve): point k = 0..steps with round(k * len(order) /
    steps) heads removed (halves up), every other gate as the caller has it.
    Returns a float64 array of steps + 1 values; the gates are the caller's
    again afterwards, also when the metric raises (CallbackError)."""
    who = "at_prune_curve"
    _need(who)
    o = _order(model, order, "order")
    steps = _int(steps, "steps", (1, 10000), ArgumentError, who)
    curve = np.zeros(steps + 1, np.float64)
    _run(model, who, metric, (_ptr(o), o.size, steps), (curve.ctypes.data_as(_DP),))
    return curve


def reestimated_curve(model, metric, src, tgt, pad=0, steps=10):
    """Michel et al.'s variant (at_prune_curve_reestimated): before each
    step |dL/dxi| is estimated again on (src, tgt) -- one gate_gradients()
    pass with the heads removed so far gated off -- and the least important
    of the heads left go next (ties in index order). Returns (order, curve):
    every head in the order it was removed (int32) and the steps + 1 points
    (float64). The gates are the caller's again afterwards."""
    who = "at_prune_curve_reestimated"
    _need(who)
    pad = _int(pad, "pad", _INT32, RangeError, who)
    s, t = _ids(src, "src"), _ids(tgt, "tgt")
    if t.shape[0] != s.shape[0]:
        raise ArgumentError("src has %d rows, tgt %d" % (s.shape[0], t.shape[0]), who)
    steps = _int(steps, "steps", (1, 10000), ArgumentError, who)
    order = np.zeros(head_count(model), np.int32)
    curve = np.zeros(steps + 1, np.float64)
    _run(model, who, metric, (_ptr(s), _ptr(t), s.shape[0], s.shape[1], t.shape[1], pad, steps),
         (_ptr(order), curve.ctypes.data_as(_DP)))
    return order, curve
