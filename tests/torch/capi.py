"""The few libat functions the PyTorch comparison calls, declared straight
from include/at.h with ctypes. The test talks to the C ABI itself rather
than through examples/python/libat, so what it checks is libat and nothing
in between. The library is LIBAT_PATH (CTest passes the built libat.so).
"""

import ctypes
import os

import numpy as np

c_int, c_int32, c_int64, c_uint64 = ctypes.c_int, ctypes.c_int32, ctypes.c_int64, ctypes.c_uint64
c_double, c_float, c_size_t = ctypes.c_double, ctypes.c_float, ctypes.c_size_t
c_void_p = ctypes.c_void_p
c_char_p, P = ctypes.c_char_p, ctypes.POINTER

# enum at_param
SRC_VOCAB, TGT_VOCAB, LAYERS, D_MODEL, HEADS, D_FF, DROPOUT, MAX_LEN, SEED, ATTN_DROPOUT, \
    LR, WARMUP, FACTOR, SMOOTHING, BETA1, BETA2, ADAM_EPS, PACKED = range(1, 19)
# enum at_attn_kind
ENC_SELF, DEC_SELF, CROSS = 0, 1, 2
KINDS = {"enc_self": ENC_SELF, "dec_self": DEC_SELF, "cross": CROSS}
# enum at_output
OUT_MEMORY, OUT_DECODER, OUT_LOGPROBS = 2, 5, 6


class View(ctypes.Structure):
    _fields_ = [("data", c_void_p), ("ndim", c_int32), ("reserved", c_int32),
                ("shape", c_int64 * 4), ("stride", c_int64 * 4), ("generation", c_uint64)]

    def array(self):
        """A float64 copy of the viewed float32 elements, strides honoured."""
        shape = tuple(self.shape[:self.ndim])
        strides = tuple(self.stride[:self.ndim])
        span = 1 + sum((n - 1) * s for n, s in zip(shape, strides))
        flat = np.ctypeslib.as_array(ctypes.cast(self.data, P(c_float)), (span,))
        return np.lib.stride_tricks.as_strided(
            flat, shape, tuple(4 * s for s in strides)).astype(np.float64)

    def writable(self, data=None):
        """The viewed float32 elements themselves (no copy), strides honoured:
        what a tap writes here is what the pass goes on with."""
        shape = tuple(self.shape[:self.ndim])
        strides = tuple(self.stride[:self.ndim])
        span = 1 + sum((n - 1) * s for n, s in zip(shape, strides))
        ptr = data if data is not None else self.data
        flat = np.ctypeslib.as_array(ctypes.cast(ptr, P(c_float)), (span,))
        return np.lib.stride_tricks.as_strided(flat, shape, tuple(4 * s for s in strides))


# enum at_site, in order; enum at_pass
SITES = ("q", "k", "v", "scores", "probs", "head_out", "attn_out", "ff_hidden", "layer_out",
         "src_embed", "tgt_embed", "memory", "decoder", "logprobs")
SITE = {name: i for i, name in enumerate(SITES)}
PASS_FORWARD, PASS_GREEDY, PASS_BEAM, PASS_TRAIN = range(4)
ALL = -1  # AT_ALL
# enum at_status
OK, E_ARG, E_NOMEM, E_IO, E_FORMAT, E_SHAPE, E_RANGE, E_STATE, E_NUMERIC, E_CALLBACK = range(10)


class TapEvent(ctypes.Structure):
    _fields_ = [("site", c_int), ("kind", c_int), ("layer", c_int32), ("pass_", c_int),
                ("step", c_int32), ("pos_begin", c_int32), ("pos_end", c_int32),
                ("batch", c_int32), ("row_begin", c_int32), ("reserved", c_int32),
                ("data", c_void_p), ("view", View)]


TAP_FN = ctypes.CFUNCTYPE(c_int, c_void_p, P(TapEvent))


class BeamOptions(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("beam_size", c_int32), ("reserved", c_int32),
                ("alpha", c_double), ("max_len_a", c_double), ("max_len_b", c_double)]


