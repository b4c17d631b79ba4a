"""Models, views and charts over the C ABI."""

import collections
import collections.abc
import contextlib
import ctypes
import enum
import math
import operator
import os
import threading
import weakref

import numpy as np

from . import _capi, _dlpack
from .errors import (ArgumentError, CallbackError, NumericError, RangeError, ShapeError,
                     StaleViewError, StateError, error_for)

_lib, LIBRARY_PATH = _capi.load()
HAVE_CHARTS = bool(_lib.have_viz)
#: Whether the library has the interventions of libat 0.2 (taps, gates,
#: attention overrides, capture policy).
HAVE_INTERVENTIONS = bool(_lib.have_interventions)

# ---------------------------------------------------------------- enums


class Attn(enum.IntEnum):
    """The three kinds of attention (at_attn_kind)."""
    ENC_SELF = 0  #: encoder self-attention, (B, h, S, S)
    DEC_SELF = 1  #: masked decoder self-attention, (B, h, T, T)
    CROSS = 2     #: encoder-decoder attention, (B, h, T, S)


class Output(enum.IntEnum):
    """Other tensors of the last pass (at_output)."""
    SRC_EMBED = 0
    ENC_LAYER = 1
    MEMORY = 2
    TGT_EMBED = 3
    DEC_LAYER = 4
    DECODER = 5
    LOGPROBS = 6
    SRC_MASK = 7
    TGT_MASK = 8


class Site(enum.IntEnum):
    """The places of a pass where a tap sees, and may change, a tensor
    (at_site); the lower-case names are the library's (SITES)."""
    Q = 0           #: queries, (B, h, Lq, d_k)
    K = 1           #: keys, (B, h, Lk, d_k)
    V = 2           #: values, (B, h, Lk, d_k)
    SCORES = 3      #: q.k^T/sqrt(d_k), masked entries -1e9, (B, h, Lq, Lk)
    PROBS = 4       #: the probabilities, (B, h, Lq, Lk)
    HEAD_OUT = 5    #: each head's P.V before its gate, (B, h, Lq, d_k)
    ATTN_OUT = 6    #: the output projection of the heads, (B, Lq, d)
    FF_HIDDEN = 7   #: relu(x W_1^T + b_1) of a layer, (B, L, d_ff)
    LAYER_OUT = 8   #: a layer's output, (B, L, d)
    SRC_EMBED = 9   #: source embedding*sqrt(d) + PE, (B, S, d)
    TGT_EMBED = 10  #: target embedding*sqrt(d) + PE, (B, T, d)
    MEMORY = 11     #: the encoder's output after its final norm, (B, S, d)
    DECODER = 12    #: the decoder's output after its final norm, (B, T, d)
    LOGPROBS = 13   #: the generator's log-probabilities, (B, T, V_tgt)


#: Sites of the attention blocks (kind: enc_self, dec_self or cross), of the
#: layers (kind: the stack, enc_self or dec_self) and of the whole pass.
_ATTN_SITES = frozenset(range(0, 7))
_LAYER_SITES = frozenset((7, 8))

#: The calls a tap fires in (at_pass), by value.
PASSES = ("forward", "greedy", "beam", "train")

#: The statistics of attention_stats(), in at_stat order.
STAT_NAMES = ("entropy", "entropy_norm", "max", "dispersion", "topk", "distance", "rows")

#: Charts of include/at_viz.h (at_viz_chart), by name.
CHARTS = ("heatmap", "heads", "layers", "model", "stats", "masks", "explorer")
_CHART_FORMATS = {".svg": 0, ".json": 1, ".html": 2}
_FMT_NAMES = {"svg": 0, "vegalite": 1, "vega-lite": 1, "html": 2}
_VIZ_ROW, _VIZ_TOPK, _VIZ_CELL, _VIZ_TRIM = 1, 2, 3, 4

# Hyperparameters that are whole numbers (the others are returned as floats).
_INT_PARAMS = {"src_vocab", "tgt_vocab", "layers", "d_model", "heads", "d_ff",
               "max_len", "seed", "warmup", "packed"}


def _params():
    names = {}
    key = 1
    while True:
        name = _lib.at_param_name(key)
        if name is None:
            return names
        names[name.decode()] = key
        key += 1


#: Hyperparameter name (as at_param_name() spells it) -> at_param key.
PARAMS = _params()


# ---------------------------------------------------------------- arguments
# ctypes converts a Python int to a C integer by dropping the high bits
# (2**40 becomes 0) and int() drops a float's fraction: every integer that
# reaches the library is checked here first, against the C type it becomes.


def _c_range(ctype, name=None):
    """(lo, hi, name) of a ctypes integer type."""
    bits = 8 * ctypes.sizeof(ctype)
    if ctype(-1).value < 0:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1, name
    return 0, (1 << bits) - 1, name


_INT = _c_range(_capi.c_int, "int")
_INT32 = _c_range(_capi.c_int32, "int32_t")
_INT64 = _c_range(_capi.c_int64, "int64_t")
_SIZE = _c_range(_capi.c_size_t, "size_t")


def _int(value, what, bounds=_INT, error=ArgumentError, call=None, bool_ok=False):
    """``value`` as a Python int in ``bounds`` = (lo, hi[, the C type's
    name]). Integers (int,
    numpy integers, anything with __index__) and floats without a fraction
    are accepted; a bool only with ``bool_ok``. A value of another type
    raises ArgumentError, one outside the bounds ``error`` (ArgumentError or
    RangeError, as the C library would answer for that argument)."""
    if isinstance(value, (bool, np.bool_)):
        if not bool_ok:
            raise ArgumentError("%s must be an integer, not a bool (%r)" % (what, value), call)
        value = int(value)
    elif isinstance(value, (float, np.floating)):
        if not (math.isfinite(value) and float(value).is_integer()):
            raise ArgumentError("%s must be a whole number, not %r" % (what, value), call)
        value = int(value)
    else:
        try:
            value = operator.index(value)
        except TypeError:
            raise ArgumentError("%s must be an integer, not %s %r"
                                % (what, type(value).__name__, value), call) from None
    lo, hi = bounds[0], bounds[1]
    if not lo <= value <= hi:
        ctype = bounds[2] if len(bounds) > 2 else None
        raise error("%s = %d is outside [%d, %d]%s" % (
            what, value, lo, hi, " (a C %s)" % ctype if ctype else ""), call)
    return value


def _real(value, what, call=None):
    """``value`` as a float for a C double: a real number, not a bool or a
    string (float("1e3") would parse one)."""
    if isinstance(value, (bool, np.bool_, str, bytes, bytearray)):
        raise ArgumentError("%s must be a number, not %s %r" % (what, type(value).__name__,
                                                               value), call)
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError) as e:
        raise ArgumentError("%s must be a real number (%s)" % (what, e), call) from None


def _cstr(value, what, call=None):
    """A str (or path-like, for paths) as bytes for a C string: no NUL byte,
    which would end the string early (save("a\0b") would write "a")."""
    try:
        data = os.fsencode(value)
    except TypeError:
        raise ArgumentError("%s must be a string or a path, not %s"
                            % (what, type(value).__name__), call) from None
    if b"\0" in data:
        raise ArgumentError("%s %r contains a NUL byte" % (what, value), call)
    return data


def _text(value, what, call=None):
    """A str for a C string (labels, captions, font names), UTF-8."""
    if not isinstance(value, str):
        raise ArgumentError("%s must be a str, not %s" % (what, type(value).__name__), call)
    try:
        return _cstr(value.encode("utf-8"), what, call)
    except UnicodeEncodeError as e:
        raise ArgumentError("%s is not valid Unicode (%s)" % (what, e), call) from None


def _enum(cls, value, what):
    if isinstance(value, str):
        try:
            return cls[value.upper()]
        except KeyError:
            raise ArgumentError("unknown %s %r (one of %s)" % (
                what, value, ", ".join(m.name.lower() for m in cls))) from None
    v = _int(value, what)
    try:
        return cls(v)
    except ValueError:
        raise ArgumentError("unknown %s %d (one of %s)" % (
            what, v, ", ".join("%d %s" % (m.value, m.name.lower()) for m in cls))) from None


def _check_args(name, args):
    """The last guard: every integer argument of a call fits the C type its
    prototype declares (the public methods check each one first, by name)."""
    for i, (t, v) in enumerate(zip(getattr(_lib, name).argtypes, args)):
        if isinstance(v, int) and hasattr(t, "_type_") and t._type_ in "bBhHiIlLqQ":
            _int(v, "%s argument %d" % (name, i + 1), _c_range(t, t.__name__), call=name)


# ---------------------------------------------------------------- library-wide


def version():
    """The running library's version string, "MAJOR.MINOR.PATCH"."""
    return _lib.at_version_string().decode()


def version_number():
    """MAJOR*10000 + MINOR*100 + PATCH of the running library."""
    return _lib.at_version_number()


def _raise(status, handle, call):
    msg = _lib.at_errmsg(handle)
    raise error_for(status, msg.decode("utf-8", "replace") if msg else "", call)


def _check_global(status, call):
    """Raises for a failed call that reports through at_errmsg(NULL) (it is
    per thread, and read in the thread that made the call)."""
    if status != 0:
        _raise(status, None, call)


def _global(name, *args, call=None):
    """Calls at_<name>(*args), a function that reports through
    at_errmsg(NULL); raises on failure."""
    _check_args(name, args)
    _check_global(getattr(_lib, name)(*args), call or name)


