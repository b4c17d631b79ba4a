"""libat_text from Python: SentencePiece tokenizers, corpus BLEU and chrF
(include/at_text.h).

The text library (libat_text.so.0) is loaded on first use, not at
``import libat``: the core binding works without it. It is looked for in
$LIBAT_TEXT_PATH (the library, or its directory) when set, and only there;
otherwise beside the libat that was loaded, in the source tree's lib/, then
through the linker's paths. ``available()`` tells whether it loads; any
other call raises ImportError saying where it looked when it does not.

    from libat import text
    tok = text.Tokenizer.train(["train.es", "train.en"], vocab_size=8000)
    tok.encode("En el principio")           # [ids], no <s> or </s>
    tok.encode_pieces("En el principio")    # ['▁En', '▁el', ...]
    text.bleu(hyps, refs).score             # sacreBLEU's default corpus BLEU
    text.chrf(hyps, refs).score             # chrF2

Text is str (or UTF-8 bytes); invalid UTF-8 (bytes, or a str with lone
surrogates) raises libat.FormatError with the library's message naming the
byte.
"""

import ctypes
import os
import threading
import weakref

import numpy as np

from . import _textcapi
from .errors import ArgumentError, RangeError, StateError, error_for
from .model import _INT32, LIBRARY_PATH, _cstr, _int, _real

# The ids a tokenizer trained by libat_text gives its special pieces (as
# the model uses them: the pad of forward(), the decoder's start and end).
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3

#: Metadata keys of a checkpoint's tokenizers (AT_TOK_META_*): one joint
#: vocabulary, or one per side; the value is Tokenizer.to_base64().
META_JOINT, META_SRC, META_TGT = "tokenizer", "tokenizer.src", "tokenizer.tgt"

_MODELS = {"bpe": 0, "unigram": 1}
_SMOOTH = {"exp": 0, "none": 1, "floor": 2, "add-k": 3}
_BLEU_TOK = {"13a": 0, "none": 1}

_lock = threading.Lock()
_state = {}


def _tl():
    """The loaded text library (loads it the first time)."""
    lib = _state.get("lib")
    if lib is not None:
        return lib
    with _lock:
        if "lib" not in _state:
            if "error" in _state:
                raise ImportError(_state["error"])
            try:
                lib, path = _textcapi.load(LIBRARY_PATH)
            except ImportError as e:
                _state["error"] = str(e)
                raise
            _state["path"] = path
            _state["lib"] = lib
        return _state["lib"]


def available():
    """True when libat_text loads (it is then loaded)."""
    try:
        _tl()
    except ImportError:
        return False
    return True


def library_path():
    """The path libat_text was loaded from (loads it)."""
    _tl()
    return _state["path"]


def _check(status, call):
    """Raises for a failed libat_text call, with at_text_errmsg() (per
    thread: read in the thread that made the call)."""
    if status != 0:
        msg = _tl().at_text_errmsg()
        raise error_for(status, msg.decode("utf-8", "replace") if msg else "", call)