_PROTOS = {
    "at_status_string": (c_char_p, [c_int]),
    "at_errmsg": (c_char_p, [c_void_p]),
    "at_config_create": (c_int, [P(c_void_p)]),
    "at_config_set": (c_int, [c_void_p, c_int, c_double]),
    "at_config_free": (None, [c_void_p]),
    "at_model_create": (c_int, [c_void_p, P(c_void_p)]),
    "at_model_load": (c_int, [c_char_p, c_void_p, P(c_void_p)]),
    "at_model_free": (None, [c_void_p]),
    "at_model_set": (c_int, [c_void_p, c_int, c_double]),
    "at_model_get": (c_int, [c_void_p, c_int, P(c_double)]),
    "at_model_save": (c_int, [c_void_p, c_char_p]),
    "at_model_save_training": (c_int, [c_void_p, c_char_p]),
    "at_model_tensor_count": (c_int, [c_void_p]),
    "at_model_tensor": (c_int, [c_void_p, c_int, P(c_char_p), P(View)]),
    "at_model_tensor_trainable": (c_int, [c_void_p, c_int]),
    "at_model_tensor_write": (c_int, [c_void_p, c_int, P(c_float), c_size_t]),
    "at_forward": (c_int, [c_void_p, P(c_int32), P(c_int32), c_int, c_int, c_int, c_int32]),
    "at_get_attention": (c_int, [c_void_p, c_int, c_int, P(View)]),
    "at_get_output": (c_int, [c_void_p, c_int, c_int, P(View)]),
    "at_greedy_decode": (c_int, [c_void_p, P(c_int32), c_int, c_int, c_int32, c_int, c_int32,
                                 c_int32, P(c_int32), P(c_int)]),
    "at_beam_options_init": (None, [P(BeamOptions)]),
    "at_beam_decode": (c_int, [c_void_p, P(c_int32), c_int, c_int, c_int32, c_int32, c_int32,
                               P(BeamOptions), P(c_int32), c_int, P(c_int), P(c_double)]),
    "at_train_step": (c_int, [c_void_p, P(c_int32), P(c_int32), c_int, c_int, c_int, c_int32,
                              P(c_float), P(c_int64)]),
    "at_eval_loss": (c_int, [c_void_p, P(c_int32), P(c_int32), c_int, c_int, c_int, c_int32,
                             P(c_float), P(c_int64)]),
    "at_model_grad": (c_int, [c_void_p, c_int, P(View)]),
    "at_model_steps": (c_uint64, [c_void_p]),
    "at_model_learning_rate": (c_double, [c_void_p]),
    "at_set_threads": (c_int, [c_int]),
}

# the interventions group (at.h 0.2.0): declared when the library has them
_PROTOS_INTERV = {
    "at_site_name": (c_char_p, [c_int]),
    "at_site_from_name": (c_int, [c_char_p, P(c_int)]),
    "at_tap_add": (c_int, [c_void_p, c_int, c_int, c_int, TAP_FN, c_void_p]),
    "at_tap_clear": (c_int, [c_void_p]),
    "at_gate_set": (c_int, [c_void_p, c_int, c_int, c_int, c_float]),
    "at_gate_get": (c_int, [c_void_p, c_int, c_int, c_int, P(c_float)]),
    "at_gate_gradients": (c_int, [c_void_p, P(c_int32), P(c_int32), c_int, c_int, c_int, c_int32,
                                  P(c_double), P(c_float)]),
    "at_eval_nll": (c_int, [c_void_p, P(c_int32), P(c_int32), c_int, c_int, c_int, c_int32,
                            P(c_double), P(c_int64)]),
    "at_attention_override": (c_int, [c_void_p, c_int, c_int, c_int, P(c_float), c_int, c_int,
                                      c_int]),
    "at_interventions_reset": (c_int, [c_void_p]),
    "at_capture_set": (c_int, [c_void_p, c_int, c_int, c_int, c_int]),
    "at_get_attention_head": (c_int, [c_void_p, c_int, c_int, c_int, P(View)]),
    "at_model_activation_bytes": (c_size_t, [c_void_p]),
    "at_model_share": (c_int, [c_void_p, P(c_void_p)]),
    # at_analysis.h: gradients with respect to attention
    "at_attention_gradients": (c_int, [c_void_p, P(c_int32), P(c_int32), c_int, c_int, c_int,
                                       c_int32, c_int, P(c_double)]),
    "at_get_attention_grad": (c_int, [c_void_p, c_int, c_int, P(View)]),
    "at_integrated_gradients": (c_int, [c_void_p, P(c_int32), P(c_int32), c_int, c_int, c_int,
                                        c_int32, c_int, c_int, c_int, c_int, P(c_float),
                                        P(c_double)]),
    "at_relevance_chefer": (c_int, [c_void_p, P(c_int32), P(c_int32), c_int, c_int, c_int,
                                    c_int32, c_int, P(c_float), P(c_float), P(c_float)]),
}
MISSING = []  # functions of _PROTOS_INTERV the library does not export

