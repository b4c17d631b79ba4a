"""Analysis views of the HTML explorer (the group "vizanalysis" of
include/at_viz.h; docs/explorer.md, "Analysis views"): results computed
from a pass, attached to the explorer a Model writes, from numpy arrays.

    import libat
    from libat import explorer, rollout
    m.forward(src, tgt)
    a = explorer.Analysis()
    imp = m.head_importance(src, full_tgt)["importance"]     # {kind: (layers, heads)}
    for kind, v in imp.items():
        a.add_headmap("importance", kind, v)                  # one grid per kind
    a.add_map("rollout", "src", "src", rollout.rollout(m, "enc_self")[0])
    a.set_links([(0, 0), (1, 2)])                             # (target, source) positions
    m.forward(src, tgt)                                       # the pass charted
    m.chart("index.html", "explorer", "cross", 1, 0, analysis=a)

The arrays are copied when added; the library checks them again (sizes
against the model and the pass) when the explorer is written.
"""

import ctypes

import numpy as np

from . import _capi
from .errors import ArgumentError, StateError
from .model import Attn, _enum, _global, _lib, _ptr, _text

__all__ = ["HAVE_ANALYSIS_VIEWS", "ANALYSIS_MAX", "MAP_VALUES_MAX", "GRID_VALUES_MAX",
           "LABEL_BYTES_MAX", "TITLE_MAX", "Analysis"]

#: The most head grids and maps one Analysis holds (AT_VIZ_ANALYSIS_MAX).
ANALYSIS_MAX = 64
#: The most values of all its maps together (AT_VIZ_MAP_VALUES_MAX).
MAP_VALUES_MAX = 4000000
#: The most values of all its head grids together (AT_VIZ_GRID_VALUES_MAX).
GRID_VALUES_MAX = 250000
#: The most bytes of all its head grids' labels (AT_VIZ_LABEL_BYTES_MAX).
LABEL_BYTES_MAX = 4000000
#: The longest title or label, in bytes (AT_VIZ_TITLE_MAX).
TITLE_MAX = 200

_PROTOS = {
    "at_viz_options_add_headmap": (_capi.c_int, [_capi.c_void_p, _capi.c_char_p, _capi.c_int,
                                                 _capi.c_int, _capi.c_int, _capi.c_void_p,
                                                 _capi.POINTER(_capi.c_char_p), _capi.c_int]),
    "at_viz_options_add_map": (_capi.c_int, [_capi.c_void_p, _capi.c_char_p, _capi.c_int,
                                             _capi.c_int, _capi.c_int, _capi.c_int,
                                             _capi.c_void_p, _capi.c_int]),
    "at_viz_options_set_links": (_capi.c_int, [_capi.c_void_p, _capi.c_void_p, _capi.c_int]),
}

#: Whether the library has the explorer's analysis views (libat 0.3).
HAVE_ANALYSIS_VIEWS = all(hasattr(_lib, name) for name in _PROTOS)
if HAVE_ANALYSIS_VIEWS:
    for _name, (_res, _args) in _PROTOS.items():
        _fn = getattr(_lib, _name)
        _fn.restype, _fn.argtypes = _res, _args

_SIDES = {"src": 0, "source": 0, "tgt": 1, "target": 1}


def _side(value, what):
    if value not in _SIDES:
        raise ArgumentError("%s must be 'src' or 'tgt', not %r" % (what, value))
    return _SIDES[value]


def _title(title, call):
    t = _text(title, "title", call)
    if not 1 <= len(t) <= TITLE_MAX:
        raise ArgumentError("the title must have 1 .. %d bytes of UTF-8, not %d"
                            % (TITLE_MAX, len(t)), call)
    return t


def _matrix(values, dtype, what, call):
    a = np.asarray(values)
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ArgumentError("%s must be a non-empty 2-D array, not of shape %s"
                            % (what, a.shape), call)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ArgumentError("%s must hold numbers, not %s" % (what, a.dtype), call)
    return np.ascontiguousarray(a, dtype=dtype)


class Analysis:
    """Head grids, token maps and gold links for Model.chart(...,
    analysis=...) with the "explorer" chart. Each add_* returns self."""

    def __init__(self):
        if not HAVE_ANALYSIS_VIEWS:
            raise StateError("this libat has no analysis views in its explorer (libat 0.3 "
                             "with charts)", "at_viz_options_add_headmap")
        self._layers = []      # ("grid", title, kind, values, labels, div) or ("map", ...)
        self._links = None

    def add_headmap(self, title, kind, values, labels=None, diverging=False):
        """A layers x heads grid of one kind of attention: values (layers,
        heads), NaN for none; labels None or a (layers, heads) nested list
        of strings (a head's role, say; None for none); diverging for signed
        values (a scale around 0)."""
        call = "at_viz_options_add_headmap"
        t = _title(title, call)
        k = int(_enum(Attn, kind, "attention kind"))
        v = _matrix(values, np.float64, "values", call)
        labs = None
        if labels is not None:
            rows = [list(r) for r in labels]
            if len(rows) != v.shape[0] or any(len(r) != v.shape[1] for r in rows):
                raise ArgumentError("labels must be %d x %d like the values" % v.shape, call)
            labs = [None if s is None else _text(str(s), "label", call)
                    for r in rows for s in r]
        self._layers.append(("grid", t, k, v, labs, bool(diverging)))
        return self

    def add_map(self, title, rows, cols, values, diverging=False):
        """A token x token map of the charted batch row: rows and cols name
        the sequences ('src' or 'tgt'); values (rows, cols), for the pass's
        lengths or the lengths charted, NaN for none."""
        call = "at_viz_options_add_map"
        t = _title(title, call)
        r, c = _side(rows, "rows"), _side(cols, "cols")
        v = _matrix(values, np.float32, "values", call)
        self._layers.append(("map", t, r, c, v, bool(diverging)))
        return self

    def set_links(self, pairs):
        """Gold links: an (n, 2) array of (target position, source position),
        0-based positions of the pass (the target position is the
        cross-attention row); [] or None removes them."""
        call = "at_viz_options_set_links"
        if pairs is None or len(pairs) == 0:
            self._links = None
            return self
        a = np.asarray(pairs)
        if a.ndim != 2 or a.shape[1] != 2 or not np.issubdtype(a.dtype, np.integer):
            raise ArgumentError("links must be an (n, 2) array of integer positions, not %s "
                                "of shape %s" % (a.dtype, a.shape), call)
        if a.size and (a.min() < 0 or a.max() > np.iinfo(np.int32).max):
            raise ArgumentError("a link's position is outside 0 .. 2^31 - 1", call)
        self._links = np.ascontiguousarray(a, dtype=np.int32)
        return self

    def __len__(self):
        return len(self._layers)

    def _attach(self, opts):
        """Adds everything to a C at_viz_options (Model.chart calls it)."""
        for layer in self._layers:
            if layer[0] == "grid":
                _, t, k, v, labs, div = layer
                arr = None
                if labs is not None:
                    arr = (ctypes.c_char_p * len(labs))(*labs)
                _global("at_viz_options_add_headmap", opts, t, k, v.shape[0], v.shape[1],
                        _ptr(v), arr, int(div))
            else:
                _, t, r, c, v, div = layer
                _global("at_viz_options_add_map", opts, t, r, c, v.shape[0], v.shape[1],
                        _ptr(v), int(div))
        if self._links is not None:
            _global("at_viz_options_set_links", opts, _ptr(self._links),
                    self._links.shape[0])