def set_threads(n):
    """Threads of the library's loops and OpenBLAS, for the whole process
    (0: the number of cores)."""
    _global("at_set_threads", _int(n, "threads", call="at_set_threads"))


def get_threads():
    """Threads the library's own loops use."""
    return _lib.at_get_threads()


def blas_report():
    """(fallback, message): whether OpenBLAS runs kernels below what this CPU
    supports (Prescott's SSE3 kernels on an AVX-512 CPU, say), and a line
    naming its kernels, the CPU's and the OPENBLAS_CORETYPE that fixes a
    fallback (set it before the process starts)."""
    buf = ctypes.create_string_buffer(512)
    fallback = _lib.at_blas_report(buf, len(buf))
    return fallback == 1, buf.value.decode()


def kernel_name():
    """The kernels libat's matrix products run on: "avx512", "avx2",
    "generic" (chosen from what the CPU can run), or "openblas" when
    LIBAT_GEMM=openblas asks for OpenBLAS's sgemm (at_kernel_name)."""
    return _lib.at_kernel_name().decode()


def kernel_peak(seconds=0.5):
    """GFLOP/s of libat's kernel on every thread of its pool, on blocks held
    in cache, measured for about ``seconds`` (0 < seconds <= 60): the ceiling
    of every product (at_kernel_peak). None when the products are
    OpenBLAS's (LIBAT_GEMM=openblas) or a thread had no memory for its
    blocks."""
    who = "at_kernel_peak"
    s = _real(seconds, "seconds", who)
    if not 0.0 < s <= 60.0:
        raise ArgumentError("seconds must be in (0, 60], not %r" % (seconds,), who)
    got = _lib.at_kernel_peak(s)
    return got if got > 0 else None


def noam_rate(step, model_size, factor=1.0, warmup=400):
    """The reference's rate(step, model_size, factor, warmup)."""
    who = "at_noam_rate"
    return _lib.at_noam_rate(_int(step, "step", _INT64, call=who),
                             _int(model_size, "model_size", call=who),
                             _real(factor, "factor", who), _int(warmup, "warmup", _INT64, call=who))


def param_bounds(name):
    """(lo, hi): the values a hyperparameter accepts."""
    lo, hi = ctypes.c_double(), ctypes.c_double()
    _global("at_param_bounds", _param_key(name), ctypes.byref(lo), ctypes.byref(hi))
    return lo.value, hi.value


def _param_key(name):
    try:
        return PARAMS[name]
    except (KeyError, TypeError):
        raise ArgumentError("unknown hyperparameter %r (known: %s)"
                            % (name, ", ".join(PARAMS))) from None


def _param_arg(name, value, call):
    """A hyperparameter value as the C double: a number (a bool only for
    packed); a whole-number parameter given as an int is checked against its
    bounds here, where the int is still exact (seed = 2**53 + 1 would round
    to 2**53 as a double)."""
    what = "hyperparameter %s" % name
    if name == "packed" and isinstance(value, (bool, np.bool_)):
        return float(value)
    if name in _INT_PARAMS and not isinstance(value, (float, np.floating)):
        lo, hi = param_bounds(name)
        return float(_int(value, what, (int(lo), int(hi)), call=call))
    return _real(value, what, call)


def _param_value(name, v):
    return int(v) if name in _INT_PARAMS and float(v).is_integer() else v


def _config(params):
    """An at_config holding the defaults and ``params``; the caller frees it."""
    cfg = ctypes.c_void_p()
    _check_global(_lib.at_config_create(ctypes.byref(cfg)), "at_config_create")
    try:
        for name, value in params.items():
            _global("at_config_set", cfg, _param_key(name),
                    _param_arg(name, value, "at_config_set"), call="at_config_set(%s)" % name)
    except BaseException:
        _lib.at_config_free(cfg)
        raise
    return cfg


def config_defaults():
    """Every hyperparameter with its default (make_model's), as a dict."""
    cfg = _config({})
    try:
        out = {}
        v = ctypes.c_double()
        for name, key in PARAMS.items():
            _check_global(_lib.at_config_get(cfg, key, ctypes.byref(v)), "at_config_get")
            out[name] = _param_value(name, v.value)
        return out
    finally:
        _lib.at_config_free(cfg)


