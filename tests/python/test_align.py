"""libat.align: links parsed, AER, precision and recall on hand-made
alignments whose answers are worked out by hand here (sure and possible
links), bad input, the evaluation's merge and sums, and evaluate() equal to
`attn align-eval --json` -- on a toy corpus with lines left out and on the
fixture of tests/align_cli_test.sh (Ruth, Jonah and Obadiah and a tiny model
trained by attn train)."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

from support import libat
from textsupport import TextDir, tiny_translation_model

align = libat.align
text = libat.text

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, os.pardir, "data", "align")


def attn():
    path = os.environ.get("ATTN")
    if not path:
        raise AssertionError("ATTN must name the attn program (CTest sets it)")
    return path


def cli_json(*args):
    out = subprocess.run([attn(), "align-eval", "--json"] + list(args), check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


class Links(unittest.TestCase):
    def test_parse(self):
        got = align.parse_links(" 0-0\t1?2  10-3 ")
        self.assertEqual(got, [(0, 0, True), (1, 2, False), (10, 3, True)])
        self.assertEqual(got[1].src, 1)
        self.assertEqual(align.parse_links(""), [])
        self.assertEqual(align.parse_links("1-1", "a b", "c d"), [(1, 1, True)])

    def test_bad_links(self):
        for bad in ("0-", "-1", "1--2", "0-1-2", "a-b", "1234567-0", "1:1"):
            with self.assertRaises(libat.FormatError) as cm:
                align.parse_links(bad)
            self.assertIn("is not a link i-j", str(cm.exception))
        with self.assertRaises(libat.FormatError) as cm:
            align.parse_links("0-0 3-0", 2, 2)
        self.assertIn("link 3-0 is beyond the line's words (2 source, 2 target)",
                      str(cm.exception))
        with self.assertRaises(libat.ArgumentError):
            align.parse_links("0-0", -1, 2)

    def test_score_by_hand(self):
        # gold sure 0-0 1-1, possible 2?1 2?2; proposed 0-0 2-1 1-2 0-3 0-0:
        # on target words with gold A = {0-0, 2-1, 1-2}, |S| = 2, |A&S| = 1,
        # |A&P| = 2: AER = 1 - 3/5, precision 2/3, recall 1/2
        d = align.score("0-0 2-1 1-2 0-3 0-0", "0-0 1-1 2?1 2?2")
        self.assertEqual((d["hyp"], d["sure"], d["hit_sure"], d["hit_possible"]), (3, 2, 1, 2))
        self.assertAlmostEqual(d["aer"], 1 - 3 / 5, places=15)
        self.assertAlmostEqual(d["precision"], 2 / 3, places=15)
        self.assertAlmostEqual(d["recall"], 1 / 2, places=15)
        # the same as tuples
        self.assertEqual(align.score([(0, 0), (2, 1), (1, 2), (0, 3)],
                                     [(0, 0), (1, 1), (2, 1, False), (2, 2, False)]), d)
        # the fixture of align_cli_test.sh, line by line: |A| = 4, |S| = 5,
        # 3 hits: AER 1 - 6/9, precision 3/4, recall 3/5
        with open(os.path.join(FIXTURE, "hyp.align")) as f:
            hyp = f.read().splitlines()
        with open(os.path.join(FIXTURE, "gold.align")) as f:
            gold = f.read().splitlines()
        d = align.score(hyp, gold)
        self.assertEqual((d["hyp"], d["sure"], d["hit_sure"]), (4, 5, 3))
        self.assertAlmostEqual(d["aer"], 1 / 3, places=15)
        self.assertAlmostEqual(d["precision"], 3 / 4, places=15)
        self.assertAlmostEqual(d["recall"], 3 / 5, places=15)
        # nothing proposed, nothing gold
        d = align.score("", "")
        self.assertEqual((d["aer"], d["precision"], d["recall"]), (1.0, 0.0, 0.0))
        with self.assertRaises(libat.ArgumentError):
            align.score(["0-0"], ["0-0", "1-1"])
        with self.assertRaises(libat.ArgumentError):
            align.score([("a", 0)], [(0, 0)])


def write(path, lines, end="\n"):
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(l + end for l in lines))


class Evaluate(unittest.TestCase):
    """A toy corpus of word-for-word pairs, gold links i-i (one of them
    possible), a line without links and one too long for the model."""

    @classmethod
    def setUpClass(cls):
        cls.data = TextDir()
        cls.tok = text.Tokenizer.train([cls.data.es, cls.data.en], vocab_size=120)
        cls.model = tiny_translation_model(cls.tok)
        cls.path = cls.data.path("nmt.safetensors")
        cls.model.save(cls.path)
        cls.dir = cls.data.path("corpus")
        os.mkdir(cls.dir)
        pairs = cls.data.pairs[:20]
        src = [p[0] for p in pairs]
        tgt = [p[1] for p in pairs]
        gold = [" ".join("%d%s%d" % (i, "?" if i == 1 else "-", i)
                         for i in range(len(s.split()))) for s in src]
        gold[3] = ""
        src[5] = " ".join([src[5]] * 12)
        tgt[5] = " ".join([tgt[5]] * 12)
        gold[5] = "0-0"
        write(os.path.join(cls.dir, "test.src"), src)
        write(os.path.join(cls.dir, "test.tgt"), tgt)
        write(os.path.join(cls.dir, "test.align"), gold)

    @classmethod
    def tearDownClass(cls):
        cls.data.close()

    def test_equals_the_cli(self):
        want = cli_json("--model", self.path, "--data", self.dir)
        self.assertEqual(want["skipped"], {"truncated": 1, "pieces": 0, "no_links": 1})
        self.assertEqual(want["lines"], 18)
        self.assertEqual(align.evaluate(self.path, self.dir), want)
        # a Model or a Translator, another batch size: the same
        self.assertEqual(align.evaluate(self.model, self.dir, batch=3), want)
        t = libat.Translator.load(self.path)
        self.assertEqual(align.evaluate(t, self.dir, batch=1), want)
        want = cli_json("--model", self.path, "--data", self.dir, "--limit", "4")
        self.assertEqual(align.evaluate(self.path, self.dir, limit=4), want)

    def test_merge_and_sums(self):
        t = libat.Translator.load(self.path)
        m = t.model

        def ev(lo, hi):
            e = align.Evaluation(t.src_tokenizer, t.tgt_tokenizer, m.get("layers"),
                                 m.get("heads"), t.max_len)
            for k in range(lo, hi):
                e.add(*self.lines[k])
            e.run(m)
            return e
        with open(os.path.join(self.dir, "test.src"), encoding="utf-8") as f:
            src = f.read().splitlines()
        with open(os.path.join(self.dir, "test.tgt"), encoding="utf-8") as f:
            tgt = f.read().splitlines()
        with open(os.path.join(self.dir, "test.align"), encoding="utf-8") as f:
            gold = f.read().splitlines()
        self.lines = list(zip(src, tgt, gold))
        whole, a, b = ev(0, 20), ev(0, 7), ev(7, 20)
        self.assertEqual(whole.as_dict(), align.evaluate(self.path, self.dir))
        c = ev(0, 0)
        c.add_sums(a.sums())
        c.merge(b)
        self.assertEqual(list(c.sums()), list(whole.sums()))
        self.assertEqual(c.as_dict(), whole.as_dict())
        with self.assertRaises(libat.ShapeError):
            c.add_sums(a.sums()[:-1])

    def test_bad_corpus(self):
        d = tempfile.mkdtemp(prefix="libat-py-align-")
        try:
            for ext in ("src", "tgt"):
                shutil.copy(os.path.join(self.dir, "test." + ext), d)
            write(os.path.join(d, "test.align"), ["0-0"] * 3)
            with self.assertRaises(libat.FormatError) as cm:
                align.evaluate(self.path, d)
            self.assertIn("test.align has 3 lines but the corpus has 20", str(cm.exception))
            write(os.path.join(d, "test.align"), ["0-0"] * 19 + ["0-40"])
            with self.assertRaises(libat.FormatError) as cm:
                align.evaluate(self.path, d)
            self.assertIn("test.align line 20: link 0-40 is beyond the line's words",
                          str(cm.exception))
            with self.assertRaises(libat.AtIOError) as cm:
                align.evaluate(self.path, d, split="nope")
            self.assertIn("nope.src", str(cm.exception))
            write(os.path.join(d, "test.align"), [""] * 20)
            with self.assertRaises(libat.FormatError) as cm:
                align.evaluate(self.path, d)
            self.assertIn("no line could be scored (20 without gold links", str(cm.exception))
        finally:
            shutil.rmtree(d)
        with self.assertRaises(libat.ArgumentError):
            align.evaluate(self.path, self.dir, limit=0)
        with self.assertRaises(libat.ArgumentError):
            align.evaluate(42, self.dir)


class CliFixture(unittest.TestCase):
    """The corpus and the tiny model of tests/align_cli_test.sh."""

    def test_equals_the_cli(self):
        d = tempfile.mkdtemp(prefix="libat-py-align-")
        try:
            c, m = os.path.join(d, "corpus"), os.path.join(d, "m.safetensors")
            subprocess.run([attn(), "corpus", "bible", "--books", "Ruth,Jonah,Obad", "--out", c],
                           check=True, capture_output=True)
            subprocess.run([attn(), "train", "--task", "translate", "--data", c,
                            "--vocab-size", "300", "--layers", "2", "--d-model", "32",
                            "--heads", "2", "--d-ff", "64", "--batch-tokens", "600",
                            "--warmup", "20", "--lr", "1", "--max-tokens", "120",
                            "--threads", "1", "--quiet", "--epochs", "1", "--out", m],
                           check=True, capture_output=True)
            want = cli_json("--model", m, "--data", c)
            self.assertGreater(want["lines"], 40)
            self.assertEqual(align.evaluate(m, c), want)
            want = cli_json("--model", m, "--data", c, "--split", "train", "--limit", "20")
            self.assertEqual(align.evaluate(m, c, split="train", limit=20, batch=7), want)
        finally:
            shutil.rmtree(d)


if __name__ == "__main__":
    unittest.main()
