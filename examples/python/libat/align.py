"""Word alignments against gold links (the group "align" of include/at_text.h;
docs/alignment.md): how often does a translation model's cross-attention
point at the word that was translated?

    from libat import align
    align.parse_links("0-0 1-2 2?2")          # [Link(src=0, tgt=0, sure=True), ...]
    align.score(["0-0 1-1"], ["0-0 1-0"])     # {"aer": 0.5, "precision": 0.5, ...}
    align.evaluate("model.safetensors", "corpus", split="test")
    # the dict `attn align-eval --model ... --data corpus --json` prints

Links are Pharaoh text: ``i-j`` a sure link, ``i?j`` a possible one, source
word i and target word j from 0 (words: runs between spaces, tabs and
carriage returns). AER = 1 - (|A&S| + |A&P|) / (|A| + |S|), precision
|A&P| / |A|, recall |A&S| / |S|, over target words with a gold link. The
scores, the word maps and the batches are libat_text's (at_align_*); the
model's passes are libat's (Model.forward, rollout, value norms, attention
gradients), run here on the batches the evaluation hands out.
"""

import collections
import ctypes
import functools
import os
import weakref

import numpy as np

from . import _capi
from . import _textcapi as _tc
from . import rollout as _rollout
from .errors import ArgumentError, FormatError
from .model import Model, _cstr
from .text import Tokenizer, _check, _tl, _utf8

__all__ = ["Link", "parse_links", "score", "evaluate", "Evaluation"]

#: One link: source word, target word (from 0), sure (i-j) or possible (i?j).
Link = collections.namedtuple("Link", "src tgt sure")

_METHODS = {"head": 0, "layer": 1, "average": 2, "rollout": 3, "value_norm": 4,
            "attribution": 5}
_IN_ATTENTION, _IN_ROLLOUT, _IN_VALUE_NORM, _IN_GRADIENT = 0, 1, 2, 3
_INT32_MAX = 2 ** 31 - 1
_INT64_MAX = 2 ** 63 - 1


def _words(text, call):
    b = _utf8(text, "text", call)
    n = ctypes.c_int32()
    _check(_tl().at_align_words(b, len(b), ctypes.byref(n)), "at_align_words")
    return n.value


def parse_links(line, src_words=None, tgt_words=None):
    """The links of one line of Pharaoh text, in its order. Without word
    counts any index is accepted; with them (ints, or the sentences as str)
    a link beyond the words raises FormatError, as a malformed token does."""
    who = "at_align_parse"
    b = _utf8(line, "line", who)
    sw = _INT32_MAX if src_words is None else _count(src_words, "src_words", who)
    tw = _INT32_MAX if tgt_words is None else _count(tgt_words, "tgt_words", who)
    lib, n = _tl(), ctypes.c_size_t()
    _check(lib.at_align_parse(b, len(b), sw, tw, None, 0, ctypes.byref(n)), who)
    out = (_tc.CAlignLink * max(n.value, 1))()
    _check(lib.at_align_parse(b, len(b), sw, tw, out, n.value, ctypes.byref(n)), who)
    return [Link(int(x.src), int(x.tgt), bool(x.sure)) for x in out[:n.value]]


def _count(words, what, call):
    if isinstance(words, (str, bytes)):
        return _words(words, call)
    if isinstance(words, bool) or not isinstance(words, (int, np.integer)):
        raise ArgumentError("%s must be a word count or the sentence, not %s"
                            % (what, type(words).__name__), call)
    if not 0 <= int(words) <= _INT32_MAX:
        raise ArgumentError("%s must be 0 .. %d, not %d" % (what, _INT32_MAX, words), call)
    return int(words)


def _links(value, what, call):
    """A line of links: Pharaoh text, or a sequence of (src, tgt) pairs (sure)
    or (src, tgt, sure) triples."""
    if isinstance(value, (str, bytes)):
        return parse_links(value)
    out = []
    try:
        items = list(value)
    except TypeError:
        raise ArgumentError("%s must be Pharaoh text or a list of links, not %s"
                            % (what, type(value).__name__), call) from None
    for k, link in enumerate(items):
        try:
            t = tuple(link)
        except TypeError:
            t = ()
        if len(t) not in (2, 3) or not all(isinstance(x, (int, np.integer)) and
                                           not isinstance(x, bool) for x in t[:2]):
            raise ArgumentError("%s[%d] must be (src, tgt) or (src, tgt, sure), not %r"
                                % (what, k, link), call)
        if not (0 <= t[0] <= _INT32_MAX and 0 <= t[1] <= _INT32_MAX):
            raise ArgumentError("%s[%d]: word numbers are 0 .. %d" % (what, k, _INT32_MAX),
                                call)
        out.append(Link(int(t[0]), int(t[1]), bool(t[2]) if len(t) == 3 else True))
    return out