# at_analysis.h: activation patching and counterfactual attention (torch_patch)
_PROTOS_PATCH = {
    "at_activation_patch": (c_int, [c_void_p, P(c_int32), P(c_int32), P(c_int32), P(c_int32),
                                    c_int, c_int, c_int, c_int32, c_int, P(c_float),
                                    P(c_double), P(c_double)]),
    "at_counterfactual_attention": (c_int, [c_void_p, P(c_int32), P(c_int32), c_int, c_int,
                                            c_int, c_int32, c_uint64, P(c_float), P(c_float)]),
}
MISSING_PATCH = []  # functions of _PROTOS_PATCH the library does not export


def _load():
    path = os.environ.get("LIBAT_PATH")
    if not path:
        raise RuntimeError("LIBAT_PATH is not set: point it at the libat.so under test")
    lib = ctypes.CDLL(path)
    for name, (res, args) in _PROTOS.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    for name, (res, args) in _PROTOS_INTERV.items():
        if not hasattr(lib, name):
            MISSING.append(name)
            continue
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    for name, (res, args) in _PROTOS_PATCH.items():
        if not hasattr(lib, name):
            MISSING_PATCH.append(name)
            continue
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    return lib, path


LIB, LIBRARY_PATH = _load()


class Error(RuntimeError):
    pass


def _ids(a):
    a = np.ascontiguousarray(a, dtype=np.int32)
    return a, a.ctypes.data_as(P(c_int32))


