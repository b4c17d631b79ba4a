"""Translation models: a Model whose metadata carries its SentencePiece
tokenizer(s), read and run by the conventions of `attn translate`
(src/attn/attn.h, "translation models"):

- the tokenizer is stored as base64 of the serialized SentencePiece model
  under the metadata key "tokenizer" (one vocabulary for both sides), or
  under "tokenizer.src" and "tokenizer.tgt"; its special ids are pad 0,
  <s> 2, </s> 3 (as Tokenizer.train makes them) and its vocabulary size is
  the model's (src_vocab, tgt_vocab);
- a sentence is framed as <s> pieces </s> (at most the model's max_len ids:
  a longer one keeps its first max_len - 2 pieces, with a warning); batches
  are padded with 0;
- decoding starts at <s> (2) and ends at </s> (3); a sentence of |x| framed
  ids gets at most floor(a + b |x|) ids, the start included (a 10, b 2 by
  default), greedy (beam=1, at most max_len ids) or beam search;
- sentences are sorted by length (stably) and decoded in batches of 32; a
  translation does not depend on the batch it was decoded in.

    t = libat.Translator.load("model.safetensors")
    t.translate(["En el principio creó Dios los cielos y la tierra."])
    one = t.translate_one("En el principio")   # with the attention views
    one.attention("cross", 0)                   # (1, head, target, source)
    one.chart("cross.svg")                      # pieces on the axes
"""

import collections
import math
import warnings

import numpy as np

from . import text as _text
from .errors import ArgumentError, FormatError
from .model import Model, _int, _real

PAD_ID, BOS_ID, EOS_ID = _text.PAD_ID, _text.BOS_ID, _text.EOS_ID


class TruncationWarning(UserWarning):
    """A sentence was longer than the model's positions and was cut."""


#: What Translator.evaluate() returns: ``bleu`` (a text.BleuScore), ``chrf``
#: (a text.ChrfScore) and ``hypotheses`` (the translations, in order).
Evaluation = collections.namedtuple("Evaluation", "bleu chrf hypotheses")


class Translation:
    """One translated sentence and the model whose views show it.

    ``text`` the translation; ``source`` the input; ``src_ids`` the framed
    source ids (<s> ... </s>: the key axis of cross and encoder attention);
    ``ys`` the decoded ids (<s> first, </s> last unless the length limit
    came first); ``src_pieces`` the pieces of src_ids; ``tgt_pieces`` the
    pieces of ys[:-1], the decoder's input (the query axis of cross and
    decoder attention: row t predicts ys[t + 1]); ``out_pieces`` those of
    ys[1:]; ``score`` log P / lp of the hypothesis (beam search; None for
    greedy); ``truncated`` whether the source was cut; ``model``.

    The model's views show this sentence as batch row 0 until its next pass
    (attention() is model.attention(); they end like any view)."""

    __slots__ = ("text", "source", "src_ids", "ys", "src_pieces", "tgt_pieces", "out_pieces",
                 "score", "truncated", "model")

    def attention(self, kind, layer):
        """model.attention(kind, layer): a View (1, head, query, key)."""
        return self.model.attention(kind, layer)

    def chart(self, path, chart="heatmap", kind="cross", layer=None, head=0, **kw):
        """model.chart() with the pieces as axis labels (layer None: the
        last layer)."""
        if layer is None:
            layer = self.model.get("layers") - 1
        kw.setdefault("caption", "%s → %s" % (self.source, self.text))
        return self.model.chart(path, chart, kind, layer, head, src_labels=self.src_pieces,
                                tgt_labels=self.tgt_pieces, **kw)

    def __repr__(self):
        return "<libat.Translation %r -> %r>" % (self.source, self.text)


def _sentences(texts, what):
    if isinstance(texts, (str, bytes)):
        raise ArgumentError("%s must be a list of strings, not one %s"
                            % (what, type(texts).__name__))
    try:
        texts = list(texts)
    except TypeError:
        raise ArgumentError("%s must be a list of strings, not %s"
                            % (what, type(texts).__name__)) from None
    return texts