def _c_links(links):
    arr = (_tc.CAlignLink * max(len(links), 1))()
    for k, l in enumerate(links):
        arr[k].src, arr[k].tgt, arr[k].sure = l.src, l.tgt, int(l.sure)
    return arr


def _rates(c):
    """The dict of one method's counts: aer, precision, recall and the counts."""
    aer, p, r = ctypes.c_double(), ctypes.c_double(), ctypes.c_double()
    _check(_tl().at_align_rates(ctypes.byref(c), ctypes.byref(aer), ctypes.byref(p),
                                ctypes.byref(r)), "at_align_rates")
    return {"aer": aer.value, "precision": p.value, "recall": r.value}


def _counts_dict(c):
    d = _rates(c)
    d.update(hyp=int(c.hyp), sure=int(c.sure), hit_sure=int(c.hit_sure),
             hit_possible=int(c.hit_possible))
    return d


def score(hyp, gold):
    """AER, precision and recall of proposed links against gold links.

    hyp and gold are one sentence's links (Pharaoh text, or a list of
    (src, tgt[, sure]) tuples) or lists of such lines, one per sentence, of
    the same length; scores are summed over the sentences. Returns {"aer",
    "precision", "recall", "hyp": |A|, "sure": |S|, "hit_sure": |A&S|,
    "hit_possible": |A&P|}."""
    who = "at_align_score"
    one = isinstance(hyp, (str, bytes)) or _is_links(hyp)
    hyps, golds = ([hyp], [gold]) if one else (list(hyp), list(gold))
    if len(hyps) != len(golds):
        raise ArgumentError("%d lines of proposed links, %d of gold links"
                            % (len(hyps), len(golds)), who)
    c = _tc.CAlignCounts()
    lib = _tl()
    for k, (h, g) in enumerate(zip(hyps, golds)):
        hl = _links(h, "hyp[%d]" % k, who)
        gl = _links(g, "gold[%d]" % k, who)
        sw = max([l.src for l in hl + gl], default=-1) + 1
        tw = max([l.tgt for l in hl + gl], default=-1) + 1
        _check(lib.at_align_score(ctypes.byref(c), _c_links(gl), len(gl), _c_links(hl),
                                  len(hl), sw, tw), who)
    return _counts_dict(c)


def _is_links(value):
    """Whether value is one line given as tuples (not a list of lines)."""
    if not isinstance(value, (list, tuple)) or not value:
        return False
    first = value[0]
    return isinstance(first, (tuple, list)) and len(first) in (2, 3) and all(
        isinstance(x, (int, np.integer)) for x in first)


def _cview(arr):
    """An at_view over a float32 numpy array (kept alive by the caller)."""
    cv = _capi.CView()
    cv.data = arr.ctypes.data
    cv.ndim = arr.ndim
    for i in range(arr.ndim):
        cv.shape[i] = arr.shape[i]
        cv.stride[i] = arr.strides[i] // 4
    return cv


