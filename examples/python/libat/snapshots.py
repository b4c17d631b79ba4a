"""Heads forming during training (include/at_analysis.h, group snapshots):
the attention, statistics and role scores of fixed probe inputs, recorded
inside your training loop and saved to the file attn train --snapshot-every
writes (docs/snapshots.md).

    import libat
    from libat import snapshots
    m = libat.Model(layers=2, d_model=32, heads=4, d_ff=64)
    rec = snapshots.Recorder(m, probe_src, probe_tgt, pad=0, every=50)
    rec.take()                        # step 0
    for step in range(1, 301):
        m.train_step(src, tgt)
        if rec.maybe_take():          # when m.steps is a multiple of `every`
            rec.save("run.snapshots.safetensors")
    s = snapshots.load("run.snapshots.safetensors")
    s.steps, s.attn["cross"][1], s.stats["enc_self"][0][:, :, s.stat_index("entropy_norm")]
    snapshots.settled(s)["cross"][1][0]   # ("next", step since which head 1 kept it)

A snapshot's pass runs on a second handle sharing the model's weights: the
model's views, gates, training state and dropout stream are untouched, so
training goes on bit for bit as without the recorder.
"""

import ctypes
import json
import struct
from ctypes import POINTER, c_char_p, c_int, c_int32, c_int64, c_void_p

import numpy as np

from . import model as _model
from .errors import ArgumentError, AtError, FormatError, StateError

_lib = _model._lib
_PROTOS = {
    "at_snapshot_role_name": (c_char_p, [c_int]),
    "at_snapshots_create": (c_int, [c_void_p, POINTER(c_int32), POINTER(c_int32), c_int, c_int,
                                    c_int, c_int32, c_int, POINTER(c_void_p)]),
    "at_snapshots_due": (c_int, [c_void_p, c_int64]),
    "at_snapshots_take": (c_int, [c_void_p, c_void_p, c_int64]),
    "at_snapshots_count": (c_int, [c_void_p]),
    "at_snapshots_set_meta": (c_int, [c_void_p, c_char_p, c_char_p]),
    "at_snapshots_save": (c_int, [c_void_p, c_char_p]),
    "at_snapshots_free": (None, [c_void_p]),
}
#: Whether the library has the recorder (libat 0.3).
HAVE_SNAPSHOTS = all(hasattr(_lib, name) for name in _PROTOS)
if HAVE_SNAPSHOTS:
    for _name, (_res, _args) in _PROTOS.items():
        _fn = getattr(_lib, _name)
        _fn.restype, _fn.argtypes = _res, _args

KINDS = ("enc_self", "dec_self", "cross")
#: The statistics of stats.{kind}.{i}'s last axis (at_attention_stats, top-3).
STATS = ("entropy", "entropy_norm", "max", "dispersion", "top3", "distance", "rows")
#: The role templates of roles.{kind}.{i}'s last axis (attn heads' library).
ROLES = ("diagonal", "prev", "next", "prev2", "next2", "first", "eos", "broad", "monotonic")


def _need(who):
    if not HAVE_SNAPSHOTS:
        raise AtError("this libat has no %s (an older library)" % who, who)


def _i32p(a):
    return a.ctypes.data_as(POINTER(c_int32)) if a is not None else None


class Recorder:
    """Snapshots of a probe (src (B, S), optional decoder input tgt (B, T))
    on a model, kept in memory until save(). Use it as a context manager or
    call close()."""

    def __init__(self, model, src, tgt=None, pad=0, every=1):
        who = "at_snapshots_create"
        _need(who)
        if not isinstance(model, _model.Model):
            raise ArgumentError("model must be a libat.Model", who)
        s = _model._ids(src, "src")
        t = _model._ids(tgt, "tgt") if tgt is not None else None
        if t is not None and t.shape[0] != s.shape[0]:
            raise ArgumentError("src has %d rows, tgt %d" % (s.shape[0], t.shape[0]), who)
        self.model = model
        self.every = int(every)
        self._ptr = None
        out = c_void_p()
        model._call(who, _i32p(s), _i32p(t), s.shape[0], s.shape[1],
                    0 if t is None else t.shape[1], int(pad), self.every, ctypes.byref(out))
        self._ptr = out.value

    def _live(self, who):
        if not self._ptr:
            raise StateError("the recorder is closed", who)
        return self._ptr

    def due(self, step):
        """Whether step is a multiple of `every`."""
        return bool(_lib.at_snapshots_due(self._live("at_snapshots_due"), int(step)))

    def take(self, model=None, step=None):
        """One snapshot of model (default: the recorder's) filed under step
        (default: model.steps); steps must increase."""
        who = "at_snapshots_take"
        ptr = self._live(who)
        m = model if model is not None else self.model
        step = m.steps if step is None else int(step)
        h = m._handle()
        with h.lock:
            status = _lib.at_snapshots_take(ptr, h.ptr, step)
            if status != 0:
                _model._raise(status, h.ptr, who)

    def maybe_take(self, model=None):
        """take() when the model's step count is due; returns whether it did."""
        m = model if model is not None else self.model
        if not self.due(m.steps):
            return False
        self.take(m)
        return True

    def __len__(self):
        return _lib.at_snapshots_count(self._live("at_snapshots_count"))

    def set_meta(self, key, value):
        """A metadata entry of the file (not format, libat_version, every,
        stats or roles)."""
        who = "at_snapshots_set_meta"
        _model._check_global(_lib.at_snapshots_set_meta(self._live(who), str(key).encode(),
                                                        str(value).encode()), who)

    def save(self, path):
        """Every snapshot so far into path (safetensors, written atomically)."""
        who = "at_snapshots_save"
        _model._check_global(_lib.at_snapshots_save(self._live(who), str(path).encode()), who)

    def close(self):
        if self._ptr:
            _lib.at_snapshots_free(self._ptr)
            self._ptr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


