"""libat.Translator on a tiny model with its tokenizer in the metadata: the
conventions of attn.h's translation models (framing, start and end ids,
length limits, sorting and batching, truncation), checked against the same
steps done by hand with python3-sentencepiece and Model; the attention of a
translated sentence; evaluation; bad input; and, when the CLI has it, the
same translations as `attn translate`."""

import base64
import math
import os
import subprocess
import tempfile
import unittest
import warnings

import numpy as np

from support import libat
from textsupport import TextDir, need_spm, spm, tiny_translation_model

text = libat.text


def limit(n, a=10, b=2, max_len=40):
    return min(max(math.floor(a + b * n), 2), max_len)


class Translator(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.data = TextDir()
        cls.tok = text.Tokenizer.train([cls.data.es, cls.data.en], vocab_size=120)
        cls.model = tiny_translation_model(cls.tok)
        cls.path = cls.data.path("nmt.safetensors")
        cls.model.save(cls.path)
        cls.t = libat.Translator.load(cls.path)
        # sentences of different lengths, out of length order
        cls.src = [p[0] for p in cls.data.pairs[:11]] + ["", "el"]
        cls.ref = [p[1] for p in cls.data.pairs[:11]] + ["", "the"]

    @classmethod
    def tearDownClass(cls):
        cls.data.close()

    def test_checkpoint_carries_the_tokenizer(self):
        md = libat.Model.load(self.path).metadata
        self.assertEqual(md[text.META_JOINT], self.tok.to_base64())
        self.assertNotIn(text.META_SRC, md)
        self.assertTrue(self.t.joint)
        self.assertEqual(self.t.src_tokenizer.to_bytes(), self.tok.to_bytes())
        self.assertEqual(self.t.max_len, 40)
        self.assertIn("joint", repr(self.t))

    def test_framing(self):
        t = self.t
        for s in self.src:
            ids = t.encode(s)
            self.assertEqual(ids.dtype, np.int32)
            self.assertEqual(list(ids), [2] + self.tok.encode(s) + [3])
            self.assertEqual(t.tokenize(s), self.tok.encode_pieces(s))

    def _by_hand(self, s, beam, alpha=0.6):
        """One sentence translated with Model alone (batch of one)."""
        m = self.t.model
        x = np.array([[2] + self.tok.encode(s) + [3]], np.int32)
        if beam == 1:
            ys = m.greedy_decode(x, limit(x.shape[1]), start=2, pad=0, end=3)[0]
        else:
            r = m.beam_decode(x, beam=beam, alpha=alpha, start=2, end=3, pad=0)
            ys = r.ids[0, :r.lengths[0]]
        ys = list(ys)
        k = ys.index(3) if 3 in ys else len(ys)
        return ys[:k + 1], self.tok.decode(ys[1:k])

    def test_translate_greedy_and_beam(self):
        t = self.t
        for beam in (1, 4):
            got = t.translate(self.src, beam=beam)
            self.assertEqual(len(got), len(self.src))
            self.assertTrue(all(isinstance(g, str) for g in got))
            want = [self._by_hand(s, beam)[1] for s in self.src]
            self.assertEqual(got, want, "beam %d" % beam)
            # The batch a sentence is decoded in does not change it.
            for batch in (1, 3, 32):
                self.assertEqual(t.translate(self.src, beam=beam, batch=batch), got)
            self.assertEqual(t.translate(self.src[3], beam=beam), got[3])   # one str
        self.assertEqual(t.translate([]), [])

    def test_translate_ids(self):
        t = self.t
        for beam in (1, 4):
            pairs = t.translate_ids(self.src, beam=beam)
            for s, (x, ys) in zip(self.src, pairs):
                self.assertEqual(list(x), list(t.encode(s)))
                self.assertEqual(ys[0], 2)
                ended = 3 in list(ys)
                self.assertTrue(not ended or list(ys).index(3) == len(ys) - 1)
                if beam == 1:
                    self.assertLessEqual(len(ys), limit(len(x)))
                    self.assertTrue(ended or len(ys) == limit(len(x)))
                    self.assertEqual(list(ys), self._by_hand(s, 1)[0])
                else:
                    self.assertLessEqual(len(ys), min(math.floor(10 + 2 * len(x)), 41))
        self.assertTrue(any(3 in list(ys) for _, ys in t.translate_ids(self.src, beam=1)),
                        "the tiny model never ends a sentence: the test checks less")

    def test_options(self):
        t = self.t
        short = t.translate_ids(self.src, beam=1, max_len_a=3, max_len_b=0)
        self.assertTrue(all(len(ys) <= 3 for _, ys in short))
        self.assertNotEqual(t.translate(self.src, beam=4, alpha=0.0),
                            t.translate(self.src, beam=4, alpha=2.0) + ["x"])  # both run

    def test_truncation(self):
        t = self.t
        long = " ".join(["el perro grande come pan"] * 20)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            ids = t.encode(long)
            out = t.translate([long, "el gato", long], beam=1)
        self.assertEqual(len(ids), t.max_len)
        self.assertEqual(list(ids), [2] + self.tok.encode(long)[:t.max_len - 2] + [3])
        self.assertEqual(len(w), 2)   # one per call
        self.assertTrue(all(issubclass(x.category, libat.TruncationWarning) for x in w))
        self.assertIn("2 sentences are longer than the model's 40 positions", str(w[1].message))
        self.assertIn("sentence 1", str(w[1].message))
        self.assertEqual(w[1].filename, __file__)
        self.assertEqual(out[0], out[2])

    def _check_views(self, one):
        m = one.model
        S, T = len(one.src_ids), len(one.ys) - 1
        self.assertEqual(len(one.src_pieces), S)
        self.assertEqual(len(one.tgt_pieces), T)
        self.assertEqual(one.tgt_pieces[0], "<s>")
        self.assertEqual(one.src_pieces[0], "<s>")
        self.assertEqual(one.src_pieces[-1], "</s>")
        self.assertEqual(one.out_pieces, [self.tok.piece(int(i)) for i in one.ys[1:]])
        layers = m.get("layers")
        views = {(k, l): one.attention(k, l).copy()
                 for k in ("cross", "dec_self", "enc_self") for l in range(layers)}
        self.assertEqual(views[("cross", 0)].shape, (1, m.get("heads"), T, S))
        # no padding: the translation may hold the pad id, which decoding
        # does not mask
        m.forward(one.src_ids[None], one.ys[None, :-1], pad=-1)
        for (k, l), a in views.items():
            np.testing.assert_allclose(a, m.attention(k, l).array, atol=1e-5, rtol=0,
                                       err_msg="%s %d" % (k, l))

    def test_translate_one(self):
        t = self.t
        for beam in (1, 4):
            one = t.translate_one(self.src[2], beam=beam)
            self.assertIsInstance(one, libat.Translation)
            self.assertEqual(one.text, t.translate(self.src[2], beam=beam))
            self.assertEqual(one.source, self.src[2])
            self.assertFalse(one.truncated)
            self.assertEqual(one.score is None, beam == 1)
            self.assertEqual(one.text, self.tok.decode([i for i in one.ys if i != 3]))
            self._check_views(t.translate_one(self.src[2], beam=beam))
        if libat.HAVE_CHARTS:
            one = t.translate_one(self.src[2])
            with tempfile.TemporaryDirectory() as d:
                p = one.chart(os.path.join(d, "cross.svg"))
                with open(p, encoding="utf-8") as f:
                    svg = f.read()
                self.assertIn(one.src_pieces[1].replace("&", "&amp;"), svg)

    def test_evaluate(self):
        t = self.t
        e = t.evaluate(self.src[:11], self.ref[:11], beam=4)
        self.assertIsInstance(e, libat.Evaluation)
        self.assertEqual(e.hypotheses, t.translate(self.src[:11], beam=4))
        self.assertEqual(e.bleu.score, text.bleu(e.hypotheses, self.ref[:11]).score)
        self.assertEqual(e.chrf.score, text.chrf(e.hypotheses, self.ref[:11]).score)
        self.assertEqual(e.bleu.segments, 11)
        with self.assertRaises(libat.ArgumentError):
            t.evaluate(self.src[:3], self.ref[:2])
        with self.assertRaises(libat.ArgumentError):
            t.evaluate([], [])

    @need_spm
    def test_conventions_with_python_sentencepiece(self):
        # Everything from the checkpoint's metadata and python3-sentencepiece,
        # without libat.text: framing, start and end, length limits.
        m = libat.Model.load(self.path)
        sp = spm.SentencePieceProcessor(
            model_proto=base64.b64decode(m.metadata["tokenizer"]))
        want = []
        for s in self.src:
            x = np.array([[2] + sp.encode(s) + [3]], np.int32)
            out = m.greedy_decode(x, limit(x.shape[1]), start=2, pad=0, end=3)[0]
            ys = [int(i) for i in out]
            k = ys.index(3) if 3 in ys else len(ys)
            want.append(sp.decode(ys[1:k]))
        self.assertEqual(self.t.translate(self.src, beam=1), want)

    def test_separate_tokenizers(self):
        src_tok = text.Tokenizer.train(self.data.es, vocab_size=90)
        tgt_tok = text.Tokenizer.train(self.data.en, vocab_size=70)
        m = tiny_translation_model(src_tok, tgt_tok, steps=10)
        self.assertEqual(set(m.metadata), {text.META_SRC, text.META_TGT})
        p = self.data.path("sep.safetensors")
        m.save(p)
        t = libat.Translator.load(p)
        self.assertFalse(t.joint)
        self.assertEqual(t.tgt_tokenizer.vocab_size, 70)
        self.assertEqual(list(t.encode("el perro")), [2] + src_tok.encode("el perro") + [3])
        one = t.translate_one("el perro", beam=2)
        self.assertEqual(one.tgt_pieces, [tgt_tok.piece(int(i)) for i in one.ys[:-1]])
        self.assertEqual(t.translate(["el perro"], beam=2), [one.text])
        # attach() joint removes the separate entries
        m2 = libat.Model(src_vocab=90, tgt_vocab=90, layers=1, d_model=16, heads=2, d_ff=32)
        m2.metadata[text.META_SRC] = "stale"
        libat.Translator.attach(m2, src_tok, src_tok)
        self.assertEqual(list(m2.metadata), [text.META_JOINT])

    def test_given_tokenizer(self):
        m = libat.Model.load(self.path)
        del m.metadata["tokenizer"]
        t = libat.Translator(m, self.tok)
        self.assertEqual(t.translate(self.src[:3], beam=1), self.t.translate(self.src[:3],
                                                                             beam=1))

    def test_bad_model(self):
        bare = libat.Model(src_vocab=120, tgt_vocab=120, layers=1, d_model=16, heads=2, d_ff=32)
        with self.assertRaises(libat.FormatError) as cm:
            libat.Translator(bare)
        self.assertIn("no tokenizer", str(cm.exception))
        p = self.data.path("bare.safetensors")
        bare.save(p)
        with self.assertRaises(libat.FormatError) as cm:
            libat.Translator.load(p)
        self.assertIn(p, str(cm.exception))
        # one side only
        bare.metadata[text.META_SRC] = self.tok.to_base64()
        with self.assertRaises(libat.FormatError) as cm:
            libat.Translator(bare)
        self.assertIn("tokenizer.tgt", str(cm.exception))
        del bare.metadata[text.META_SRC]
        # not a tokenizer
        bare.metadata[text.META_JOINT] = "bm90IGEgbW9kZWw="
        with self.assertRaises(libat.FormatError) as cm:
            libat.Translator(bare)
        self.assertIn("cannot be read", str(cm.exception))
        # vocabulary mismatch
        small = libat.Model(src_vocab=50, tgt_vocab=120, layers=1, d_model=16, heads=2,
                            d_ff=32)
        with self.assertRaises(libat.ArgumentError) as cm:
            libat.Translator.attach(small, self.tok)
        self.assertIn("120 pieces", str(cm.exception))
        self.assertIn("50", str(cm.exception))
        self.assertEqual(len(small.metadata), 0)
        small.metadata[text.META_JOINT] = self.tok.to_base64()
        with self.assertRaises(libat.FormatError):
            libat.Translator(small)
        with self.assertRaises(libat.ArgumentError):
            libat.Translator(bare, text.Tokenizer.train(self.data.es, vocab_size=60))
        with self.assertRaises(libat.ArgumentError):
            libat.Translator(self.path)
        with self.assertRaises(libat.ArgumentError):
            libat.Translator(bare, "tokenizer")

    @need_spm
    def test_bad_special_ids(self):
        import io
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(input=self.data.en, model_writer=buf, vocab_size=60,
                                       minloglevel=2)   # unk 0, bos 1, eos 2, no pad
        tok = text.Tokenizer.from_bytes(buf.getvalue())
        m = libat.Model(src_vocab=60, tgt_vocab=60, layers=1, d_model=16, heads=2, d_ff=32)
        with self.assertRaises(libat.ArgumentError) as cm:
            libat.Translator.attach(m, tok)
        self.assertIn("pad -1, <s> 1, </s> 2", str(cm.exception))
        m.metadata["tokenizer"] = tok.to_base64()
        with self.assertRaises(libat.FormatError):
            libat.Translator(m)

    def test_bad_input(self):
        t = self.t
        with self.assertRaises(libat.FormatError) as cm:
            t.translate(["el perro", b"mal \xff"])
        self.assertIn("sentence 2", str(cm.exception))
        with self.assertRaises(libat.FormatError):
            t.translate(["lone \udc80"])
        with self.assertRaises(libat.FormatError):
            t.translate_one(b"\xc3(")
        for bad in (None, 5, [5], [None]):
            with self.assertRaises(libat.ArgumentError, msg=repr(bad)):
                t.translate(bad)
        for kw in (dict(beam=0), dict(beam=300), dict(beam=1.5), dict(alpha=-0.1),
                   dict(alpha=float("inf")), dict(batch=0), dict(max_len_b=-1),
                   dict(max_len_a=float("nan"))):
            with self.assertRaises(libat.ArgumentError, msg=str(kw)):
                t.translate(["el perro"], **kw)
        with self.assertRaises(libat.ArgumentError):
            t.evaluate("el perro", "the dog")


def _attn():
    """The attn program when it has the translate command, else None."""
    path = os.environ.get("ATTN")
    if not path or not os.path.exists(path):
        return None
    p = subprocess.run([path, "help"], capture_output=True, text=True, timeout=30)
    return path if "translate" in (p.stdout + p.stderr) else None


class SameAsAttnTranslate(unittest.TestCase):
    """Python's translations equal `attn translate`'s on the same model and
    input, greedy and beam 4. CTest passes the program in ATTN; without it
    (or without its translate command) the test fails, it does not skip."""

    @classmethod
    def setUpClass(cls):
        if not _attn():
            raise AssertionError("ATTN must name the attn program, with its translate "
                                 "command (CTest sets it)")
        cls.data = TextDir()
        cls.tok = text.Tokenizer.train([cls.data.es, cls.data.en], vocab_size=120)
        cls.path = cls.data.path("nmt.safetensors")
        tiny_translation_model(cls.tok).save(cls.path)
        # 40 sentences, and one longer than the model's 40 positions (both cut it)
        cls.src = [p[0] for p in cls.data.pairs[:40]]
        cls.src.insert(7, " ".join(["el perro grande come pan"] * 12))
        cls.input = cls.data.path("input.es")
        with open(cls.input, "w", encoding="utf-8") as f:
            f.write("\n".join(cls.src) + "\n")

    @classmethod
    def tearDownClass(cls):
        cls.data.close()

    def cli(self, *args):
        p = subprocess.run([_attn(), "translate", "--model", self.path, "--input", self.input]
                           + list(args), capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode("utf-8", "replace"))
        self.assertIn(b"warning", p.stderr)   # the long sentence
        out = p.stdout.decode("utf-8").split("\n")
        self.assertEqual(out[-1], "")
        return out[:-1]

    def test_same(self):
        t = libat.Translator.load(self.path)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            for beam in (1, 4):
                self.assertEqual(self.cli("--beam", str(beam)), t.translate(self.src, beam=beam),
                                 "beam %d" % beam)
            self.assertEqual(self.cli("--beam", "3", "--alpha", "0", "--len-a", "3",
                                      "--len-b", "1", "--batch", "5"),
                             t.translate(self.src, beam=3, alpha=0, max_len_a=3, max_len_b=1,
                                         batch=5))
            self.assertEqual(self.cli("--beam", "1", "--len-a", "4", "--len-b", "0.5"),
                             t.translate(self.src, beam=1, max_len_a=4, max_len_b=0.5))
        self.assertEqual(len(w), 4)
        self.assertTrue(all(issubclass(x.category, libat.TruncationWarning) for x in w))


if __name__ == "__main__":
    unittest.main()