class Evaluation:
    """An at_align_eval: line pairs with gold links in, the model's maps of
    each batch back in, counts per head, per layer, for the mean of all,
    rollout, value norms and gradient x attention out. Counts are sums over
    lines: merge() adds another evaluation's (of parts of a corpus), sums()
    and add_sums() carry them as one int64 array (for an MPI sum)."""

    def __init__(self, src_tokenizer, tgt_tokenizer, layers, heads, max_len):
        for t in (src_tokenizer, tgt_tokenizer):
            if not isinstance(t, Tokenizer):
                raise ArgumentError("the tokenizers must be libat.text.Tokenizer, not %s"
                                    % type(t).__name__, "at_align_eval_create")
        lib = _tl()
        # the tokenizers are borrowed by the C object: keep them alive
        self._toks = (src_tokenizer, tgt_tokenizer)
        p = ctypes.c_void_p()
        _check(lib.at_align_eval_create(ctypes.byref(p), src_tokenizer._ptr, tgt_tokenizer._ptr,
                                        int(layers), int(heads), int(max_len)),
               "at_align_eval_create")
        self._ptr = p.value
        self._finalizer = weakref.finalize(self, lib.at_align_eval_free, p.value)
        self._finalizer.atexit = False
        self.layers, self.heads = int(layers), int(heads)

    def close(self):
        """Free the evaluation now."""
        self._finalizer()
        self._ptr = None

    def _tokenizers_open(self):
        """The C object encodes with the tokenizers: refuse closed ones."""
        for t in self._toks:
            t._closed()

    def add(self, src, tgt, links):
        """One line pair and its gold links (Pharaoh text)."""
        self._tokenizers_open()
        s, t, l = (_utf8(src, "src"), _utf8(tgt, "tgt"), _utf8(links, "links"))
        _check(_tl().at_align_eval_add(self._ptr, s, len(s), t, len(t), l, len(l)),
               "at_align_eval_add")

    def add_corpus(self, data_dir, split="test", limit=None):
        """The line pairs of data_dir/{split}.src, .tgt and .align."""
        who = "at_align_eval_add_corpus"
        n = _limit(limit, who)
        self._tokenizers_open()
        _check(_tl().at_align_eval_add_corpus(self._ptr, _cstr(data_dir, "data_dir", who),
                                              _cstr(split, "split", who), n), who)

    def next_batch(self, rows=16):
        """The next padded batch: (src (B, S), tgt (B, T), ys (B, T + 1), lines
        (B,)) as int32/int64 copies, or None when no line waits."""
        b = _tc.CAlignBatch()
        b.struct_size = ctypes.sizeof(b)
        _check(_tl().at_align_eval_next(self._ptr, int(rows), ctypes.byref(b)),
               "at_align_eval_next")
        if b.rows == 0:
            return None
        B, S, T = b.rows, b.src_len, b.tgt_len

        def arr(ptr, n, ctype, shape):
            return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctype)),
                                         (n,)).copy().reshape(shape)
        return (arr(b.src, B * S, ctypes.c_int32, (B, S)),
                arr(b.tgt, B * T, ctypes.c_int32, (B, T)),
                arr(b.ys, B * (T + 1), ctypes.c_int32, (B, T + 1)),
                arr(b.lines, B, ctypes.c_int64, (B,)))

    def feed(self, what, layer, values, attention=None):
        """Gives the batch a map: what is "attention", "rollout",
        "value_norm" or "gradient" (with the attention it is of), values a
        float32 array (B, h, T, S) ((B, T, S) for the rollout)."""
        code = {"attention": _IN_ATTENTION, "rollout": _IN_ROLLOUT,
                "value_norm": _IN_VALUE_NORM, "gradient": _IN_GRADIENT}.get(what)
        if code is None:
            raise ArgumentError("unknown map %r" % (what,), "at_align_eval_feed")
        v = np.asarray(values, dtype=np.float32)
        a = None if attention is None else np.asarray(attention, dtype=np.float32)
        cv, ca = _cview(v), None if a is None else _cview(a)
        _check(_tl().at_align_eval_feed(self._ptr, code, int(layer), ctypes.byref(cv),
                                        None if ca is None else ctypes.byref(ca)),
               "at_align_eval_feed")

    def run(self, model, batch=16):
        """Feeds every waiting line through model (a libat.Model): the pass of
        `attn align-eval` (cross-attention, rollout and value norms of a
        teacher-forced pass, then the attention gradients of its mean NLL)."""
        L = self.layers
        while True:
            b = self.next_batch(batch)
            if b is None:
                return
            src, tgt, ys, _ = b
            model.forward(src, tgt, pad=0)
            for l in range(L):
                self.feed("attention", l, model.attention("cross", l).array)
            self.feed("rollout", 0, _rollout.rollout(model, "cross"))
            for l in range(L):
                self.feed("value_norm", l, _rollout.value_norm(model, "cross", l))
            _, grads = model.attention_gradients(src, ys, pad=0)
            for l in range(L):
                self.feed("gradient", l, grads["cross"][l].array,
                          model.attention("cross", l).array)

    def counts(self, method, layer=0, head=0):
        """{"aer", "precision", "recall", "hyp", "sure", "hit_sure",
        "hit_possible"} of one method: "head" (layer, head from 0), "layer",
        "average", "rollout", "value_norm", "attribution"."""
        m = _METHODS.get(method)
        if m is None:
            raise ArgumentError("unknown method %r (%s)" % (method, ", ".join(_METHODS)),
                                "at_align_eval_counts")
        c = _tc.CAlignCounts()
        _check(_tl().at_align_eval_counts(self._ptr, m, int(layer), int(head), ctypes.byref(c)),
               "at_align_eval_counts")
        return _counts_dict(c)

    def info(self):
        """{"lines", "truncated", "pieces", "no_links", "pending", "gold",
        "layers", "heads", "best_layer", "best_head" (from 0), "best_aer"}."""
        i = _tc.CAlignEvalInfo()
        i.struct_size = ctypes.sizeof(i)
        _check(_tl().at_align_eval_result(self._ptr, ctypes.byref(i)), "at_align_eval_result")
        return {k: getattr(i, k) for k, _ in _tc.CAlignEvalInfo._fields_ if k != "struct_size"}

    def merge(self, other):
        """Adds another evaluation's counts (same layers and heads)."""
        _check(_tl().at_align_eval_merge(self._ptr, other._ptr), "at_align_eval_merge")

    def sums(self):
        """Every count as one int64 array (at_align_eval_sums)."""
        lib, n = _tl(), ctypes.c_size_t()
        _check(lib.at_align_eval_sums(self._ptr, None, 0, ctypes.byref(n)), "at_align_eval_sums")
        out = np.zeros(n.value, dtype=np.int64)
        _check(lib.at_align_eval_sums(self._ptr, out.ctypes.data_as(ctypes.c_void_p), n.value,
                                      ctypes.byref(n)), "at_align_eval_sums")
        return out

    def add_sums(self, sums):
        """Adds an array of sums() (of an evaluation of the same shape)."""
        a = np.ascontiguousarray(sums, dtype=np.int64)
        _check(_tl().at_align_eval_add_sums(self._ptr, a.ctypes.data_as(ctypes.c_void_p),
                                            a.size), "at_align_eval_add_sums")

    def as_dict(self):
        """The object `attn align-eval --json` prints."""
        i = self.info()
        rates = functools.partial(_rates_of, self)
        return {
            "lines": i["lines"],
            "skipped": {"truncated": i["truncated"], "pieces": i["pieces"],
                        "no_links": i["no_links"]},
            "gold_links": i["gold"],
            "heads": {"%d:%d" % (l + 1, h + 1): rates("head", l, h)
                      for l in range(self.layers) for h in range(self.heads)},
            "layers": {"%d" % (l + 1): rates("layer", l) for l in range(self.layers)},
            "average": rates("average"),
            "rollout": rates("rollout"),
            "value_norm": rates("value_norm"),
            "attribution": rates("attribution"),
            "best": {"layer": i["best_layer"] + 1, "head": i["best_head"] + 1,
                     "aer": i["best_aer"]},
        }