class Snapshots:
    """A snapshot file in numpy: steps (n,) int64; src (B, S), tgt (B, T) or
    None; attn[kind][layer] (n, B, h, Lq, Lk) float32; stats[kind][layer]
    (n, h, 7) and roles[kind][layer] (n, h, 9) float64 (roles empty for a
    file of an older libat); metadata, a dict."""

    def __init__(self, steps, src, tgt, attn, stats, roles, metadata):
        self.steps, self.src, self.tgt = steps, src, tgt
        self.attn, self.stats, self.roles, self.metadata = attn, stats, roles, metadata

    @staticmethod
    def stat_index(name):
        return STATS.index(name)

    @staticmethod
    def role_index(name):
        return ROLES.index(name)


_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def _read(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise FormatError("%s: not a safetensors file" % path, "snapshots.load")
    (n,) = struct.unpack("<Q", raw[:8])
    try:
        header = json.loads(raw[8:8 + n])
    except ValueError as e:
        raise FormatError("%s: bad header: %s" % (path, e), "snapshots.load") from None
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        lo, hi = info["data_offsets"]
        dt = _DTYPES.get(info["dtype"])
        if dt is None:
            raise FormatError("%s: %s has dtype %s" % (path, name, info["dtype"]),
                              "snapshots.load")
        out[name] = np.frombuffer(raw[8 + n + lo:8 + n + hi], dtype=dt).reshape(info["shape"])
    return out, meta


def load(path):
    """A file of at_snapshots_save() / attn train --snapshot-every as a
    Snapshots object (copies, writable)."""
    t, meta = _read(path)
    if meta.get("format") != "attn-snapshots" or "steps" not in t:
        raise FormatError("%s is not a snapshot file (format %r)" % (path, meta.get("format")),
                          "snapshots.load")
    attn, stats, roles = {}, {}, {}
    for kind in KINDS:
        layer = 0
        while "attn.%s.%d" % (kind, layer) in t:
            attn.setdefault(kind, []).append(t["attn.%s.%d" % (kind, layer)].copy())
            stats.setdefault(kind, []).append(t["stats.%s.%d" % (kind, layer)].copy())
            if "roles.%s.%d" % (kind, layer) in t:
                roles.setdefault(kind, []).append(t["roles.%s.%d" % (kind, layer)].copy())
            layer += 1
    tgt = t["tgt"].astype(np.int32) if "tgt" in t else None
    return Snapshots(t["steps"].astype(np.int64), t["src"].astype(np.int32), tgt, attn, stats,
                     roles, dict(meta))


def best_roles(s, kind, layer):
    """The best role index of every head at every snapshot, (n, h) int (-1
    where no role applies): the first of equal scores, as attn heads."""
    r = s.roles[kind][layer]
    filled = np.where(np.isnan(r), -np.inf, r)
    best = np.argmax(filled, axis=2)
    best[np.all(np.isnan(r), axis=2)] = -1
    return best


def settled(s):
    """{kind: [[(role, since) per head] per layer]}: each head's role at the
    last snapshot and the first step from which it kept it (attn snapshots)."""
    res = {}
    for kind, layers in s.roles.items():
        res[kind] = []
        for layer in range(len(layers)):
            best = best_roles(s, kind, layer)
            heads = []
            for h in range(best.shape[1]):
                last, i = best[-1, h], best.shape[0] - 1
                while last >= 0 and i > 0 and best[i - 1, h] == last:
                    i -= 1
                heads.append((ROLES[last] if last >= 0 else None,
                              int(s.steps[i]) if last >= 0 else None))
            res[kind].append(heads)
    return res