def _ids(a, what):
    """A C-contiguous int32 (batch, len) array of ids (a 1-D sequence is a
    batch of one)."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "iu" and arr.size:
        raise ArgumentError("%s: ids must be integers, not %s" % (what, arr.dtype))
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ArgumentError("%s: ids must be (batch, length), not %d-D" % (what, arr.ndim))
    if arr.size and (arr.min() < _INT32[0] or arr.max() > _INT32[1]):
        bad = arr.min() if arr.min() < _INT32[0] else arr.max()
        raise RangeError("%s: id %d is outside [%d, %d] (a C int32_t)"
                         % (what, bad, _INT32[0], _INT32[1]))
    for axis, n in zip(("batch", "length"), arr.shape):
        _int(n, "%s: %s" % (what, axis), error=RangeError)
    return np.ascontiguousarray(arr, dtype=np.int32)


def _ptr(arr):
    return arr.ctypes.data_as(ctypes.c_void_p)


#: The largest beam at_beam_decode() accepts (AT_BEAM_MAX).
AT_BEAM_MAX = 256


def _beam_options(beam, alpha, a, b, who):
    """An at_beam_options: at_beam_options_init()'s defaults, then the
    given values. init runs on a padded buffer (a newer library's struct may
    be larger than this module's), and struct_size then says this module's
    size: the library reads the fields it knows from here and takes its
    defaults for any it has added since."""
    buf = ctypes.create_string_buffer(ctypes.sizeof(_capi.CBeamOptions) + 256)
    _lib.at_beam_options_init(buf)
    opts = _capi.CBeamOptions.from_buffer_copy(buf.raw[:ctypes.sizeof(_capi.CBeamOptions)])
    opts.struct_size = ctypes.sizeof(_capi.CBeamOptions)
    # What the library refuses, refused here first: a refused call leaves
    # the last pass and its views alone.
    opts.beam_size = _int(beam, "beam", (1, AT_BEAM_MAX), call=who)
    opts.alpha = _real(alpha, "alpha", who)
    opts.max_len_a = _real(a, "max_len_a", who)
    opts.max_len_b = _real(b, "max_len_b", who)
    if not (math.isfinite(opts.alpha) and opts.alpha >= 0):
        raise ArgumentError("alpha = %r: the length penalty needs a finite alpha >= 0"
                            % opts.alpha, who)
    if not (math.isfinite(opts.max_len_a) and math.isfinite(opts.max_len_b)
            and opts.max_len_b >= 0):
        raise ArgumentError("max_len_a = %r, max_len_b = %r: the longest hypothesis a + b|x| "
                            "needs a finite a and a finite b >= 0"
                            % (opts.max_len_a, opts.max_len_b), who)
    return opts


# ---------------------------------------------------------------- handles


class _Handle:
    """Owns one at_model*, freed at close() (or when the Model goes, or a
    call running in another thread ends). Arrays and DLPack tensors do not
    keep it: they own a _Hold. ``lock`` serialises calls on the handle: the
    C library allows one thread at a time in a handle, so no two calls on
    one handle ever overlap (an RLock: Model.exclusive() holds it around
    several calls). ``hold`` refers weakly to the last hold taken."""

    __slots__ = ("ptr", "lock", "hold", "taps", "tap_errors", "in_tap", "_finalizer",
                 "__weakref__")

    def __init__(self, ptr):
        self.ptr = ptr
        self.lock = threading.RLock()
        self.hold = None
        # The taps registered in C, in order (each keeps its ctypes callback
        # alive while registered); what a tap raised during the running call;
        # the threads running a tap now (they must not call into the handle).
        self.taps = []
        self.tap_errors = []
        self.in_tap = set()
        self._finalizer = weakref.finalize(self, _lib.at_model_free, ptr)
        self._finalizer.atexit = False


class _Hold:
    """One at_view_hold(): the memory behind a model's views at one
    generation (activation block, weights, gradients) stays allocated --
    past a larger batch, which moves the activations, and past close() --
    until the last array or DLPack tensor that refers to this object goes.
    Every array exported at one generation shares one hold."""

    __slots__ = ("generation", "_finalizer", "__weakref__")

    def __init__(self, ptr, generation):
        self.generation = generation
        self._finalizer = weakref.finalize(self, _lib.at_hold_release, ptr)
        self._finalizer.atexit = False


def _no_tap(h, call):
    """Raises StateError in a thread that is running a tap of ``h``: a tap
    runs inside a call on the handle and must not call into it."""
    if h.in_tap and threading.get_ident() in h.in_tap:
        raise StateError("a tap must not use its own model (it runs inside a call on it): "
                         "keep what you need (copies) and use the model after the call", call)


def _hold(h):
    """The hold on what h's views point into now: the one taken at this
    generation while any array still refers to it, else a new one. Called
    with h.lock held (the memory cannot move in between)."""
    gen = _lib.at_model_generation(h.ptr)
    held = h.hold() if h.hold is not None else None
    if held is not None and held.generation == gen:
        return held
    out = ctypes.c_void_p()
    status = _lib.at_view_hold(h.ptr, ctypes.byref(out))
    if status != 0:
        _raise(status, h.ptr, "at_view_hold")
    held = _Hold(out.value, gen)
    h.hold = weakref.ref(held)
    return held


# ---------------------------------------------------------------- views


class View:
    """A read-only window on float32 memory that the library owns: no copy.

    Every use checks first that the memory still holds what the view was
    made for, and raises StaleViewError otherwise. An activation view
    (attention, outputs, gradients) ends at the next call that recomputes
    the model's activations -- forward, train_step, eval_loss, nll,
    gate_gradients, greedy_decode, beam_decode, write_tensor -- exactly when
    at_view.generation stops equalling at_model_generation(); any view ends
    when its model is closed.
    A parameter view (Model.tensor) lives as long as the model and shows the
    current values (a training step changes them in place).

    - ``view.array`` (and ``np.asarray(view)``) is the zero-copy numpy array:
      same address, shape, strides in bytes, read-only. It is checked when
      you take it; numpy cannot check later element accesses, so an array
      kept past the next pass reads whatever the library wrote there since
      (never freed memory: the array owns an at_view_hold() on it, also past
      a larger batch and close()). Take it again after each pass, or keep
      ``view.copy()``.
    - ``view[i, j]`` returns a copy (safe to keep), checked first.
    - ``np.from_dlpack(view)`` shares the memory too, checked at export.

    The check and the copy (or the export) run under the model's lock: a
    pass in another thread cannot slip in between.
    """

    __slots__ = ("_model", "_cv", "_tracks", "_what", "shape", "strides", "generation")

    def __init__(self, model, cv, tracks, what):
        self._model = model
        self._cv = cv
        self._tracks = tracks
        self._what = what
        nd = cv.ndim
        #: extents, as numpy's shape
        self.shape = tuple(int(cv.shape[i]) for i in range(nd))
        #: distances between neighbours in bytes, as numpy's strides
        self.strides = tuple(4 * int(cv.stride[i]) for i in range(nd))
        #: the model's generation when the view was made
        self.generation = int(cv.generation)

    dtype = np.dtype(np.float32)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def address(self):
        """The address of the first element (at_view.data)."""
        return self._cv.data or 0

    @property
    def element_strides(self):
        """Strides in elements, as at_view.stride counts them."""
        return tuple(s // 4 for s in self.strides)

    def __len__(self):
        return self.shape[0]

    def _stale_reason(self):
        h = self._model._h
        if h is None:
            return "its model was closed"
        _no_tap(h, "View")
        if self._tracks:
            with h.lock:
                gen = _lib.at_model_generation(h.ptr)
            if gen != self.generation:
                return ("the model ran another pass since (generation %d, the view's %d)"
                        % (gen, self.generation))
        return None

    @property
    def is_current(self):
        """True while the memory still holds what this view was made for."""
        return self._stale_reason() is None

    def check(self):
        """Raises StaleViewError unless the view is current; returns the
        model's handle."""
        why = self._stale_reason()
        if why is not None:
            raise StaleViewError("%s is stale: %s; take it again after each pass, or "
                                 "keep a copy()" % (self._what, why))
        return self._model._h

    @contextlib.contextmanager
    def _checked(self):
        """The model's handle, checked current, with its lock held for the
        block: no pass (of any thread) runs until the block ends."""
        h = self._model._h
        if h is None:
            self.check()  # raises: closed
        _no_tap(h, "View")
        with h.lock:
            yield self.check()

    def _array(self, owner):
        """The ndarray over the memory; ``owner`` is kept alive by it (None:
        only for a temporary used under the lock)."""
        shape = self.shape
        if self.size == 0 or not self._cv.data:
            arr = np.zeros(shape, np.float32)
            arr.flags.writeable = False
            return arr
        span = 1 + sum((n - 1) * s for n, s in zip(shape, self.element_strides))
        buf = (ctypes.c_float * span).from_address(self._cv.data)
        buf._libat_owner = owner  # the library's memory lives while the array does
        arr = np.ndarray(shape, np.float32, buffer=buf, strides=self.strides)
        arr.flags.writeable = False
        return arr

    @property
    def array(self):
        """The zero-copy, read-only numpy array (checked now, not later)."""
        with self._checked() as h:
            return self._array(_hold(h))

    def __array__(self, dtype=None, copy=None):
        if copy or (dtype is not None and np.dtype(dtype) != self.dtype):
            with self._checked():
                tmp = self._array(None)
                return tmp.astype(self.dtype if dtype is None else dtype)  # a copy
        return self.array

    def copy(self):
        """A writable numpy copy that stays valid after the view ends."""
        with self._checked():
            return self._array(None).copy()

    def __getitem__(self, index):
        with self._checked():
            part = self._array(None)[index]
            return part.copy() if isinstance(part, np.ndarray) else part  # a scalar is a copy

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __dlpack__(self, stream=None):
        """A DLPack capsule sharing the memory (numpy.from_dlpack,
        torch.from_dlpack). Checked now; the consumer's array keeps the
        memory alive (the tensor owns a hold, released by its deleter) but
        cannot notice a later pass (as ``array``)."""
        if stream is not None:
            raise BufferError("libat views live on the CPU: no stream")
        with self._checked() as h:
            return _dlpack.export(self.address, self.shape, self.element_strides, _hold(h))

    def __dlpack_device__(self):
        return (_dlpack.KDL_CPU, 0)

    def __repr__(self):
        why = self._stale_reason()
        return "<libat.View %s shape=%s%s>" % (self._what, self.shape,
                                                "" if why is None else " stale: " + why)


# ---------------------------------------------------------------- metadata


def _meta_key(key):
    if not isinstance(key, str):
        raise ArgumentError("a metadata key must be a str, not %s" % type(key).__name__,
                            "at_model_set_meta")
    return _cstr(key.encode("utf-8", "surrogatepass"), "metadata key", "at_model_set_meta")


class Metadata(collections.abc.MutableMapping):
    """The text a model carries beside its weights (at_model_set_meta):
    saved in the checkpoint's ``__metadata__`` by save() and read back by
    Model.load(). A live, dict-like window on the model: keys and values are
    str, keys keep the order in which they were first set, ``del`` removes
    one. libat's own keys ("format", "libat_version", "step" and every
    hyperparameter name) are reserved: setting one raises ArgumentError;
    they are not listed. Handles that share the weights (share()) share the
    metadata; while they do, setting or removing raises StateError."""

    __slots__ = ("_model",)

    def __init__(self, model):
        self._model = model

    def __getitem__(self, key):
        if not isinstance(key, str):
            raise KeyError(key)
        try:
            ckey = _cstr(key.encode("utf-8", "surrogatepass"), "metadata key")
        except ArgumentError:
            raise KeyError(key) from None
        # The value is lent until the key is set again: copied under the lock.
        h = self._model._handle()
        with h.lock:
            value = ctypes.c_char_p()
            self._model._call("at_model_get_meta", ckey, ctypes.byref(value))
            data = value.value
        if data is None:
            raise KeyError(key)
        return data.decode("utf-8")

    def __setitem__(self, key, value):
        ckey = _meta_key(key)
        if not isinstance(value, str):
            raise ArgumentError("metadata value for %r must be a str, not %s (None removes: "
                                "use del)" % (key, type(value).__name__), "at_model_set_meta")
        # Lone surrogates go through as bytes: the library refuses them
        # (FormatError), as any text that is not UTF-8.
        cval = _cstr(value.encode("utf-8", "surrogatepass"), "metadata value",
                     "at_model_set_meta")
        self._model._call("at_model_set_meta", ckey, cval)

    def __delitem__(self, key):
        if key not in self:
            raise KeyError(key)
        self._model._call("at_model_set_meta", _meta_key(key), None)

    def _keys(self):
        h = self._model._handle()
        with h.lock:
            out = []
            for i in range(_lib.at_model_meta_count(h.ptr)):
                k = _lib.at_model_meta_key(h.ptr, i)
                if k is not None:
                    out.append(k.decode("utf-8"))
            return out

    def __iter__(self):
        return iter(self._keys())

    def __len__(self):
        h = self._model._handle()
        with h.lock:
            return _lib.at_model_meta_count(h.ptr)

    def __contains__(self, key):
        try:
            self[key]
        except KeyError:
            return False
        return True

    def __repr__(self):
        short = {k: (v if len(v) <= 40 else v[:37] + "...") for k, v in self.items()}
        return "<libat.Metadata %r>" % (short,)


#: What Model.beam_decode() returns: ``ids`` (B, n) int32, each row's best
#: hypothesis, the start id first and padding after its end; ``lengths``
#: (B,) its ids, the start included; ``scores`` (B,) float64, log P / lp.
BeamResult = collections.namedtuple("BeamResult", "ids lengths scores")

# ---------------------------------------------------------------- taps

#: What a tap is handed besides the array (at_tap_event): ``site`` its name
#: ("q", ..., "logprobs": SITES); ``kind`` the attention block's kind
#: ("enc_self", "dec_self", "cross"), for layer sites the stack's
#: ("enc_self" or "dec_self"), None for the sites of the whole pass
#: (src_embed, tgt_embed, memory, decoder, logprobs); ``layer`` (0 for those);
#: ``pass_`` the call ("forward" -- also eval_loss, nll, gate_gradients --,
#: "greedy", "beam", "train"); ``step`` the decoding step or -1;
#: ``pos_begin``, ``pos_end`` the positions the tensor covers (the keys' for
#: k and v); ``batch`` its rows; ``row_begin`` the decoder row (beam slot,
#: source * K + hypothesis) of its first row, 0 outside beam search.
TapEvent = collections.namedtuple(
    "TapEvent", "site kind layer pass_ step pos_begin pos_end batch row_begin")

_AT_E_CALLBACK = 9


def _need_interventions(call):
    if not HAVE_INTERVENTIONS:
        raise StateError("this libat (%s, %s) has no interventions (taps, gates, overrides, "
                         "capture: libat 0.2)" % (version(), LIBRARY_PATH), call)


def _site_names():
    if not HAVE_INTERVENTIONS:
        return tuple(m.name.lower() for m in Site)
    names = []
    while len(names) < 256:
        name = _lib.at_site_name(len(names))
        if name is None:
            break
        names.append(name.decode())
    return tuple(names)


#: The site names, in at_site order (at_site_name()).
SITES = _site_names()


def site_name(site):
    """The library's short name of a site (an int or Site)."""
    _need_interventions("at_site_name")
    v = _int(site, "site", call="at_site_name")
    name = _lib.at_site_name(v) if _INT[0] <= v <= _INT[1] else None
    if name is None:
        raise ArgumentError("unknown site %d (0 .. %d)" % (v, len(SITES) - 1), "at_site_name")
    return name.decode()


def _site(site):
    """A site given by name (the library's, at_site_from_name()), Site or int."""
    who = "at_site_from_name"
    if isinstance(site, str):
        _need_interventions(who)
        out = ctypes.c_int()
        status = _lib.at_site_from_name(_text(site, "site", who), ctypes.byref(out))
        if status != 0:
            raise ArgumentError("unknown site %r (one of %s)" % (site, ", ".join(SITES)), who)
        return out.value
    v = _int(site, "site", call="at_tap_add")
    if not 0 <= v < len(SITES):
        raise ArgumentError("unknown site %d (0 .. %d: %s)" % (v, len(SITES) - 1,
                                                              ", ".join(SITES)), "at_tap_add")
    return v


_ALL = -1  # AT_ALL


def _which_kind(kind, call, all_ok=True):
    """An attention kind by name, Attn or int; None is every kind (AT_ALL)
    where ``all_ok``."""
    if kind is None:
        if not all_ok:
            raise ArgumentError("%s needs one attention kind (enc_self, dec_self, cross), "
                                "not None" % call, call)
        return _ALL
    if isinstance(kind, str) or isinstance(kind, Attn):
        return int(_enum(Attn, kind, "attention kind"))
    v = _int(kind, "attention kind", call=call)
    if v < 0:
        raise ArgumentError("attention kind %d: kinds are 0 enc_self, 1 dec_self, 2 cross%s"
                            % (v, "; None means every kind" if all_ok else ""), call)
    return int(_enum(Attn, v, "attention kind"))


def _which(value, what, call, all_ok=True):
    """A layer or head (counting from 0); None is every one (AT_ALL) where
    ``all_ok``. Negative numbers are refused, not counted from the end."""
    if value is None:
        if not all_ok:
            raise ArgumentError("%s needs one %s, not None" % (call, what), call)
        return _ALL
    v = _int(value, what, call=call)
    if v < 0:
        raise ArgumentError("%s %d: %ss count from 0 (no counting from the end)%s"
                            % (what, v, what, "; None means every one" if all_ok else ""),
                            call)
    return v


def _tap_array(ev):
    """The writable ndarray over a tap's tensor: the library's memory, no
    copy, no hold (valid during the callback only)."""
    cv = ev.view
    nd = cv.ndim
    shape = tuple(int(cv.shape[i]) for i in range(nd))
    strides = tuple(int(cv.stride[i]) for i in range(nd))
    ptr = ev.data or cv.data
    if not ptr or any(n == 0 for n in shape):
        return np.zeros(shape, np.float32)
    span = 1 + sum((n - 1) * st for n, st in zip(shape, strides))
    buf = (ctypes.c_float * span).from_address(ptr)
    return np.ndarray(shape, np.float32, buffer=buf, strides=tuple(4 * st for st in strides))


def _tap_event(ev):
    site = SITES[ev.site] if 0 <= ev.site < len(SITES) else ev.site
    if ev.site in _ATTN_SITES or ev.site in _LAYER_SITES:
        try:
            kind = Attn(ev.kind).name.lower()
        except ValueError:
            kind = ev.kind
    else:
        kind = None
    pass_ = PASSES[ev.pass_] if 0 <= ev.pass_ < len(PASSES) else ev.pass_
    return TapEvent(site, kind, ev.layer, pass_, ev.step, ev.pos_begin, ev.pos_end, ev.batch,
                    ev.row_begin)


def _trampoline(fn, errors, inside):
    """The C callback of a tap: fn(event, array) under the GIL; what fn
    raises goes to ``errors`` (the handle's) and stops the pass. Closes over
    the handle's lists, not the handle (no cycle)."""
    def call(_user, evp):
        me = threading.get_ident()
        inside.add(me)
        arr = None
        try:
            ev = evp.contents
            arr = _tap_array(ev)
            fn(_tap_event(ev), arr)
            return 0
        except BaseException as e:  # noqa: B902 -- nothing may escape into C
            errors.append(e)
            return _AT_E_CALLBACK
        finally:
            inside.discard(me)
            if arr is not None:
                arr.flags.writeable = False   # the memory is the library's again
    return _capi.TAP_FN(call)


class Tap:
    """A tap registered on a model (Model.add_tap): ``site``, ``kind``,
    ``layer`` as given (None: every one), ``fn``. ``remove()`` takes it off
    (the other taps stay, in their order); ``active`` says whether it is on."""

    __slots__ = ("site", "kind", "layer", "fn", "_args", "_cfunc", "_model", "__weakref__")

    def __init__(self, model, site, kind, layer, fn, args, cfunc):
        self._model = weakref.ref(model)
        self.site, self.kind, self.layer, self.fn = site, kind, layer, fn
        self._args = args      # (site, kind, layer) as C ints
        self._cfunc = cfunc    # the ctypes callback: alive while registered

    @property
    def active(self):
        m = self._model()
        return m is not None and m._h is not None and self in m._h.taps

    def remove(self):
        """Take this tap off its model (nothing if it is not on)."""
        m = self._model()
        if m is not None and m._h is not None:
            m.remove_tap(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()

    def __repr__(self):
        return "<libat.Tap %s kind=%s layer=%s %s%s>" % (
            self.site, self.kind, self.layer, getattr(self.fn, "__name__", repr(self.fn)),
            "" if self.active else " removed")


# ---------------------------------------------------------------- the model


def _index_of(model, which, call):
    if isinstance(which, str):
        names = model.tensor_names()
        try:
            return names.index(which)
        except ValueError:
            raise ArgumentError("no tensor named %r" % which, call) from None
    return _int(which, "tensor index", call=call)


# What a call does to the results of the last pass: a pass replaces them
# (its thread's generation is recorded), a read needs the calling thread's
# own last pass to be the model's last pass.
_PASS, _READ = 1, 2


class Model:
    """A model: parameters, activations, attention (at_model).

    ``Model(**params)`` creates one as make_model does; keys are the
    hyperparameter names of PARAMS (src_vocab, tgt_vocab, layers, d_model,
    heads, d_ff, dropout, max_len, seed, attn_dropout, lr, warmup, factor,
    smoothing, beta1, beta2, adam_eps, packed). ``Model.load(path, **hint)``
    reads a checkpoint.

    Threads: calls on one model are serialised by a lock (they never
    overlap). A thread that reads results (attention, output, grad,
    attention_stats, attention_js, chart) after another thread's pass
    replaced its own gets StaleViewError, never the other thread's numbers;
    ``with m.exclusive():`` makes a pass and its reads one atomic block;
    share() gives handles that run in parallel.
    """

    def __init__(self, **params):
        cfg = _config(params)
        try:
            out = ctypes.c_void_p()
            _check_global(_lib.at_model_create(cfg, ctypes.byref(out)), "at_model_create")
        finally:
            _lib.at_config_free(cfg)
        self._h = _Handle(out.value)
        self._mine = threading.local()

    @classmethod
    def _wrap(cls, ptr):
        m = cls.__new__(cls)
        m._h = _Handle(ptr)
        m._mine = threading.local()
        return m

    @classmethod
    def load(cls, path, **hint):
        """Load a safetensors checkpoint (libat's, or a PyTorch state_dict's:
        pass heads=H for those)."""
        path = _cstr(path, "path", "at_model_load")
        cfg = _config(hint) if hint else None
        try:
            out = ctypes.c_void_p()
            _check_global(_lib.at_model_load(path, cfg, ctypes.byref(out)), "at_model_load")
        finally:
            if cfg:
                _lib.at_config_free(cfg)
        return cls._wrap(out.value)

    @classmethod
    def from_bytes(cls, data, **hint):
        """Load a checkpoint from the bytes of a safetensors file (any
        bytes-like object)."""
        try:
            data = bytes(memoryview(data))   # not bytes(n): n zero bytes
        except TypeError:
            raise ArgumentError("data must be bytes-like, not %s" % type(data).__name__,
                                "at_model_load_buffer") from None
        cfg = _config(hint) if hint else None
        try:
            out = ctypes.c_void_p()
            _global("at_model_load_buffer", data, len(data), cfg, ctypes.byref(out))
        finally:
            if cfg:
                _lib.at_config_free(cfg)
        return cls._wrap(out.value)

    # -- lifetime

    def _handle(self):
        h = self._h
        if h is None:
            raise StateError("the model is closed", "libat.Model")
        _no_tap(h, "libat.Model")
        return h

    def _own_pass(self, h, call):
        """Raises StaleViewError when the calling thread ran a pass on this
        model and another thread's pass has replaced it since (the results
        there now are not the caller's). A thread that has run no pass reads
        the model's last pass. Called with the lock held."""
        mine = getattr(self._mine, "generation", None)
        if mine is None:
            return
        gen = _lib.at_model_generation(h.ptr)
        if gen != mine:
            raise StaleViewError(
                "another thread ran a pass on this model after this thread's last pass "
                "(generation %d, this thread's %d): the results of this thread's pass are "
                "gone; run a pass and its reads inside `with model.exclusive():`, or give "
                "each thread its own model.share()" % (gen, mine), call)

    def _call(self, name, *args, role=None):
        """Calls at_<name>(model, *args) under the handle's lock; raises with
        at_errmsg(model) on failure. role _PASS records the pass as the
        calling thread's (failed or not: either way the previous results are
        gone); role _READ first checks that they are the caller's."""
        _check_args(name, (None,) + args)
        h = self._handle()
        with h.lock:
            if role == _READ:
                self._own_pass(h, name)
            del h.tap_errors[:]
            try:
                status = getattr(_lib, name)(h.ptr, *args)
            finally:
                if role == _PASS:
                    self._mine.generation = _lib.at_model_generation(h.ptr)
            if h.tap_errors:
                self._tap_failed(h, status, name)
            if status != 0:
                _raise(status, h.ptr, name)

    @staticmethod
    def _tap_failed(h, status, name):
        """A tap raised during the call: the call's error (AT_E_CALLBACK)
        raised from the tap's exception (KeyboardInterrupt, SystemExit and
        the like are raised as they are)."""
        exc = h.tap_errors[0]
        del h.tap_errors[:]
        if not isinstance(exc, Exception):
            raise exc
        msg = _lib.at_errmsg(h.ptr)
        msg = msg.decode("utf-8", "replace") if msg else ""
        if status == 0:
            err = CallbackError("a tap raised %s, but the call returned AT_OK"
                                % type(exc).__name__, name)
        else:
            err = error_for(status, msg, name)
        if not err.message or status == _AT_E_CALLBACK:
            err.message = "%s%sa tap raised %s: %s" % (err.message, "; " if err.message else "",
                                                     type(exc).__name__, exc)
        raise err from exc

    def close(self):
        """Free the model now; its views become stale. Memory borrowed by raw
        arrays or DLPack tensors is freed when the last of them goes (they
        own holds on it)."""
        self._h = None

    @property
    def closed(self):
        return self._h is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @contextlib.contextmanager
    def exclusive(self):
        """``with m.exclusive():`` -- the calling thread alone uses the model
        for the block: other threads' calls on it wait until the block ends.
        A pass and the reads after it (views, copies, statistics, charts)
        inside one block see that pass, whatever other threads do."""
        with self._handle().lock:
            yield self

    def share(self):
        """A new Model on the same weights, not copied: its own activations,
        views and settings (at_model_share). Shared handles may run in
        different threads at once; while weights are shared, train_step and
        write_tensor raise StateError on every handle."""
        out = ctypes.c_void_p()
        self._call("at_model_share", ctypes.byref(out))
        return Model._wrap(out.value)

    # -- settings

    @property
    def generation(self):
        """Grows by one with every pass; ends the views made before."""
        h = self._handle()
        with h.lock:
            return _lib.at_model_generation(h.ptr)

    def get(self, name):
        """One hyperparameter's value."""
        v = ctypes.c_double()
        self._call("at_model_get", _param_key(name), ctypes.byref(v))
        return _param_value(name, v.value)

    @property
    def config(self):
        """Every hyperparameter, as a dict."""
        return {name: self.get(name) for name in PARAMS}

    def set(self, **params):
        """Change hyperparameters that keep the shapes (dropout, attn_dropout,
        seed, lr, warmup, factor, smoothing, beta1, beta2, adam_eps)."""
        for name, value in params.items():
            self._call("at_model_set", _param_key(name), _param_arg(name, value, "at_model_set"))

    # -- checkpoints

    def save(self, path):
        """Save the weights as safetensors (PyTorch's load_state_dict takes it)."""
        self._call("at_model_save", _cstr(path, "path", "at_model_save"))

    def save_training(self, path):
        """Save weights, Adam moments and step count (resumes bit for bit)."""
        self._call("at_model_save_training", _cstr(path, "path", "at_model_save_training"))

    # -- running

    def forward(self, src, tgt=None, pad=0):
        """The forward pass in evaluation mode: src (B, S) ids, tgt (B, T)
        decoder input ids or None (encoder only). Views of the previous pass
        end; take new ones with attention() and output()."""
        pad = _int(pad, "pad", _INT32, RangeError, "at_forward")
        s = _ids(src, "src")
        if tgt is None:
            self._call("at_forward", _ptr(s), None, s.shape[0], s.shape[1], 0, pad, role=_PASS)
            return
        t = _ids(tgt, "tgt")
        if t.shape[0] != s.shape[0]:
            raise ArgumentError("src has %d rows, tgt %d" % (s.shape[0], t.shape[0]))
        self._call("at_forward", _ptr(s), _ptr(t), s.shape[0], s.shape[1], t.shape[1], pad,
                   role=_PASS)

    def greedy_decode(self, src, max_len, start=1, pad=0, end=-1):
        """Greedy decoding with a key/value cache; returns the ids as an int32
        array (B, n), n <= max_len columns, the start id first. The views then
        show the decoded sequence."""
        who = "at_greedy_decode"
        max_len = _int(max_len, "max_len", _INT, RangeError, who)
        start = _int(start, "start", _INT32, RangeError, who)
        pad = _int(pad, "pad", _INT32, RangeError, who)
        end = _int(end, "end", _INT32, RangeError, who)
        s = _ids(src, "src")
        # The output buffer is (B, max_len): refuse before allocating it what
        # the library refuses (the same statuses).
        if max_len < 1:
            raise ArgumentError("max_len %d must be >= 1" % max_len, who)
        table = self.get("max_len")
        if max_len - 1 > table:
            raise RangeError("max_len %d; the model's positional table has %d positions"
                             % (max_len, table), who)
        out = np.zeros((s.shape[0], max_len), np.int32)
        n = ctypes.c_int()
        self._call(who, _ptr(s), s.shape[0], s.shape[1], pad, max_len, start, end, _ptr(out),
                   ctypes.byref(n), role=_PASS)
        return out[:, :n.value].copy()

    def beam_decode(self, src, beam=4, alpha=0.6, max_len_a=10, max_len_b=2, start=1, end=-1,
                    pad=0):
        """Beam search with a key/value cache (at_beam_decode): each row's
        best hypothesis under GNMT's length penalty ((5 + |Y|)/6)^alpha.
        A row may grow to floor(max_len_a + max_len_b * |x|) ids, the start
        included (|x|: its source ids that are not ``pad``), at most the
        model's max_len + 1. ``end`` -1: every hypothesis runs to its row's
        longest length. Returns a BeamResult (ids, lengths, scores); ids
        after a row's end are ``pad`` (-1 when pad is no target id). The
        views then show each row's best hypothesis, as a teacher-forced
        forward() over ids[b, :lengths[b] - 1] with the same source mask and
        no target padding would (a hypothesis may hold the pad id: it is not
        masked); positions after it are zero. With beam=1, alpha=0 and end=-1 the ids are greedy_decode's."""
        who = "at_beam_decode"
        opts = _beam_options(beam, alpha, max_len_a, max_len_b, who)
        start = _int(start, "start", _INT32, RangeError, who)
        pad = _int(pad, "pad", _INT32, RangeError, who)
        end = _int(end, "end", _INT32, RangeError, who)
        s = _ids(src, "src")
        cols = int(self.get("max_len")) + 1   # no row is longer
        out = np.full((s.shape[0], cols), -1, np.int32)
        lengths = np.zeros(s.shape[0], np.intc)
        scores = np.zeros(s.shape[0], np.float64)
        self._call(who, _ptr(s), s.shape[0], s.shape[1], pad, start, end, ctypes.byref(opts),
                   _ptr(out), cols, _ptr(lengths), _ptr(scores), role=_PASS)
        n = int(lengths.max()) if lengths.size else 0
        return BeamResult(out[:, :n].copy(), lengths.astype(np.int64), scores)

    @property
    def metadata(self):
        """The model's metadata: a live dict-like Metadata (str -> str),
        saved with the weights and loaded with them."""
        self._handle()
        return Metadata(self)

    def _loss(self, name, src, tgt, pad):
        pad = _int(pad, "pad", _INT32, RangeError, name)
        s, t = _ids(src, "src"), _ids(tgt, "tgt")
        if t.shape[0] != s.shape[0]:
            raise ArgumentError("src has %d rows, tgt %d" % (s.shape[0], t.shape[0]))
        loss, ntok = ctypes.c_float(), ctypes.c_int64()
        self._call(name, _ptr(s), _ptr(t), s.shape[0], s.shape[1], t.shape[1], pad,
                   ctypes.byref(loss), ctypes.byref(ntok), role=_PASS)
        return float(loss.value), int(ntok.value)

    def train_step(self, src, tgt, pad=0):
        """One training step (forward, label-smoothed loss, backward, Adam
        with the Noam rate). tgt is the full target Y (B, T+1): the decoder
        reads Y[:, :-1] and learns Y[:, 1:]. Returns (loss, ntokens)."""
        return self._loss("at_train_step", src, tgt, pad)

    def eval_loss(self, src, tgt, pad=0):
        """The loss of a batch without dropout or update: (loss, ntokens)."""
        return self._loss("at_eval_loss", src, tgt, pad)

    @property
    def steps(self):
        """Optimizer steps taken."""
        h = self._handle()
        with h.lock:
            return _lib.at_model_steps(h.ptr)

    @property
    def learning_rate(self):
        """The learning rate the next train_step applies."""
        h = self._handle()
        with h.lock:
            return _lib.at_model_learning_rate(h.ptr)

    # -- views

    def attention(self, kind, layer):
        """The attention probabilities of one layer, every head: a View of
        shape (batch, head, query, key). kind: Attn or "enc_self",
        "dec_self", "cross"."""
        kind = _enum(Attn, kind, "attention kind")
        layer = _int(layer, "layer", call="at_get_attention")
        cv = _capi.CView()
        self._call("at_get_attention", int(kind), layer, ctypes.byref(cv), role=_READ)
        return View(self, cv, True, "attention %s layer %d" % (kind.name.lower(), layer))

    def attentions(self, kind):
        """attention(kind, layer) for every layer (of one pass)."""
        with self.exclusive():
            return [self.attention(kind, i) for i in range(self.get("layers"))]

    def output(self, which, layer=0):
        """Another tensor of the last pass as a View: Output or "logprobs",
        "memory", "decoder", "src_mask", "tgt_mask", "src_embed",
        "tgt_embed", "enc_layer", "dec_layer" (these two take a layer)."""
        which = _enum(Output, which, "output")
        layer = _int(layer, "layer", call="at_get_output")
        cv = _capi.CView()
        self._call("at_get_output", int(which), layer, ctypes.byref(cv), role=_READ)
        return View(self, cv, True, "output %s" % which.name.lower())

    def tensor_names(self):
        """The state_dict names, in the reference's order."""
        h = self._handle()
        names = []
        with h.lock:
            for i in range(_lib.at_model_tensor_count(h.ptr)):
                name = ctypes.c_char_p()
                status = _lib.at_model_tensor(h.ptr, i, ctypes.byref(name), None)
                if status != 0:
                    _raise(status, h.ptr, "at_model_tensor")
                names.append(name.value.decode())
        return names

    def tensor(self, which):
        """A parameter or buffer of the state_dict (by name or index) as a
        View; it lives as long as the model and shows current values."""
        i = _index_of(self, which, "at_model_tensor")
        cv, name = _capi.CView(), ctypes.c_char_p()
        self._call("at_model_tensor", i, ctypes.byref(name), ctypes.byref(cv))
        return View(self, cv, False, "tensor %s" % name.value.decode())

    def trainable(self, which):
        """Whether a state_dict tensor is a trained parameter (not a pe buffer)."""
        i = _index_of(self, which, "at_model_tensor_trainable")
        h = self._handle()
        with h.lock:
            r = _lib.at_model_tensor_trainable(h.ptr, i)
        if r < 0:
            raise ArgumentError("no tensor %r" % (which,))
        return bool(r)

    def write_tensor(self, which, values):
        """Overwrite a state_dict tensor with values of its shape (row-major
        order); the views of activations end."""
        i = _index_of(self, which, "at_model_tensor_write")
        try:
            v = np.ascontiguousarray(values, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise ArgumentError("values must be numbers (%s)" % e,
                                "at_model_tensor_write") from None
        self._call("at_model_tensor_write", i, _ptr(v), v.size, role=_PASS)

    def grad(self, which):
        """The last training step's gradient of a parameter, as a View (it
        ends with the next pass, as activation views do)."""
        i = _index_of(self, which, "at_model_grad")
        cv = _capi.CView()
        self._call("at_model_grad", i, ctypes.byref(cv), role=_READ)
        return View(self, cv, True, "grad %d" % i)

    # -- interventions: taps

    def add_tap(self, site, fn, kind=None, layer=None):
        """Call ``fn(event, array)`` with each tensor of ``site`` as later
        passes produce it (at_tap_add). ``site``: a name of SITES ("q", "k",
        "v", "scores", "probs", "head_out", "attn_out", "ff_hidden",
        "layer_out", "src_embed", "tgt_embed", "memory", "decoder",
        "logprobs"), a Site or an int. ``kind``: the attention kind (the
        stack, enc_self or dec_self, for ff_hidden and layer_out; ignored
        for the sites of the whole pass), ``layer``; None means every one.

        ``event`` is a TapEvent; ``array`` a WRITABLE float32 ndarray on the
        library's memory (the view's shape and strides, no copy): what fn
        leaves in it is what the rest of the pass uses. It is valid during
        the call only (it is made read-only when fn returns, and holds
        nothing: keep ``array.copy()``). fn must not use the model. If fn
        raises, the pass stops and its call raises CallbackError (or the
        call's error) whose ``__cause__`` is fn's exception. Returns a Tap
        (``tap.remove()``); taps fire in the order of the pass, two on one
        site in the order they were added."""
        who = "at_tap_add"
        _need_interventions(who)
        if not callable(fn):
            raise ArgumentError("a tap must be callable, not %s" % type(fn).__name__, who)
        site_i = _site(site)
        if site_i in _ATTN_SITES or site_i in _LAYER_SITES:
            kind_i = _which_kind(kind, who)
        else:
            kind_i = _ALL
        layer_i = _which(layer, "layer", who)
        h = self._handle()
        cfunc = _trampoline(fn, h.tap_errors, h.in_tap)
        tap = Tap(self, SITES[site_i], kind, layer, fn, (site_i, kind_i, layer_i), cfunc)
        with h.lock:
            self._call(who, site_i, kind_i, layer_i, cfunc, None)
            h.taps.append(tap)
        return tap

    @contextlib.contextmanager
    def tap(self, site, fn, kind=None, layer=None):
        """``with m.tap(site, fn, kind, layer) as t:`` -- add_tap() for the
        block; the tap is removed when it ends (the others stay)."""
        t = self.add_tap(site, fn, kind, layer)
        try:
            yield t
        finally:
            if self._h is not None:
                self.remove_tap(t)

    @property
    def taps(self):
        """The taps on the model, in the order they fire on one site."""
        return tuple(self._handle().taps)

    def remove_tap(self, tap):
        """Take one tap off (the C library removes only all: the others are
        added again, in their order). Nothing if it is not on."""
        h = self._handle()
        with h.lock:
            if tap not in h.taps:
                return
            keep = [t for t in h.taps if t is not tap]
            self._retap(h, keep)

    def clear_taps(self):
        """Remove every tap (at_tap_clear)."""
        _need_interventions("at_tap_clear")
        h = self._handle()
        with h.lock:
            self._retap(h, [])

    def _retap(self, h, keep):
        self._call("at_tap_clear")
        h.taps = []   # C holds no callback now: the old ones may go
        for t in keep:
            self._call("at_tap_add", *t._args, t._cfunc, None)
            h.taps.append(t)

    # -- interventions: gates

    def set_gate(self, kind, layer, head, value):
        """Set the gate xi of heads (at_gate_set): it multiplies a head's
        output before the output projection in every later pass; 1 is the
        plain model, 0 removes the head. kind ("enc_self", "dec_self",
        "cross", Attn, int), layer and head (from 0); None means every one.
        value must be finite (NumericError)."""
        who = "at_gate_set"
        _need_interventions(who)
        k = _which_kind(kind, who)
        layer = _which(layer, "layer", who)
        head = _which(head, "head", who)
        v = _real(value, "gate value", who)
        if not math.isfinite(v):
            raise NumericError("gate value %r is not finite" % v, who)
        self._call(who, k, layer, head, v)

    def gate(self, kind, layer, head):
        """One head's gate xi (at_gate_get)."""
        who = "at_gate_get"
        _need_interventions(who)
        k = _which_kind(kind, who, all_ok=False)
        layer = _which(layer, "layer", who, all_ok=False)
        head = _which(head, "head", who, all_ok=False)
        out = ctypes.c_float()
        self._call(who, k, layer, head, ctypes.byref(out))
        return float(out.value)

    @property
    def gates(self):
        """Every gate as a float32 array (3, N, h) [kind][layer][head], kinds
        in Attn order: a copy. ``m.gates = values`` sets them all (anything
        that broadcasts to (3, N, h), e.g. 1.0)."""
        _need_interventions("at_gate_get")
        with self.exclusive():
            n, heads = self.get("layers"), self.get("heads")
            out = np.empty((3, n, heads), np.float32)
            v = ctypes.c_float()
            for k in range(3):
                for layer in range(n):
                    for head in range(heads):
                        self._call("at_gate_get", k, layer, head, ctypes.byref(v))
                        out[k, layer, head] = v.value
            return out

    @gates.setter
    def gates(self, values):
        who = "at_gate_set"
        _need_interventions(who)
        with self.exclusive():
            shape = (3, self.get("layers"), self.get("heads"))
            try:
                arr = np.asarray(values)
                if arr.dtype.kind not in "biuf":
                    raise TypeError("dtype %s" % arr.dtype)
                arr = np.broadcast_to(arr.astype(np.float32), shape)
            except (TypeError, ValueError) as e:
                raise ArgumentError("gates must be numbers that broadcast to (3, N, h) = %s "
                                    "(%s)" % (shape, e), who) from None
            if not np.all(np.isfinite(arr)):
                bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
                raise NumericError("gates%s = %r is not finite (no gate was set)"
                                   % (list(bad), float(arr[bad])), who)
            first = float(arr.flat[0])
            if np.all(arr == first):
                self._call(who, _ALL, _ALL, _ALL, first)
                return
            for (k, layer, head), v in np.ndenumerate(arr):
                self._call(who, k, layer, head, float(v))

    def gate_gradients(self, src, tgt, pad=0):
        """dL/dxi of every gate, from one forward and one backward pass in
        evaluation mode, no update (at_gate_gradients): L is the mean
        negative log-likelihood of tgt[:, 1:] over the labels that are not
        ``pad`` (no dropout, no label smoothing) at the current gates.
        tgt is the full target (B, T+1). Returns (L, float32 array (3, N, h)).
        A pass: views of the last one end."""
        who = "at_gate_gradients"
        _need_interventions(who)
        s, t, pad = self._batch(who, src, tgt, pad)
        grad = np.zeros((3, self.get("layers"), self.get("heads")), np.float32)
        loss = ctypes.c_double()
        self._call(who, _ptr(s), _ptr(t), s.shape[0], s.shape[1], t.shape[1], pad,
                   ctypes.byref(loss), _ptr(grad), role=_PASS)
        return float(loss.value), grad

    def attention_gradients(self, src, tgt, pad=0, target=None):
        """dL/dA for every attention tensor A, from one forward and one
        backward pass in evaluation mode (at_attention_gradients): L is the
        mean NLL as gate_gradients defines it, or with ``target`` = POS the
        log-probability of the label at decoder position POS summed over the
        rows whose label there is not ``pad``. Returns (L, {kind: [View per
        layer]}), each View (B, h, Lq, Lk) of the library's memory like
        attention(); A * grad is the relevance. A pass."""
        who = "at_attention_gradients"
        _need_interventions(who)
        s, t, pad = self._batch(who, src, tgt, pad)
        pos = -1 if target is None else _which(target, "target", who, all_ok=False)
        value = ctypes.c_double()
        self._call(who, _ptr(s), _ptr(t), s.shape[0], s.shape[1], t.shape[1], pad, pos,
                   ctypes.byref(value), role=_PASS)
        grads = {}
        for k in (Attn.ENC_SELF, Attn.DEC_SELF, Attn.CROSS):
            views = []
            for layer in range(self.get("layers")):
                cv = _capi.CView()
                self._call("at_get_attention_grad", int(k), layer, ctypes.byref(cv),
                           role=_READ)
                views.append(View(self, cv, True, "dL/dA %s layer %d" % (k.name.lower(),
                                                                         layer)))
            grads[k.name.lower()] = views
        return float(value.value), grads

    def integrated_gradients(self, src, tgt, kind, layer, steps=20, pad=0, target=None):
        """Integrated gradients on one layer's attention (Hao et al. 2021;
        at_integrated_gradients): A * mean_k dF(k/m A)/dA over k = 1..m,
        zero baseline, F as attention_gradients defines it. Returns
        (float32 array (B, h, Lq, Lk), completeness error |sum - (F(A) -
        F(0))|). Passes: views of the last one end."""
        who = "at_integrated_gradients"
        _need_interventions(who)
        s, t, pad = self._batch(who, src, tgt, pad)
        k = _which_kind(kind, who, all_ok=False)
        layer = _which(layer, "layer", who, all_ok=False)
        pos = -1 if target is None else _which(target, "target", who, all_ok=False)
        B, S, T, h = s.shape[0], s.shape[1], t.shape[1] - 1, self.get("heads")
        shape = (B, h, S if k == Attn.ENC_SELF else T, T if k == Attn.DEC_SELF else S)
        out = np.zeros(shape, np.float32)
        err = ctypes.c_double()
        self._call(who, _ptr(s), _ptr(t), B, S, t.shape[1], pad, pos, int(k), layer,
                   int(steps), _ptr(out), ctypes.byref(err), role=_PASS)
        return out, float(err.value)

    def relevance_chefer(self, src, tgt, target, pad=0):
        """Chefer et al. 2021's relevance for the token at decoder position
        ``target`` (at_relevance_chefer): (R^ss (B, S, S), R^qq (B, T, T),
        R^qs (B, T, S)) as float32 arrays; row ``target`` of R^qs is that
        token's relevance over the source. Passes."""
        who = "at_relevance_chefer"
        _need_interventions(who)
        s, t, pad = self._batch(who, src, tgt, pad)
        pos = _which(target, "target", who, all_ok=False)
        B, S, T = s.shape[0], s.shape[1], t.shape[1] - 1
        rss = np.zeros((B, S, S), np.float32)
        rqq = np.zeros((B, T, T), np.float32)
        rqs = np.zeros((B, T, S), np.float32)
        self._call(who, _ptr(s), _ptr(t), B, S, t.shape[1], pad, pos, _ptr(rss), _ptr(rqq),
                   _ptr(rqs), role=_PASS)
        return rss, rqq, rqs

    def nll(self, src, tgt, pad=0):
        """The mean negative log-likelihood L of a batch, as gate_gradients
        defines it, forward only, at the current gates and overrides
        (at_eval_nll): (L, ntokens). A pass."""
        who = "at_eval_nll"
        _need_interventions(who)
        s, t, pad = self._batch(who, src, tgt, pad)
        loss, ntok = ctypes.c_double(), ctypes.c_int64()
        self._call(who, _ptr(s), _ptr(t), s.shape[0], s.shape[1], t.shape[1], pad,
                   ctypes.byref(loss), ctypes.byref(ntok), role=_PASS)
        return float(loss.value), int(ntok.value)

    def head_importance(self, src, tgt, pad=0, ablation=True):
        """How much the loss depends on each head (Michel et al. 2019), as
        `attn importance --json` reports it: {"loss": L, "tokens": n,
        "layers": N, "heads": h, "importance": {kind: (N, h)}, "ablation":
        {kind: (N, h)}}, kinds "enc_self", "dec_self", "cross", float64
        arrays. importance is |dL/dxi| at the current gates (every xi = 1
        unless set: then Michel et al.'s importance), from one
        gate_gradients(); ablation is L(xi_head = 0) - L, one nll() per head
        with its gate at 0 and then put back (3 N h passes; ablation=False
        skips them and leaves NaN, the CLI's null). Overrides and the
        capture policy stay as they are (a policy that drops attention makes
        gate_gradients raise StateError). ``{k: v.tolist()}`` of each part
        gives the CLI's JSON lists."""
        names = [k.name.lower() for k in Attn]
        with self.exclusive():
            loss, grad = self.gate_gradients(src, tgt, pad)
            # the ablations are differences of nll(), as the CLI takes them
            base, tokens = self.nll(src, tgt, pad)
            abl = np.full(grad.shape, np.nan)
            if ablation:
                for (k, layer, head), _ in np.ndenumerate(grad):
                    g = self.gate(k, layer, head)
                    self.set_gate(k, layer, head, 0.0)
                    try:
                        abl[k, layer, head] = self.nll(src, tgt, pad)[0] - base
                    finally:
                        self.set_gate(k, layer, head, g)
        n, heads = grad.shape[1:]
        return {"loss": loss, "tokens": tokens, "layers": n, "heads": heads,
                "importance": {names[k]: np.abs(grad[k]).astype(np.float64) for k in range(3)},
                "ablation": {names[k]: abl[k] for k in range(3)}}

    def _batch(self, who, src, tgt, pad):
        pad = _int(pad, "pad", _INT32, RangeError, who)
        s, t = _ids(src, "src"), _ids(tgt, "tgt")
        if t.shape[0] != s.shape[0]:
            raise ArgumentError("src has %d rows, tgt %d" % (s.shape[0], t.shape[0]), who)
        return s, t, pad

    # -- interventions: attention overrides, reset, capture

    def override_attention(self, kind, layer, probs, head=None):
        """Replace the attention probabilities of a block (head None: probs
        (B, h, Lq, Lk)) or of one head (probs (B, Lq, Lk)) in every later
        pass (at_attention_override; the library keeps a copy, converted to
        C-contiguous float32). probs=None removes that override. In a full
        pass Lq and Lk must be the block's (else the pass raises
        ShapeError); decoding step t uses row t. Values must be finite;
        decoder self-attention may not look ahead (zeros above the
        diagonal)."""
        who = "at_attention_override"
        _need_interventions(who)
        k = _which_kind(kind, who, all_ok=False)
        layer = _which(layer, "layer", who, all_ok=False)
        head_i = _which(head, "head", who)
        if probs is None:
            self._call(who, k, layer, head_i, None, 1, 1, 1)
            return
        arr = np.asarray(probs)
        if arr.dtype.kind not in "biuf":
            raise ArgumentError("probs must be real numbers, not %s" % arr.dtype, who)
        want = 4 if head is None else 3
        if arr.ndim != want:
            raise ShapeError("probs must be %s for %s, not %d-D %s" % (
                "(batch, heads, q_len, k_len)" if want == 4 else "(batch, q_len, k_len)",
                "every head (head=None)" if want == 4 else "one head", arr.ndim, arr.shape),
                who)
        if want == 4 and arr.shape[1] != self.get("heads"):
            raise ShapeError("probs has %d heads (axis 1), the model %d"
                             % (arr.shape[1], self.get("heads")), who)
        if arr.size == 0:
            raise ShapeError("probs %s is empty" % (arr.shape,), who)
        b, q, kl = (_int(n, name, _INT, RangeError, who)
                    for n, name in zip((arr.shape[0],) + arr.shape[-2:],
                                       ("batch", "q_len", "k_len")))
        a = np.ascontiguousarray(arr, dtype=np.float32)
        self._call(who, k, layer, head_i, _ptr(a), b, q, kl)

    def reset_interventions(self):
        """Remove every override, set every gate to 1 and keep every
        attention again (at_interventions_reset); the taps stay
        (clear_taps)."""
        _need_interventions("at_interventions_reset")
        self._call("at_interventions_reset")

    def set_capture(self, kind=None, layer=None, head=None, keep=True):
        """The capture policy (at_capture_set): whether later passes keep
        heads' attention probabilities for the views (keep=True, the
        default) or compute them in scratch memory and drop them
        (keep=False: no arena memory; their views raise StateError;
        train_step and gate_gradients raise StateError while any is
        dropped). kind, layer, head: None means every one."""
        who = "at_capture_set"
        _need_interventions(who)
        k = _which_kind(kind, who)
        layer = _which(layer, "layer", who)
        head = _which(head, "head", who)
        keep = _int(keep, "keep", (0, 1), call=who, bool_ok=True)
        self._call(who, k, layer, head, keep)

    def attention_head(self, kind, layer, head):
        """One head's attention probabilities of the last pass, a View
        (batch, query, key), no copy (at_get_attention_head): works while
        the capture policy keeps this head, whatever it does to the others."""
        who = "at_get_attention_head"
        _need_interventions(who)
        k = _which_kind(kind, who, all_ok=False)
        layer = _which(layer, "layer", who, all_ok=False)
        head = _which(head, "head", who, all_ok=False)
        cv = _capi.CView()
        self._call(who, k, layer, head, ctypes.byref(cv), role=_READ)
        return View(self, cv, True, "attention %s layer %d head %d"
                    % (Attn(k).name.lower(), layer, head))

    @property
    def activation_bytes(self):
        """The arena memory the last pass used, in bytes (activations, kept
        attention, scratch): what a capture policy saves shows here."""
        _need_interventions("at_model_activation_bytes")
        h = self._handle()
        with h.lock:
            return int(_lib.at_model_activation_bytes(h.ptr))

    # -- statistics

    def attention_stats(self, kind, layer, topk=3):
        """Statistics of every head over the valid region of the last pass:
        a dict name -> float64 array (heads,), names as STAT_NAMES."""
        who = "at_attention_stats"
        kind = _enum(Attn, kind, "attention kind")
        layer = _int(layer, "layer", call=who)
        topk = _int(topk, "topk", call=who)
        heads = self.get("heads")
        out = np.zeros((heads, len(STAT_NAMES)), np.float64)
        self._call(who, int(kind), layer, topk, len(STAT_NAMES), _ptr(out), role=_READ)
        return {name: out[:, i].copy() for i, name in enumerate(STAT_NAMES)}

    def attention_js(self, kind, layer):
        """Jensen-Shannon divergence (bits) between every pair of heads: (h, h)."""
        kind = _enum(Attn, kind, "attention kind")
        layer = _int(layer, "layer", call="at_attention_js")
        heads = self.get("heads")
        out = np.zeros((heads, heads), np.float64)
        self._call("at_attention_js", int(kind), layer, _ptr(out), role=_READ)
        return out

    # -- charts

    def chart(self, path, chart="heatmap", kind="cross", layer=0, head=0, fmt=None,
              src_labels=None, tgt_labels=None, src_ids=None, tgt_ids=None, caption=None,
              font=None, row=None, topk=None, cell=None, trim=None, analysis=None):
        """Write a chart of the last pass (include/at_viz.h) to ``path``,
        atomically. chart: one of CHARTS; fmt: "svg", "vegalite", "html", or
        None to follow the extension (.svg, .json, .html). kind, layer and
        head are used by the charts that need them (see at_viz.h) and
        ignored otherwise. Labels are lists of strings per position; ids
        label positions that have no label. analysis: an explorer.Analysis
        (head grids, maps, gold links) the explorer shows. Returns ``path``."""
        if not HAVE_CHARTS:
            raise StateError("this libat has no charts (include/at_viz.h)", "chart")
        who = "at_viz_save"
        cpath = _cstr(path, "path", who)
        if isinstance(chart, str):
            if chart not in CHARTS:
                raise ArgumentError("unknown chart %r (one of %s)" % (chart, ", ".join(CHARTS)),
                                    who)
            chart_i = CHARTS.index(chart)
        else:
            chart_i = _int(chart, "chart", call=who)
        if fmt is None:
            ext = os.path.splitext(os.fsdecode(cpath))[1].lower()
            if ext not in _CHART_FORMATS:
                raise ArgumentError("cannot tell the chart format from %r: use .svg, .json "
                                    "or .html, or fmt=" % (os.fsdecode(cpath),))
            fmt_i = _CHART_FORMATS[ext]
        elif isinstance(fmt, str):
            if fmt not in _FMT_NAMES:
                raise ArgumentError("unknown chart format %r (one of %s)"
                                    % (fmt, ", ".join(_FMT_NAMES)), who)
            fmt_i = _FMT_NAMES[fmt]
        else:
            fmt_i = _int(fmt, "fmt", call=who)
        kind_i = int(_enum(Attn, kind, "attention kind"))
        layer = _int(layer, "layer", call=who)
        head = _int(head, "head", call=who)
        # Arguments a chart does not use must be 0 (at_viz_write).
        uses = {0: "klh", 1: "kl", 2: "kh", 3: "k", 4: "", 5: "", 6: "klh"}.get(chart_i, "klh")
        if "k" not in uses:
            kind_i = 0
        layer = layer if "l" in uses else 0
        head = head if "h" in uses else 0
        settings = [(key, _int(value, name, call="at_viz_options_set", bool_ok=(key == _VIZ_TRIM)))
                    for key, name, value in ((_VIZ_ROW, "row", row), (_VIZ_TOPK, "topk", topk),
                                             (_VIZ_CELL, "cell", cell), (_VIZ_TRIM, "trim", trim))
                    if value is not None]
        labels = [(side, [None if s is None else _text(str(s), "%s label %d" % (name, i),
                                                         "at_viz_options_set_labels")
                          for i, s in enumerate(values)])
                  for side, name, values in ((0, "src", src_labels), (1, "tgt", tgt_labels))
                  if values is not None]
        ids = [(side, _ids(np.asarray(values).ravel(), "%s_ids" % name)[0])
               for side, name, values in ((0, "src", src_ids), (1, "tgt", tgt_ids))
               if values is not None]
        caption = None if caption is None else _text(caption, "caption",
                                                     "at_viz_options_set_caption")
        font = None if font is None else _text(font, "font", "at_viz_options_set_font")
        if analysis is not None and not callable(getattr(analysis, "_attach", None)):
            raise ArgumentError("analysis must be a libat.explorer.Analysis", who)

        opts = ctypes.c_void_p()
        _check_global(_lib.at_viz_options_create(ctypes.byref(opts)), "at_viz_options_create")
        try:
            for side, enc in labels:
                arr = (ctypes.c_char_p * max(len(enc), 1))(*enc)
                _global("at_viz_options_set_labels", opts, side, arr,
                        _int(len(enc), "label count", call="at_viz_options_set_labels"))
            for side, a in ids:
                _global("at_viz_options_set_ids", opts, side, _ptr(a), a.size)
            if caption is not None:
                _global("at_viz_options_set_caption", opts, caption)
            if font is not None:
                _global("at_viz_options_set_font", opts, font)
            for key, value in settings:
                _global("at_viz_options_set", opts, key, value)
            if analysis is not None:
                analysis._attach(opts)
            self._viz_save(cpath, chart_i, fmt_i, kind_i, layer, head, opts)
        finally:
            _lib.at_viz_options_free(opts)
        return path

    def _viz_save(self, path, chart, fmt, kind, layer, head, opts):
        # at_viz_save takes the path first and the model second.
        _check_args("at_viz_save", (path, None, chart, fmt, kind, layer, head, opts))
        h = self._handle()
        with h.lock:
            self._own_pass(h, "at_viz_save")
            status = _lib.at_viz_save(path, h.ptr, chart, fmt, kind, layer, head, opts)
            if status != 0:
                _raise(status, h.ptr, "at_viz_save")

    def __repr__(self):
        if self._h is None:
            return "<libat.Model closed>"
        c = self.config
        return ("<libat.Model layers=%d d_model=%d heads=%d d_ff=%d vocab=%d/%d steps=%d>"
                % (c["layers"], c["d_model"], c["heads"], c["d_ff"], c["src_vocab"],
                   c["tgt_vocab"], self.steps))