def _rates_of(e, method, layer=0, head=0):
    d = e.counts(method, layer, head)
    return {"aer": d["aer"], "precision": d["precision"], "recall": d["recall"]}


def _limit(limit, who):
    if limit is None:
        return 0
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ArgumentError("limit must be a whole number >= 1, not %r" % (limit,), who)
    return min(int(limit), _INT64_MAX)


def evaluate(model, data_dir, split="test", limit=None, batch=16, tokenizer=None,
             tgt_tokenizer=None):
    """`attn align-eval --model M --data DIR --split S --json` as a dict.

    model is a checkpoint path, a libat.Model or a libat.Translator; the
    tokenizers come from the model's metadata unless given (tokenizer: the
    joint or source one, tgt_tokenizer the target's). limit: only the first
    N lines; batch: line pairs per pass (the scores do not depend on it)."""
    from .translate import Translator
    if isinstance(model, (str, bytes, os.PathLike)):
        model = Translator.load(model) if tokenizer is None else Model.load(model)
    if isinstance(model, Model):
        model = Translator(model, tokenizer, tgt_tokenizer)
    elif not isinstance(model, Translator):
        raise ArgumentError("model must be a path, a libat.Model or a libat.Translator, not %s"
                            % type(model).__name__, "evaluate")
    m = model.model
    e = Evaluation(model.src_tokenizer, model.tgt_tokenizer, m.get("layers"), m.get("heads"),
                   model.max_len)
    e.add_corpus(data_dir, split, limit)
    e.run(m, batch)
    d = e.as_dict()
    if d["lines"] == 0:
        s = d["skipped"]
        raise FormatError("no line could be scored (%d without gold links, %d cut, %d whose "
                            "pieces do not make up their words)"
                            % (s["no_links"], s["truncated"], s["pieces"]), "evaluate")
    return d