class Translator:
    """A translation model with its tokenizers.

    ``Translator(model)`` reads the tokenizers from the model's metadata;
    ``Translator(model, tokenizer)`` (joint) or ``Translator(model, src,
    tgt)`` uses the ones given. Translator.load(path) opens a checkpoint.
    Translator.attach(model, tokenizer[, tgt]) stores tokenizers in a
    model's metadata (save() then writes them into the checkpoint).

    A tokenizer that does not fit the model — no tokenizer, only one side,
    special ids other than pad 0, <s> 2, </s> 3, a vocabulary size other
    than the model's — raises FormatError when read from the metadata,
    ArgumentError when given."""

    def __init__(self, model, tokenizer=None, tgt_tokenizer=None):
        if not isinstance(model, Model):
            raise ArgumentError("model must be a libat.Model, not %s (Translator.load reads "
                                "a file)" % type(model).__name__)
        self.model = model
        if tokenizer is None:
            if tgt_tokenizer is not None:
                raise ArgumentError("a target tokenizer without a source one")
            self.src_tokenizer, self.tgt_tokenizer = _from_metadata(model)
        else:
            src, tgt = tokenizer, tokenizer if tgt_tokenizer is None else tgt_tokenizer
            _check_fit(model, src, tgt, ArgumentError, "the given")
            self.src_tokenizer, self.tgt_tokenizer = src, tgt
        #: the positions the model has: the longest framed source
        self.max_len = int(model.get("max_len"))
        if self.max_len < 2:
            raise FormatError("the model has %d positions; a sentence needs at least 2 (<s> "
                              "and </s>)" % self.max_len)

    @classmethod
    def load(cls, path, **hint):
        """Open a checkpoint and the tokenizer(s) in its metadata."""
        m = Model.load(path, **hint)
        try:
            return cls(m)
        except FormatError as e:
            raise type(e)("%s: %s" % (path, e.message), e.call) from None

    @staticmethod
    def attach(model, tokenizer, tgt_tokenizer=None):
        """Store tokenizers in the model's metadata: one joint entry
        ("tokenizer") when tgt_tokenizer is None or the same object, else
        "tokenizer.src" and "tokenizer.tgt"; an entry of the other layout
        is removed. Checked as the constructor checks them."""
        src, tgt = tokenizer, tokenizer if tgt_tokenizer is None else tgt_tokenizer
        _check_fit(model, src, tgt, ArgumentError, "the given")
        meta = model.metadata
        if src is tgt:
            meta[_text.META_JOINT] = src.to_base64()
            for k in (_text.META_SRC, _text.META_TGT):
                meta.pop(k, None)
        else:
            meta[_text.META_SRC] = src.to_base64()
            meta[_text.META_TGT] = tgt.to_base64()
            meta.pop(_text.META_JOINT, None)

    @property
    def joint(self):
        """Whether source and target share one tokenizer."""
        return self.src_tokenizer is self.tgt_tokenizer

    def close(self):
        self.model.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- text to ids

    def tokenize(self, text):
        """The source pieces of a text (without <s> and </s>)."""
        return self.src_tokenizer.encode_pieces(text)

    def _frame(self, text, what):
        """(framed ids as int32, truncated)."""
        try:
            ids = self.src_tokenizer.encode(text)
        except FormatError as e:
            raise type(e)("%s: %s" % (what, e.message), e.call) from None
        except ArgumentError as e:
            raise type(e)("%s: %s" % (what, e.message), e.call) from None
        cut = len(ids) + 2 > self.max_len
        if cut:
            ids = ids[:self.max_len - 2]
        return np.array([BOS_ID] + ids + [EOS_ID], np.int32), cut

    def encode(self, text):
        """The source ids as the model reads them: <s> pieces </s>, cut to
        the model's positions (with a TruncationWarning)."""
        ids, cut = self._frame(text, "the text")
        if cut:
            self._warn(1, 1, stacklevel=3)
        return ids

    def _warn(self, cut, first, stacklevel):
        warnings.warn("%d sentence%s longer than the model's %d positions, cut to %d pieces "
                      "between <s> and </s> (the first: sentence %d)"
                      % (cut, " is" if cut == 1 else "s are", self.max_len, self.max_len - 2,
                         first), TruncationWarning, stacklevel=stacklevel)

    # -- decoding

    def _row_limit(self, n, a, b):
        """The most ids greedy decoding gives a source of n framed ids: as
        nmt_row_limit, floor(a + b n) within [2, max_len]."""
        v = math.floor(a + b * n)
        return int(min(max(v, 2), self.max_len))

    @staticmethod
    def _options(beam, alpha, batch, a, b):
        beam = _int(beam, "beam")
        if not 1 <= beam <= 256:
            raise ArgumentError("the beam must be 1 (greedy) .. 256; got %d" % beam)
        alpha = _real(alpha, "alpha")
        if not (math.isfinite(alpha) and alpha >= 0):
            raise ArgumentError("the length penalty alpha must be finite and 0 or more; got %r"
                                % alpha)
        a, b = _real(a, "max_len_a"), _real(b, "max_len_b")
        if not (math.isfinite(a) and math.isfinite(b) and b >= 0):
            raise ArgumentError("the longest output a + b * (source ids) needs a finite a and "
                                "b >= 0; got a %r, b %r" % (a, b))
        batch = _int(batch, "batch")
        if batch < 1:
            raise ArgumentError("the batch must hold at least 1 sentence; got %d" % batch)
        return beam, alpha, batch, a, b

    def _decode(self, srcs, beam, alpha, a, b):
        """Decodes framed sources (a list of int32 arrays) as one batch:
        returns (list of ys arrays, scores or None)."""
        B = len(srcs)
        S = max(len(s) for s in srcs)
        x = np.full((B, S), PAD_ID, np.int32)
        for i, s in enumerate(srcs):
            x[i, :len(s)] = s
        m = self.model
        if beam == 1:
            max_len = self._row_limit(S, a, b)
            out = m.greedy_decode(x, max_len, start=BOS_ID, pad=PAD_ID, end=EOS_ID)
            n = out.shape[1]
            ys = []
            for i, s in enumerate(srcs):
                lim = min(self._row_limit(len(s), a, b), n)
                row = out[i]
                k = 1
                while k < lim and row[k] != EOS_ID:
                    k += 1
                ys.append(row[:k + 1 if k < lim else lim].copy())
            return ys, None
        r = m.beam_decode(x, beam=beam, alpha=alpha, max_len_a=a, max_len_b=b, start=BOS_ID,
                          end=EOS_ID, pad=PAD_ID)
        return [r.ids[i, :r.lengths[i]].copy() for i in range(B)], \
            [float(v) for v in r.scores]

    def _detok(self, ys):
        k = 1
        while k < len(ys) and ys[k] != EOS_ID:
            k += 1
        return self.tgt_tokenizer.decode(ys[1:k])

    def translate_ids(self, texts, beam=4, alpha=0.6, batch=32, max_len_a=10, max_len_b=2):
        """translate() without detokenizing: a list of (src_ids, ys), the
        framed source and the decoded ids of each sentence, in order."""
        return self._run(texts, beam, alpha, batch, max_len_a, max_len_b, 4)

    def _run(self, texts, beam, alpha, batch, max_len_a, max_len_b, stacklevel):
        texts = _sentences(texts, "texts")
        beam, alpha, batch, a, b = self._options(beam, alpha, batch, max_len_a, max_len_b)
        srcs, cut, first = [], 0, None
        for i, t in enumerate(texts):
            ids, tr = self._frame(t, "sentence %d" % (i + 1))
            srcs.append(ids)
            if tr:
                cut += 1
                first = i + 1 if first is None else first
        if cut:
            self._warn(cut, first, stacklevel=stacklevel)
        order = sorted(range(len(srcs)), key=lambda i: len(srcs[i]))   # stable
        ys = [None] * len(srcs)
        with self.model.exclusive():
            for at in range(0, len(order), batch):
                part = order[at:at + batch]
                got, _ = self._decode([srcs[i] for i in part], beam, alpha, a, b)
                for i, y in zip(part, got):
                    ys[i] = y
        return list(zip(srcs, ys))

    def translate(self, texts, beam=4, alpha=0.6, batch=32, max_len_a=10, max_len_b=2):
        """Translate sentences (a list of str, or one str): the detokenized
        translations, in order (one str for one str). beam 1 is greedy
        decoding; alpha is GNMT's length penalty (beam only); a sentence of
        |x| framed ids gets at most max_len_a + max_len_b |x| ids."""
        one = isinstance(texts, (str, bytes))
        pairs = self._run([texts] if one else texts, beam, alpha, batch, max_len_a, max_len_b, 4)
        out = [self._detok(ys) for _, ys in pairs]
        return out[0] if one else out

    def translate_one(self, text, beam=4, alpha=0.6, max_len_a=10, max_len_b=2):
        """Translate one sentence alone and keep its attention: a
        Translation, whose model's views (batch row 0) show it until the
        model's next pass."""
        beam, alpha, _, a, b = self._options(beam, alpha, 1, max_len_a, max_len_b)
        src, cut = self._frame(text, "the text")
        if cut:
            self._warn(1, 1, stacklevel=3)
        ys, scores = self._decode([src], beam, alpha, a, b)
        t = Translation()
        t.source = text if isinstance(text, str) else bytes(text).decode("utf-8", "replace")
        t.src_ids, t.ys = src, ys[0]
        t.text = self._detok(t.ys)
        st, tt = self.src_tokenizer, self.tgt_tokenizer
        t.src_pieces = [st.piece(int(i)) for i in src]
        t.tgt_pieces = [tt.piece(int(i)) for i in t.ys[:-1]]
        t.out_pieces = [tt.piece(int(i)) for i in t.ys[1:]]
        t.score = None if scores is None else scores[0]
        t.truncated = cut
        t.model = self.model
        return t

    def evaluate(self, src_lines, ref_lines, beam=4, alpha=0.6, batch=32, max_len_a=10,
                 max_len_b=2):
        """Translate src_lines and score them against ref_lines (one
        reference per line): an Evaluation (bleu, chrf, hypotheses), BLEU
        and chrF2 as sacreBLEU's defaults compute them."""
        src_lines = _sentences(src_lines, "src_lines")
        ref_lines = _sentences(ref_lines, "ref_lines")
        if len(src_lines) != len(ref_lines):
            raise ArgumentError("%d source lines but %d references"
                                % (len(src_lines), len(ref_lines)))
        if not src_lines:
            raise ArgumentError("no sentence to evaluate")
        pairs = self._run(src_lines, beam, alpha, batch, max_len_a, max_len_b, 4)
        hyps = [self._detok(ys) for _, ys in pairs]
        return Evaluation(_text.bleu(hyps, ref_lines), _text.chrf(hyps, ref_lines), hyps)

    def __repr__(self):
        return "<libat.Translator %s vocab %d/%d max_len %d>" % (
            "joint" if self.joint else "separate", self.src_tokenizer.vocab_size,
            self.tgt_tokenizer.vocab_size, self.max_len)


