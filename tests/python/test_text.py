"""libat.text: the SentencePiece tokenizer against python3-sentencepiece,
BLEU against NLTK's corpus_bleu and sacreBLEU's published values, chrF
against its definition and a published value, and bad input."""

import base64
import io
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import unittest
from collections import Counter

from support import TOP, libat
from textsupport import TextDir, need_spm, spm

text = libat.text

SENTENCES = ["el niño come pan", "La casa grande y el perro azul.", "  el   perro  come  ",
             "the lord said unto him", "Día de luz en el cielo", "", "ñandú único",
             "xyz unseen QQQ 123", "emoji \U0001F600 here", "a\tb\nc"]


class Loading(unittest.TestCase):
    def test_loads(self):
        self.assertTrue(text.available())
        want = os.environ.get("LIBAT_TEXT_PATH")
        if want and not os.path.isdir(want):
            self.assertEqual(os.path.realpath(text.library_path()), os.path.realpath(want))


    def test_core_works_without_it(self):
        # libat_text is loaded on first use: without it the core still runs,
        # and the first text call says where it looked.
        code = "\n".join([
            "import libat",
            "m = libat.Model(layers=1, d_model=16, heads=2, d_ff=32)",
            "m.forward([[1, 2, 3]], [[1, 2]])",
            "assert not libat.text.available()",
            "try:",
            "    libat.text.Tokenizer.from_base64('AAAA')",
            "except ImportError as e:",
            "    assert 'LIBAT_TEXT_PATH=/nonexistent/libat_text.so.0' in str(e), e",
            "else:",
            "    raise SystemExit('no ImportError')",
            "m.metadata['tokenizer'] = 'AAAA'",
            "try:",
            "    libat.Translator(m)",
            "except ImportError:",
            "    print('ok')",
        ])
        env = dict(os.environ, LIBAT_TEXT_PATH="/nonexistent/libat_text.so.0",
                   PYTHONPATH=os.path.join(TOP, "examples", "python"))
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual((p.returncode, p.stdout), (0, "ok\n"), p.stderr)