def _utf8(value, what, call=None):
    """Text for the library: a str as UTF-8 (lone surrogates pass through
    as bytes: the library refuses them with FormatError, as any text that is
    not UTF-8), or bytes-like taken as they are."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise ArgumentError("%s must be a str (or UTF-8 bytes), not %s"
                        % (what, type(value).__name__), call)


def _paths(paths, what, call):
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    try:
        paths = list(paths)
    except TypeError:
        raise ArgumentError("%s must be a path or a list of paths, not %s"
                            % (what, type(paths).__name__), call) from None
    if not paths:
        raise ArgumentError("%s: no file given" % what, call)
    return [_cstr(p, what, call) for p in paths]


def _strings(values, what, call):
    """A list of UTF-8 bytes from a sequence of str (not one str: a str is
    a sequence of characters)."""
    if isinstance(values, (str, bytes)):
        raise ArgumentError("%s must be a list of strings, not one %s"
                            % (what, type(values).__name__), call)
    try:
        values = list(values)
    except TypeError:
        raise ArgumentError("%s must be a list of strings, not %s"
                            % (what, type(values).__name__), call) from None
    return [_utf8(v, "%s[%d]" % (what, i), call) for i, v in enumerate(values)]


# ---------------------------------------------------------------- tokenizer


class Tokenizer:
    """A SentencePiece model (at_tokenizer): BPE or unigram subwords.

    Make one with Tokenizer.train(), load(), from_bytes() or from_base64().
    A tokenizer trained here has <pad> 0, <unk> 1, <s> 2, </s> 3 (the ids
    the model uses); one trained elsewhere keeps its own (``pad_id``,
    ``unk_id``, ``bos_id``, ``eos_id``: -1 when it has none). encode() adds
    neither <s> nor </s>; decode() drops the special ids. Calls on one
    Tokenizer from several threads wait for each other (a lock)."""

    __slots__ = ("_ptr", "_lock", "_finalizer", "__weakref__")

    def __init__(self, ptr):
        """Not for direct use: see the class methods."""
        lib = _tl()
        self._ptr = ptr
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, lib.at_tokenizer_free, ptr)
        self._finalizer.atexit = False

    @classmethod
    def train(cls, paths, vocab_size=8000, model="bpe", character_coverage=1.0, threads=1,
              max_sentences=0):
        """Train on text files of one sentence per line (deterministic: the
        same files and settings give the same model). model: "bpe" or
        "unigram"; vocab_size counts the 4 special pieces."""
        who = "at_tokenizer_train"
        lib = _tl()
        cpaths = _paths(paths, "paths", who)
        if model not in _MODELS:
            raise ArgumentError("unknown tokenizer model %r (one of %s)"
                                % (model, ", ".join(_MODELS)), who)
        opt = _textcapi.CTokOptions()
        opt.struct_size = ctypes.sizeof(opt)
        opt.model = _MODELS[model]
        opt.vocab_size = _int(vocab_size, "vocab_size", _INT32, call=who)
        opt.character_coverage = _real(character_coverage, "character_coverage", who)
        opt.threads = _int(threads, "threads", _INT32, call=who)
        opt.max_sentences = _int(max_sentences, "max_sentences", (0, 2 ** 63 - 1), call=who)
        # A 0 would mean "the default" to the library: refuse it here.
        for name in ("vocab_size", "character_coverage", "threads"):
            if getattr(opt, name) <= 0:
                raise ArgumentError("%s must be positive, not %r" % (name, getattr(opt, name)),
                                    who)
        arr = (ctypes.c_char_p * len(cpaths))(*cpaths)
        out = ctypes.c_void_p()
        _check(lib.at_tokenizer_train(arr, len(cpaths), ctypes.byref(opt), ctypes.byref(out)),
               who)
        return cls(out.value)

    @classmethod
    def load(cls, path):
        """Load a .model file (spm_train's, python3-sentencepiece's)."""
        lib = _tl()
        out = ctypes.c_void_p()
        _check(lib.at_tokenizer_load(_cstr(path, "path", "at_tokenizer_load"),
                                     ctypes.byref(out)), "at_tokenizer_load")
        return cls(out.value)

    @classmethod
    def from_bytes(cls, data):
        """Load the bytes of a .model file (a serialized ModelProto)."""
        lib = _tl()
        try:
            data = bytes(memoryview(data))
        except TypeError:
            raise ArgumentError("data must be bytes-like, not %s" % type(data).__name__,
                                "at_tokenizer_load_buffer") from None
        out = ctypes.c_void_p()
        _check(lib.at_tokenizer_load_buffer(data, len(data), ctypes.byref(out)),
               "at_tokenizer_load_buffer")
        return cls(out.value)

    @classmethod
    def from_base64(cls, text):
        """Load the base64 text of to_base64() (what a checkpoint's metadata
        carries under "tokenizer")."""
        lib = _tl()
        data = _utf8(text, "text", "at_tokenizer_load_base64")
        out = ctypes.c_void_p()
        _check(lib.at_tokenizer_load_base64(data, len(data), ctypes.byref(out)),
               "at_tokenizer_load_base64")
        return cls(out.value)

    def _closed(self):
        if not self._finalizer.alive:
            raise StateError("the tokenizer is closed", "libat.text.Tokenizer")

    def close(self):
        """Free the tokenizer now."""
        with self._lock:
            self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _lent(self, name, *args):
        """Calls name(t, *args, &ptr, &len) and returns the bytes lent."""
        lib = _tl()
        p, n = ctypes.c_void_p(), ctypes.c_size_t()
        with self._lock:
            self._closed()
            _check(getattr(lib, name)(self._ptr, *args, ctypes.byref(p), ctypes.byref(n)), name)
            return ctypes.string_at(p.value, n.value) if n.value else b""

    def to_bytes(self):
        """The bytes of the .model file."""
        return self._lent("at_tokenizer_serialize")

    def to_base64(self):
        """The serialized model as base64 text (RFC 4648, padded)."""
        return self._lent("at_tokenizer_to_base64").decode("ascii")

    def save(self, path):
        """Write the .model file (replaced atomically)."""
        lib = _tl()
        with self._lock:
            self._closed()
            _check(lib.at_tokenizer_save(self._ptr, _cstr(path, "path", "at_tokenizer_save")),
                   "at_tokenizer_save")

    def encode(self, text):
        """The ids of a text (a str, or UTF-8 bytes), as a list of int."""
        lib = _tl()
        data = _utf8(text, "text", "at_tokenizer_encode")
        p, n = ctypes.c_void_p(), ctypes.c_size_t()
        with self._lock:
            self._closed()
            _check(lib.at_tokenizer_encode(self._ptr, data, len(data), ctypes.byref(p),
                                           ctypes.byref(n)), "at_tokenizer_encode")
            if not n.value:
                return []
            return list((ctypes.c_int32 * n.value).from_address(p.value))

    def encode_pieces(self, text):
        """The pieces of a text, as a list of str (a word starts with ▁)."""
        lib = _tl()
        data = _utf8(text, "text", "at_tokenizer_encode_pieces")
        p, n = ctypes.POINTER(ctypes.c_char_p)(), ctypes.c_size_t()
        with self._lock:
            self._closed()
            _check(lib.at_tokenizer_encode_pieces(self._ptr, data, len(data), ctypes.byref(p),
                                                  ctypes.byref(n)), "at_tokenizer_encode_pieces")
            return [p[i].decode("utf-8") for i in range(n.value)]

    def decode(self, ids):
        """The text of ids (special ids dropped, <unk> as ⁇). An id outside
        0 .. vocab_size-1 raises RangeError."""
        who = "at_tokenizer_decode"
        if isinstance(ids, (str, bytes)):
            raise ArgumentError("ids must be a sequence of integers, not %s"
                                % type(ids).__name__, who)
        try:
            arr = np.asarray(ids)
        except ValueError as e:   # ragged
            raise ArgumentError("ids must be one sequence of integers (%s)" % e, who) from None
        if arr.ndim != 1:
            raise ArgumentError("ids must be one sequence of integers (1-D), not %d-D"
                                % arr.ndim, who)
        if arr.size and arr.dtype.kind not in "iu":
            raise ArgumentError("ids must be integers, not %s" % arr.dtype, who)
        if arr.size and (arr.min() < _INT32[0] or arr.max() > _INT32[1]):
            bad = arr.min() if arr.min() < _INT32[0] else arr.max()
            raise RangeError("id %d is outside the tokenizer's vocabulary [0, %d)"
                             % (bad, self.vocab_size), who)
        arr = np.ascontiguousarray(arr, dtype=np.int32)
        return self._lent(who, arr.ctypes.data_as(ctypes.c_void_p), arr.size).decode("utf-8")

    @property
    def vocab_size(self):
        """The number of pieces, special ones included (ids 0 .. size-1)."""
        with self._lock:
            self._closed()
            return int(_tl().at_tokenizer_vocab_size(self._ptr))

    def __len__(self):
        return self.vocab_size

    def piece(self, id):
        """The piece of an id (RangeError outside the vocabulary)."""
        who = "at_tokenizer_piece"
        i = _int(id, "id", _INT32, RangeError, who)
        out = ctypes.c_char_p()
        with self._lock:
            self._closed()
            _check(_tl().at_tokenizer_piece(self._ptr, i, ctypes.byref(out)), who)
            return out.value.decode("utf-8")

    def id(self, piece):
        """The id of a piece (unk_id when the vocabulary has no such piece)."""
        who = "at_tokenizer_id"
        data = _utf8(piece, "piece", who)
        out = ctypes.c_int32()
        with self._lock:
            self._closed()
            _check(_tl().at_tokenizer_id(self._ptr, data, len(data), ctypes.byref(out)), who)
            return int(out.value)

    def _special(self, which):
        with self._lock:
            self._closed()
            return int(_tl().at_tokenizer_special_id(self._ptr, which))

    @property
    def pad_id(self):
        """The id of <pad> (-1: none)."""
        return self._special(0)

    @property
    def unk_id(self):
        """The id of <unk> (-1: none)."""
        return self._special(1)

    @property
    def bos_id(self):
        """The id of <s> (-1: none)."""
        return self._special(2)

    @property
    def eos_id(self):
        """The id of </s> (-1: none)."""
        return self._special(3)

    def __repr__(self):
        if not self._finalizer.alive:
            return "<libat.text.Tokenizer closed>"
        return "<libat.text.Tokenizer vocab_size=%d>" % self.vocab_size


# ---------------------------------------------------------------- scores


class BleuScore:
    """A corpus BLEU (at_bleu_score): ``score`` 0..100, ``precisions``
    p_1..p_4 in percent, ``bp``, ``ratio``, ``hyp_len``, ``ref_len``,
    ``counts`` and ``totals`` (matched and hypothesis n-grams per order),
    ``segments``. float(s) is the score; str(s) reads as sacreBLEU's."""

    __slots__ = ("score", "precisions", "bp", "ratio", "hyp_len", "ref_len", "counts",
                 "totals", "segments")

    def __init__(self, c):
        self.score = c.score
        self.precisions = tuple(c.precisions)
        self.bp = c.bp
        self.ratio = c.ratio
        self.hyp_len = int(c.hyp_len)
        self.ref_len = int(c.ref_len)
        self.counts = tuple(int(x) for x in c.counts)
        self.totals = tuple(int(x) for x in c.totals)
        self.segments = int(c.segments)

    def __float__(self):
        return float(self.score)

    def as_dict(self):
        return {k: getattr(self, k) for k in self.__slots__}

    def __str__(self):
        return ("BLEU = %.2f %s (BP = %.3f ratio = %.3f hyp_len = %d ref_len = %d)"
                % (self.score, "/".join("%.1f" % p for p in self.precisions), self.bp,
                   self.ratio, self.hyp_len, self.ref_len))

    def __repr__(self):
        return "<libat.text.BleuScore %s>" % self