def _from_metadata(model):
    meta = model.metadata
    joint, src, tgt = (meta.get(k) for k in (_text.META_JOINT, _text.META_SRC, _text.META_TGT))

    def load(key, value):
        try:
            return _text.Tokenizer.from_base64(value)
        except FormatError as e:
            raise FormatError("its tokenizer (%r in the metadata) cannot be read: %s"
                              % (key, e.message), e.call) from None

    if joint is not None:
        s = t = load(_text.META_JOINT, joint)
    elif src is not None and tgt is not None:
        s, t = load(_text.META_SRC, src), load(_text.META_TGT, tgt)
    elif src is not None or tgt is not None:
        have, lack = ((_text.META_SRC, _text.META_TGT) if src is not None else
                      (_text.META_TGT, _text.META_SRC))
        raise FormatError("the model has a tokenizer for one side (%r) but none for the "
                          "other (%r)" % (have, lack))
    else:
        raise FormatError("the model has no tokenizer (no %r in its metadata), so it cannot "
                          "read text; attach one with Translator.attach(model, tokenizer)"
                          % _text.META_JOINT)
    _check_fit(model, s, t, FormatError, "its")
    return s, t


def _check_fit(model, src, tgt, error, whose):
    """The tokenizers fit the model: special ids pad 0, <s> 2, </s> 3 and
    the vocabulary sizes of the model's two sides (as nmt.c checks them)."""
    for name, tok in (("tokenizer", src), ("tgt_tokenizer", tgt)):
        if not isinstance(tok, _text.Tokenizer):
            raise ArgumentError("%s must be a libat.text.Tokenizer, not %s"
                                % (name, type(tok).__name__))
    joint = src is tgt
    sides = [("joint" if joint else "source", src, "src_vocab", "source"),
             ("joint" if joint else "target", tgt, "tgt_vocab", "target")]
    for side, tok, _, _ in sides[:1] if joint else sides:
        ids = (tok.pad_id, tok.bos_id, tok.eos_id)
        if ids != (PAD_ID, BOS_ID, EOS_ID):
            raise error("%s %s tokenizer has pad %d, <s> %d, </s> %d; a translation model "
                        "needs pad %d, <s> %d, </s> %d (as Tokenizer.train makes them)"
                        % ((whose, side) + ids + (PAD_ID, BOS_ID, EOS_ID)))
    for side, tok, key, which in sides:
        tv, mv = tok.vocab_size, int(model.get(key))
        if tv != mv:
            raise error("%s %s tokenizer has %d pieces but the model's %s vocabulary has %d "
                        "ids; they must be the same" % (whose, side, tv, which, mv))