class Tokenizer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.data = TextDir()
        cls.tok = text.Tokenizer.train([cls.data.es, cls.data.en], vocab_size=120)

    @classmethod
    def tearDownClass(cls):
        cls.data.close()

    def test_special_ids(self):
        t = self.tok
        self.assertEqual((t.pad_id, t.unk_id, t.bos_id, t.eos_id), (0, 1, 2, 3))
        self.assertEqual((text.PAD_ID, text.UNK_ID, text.BOS_ID, text.EOS_ID), (0, 1, 2, 3))
        self.assertEqual([t.piece(i) for i in range(4)], ["<pad>", "<unk>", "<s>", "</s>"])
        self.assertEqual(t.vocab_size, 120)
        self.assertEqual(len(t), 120)

    def test_round_trip(self):
        t = self.tok
        for s in SENTENCES[:5]:
            ids = t.encode(s)
            self.assertIsInstance(ids, list)
            self.assertTrue(all(isinstance(i, int) for i in ids))
            self.assertEqual(t.decode(ids), " ".join(s.split()))
            self.assertEqual([t.id(p) for p in t.encode_pieces(s)], ids)
            self.assertEqual(t.encode(s.encode("utf-8")), ids)   # UTF-8 bytes too
        self.assertEqual(t.encode(""), [])
        self.assertEqual(t.decode([]), "")
        self.assertEqual(t.decode([2, 3, 0]), "")                 # special ids dropped
        self.assertEqual(t.id("no such piece"), t.unk_id)
        for i in range(t.vocab_size):
            self.assertEqual(t.id(t.piece(i)), i)

    def test_base64_and_bytes(self):
        t = self.tok
        b64 = t.to_base64()
        self.assertIsInstance(b64, str)
        self.assertEqual(base64.b64decode(b64), t.to_bytes())
        for u in (text.Tokenizer.from_base64(b64), text.Tokenizer.from_bytes(t.to_bytes())):
            self.assertEqual(u.to_bytes(), t.to_bytes())
            self.assertEqual([u.encode(s) for s in SENTENCES], [t.encode(s) for s in SENTENCES])
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "tok.model")
            t.save(p)
            with open(p, "rb") as f:
                self.assertEqual(f.read(), t.to_bytes())
            self.assertEqual(text.Tokenizer.load(p).to_bytes(), t.to_bytes())

    def test_deterministic(self):
        again = text.Tokenizer.train([self.data.es, self.data.en], vocab_size=120)
        self.assertEqual(again.to_bytes(), self.tok.to_bytes())
        uni = text.Tokenizer.train(self.data.es, vocab_size=60, model="unigram")
        self.assertEqual(uni.vocab_size, 60)
        self.assertEqual(uni.decode(uni.encode("el perro come")), "el perro come")

    @need_spm
    def test_same_as_python_sentencepiece(self):
        t = self.tok
        sp = spm.SentencePieceProcessor(model_proto=base64.b64decode(t.to_base64()))
        self.assertEqual(sp.get_piece_size(), t.vocab_size)
        self.assertEqual((sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()),
                         (t.pad_id, t.unk_id, t.bos_id, t.eos_id))
        for i in range(t.vocab_size):
            self.assertEqual(sp.id_to_piece(i), t.piece(i))
        for s in SENTENCES + [p[0] for p in self.data.pairs[:50]]:
            self.assertEqual(t.encode(s), sp.encode(s), s)
            self.assertEqual(t.encode_pieces(s), sp.encode(s, out_type=str), s)
            self.assertEqual(t.decode(t.encode(s)), sp.decode(sp.encode(s)), s)

    @need_spm
    def test_model_trained_by_python_sentencepiece(self):
        # A model of spm's own defaults (unk 0, bos 1, eos 2, no pad) keeps its ids.
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(input=self.data.en, model_writer=buf, vocab_size=60,
                                       model_type="bpe", minloglevel=2)
        u = text.Tokenizer.from_bytes(buf.getvalue())
        sp = spm.SentencePieceProcessor(model_proto=buf.getvalue())
        self.assertEqual((u.pad_id, u.unk_id, u.bos_id, u.eos_id),
                         (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()))
        self.assertEqual(u.pad_id, -1)
        for s in SENTENCES:
            self.assertEqual(u.encode(s), sp.encode(s), s)
            self.assertEqual(u.encode_pieces(s), sp.encode(s, out_type=str), s)

    def test_threads(self):
        t = self.tok
        want = [t.encode(s) for s in SENTENCES]
        bad = []

        def work():
            for _ in range(50):
                if [t.encode(s) for s in SENTENCES] != want:
                    bad.append(1)

        ths = [threading.Thread(target=work) for _ in range(4)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        self.assertEqual(bad, [])

    def test_bad_input(self):
        t = self.tok
        with self.assertRaises(libat.FormatError) as cm:
            t.encode(b"ok \xff")
        self.assertIn("byte 3", str(cm.exception))
        with self.assertRaises(libat.FormatError):
            t.encode("lone \udc80 surrogate")
        with self.assertRaises(libat.FormatError):
            t.encode_pieces(b"\xc3")
        with self.assertRaises(libat.FormatError):
            t.id(b"\xe2\x82")
        for bad in (None, 12, ["a"]):
            with self.assertRaises(libat.ArgumentError):
                t.encode(bad)
        with self.assertRaises(libat.RangeError):
            t.decode([5, 120])
        with self.assertRaises(libat.RangeError):
            t.decode([-1])
        with self.assertRaises(libat.RangeError):
            t.decode([2 ** 40])
        with self.assertRaises(libat.RangeError):
            t.piece(120)
        for bad in ("abc", [1.5], [[1, 2]], 7):
            with self.assertRaises(libat.ArgumentError):
                t.decode(bad)
        with self.assertRaises(libat.FormatError):
            text.Tokenizer.from_base64("this is not base64!")
        with self.assertRaises(libat.FormatError):
            text.Tokenizer.from_base64(base64.b64encode(b"not a model").decode())
        with self.assertRaises(libat.FormatError):
            text.Tokenizer.from_bytes(b"")
        with self.assertRaises(libat.ArgumentError):
            text.Tokenizer.from_bytes("a str")
        with self.assertRaises(libat.AtIOError):
            text.Tokenizer.load("/nonexistent/tok.model")

    def test_bad_training(self):
        with self.assertRaises(libat.ArgumentError):
            text.Tokenizer.train([self.data.en], vocab_size=100000)   # the text cannot fill it
        with self.assertRaises(libat.ArgumentError):
            text.Tokenizer.train([self.data.en], model="wordpiece")
        with self.assertRaises(libat.ArgumentError):
            text.Tokenizer.train([], vocab_size=50)
        with self.assertRaises(libat.ArgumentError):
            text.Tokenizer.train([self.data.en], vocab_size=0)
        with self.assertRaises(libat.ArgumentError):
            text.Tokenizer.train([self.data.en], vocab_size="50")
        with self.assertRaises(libat.AtIOError):
            text.Tokenizer.train(["/nonexistent/file.txt"], vocab_size=50)
        bad = self.data.path("bad.txt")
        with open(bad, "wb") as f:
            f.write(b"good line\nbad \xff line\n")
        with self.assertRaises(libat.FormatError) as cm:
            text.Tokenizer.train([bad], vocab_size=20)
        self.assertIn("bad.txt", str(cm.exception))

    def test_close(self):
        u = text.Tokenizer.from_bytes(self.tok.to_bytes())
        u.close()
        with self.assertRaises(libat.StateError):
            u.encode("el")
        u.close()   # twice is fine
        with text.Tokenizer.from_bytes(self.tok.to_bytes()) as w:
            self.assertEqual(w.encode("el"), self.tok.encode("el"))


# ---------------------------------------------------------------- metrics


def chrf_definition(hyps, refs, order=6, beta=2.0):
    """sacreBLEU 2.x's chrF (metrics/chrf.py), one reference per segment:
    white space removed, character n-grams 1..order, hypothesis n-grams of
    an order not counted where the reference has none, statistics summed over
    the corpus, P and R averaged over the orders where both are defined."""
    stats = [[0, 0, 0] for _ in range(order)]   # hyp, ref, match
    for h, r in zip(hyps, refs):
        h, r = "".join(h.split()), "".join(r.split())
        for n in range(1, order + 1):
            hc = Counter(h[i:i + n] for i in range(len(h) - n + 1))
            rc = Counter(r[i:i + n] for i in range(len(r) - n + 1))
            if not rc:
                continue
            stats[n - 1][0] += sum(hc.values())
            stats[n - 1][1] += sum(rc.values())
            stats[n - 1][2] += sum((hc & rc).values())
    ps, rs = [], []
    for hyp, ref, match in stats:
        if hyp > 0 and ref > 0:
            ps.append(match / hyp)
            rs.append(match / ref)
    if not ps:
        return 0.0
    p, r = sum(ps) / len(ps), sum(rs) / len(rs)
    b2 = beta * beta
    return 0.0 if p + r == 0 else 100 * (1 + b2) * p * r / (b2 * p + r)


def random_corpus(seed, n=40):
    rng = random.Random(seed)
    words = "the a dog cat man bit house big small red ran sat on mat it was not".split()
    hyps, refs = [], []
    for _ in range(n):
        r = [rng.choice(words) for _ in range(rng.randint(4, 14))]
        h = [w if rng.random() < 0.7 else rng.choice(words) for w in r]
        if rng.random() < 0.3:
            h = h[:max(4, len(h) - rng.randint(1, 3))]
        hyps.append(" ".join(h))
        refs.append(" ".join(r))
    return hyps, refs


class Metrics(unittest.TestCase):
    def test_sacrebleu_published(self):
        # sacreBLEU's README example (its test_bleu.py: 48.530827), two
        # reference streams.
        hyps = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
        refs = [["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
                ["The dog had bit the man.", "No one was surprised.",
                 "The man had bitten the dog."]]
        b = text.bleu(hyps, refs)
        self.assertAlmostEqual(b.score, 48.530827, places=6)
        self.assertEqual(b.segments, 3)
        self.assertEqual(len(b.precisions), 4)
        self.assertAlmostEqual(float(b), b.score)
        self.assertRegex(str(b), r"^BLEU = 48\.53 \d+\.\d/\d+\.\d/\d+\.\d/\d+\.\d \(BP = ")
        # The same as per-segment reference lists through the accumulator.
        acc = text.Bleu()
        for h, rs in zip(hyps, zip(*refs)):
            acc.add(h, list(rs))
        self.assertEqual(acc.result().score, b.score)
        acc.reset()
        self.assertEqual(acc.result().segments, 0)

    def test_chrf_published(self):
        # HuggingFace evaluate's chrf card (sacreBLEU's CHRF, defaults):
        # 84.64214891738334.
        hyps = ["The relationship between cats and dogs is not exactly friendly.",
                "a good bookshop is just a genteel black hole that knows how to read."]
        refs = ["The relationship between dogs and cats is not exactly friendly.",
                "A good bookshop is just a genteel Black Hole that knows how to read."]
        c = text.chrf(hyps, refs)
        self.assertAlmostEqual(c.score, 84.64214891738334, places=9)
        self.assertEqual((c.char_order, c.beta, c.segments), (6, 2.0, 2))
        self.assertEqual(str(c), "chrF2 = 84.64")

    def test_bleu_against_nltk(self):
        try:
            from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu
        except ImportError:   # the README's test command installs python3-nltk
            self.fail("NLTK is missing (Debian: python3-nltk; sh cmake/dev.sh test installs it)")
        for seed in range(6):
            hyps, refs = random_corpus(seed)
            want = 100 * corpus_bleu([[r.split()] for r in refs], [h.split() for h in hyps],
                                     smoothing_function=SmoothingFunction().method3)
            got = text.bleu(hyps, refs, tokenize="none")
            self.assertAlmostEqual(got.score, want, delta=1e-9, msg="seed %d" % seed)
            # No punctuation: 13a tokenizes as white space does.
            self.assertAlmostEqual(text.bleu(hyps, refs).score, want, delta=1e-9)
            self.assertEqual(got.hyp_len, sum(len(h.split()) for h in hyps))
            for c, t, p in zip(got.counts, got.totals, got.precisions):
                if c:
                    self.assertAlmostEqual(p, 100.0 * c / t)

    def test_chrf_against_definition(self):
        for seed in range(6):
            hyps, refs = random_corpus(seed + 100)
            self.assertAlmostEqual(text.chrf(hyps, refs).score, chrf_definition(hyps, refs),
                                   delta=1e-9, msg="seed %d" % seed)
        hyps, refs = ["niño pequeño", "día"], ["niña pequeña", "el día"]
        self.assertAlmostEqual(text.chrf(hyps, refs).score, chrf_definition(hyps, refs),
                               delta=1e-9)

    def test_score_files(self):
        hyps, refs = random_corpus(7)
        with tempfile.TemporaryDirectory() as d:
            h, r = os.path.join(d, "hyp.txt"), os.path.join(d, "ref.txt")
            with open(h, "w") as f:
                f.write("\n".join(hyps) + "\n")
            with open(r, "w") as f:
                f.write("\n".join(refs) + "\n")
            b, c = text.score_files(h, r)
            self.assertEqual(b.score, text.bleu(hyps, refs).score)
            self.assertEqual(c.score, text.chrf(hyps, refs).score)
            with open(r, "w") as f:
                f.write("\n".join(refs[:-1]) + "\n")
            with self.assertRaises(libat.FormatError):
                text.score_files(h, [r])

    def test_settings(self):
        hyps, refs = ["a b c d"], ["a b x y"]
        self.assertEqual(text.bleu(hyps, refs, smooth="none").score, 0.0)
        self.assertGreater(text.bleu(hyps, refs).score, 0.0)
        self.assertNotEqual(text.chrf(hyps, refs, eps_smoothing=True).score,
                            text.chrf(hyps, refs).score)
        with self.assertRaises(libat.ArgumentError):
            text.bleu(hyps, refs, smooth="nope")
        with self.assertRaises(libat.ArgumentError):
            text.bleu(hyps, refs, tokenize="intl")
        with self.assertRaises(libat.ArgumentError):
            text.chrf(hyps, refs, char_order=0)

    def test_bad_input(self):
        with self.assertRaises(libat.ArgumentError):
            text.bleu("one string", ["ref"])
        with self.assertRaises(libat.ArgumentError):
            text.bleu(["h"], "ref")
        with self.assertRaises(libat.ArgumentError) as cm:
            text.bleu(["a", "b"], ["r"])
        self.assertIn("2 hypotheses but 1 references", str(cm.exception))
        with self.assertRaises(libat.ArgumentError):
            text.chrf(["a", "b"], [["r", "s"], ["t"]])
        with self.assertRaises(libat.ArgumentError):
            text.bleu([1, 2], ["a", "b"])
        with self.assertRaises(libat.FormatError):
            text.bleu([b"\xff\xfe"], ["ref"])
        with self.assertRaises(libat.FormatError):
            text.chrf(["hyp"], ["bad \udcff"])
        with self.assertRaises(libat.ArgumentError):
            text.bleu(["hyp"], [""])        # only an empty reference: sacreBLEU refuses it
        self.assertEqual(text.bleu([], []).score, 0.0)
        self.assertTrue(math.isfinite(text.chrf([""], ["x"]).score))


if __name__ == "__main__":
    unittest.main()