class ChrfScore:
    """A corpus chrF (at_chrf_score): ``score`` 0..100, ``precision`` and
    ``recall`` (averaged over the effective orders, 0..100), ``beta``,
    ``char_order``, ``effective_order``, ``segments``."""

    __slots__ = ("score", "precision", "recall", "beta", "char_order", "effective_order",
                 "segments")

    def __init__(self, c):
        self.score = c.score
        self.precision = c.precision
        self.recall = c.recall
        self.beta = c.beta
        self.char_order = int(c.char_order)
        self.effective_order = int(c.effective_order)
        self.segments = int(c.segments)

    def __float__(self):
        return float(self.score)

    def as_dict(self):
        return {k: getattr(self, k) for k in self.__slots__}

    def __str__(self):
        return "chrF%g = %.2f" % (self.beta, self.score)

    def __repr__(self):
        return "<libat.text.ChrfScore %s P=%.2f R=%.2f>" % (self, self.precision, self.recall)


def _ref_streams(refs, n, call):
    """refs as a list of per-segment lists: one reference per hypothesis (a
    list of str), or sacreBLEU's reference streams (a list of lists, each
    with one line per hypothesis)."""
    if isinstance(refs, (str, bytes)):
        raise ArgumentError("refs must be a list of strings (or of reference streams), "
                            "not one %s" % type(refs).__name__, call)
    try:
        refs = list(refs)
    except TypeError:
        raise ArgumentError("refs must be a list, not %s" % type(refs).__name__, call) from None
    if refs and all(isinstance(r, (list, tuple)) for r in refs):
        streams = [_strings(r, "refs[%d]" % k, call) for k, r in enumerate(refs)]
    else:
        streams = [_strings(refs, "refs", call)]
    for k, s in enumerate(streams):
        if len(s) != n:
            raise ArgumentError("%d hypotheses but %d references%s" % (
                n, len(s), "" if len(streams) == 1 else " in stream %d" % k), call)
    return [[s[i] for s in streams] for i in range(n)]