class Model:
    """An at_model handle with just what the checks need."""

    def __init__(self, ptr):
        self.ptr = ptr
        self._taps = []  # the CFUNCTYPE objects of this handle's taps, kept alive
        self.tap_errors = []  # exceptions raised inside taps

    @classmethod
    def create(cls, **params):
        cfg = c_void_p()
        cls._ok(None, LIB.at_config_create(ctypes.byref(cfg)), "at_config_create")
        try:
            for key, value in params.items():
                cls._ok(None, LIB.at_config_set(cfg, globals()[key.upper()], float(value)),
                        "at_config_set " + key)
            m = c_void_p()
            cls._ok(None, LIB.at_model_create(cfg, ctypes.byref(m)), "at_model_create")
        finally:
            LIB.at_config_free(cfg)
        return cls(m)

    @classmethod
    def load(cls, path):
        m = c_void_p()
        cls._ok(None, LIB.at_model_load(path.encode(), None, ctypes.byref(m)), "at_model_load")
        return cls(m)

    @staticmethod
    def _ok(ptr, status, what):
        if status != 0:
            raise Error("%s: %s: %s" % (what, LIB.at_status_string(status).decode(),
                                        LIB.at_errmsg(ptr).decode()))

    def check(self, status, what):
        self._ok(self.ptr, status, what)

    def close(self):
        LIB.at_model_free(self.ptr)
        self.ptr = None

    def set(self, **params):
        for key, value in params.items():
            self.check(LIB.at_model_set(self.ptr, globals()[key.upper()], float(value)),
                       "at_model_set " + key)

    def save(self, path, training=False):
        fn = LIB.at_model_save_training if training else LIB.at_model_save
        self.check(fn(self.ptr, path.encode()), "at_model_save")

    def tensors(self):
        """[(index, name, trainable)] in state_dict order."""
        out = []
        for i in range(LIB.at_model_tensor_count(self.ptr)):
            name = c_char_p()
            self.check(LIB.at_model_tensor(self.ptr, i, ctypes.byref(name), None),
                       "at_model_tensor")
            out.append((i, name.value.decode(), LIB.at_model_tensor_trainable(self.ptr, i) == 1))
        return out

    def tensor(self, index):
        v = View()
        self.check(LIB.at_model_tensor(self.ptr, index, None, ctypes.byref(v)), "at_model_tensor")
        return v.array()

    def write_tensor(self, index, values):
        a = np.ascontiguousarray(values, dtype=np.float32).ravel()
        self.check(LIB.at_model_tensor_write(self.ptr, index, a.ctypes.data_as(P(c_float)), a.size),
                   "at_model_tensor_write")

    def grad(self, index):
        v = View()
        self.check(LIB.at_model_grad(self.ptr, index, ctypes.byref(v)), "at_model_grad")
        return v.array()

    def forward(self, src, tgt, pad):
        s, sp = _ids(src)
        t, tp = _ids(tgt)
        self.check(LIB.at_forward(self.ptr, sp, tp, s.shape[0], s.shape[1], t.shape[1], pad),
                   "at_forward")

    def attention(self, kind, layer):
        v = View()
        self.check(LIB.at_get_attention(self.ptr, KINDS[kind], layer, ctypes.byref(v)),
                   "at_get_attention")
        return v.array()

    def output(self, which, layer=0):
        v = View()
        self.check(LIB.at_get_output(self.ptr, which, layer, ctypes.byref(v)), "at_get_output")
        return v.array()

    def _loss(self, fn, src, tgt_full, pad):
        s, sp = _ids(src)
        t, tp = _ids(tgt_full)
        loss, ntok = c_float(), c_int64()
        self.check(fn(self.ptr, sp, tp, s.shape[0], s.shape[1], t.shape[1], pad,
                      ctypes.byref(loss), ctypes.byref(ntok)), fn.__name__)
        return loss.value, ntok.value

    def train_step(self, src, tgt_full, pad):
        return self._loss(LIB.at_train_step, src, tgt_full, pad)

    def eval_loss(self, src, tgt_full, pad):
        return self._loss(LIB.at_eval_loss, src, tgt_full, pad)

    def learning_rate(self):
        return LIB.at_model_learning_rate(self.ptr)

    def greedy_decode(self, src, pad, max_len, start, end):
        s, sp = _ids(src)
        out = np.zeros((s.shape[0], max_len), dtype=np.int32)
        n = c_int()
        self.check(LIB.at_greedy_decode(self.ptr, sp, s.shape[0], s.shape[1], pad, max_len, start,
                                        end, out.ctypes.data_as(P(c_int32)), ctypes.byref(n)),
                   "at_greedy_decode")
        return out, n.value

    def beam_decode(self, src, pad, start, end, beam, alpha, a, b, out_cols):
        s, sp = _ids(src)
        opts = BeamOptions()
        LIB.at_beam_options_init(ctypes.byref(opts))
        opts.beam_size, opts.alpha, opts.max_len_a, opts.max_len_b = beam, alpha, a, b
        out = np.full((s.shape[0], out_cols), -7, dtype=np.int32)
        lens = np.zeros(s.shape[0], dtype=np.intc)
        scores = np.zeros(s.shape[0], dtype=np.float64)
        self.check(LIB.at_beam_decode(self.ptr, sp, s.shape[0], s.shape[1], pad, start, end,
                                      ctypes.byref(opts), out.ctypes.data_as(P(c_int32)), out_cols,
                                      lens.ctypes.data_as(P(c_int)),
                                      scores.ctypes.data_as(P(c_double))),
                   "at_beam_decode")
        return out, lens, scores

    # ------------------------------------------------------------ interventions

    def share(self):
        m = c_void_p()
        self.check(LIB.at_model_share(self.ptr, ctypes.byref(m)), "at_model_share")
        return Model(m)

    def tap_add(self, site, kind, layer, fn):
        """fn(event) -> status (None counts as 0); an exception in fn is
        kept in self.tap_errors and stops the pass (status 1)."""
        def call(_user, ev):
            try:
                r = fn(ev.contents)
                return 0 if r is None else int(r)
            except Exception as e:  # noqa: BLE001 (reported by the test)
                self.tap_errors.append(repr(e))
                return 1
        cb = TAP_FN(call)
        st = LIB.at_tap_add(self.ptr, site, kind, layer, cb, None)
        if st == 0:
            self._taps.append(cb)
        return st

    def tap_clear(self):
        self.check(LIB.at_tap_clear(self.ptr), "at_tap_clear")
        self._taps = []

    def gate_set(self, kind, layer, head, value):
        self.check(LIB.at_gate_set(self.ptr, kind, layer, head, value), "at_gate_set")

    def gate_get(self, kind, layer, head):
        v = c_float()
        self.check(LIB.at_gate_get(self.ptr, kind, layer, head, ctypes.byref(v)), "at_gate_get")
        return v.value

    def gate_gradients(self, src, tgt_full, pad, n_gates):
        s, sp = _ids(src)
        t, tp = _ids(tgt_full)
        loss = c_double()
        grad = np.zeros(n_gates, dtype=np.float32)
        self.check(LIB.at_gate_gradients(self.ptr, sp, tp, s.shape[0], s.shape[1], t.shape[1],
                                         pad, ctypes.byref(loss), grad.ctypes.data_as(P(c_float))),
                   "at_gate_gradients")
        return loss.value, grad

    def attention_gradients(self, src, tgt_full, pad, layers, target_pos=-1):
        """L and {(kind, layer): ∂L/∂A} (at_attention_gradients)."""
        s, sp = _ids(src)
        t, tp = _ids(tgt_full)
        value = c_double()
        self.check(LIB.at_attention_gradients(self.ptr, sp, tp, s.shape[0], s.shape[1],
                                              t.shape[1], pad, target_pos, ctypes.byref(value)),
                   "at_attention_gradients")
        grads = {}
        for kind in KINDS:
            for layer in range(layers):
                v = View()
                self.check(LIB.at_get_attention_grad(self.ptr, KINDS[kind], layer,
                                                     ctypes.byref(v)), "at_get_attention_grad")
                grads[(kind, layer)] = v.array().copy()
        return value.value, grads

    def integrated_gradients(self, src, tgt_full, pad, kind, layer, steps, shape,
                             target_pos=-1):
        s, sp = _ids(src)
        t, tp = _ids(tgt_full)
        out = np.zeros(shape, dtype=np.float32)
        err = c_double()
        self.check(LIB.at_integrated_gradients(self.ptr, sp, tp, s.shape[0], s.shape[1],
                                               t.shape[1], pad, target_pos, KINDS[kind], layer,
                                               steps, out.ctypes.data_as(P(c_float)),
                                               ctypes.byref(err)), "at_integrated_gradients")
        return out, err.value

    def relevance_chefer(self, src, tgt_full, pad, target_pos):
        s, sp = _ids(src)
        t, tp = _ids(tgt_full)
        B, S, T = s.shape[0], s.shape[1], t.shape[1] - 1
        rss = np.zeros((B, S, S), np.float32)
        rqq = np.zeros((B, T, T), np.float32)
        rqs = np.zeros((B, T, S), np.float32)
        fp = [x.ctypes.data_as(P(c_float)) for x in (rss, rqq, rqs)]
        self.check(LIB.at_relevance_chefer(self.ptr, sp, tp, B, S, t.shape[1], pad, target_pos,
                                           *fp), "at_relevance_chefer")
        return rss, rqq, rqs

    def eval_nll(self, src, tgt_full, pad):
        s, sp = _ids(src)
        t, tp = _ids(tgt_full)
        loss, ntok = c_double(), c_int64()
        self.check(LIB.at_eval_nll(self.ptr, sp, tp, s.shape[0], s.shape[1], t.shape[1], pad,
                                   ctypes.byref(loss), ctypes.byref(ntok)), "at_eval_nll")
        return loss.value, ntok.value

    def override_status(self, kind, layer, head, probs, batch=None, q_len=None, k_len=None):
        """at_attention_override's status; probs None removes; sizes from
        probs' shape unless given."""
        if probs is None:
            return LIB.at_attention_override(self.ptr, kind, layer, head, None, batch or 1,
                                             q_len or 1, k_len or 1)
        a = np.ascontiguousarray(probs, dtype=np.float32)
        nb, ql, kl = a.shape[0], a.shape[-2], a.shape[-1]
        return LIB.at_attention_override(self.ptr, kind, layer, head,
                                         a.ctypes.data_as(P(c_float)),
                                         nb if batch is None else batch,
                                         ql if q_len is None else q_len,
                                         kl if k_len is None else k_len)

    def override(self, kind, layer, head, probs):
        self.check(self.override_status(kind, layer, head, probs), "at_attention_override")

    def interventions_reset(self):
        self.check(LIB.at_interventions_reset(self.ptr), "at_interventions_reset")

    def capture_set(self, kind, layer, head, keep):
        self.check(LIB.at_capture_set(self.ptr, kind, layer, head, keep), "at_capture_set")

    def attention_head(self, kind, layer, head):
        v = View()
        self.check(LIB.at_get_attention_head(self.ptr, KINDS[kind], layer, head, ctypes.byref(v)),
                   "at_get_attention_head")
        return v.array()

    def activation_bytes(self):
        return LIB.at_model_activation_bytes(self.ptr)

    def forward_status(self, src, tgt, pad):
        s, sp = _ids(src)
        t, tp = _ids(tgt)
        return LIB.at_forward(self.ptr, sp, tp, s.shape[0], s.shape[1], t.shape[1], pad)

    def attention_status(self, kind, layer):
        v = View()
        return LIB.at_get_attention(self.ptr, KINDS[kind], layer, ctypes.byref(v))

    def attention_head_status(self, kind, layer, head):
        v = View()
        return LIB.at_get_attention_head(self.ptr, KINDS[kind], layer, head, ctypes.byref(v))