class _Accumulator:
    """Shared by Bleu and Chrf: one at_bleu/at_chrf, used under a lock."""

    _prefix = None
    _score = None
    _cscore = None

    def __init__(self):
        lib = _tl()
        out = ctypes.c_void_p()
        _check(getattr(lib, "at_%s_create" % self._prefix)(ctypes.byref(out)),
               "at_%s_create" % self._prefix)
        self._ptr = out.value
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, getattr(lib, "at_%s_free" % self._prefix),
                                           self._ptr)
        self._finalizer.atexit = False

    def _set(self, key, value):
        who = "at_%s_set" % self._prefix
        with self._lock:
            _check(getattr(_tl(), who)(self._ptr, key, float(value)), who)

    def add(self, hyp, refs):
        """Add one segment: a hypothesis (str) and its reference (a str) or
        references (a list of str)."""
        who = "at_%s_add" % self._prefix
        h = _utf8(hyp, "hyp", who)
        rs = [_utf8(refs, "ref", who)] if isinstance(refs, (str, bytes)) else \
            _strings(refs, "refs", who)
        self._add(h, rs)

    def _add(self, h, rs):
        who = "at_%s_add" % self._prefix
        arr = (ctypes.c_char_p * max(len(rs), 1))(*rs)
        lens = (ctypes.c_size_t * max(len(rs), 1))(*[len(r) for r in rs])
        with self._lock:
            _check(getattr(_tl(), who)(self._ptr, h, len(h), arr, lens, len(rs)), who)

    def result(self):
        """The corpus score of the segments added so far."""
        who = "at_%s_result" % self._prefix
        c = self._cscore()
        c.struct_size = ctypes.sizeof(c)
        with self._lock:
            _check(getattr(_tl(), who)(self._ptr, ctypes.byref(c)), who)
        return self._score(c)

    def reset(self):
        """Forget every segment, keep the settings."""
        who = "at_%s_reset" % self._prefix
        with self._lock:
            _check(getattr(_tl(), who)(self._ptr), who)


class Bleu(_Accumulator):
    """A corpus BLEU accumulator (at_bleu), sacreBLEU's default settings
    unless told: tokenize "13a" or "none"; smooth "exp" (default), "none",
    "floor" or "add-k" with smooth_value; effective_order for sentence
    BLEU. add() segments, then result()."""

    _prefix, _score, _cscore = "bleu", BleuScore, _textcapi.CBleuScore

    def __init__(self, tokenize="13a", smooth="exp", smooth_value=None, effective_order=False):
        super().__init__()
        if tokenize not in _BLEU_TOK:
            raise ArgumentError("unknown BLEU tokenizer %r (one of %s)"
                                % (tokenize, ", ".join(_BLEU_TOK)), "at_bleu_set")
        if smooth not in _SMOOTH:
            raise ArgumentError("unknown smoothing %r (one of %s)"
                                % (smooth, ", ".join(_SMOOTH)), "at_bleu_set")
        self._set(3, _BLEU_TOK[tokenize])
        self._set(1, _SMOOTH[smooth])
        if smooth_value is not None:
            self._set(2, _real(smooth_value, "smooth_value", "at_bleu_set"))
        self._set(4, 1 if effective_order else 0)


class Chrf(_Accumulator):
    """A corpus chrF accumulator (at_chrf): sacreBLEU's chrF2 unless told
    (char_order 6, beta 2, effective order; eps_smoothing for chrF++.py's,
    whitespace to keep spaces in the n-grams)."""

    _prefix, _score, _cscore = "chrf", ChrfScore, _textcapi.CChrfScore

    def __init__(self, char_order=6, beta=2.0, eps_smoothing=False, whitespace=False):
        super().__init__()
        self._set(1, _int(char_order, "char_order", call="at_chrf_set"))
        self._set(2, _real(beta, "beta", "at_chrf_set"))
        self._set(3, 1 if eps_smoothing else 0)
        self._set(4, 1 if whitespace else 0)


def bleu(hyps, refs, **settings):
    """Corpus BLEU of hypotheses against references, as sacreBLEU's
    corpus_bleu(hyps, [refs]) computes it by default. refs: one reference
    per hypothesis (a list of str), or several streams (a list of lists,
    each with one line per hypothesis: sacreBLEU's layout, not NLTK's list
    of references per hypothesis). settings: those of Bleu. Returns a
    BleuScore."""
    h = _strings(hyps, "hyps", "at_bleu_add")
    segs = _ref_streams(refs, len(h), "at_bleu_add")
    acc = Bleu(**settings)
    for x, rs in zip(h, segs):
        acc._add(x, rs)
    return acc.result()


def chrf(hyps, refs, **settings):
    """Corpus chrF (chrF2 by default), refs as for bleu(). Returns a ChrfScore."""
    h = _strings(hyps, "hyps", "at_chrf_add")
    segs = _ref_streams(refs, len(h), "at_chrf_add")
    acc = Chrf(**settings)
    for x, rs in zip(h, segs):
        acc._add(x, rs)
    return acc.result()


def score_files(hyp_path, ref_paths):
    """BLEU and chrF of a file of hypotheses against reference files (one
    segment per line, as sacreBLEU's command line reads them:
    at_text_eval_files). Returns (BleuScore, ChrfScore)."""
    who = "at_text_eval_files"
    lib = _tl()
    h = _cstr(hyp_path, "hyp_path", who)
    rs = _paths(ref_paths, "ref_paths", who)
    b, c = Bleu(), Chrf()
    arr = (ctypes.c_char_p * len(rs))(*rs)
    with b._lock, c._lock:
        _check(lib.at_text_eval_files(h, arr, len(rs), b._ptr, c._ptr), who)
    return b.result(), c.result()


__all__ = ["Tokenizer", "Bleu", "Chrf", "BleuScore", "ChrfScore", "bleu", "chrf", "score_files",
           "available", "library_path", "PAD_ID", "UNK_ID", "BOS_ID", "EOS_ID",
           "META_JOINT", "META_SRC", "META_TGT"]
