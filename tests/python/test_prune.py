"""libat.prune: the curves of `attn prune --json` (importance order, random
orders' mean and sd, one kind removed, re-estimated) computed again from
Python with the copy metric on a copy model trained by the CLI, and with
the BLEU metric (libat.Translator and libat.text) on a tiny translation
model; a Python metric's curve (and the re-estimated one) against the same
gates and gradients done by hand; a metric that raises gives CallbackError
from its exception and leaves the gates as they were; bad input."""

import json
import os
import subprocess
import tempfile
import unittest

import numpy as np

from support import libat, small_model
from textsupport import TextDir, parallel_text, tiny_translation_model

prune = libat.prune


def _write_ids(path, tensors):
    """A safetensors file of int32 tensors."""
    import struct
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        raw = np.ascontiguousarray(arr, np.int32).tobytes()
        header[name] = {"dtype": "I32", "shape": list(arr.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def _attn():
    """The attn program CTest names; without it the CLI tests fail (they
    never skip)."""
    path = os.environ.get("ATTN")
    if not path:
        raise AssertionError("ATTN does not name the attn program (CTest sets it)")
    return path


def _cli_json(*args):
    out = subprocess.run([_attn(), "prune", *args, "--json", "--threads", "1"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _python_curves(test, model, metric, imp, seeds, seed0):
    """What attn prune computes, from libat.prune: the importance curve,
    the random orders' mean and sample sd, one kind removed."""
    curve = prune.prune_curve(model, metric, imp.order)
    runs = np.array([prune.prune_curve(model, metric, prune.random_order(model, seed0 + s,
                                                                         imp.order))
                     for s in range(seeds)])
    sd = runs.std(axis=0, ddof=1) if seeds > 1 else np.zeros(11)
    n = prune.head_count(model) // 3
    kinds = [prune.prune_metric(model, metric, [h for h in imp.order if h // n == k])
             for k in range(3)]
    return curve, runs.mean(axis=0), sd, kinds


def _compare(test, got, want, imp, model):
    """got: the CLI's JSON; want: _python_curves(); printed with %.9g."""
    curve, mean, sd, kinds = want
    test.assertEqual(len(got["steps"]), 11)
    for k, step in enumerate(got["steps"]):
        for key, v in (("importance", curve[k]), ("random_mean", mean[k]),
                       ("random_sd", sd[k])):
            test.assertAlmostEqual(step[key], v, delta=1e-8 * max(1, abs(v)),
                                   msg="%d%% %s" % (10 * k, key))
    for k in range(3):
        test.assertAlmostEqual(got["kinds"][k]["metric"], kinds[k],
                               delta=1e-8 * max(1, abs(kinds[k])))
    order = [list(prune.head_of(model, h)) for h in imp.order]
    test.assertEqual(got["order"], [[kd, layer + 1, head + 1] for kd, layer, head in order])
    np.testing.assert_allclose(got["importance"], imp.importance, rtol=1e-8)
    test.assertAlmostEqual(got["loss"], imp.loss, delta=1e-12)


class CopyTask(unittest.TestCase):
    """The copy task: the CLI trains a copy model as prune_cli does (14
    epochs: it then copies every row)."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        d = cls.dir.name
        cls.model_path = os.path.join(d, "copy.safetensors")
        subprocess.run([_attn(), "train", "--task", "copy", "--d-model", "32", "--heads", "4",
                        "--d-ff", "64", "--lr", "1", "--warmup", "100", "--threads", "1",
                        "--epochs", "14", "--out", cls.model_path],
                       check=True, stdout=subprocess.DEVNULL)
        rng = np.random.default_rng(5)
        cls.src = rng.integers(1, 11, size=(16, 10)).astype(np.int32)
        cls.src[:, 0] = 1
        cls.batch = os.path.join(d, "batch.safetensors")
        _write_ids(cls.batch, {"src": cls.src, "tgt": cls.src})

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def test_equals_the_cli(self):
        m = libat.Model.load(self.model_path)
        got = _cli_json("--model", self.model_path, "--input", self.batch, "--seeds", "3",
                        "--seed", "4", "--reestimate")
        self.assertEqual(got["metric"], "copy")
        imp = prune.importance_order(m, self.src, self.src, pad=0)
        copies = prune.copy_metric(self.src, self.src)
        want = _python_curves(self, m, copies, imp, 3, 4)
        _compare(self, got, want, imp, m)
        order, again = prune.reestimated_curve(m, copies, self.src, self.src)
        self.assertEqual(got["reestimated_order"],
                         [[k, layer + 1, h + 1] for k, layer, h in map(
                             lambda i: prune.head_of(m, i), order)])
        np.testing.assert_allclose([x["reestimated"] for x in got["steps"]], again, rtol=1e-8)
        # the model copies, and losing every head loses that
        self.assertEqual(want[0][0], 1.0)
        self.assertLess(want[0][10], 0.5)
        # the copy metric run from Python (not through the C loop) agrees
        py = prune.prune_curve(m, lambda model: prune.copy_metric(self.src, self.src)(model),
                               imp.order)
        np.testing.assert_array_equal(py, want[0])
        np.testing.assert_array_equal(m.gates, 1.0)


def _batch(translator, pairs):
    """src and the full tgt of sentence pairs, framed <s> ... </s>, padded 0."""
    xs = [translator.encode(s) for s, _ in pairs]
    ys = [translator.encode(t) for _, t in pairs]
    src = np.zeros((len(xs), max(map(len, xs))), np.int32)
    tgt = np.zeros((len(ys), max(map(len, ys))), np.int32)
    for i, (x, y) in enumerate(zip(xs, ys)):
        src[i, :len(x)] = x
        tgt[i, :len(y)] = y
    return src, tgt


class Translation(unittest.TestCase):
    """BLEU of a tiny translation model on a handful of sentences."""

    @classmethod
    def setUpClass(cls):
        cls.data = TextDir()
        tok = libat.text.Tokenizer.train([cls.data.es, cls.data.en], vocab_size=120)
        cls.model = tiny_translation_model(tok, steps=160)
        cls.path = cls.data.path("nmt.safetensors")
        cls.model.save(cls.path)
        # sentences the model was trained on: it translates them (BLEU 96)
        cls.pairs = parallel_text(64, seed=11)[:8]
        corpus = cls.data.path("corpus")
        os.mkdir(corpus)
        for side, i in (("src", 0), ("tgt", 1)):
            with open(os.path.join(corpus, "valid." + side), "w", encoding="utf-8") as f:
                f.write("\n".join(p[i] for p in cls.pairs) + "\n")
        cls.corpus = corpus

    @classmethod
    def tearDownClass(cls):
        cls.data.close()

    def test_equals_the_cli(self):
        t = libat.Translator.load(self.path)
        src, tgt = _batch(t, self.pairs)
        batch = self.data.path("batch.safetensors")
        _write_ids(batch, {"src": src, "tgt": tgt})
        got = _cli_json("--model", self.path, "--input", batch, "--metric", "bleu", "--data",
                        self.corpus, "--limit", "0", "--seeds", "2", "--seed", "1")
        self.assertEqual(got["metric"], "bleu")
        m = t.model
        imp = prune.importance_order(m, src, tgt, pad=0)
        bleu = prune.bleu_metric(t, [p[0] for p in self.pairs], [p[1] for p in self.pairs])
        want = _python_curves(self, m, bleu, imp, 2, 1)
        _compare(self, got, want, imp, m)
        # BLEU worth comparing: the model translates some of it, and less without heads
        self.assertGreater(want[0][0], 50)
        self.assertLess(want[0][10], want[0][0])

    def test_bleu_metric_needs_its_model(self):
        t = libat.Translator.load(self.path)
        bleu = prune.bleu_metric(t, ["el perro"], ["the dog"])
        other = libat.Model.load(self.path)
        with self.assertRaises(libat.CallbackError) as cm:
            prune.prune_curve(other, bleu, [0, 1], steps=1)
        self.assertIsInstance(cm.exception.__cause__, libat.ArgumentError)
        with self.assertRaises(libat.ArgumentError):
            prune.bleu_metric(t, ["a", "b"], ["a"])


SRC = np.array([[1, 3, 4, 5, 6], [1, 3, 4, 0, 0]], np.int32)
TGT = np.array([[1, 2, 3, 4], [1, 5, 6, 0]], np.int32)


class PythonMetric(unittest.TestCase):
    def setUp(self):
        self.m = small_model(layers=2, heads=2, d_model=16, d_ff=32, src_vocab=7, tgt_vocab=9,
                             seed=3)
        self.gates = np.ones((3, 2, 2), np.float32)
        self.gates[2, 1, 0] = 0.5
        self.m.gates = self.gates

    def nll(self, model):
        return model.nll(SRC, TGT, pad=0)[0]

    def test_curve_equals_the_gates_set_by_hand(self):
        m = self.m
        order = [7, 2, 11, 0, 5, 9, 1, 3, 10, 4, 8, 6]
        curve = prune.prune_curve(m, self.nll, order, steps=8)
        self.assertEqual(curve.shape, (9,))
        np.testing.assert_array_equal(m.gates, self.gates)
        for k in range(9):
            n = int(np.floor(k * 12 / 8 + 0.5))   # round half up
            g = self.gates.copy().reshape(-1)
            g[order[:n]] = 0
            m.gates = g.reshape(3, 2, 2)
            self.assertEqual(curve[k], self.nll(m), "point %d" % k)
            m.gates = self.gates
        self.assertEqual(prune.prune_metric(m, self.nll, []), self.nll(m))
        self.assertEqual(prune.head_index(m, "cross", 1, 0), 10)
        self.assertEqual(prune.head_of(m, 10), ("cross", 1, 0))

    def test_reestimated_equals_the_steps_by_hand(self):
        m = self.m
        order, curve = prune.reestimated_curve(m, self.nll, SRC, TGT, steps=5)
        np.testing.assert_array_equal(m.gates, self.gates)
        hand, gone = [], np.zeros(12, bool)
        for k in range(6):
            n = int(np.floor(k * 12 / 5 + 0.5))
            if n > len(hand):
                g = self.gates.copy().reshape(-1)
                g[hand] = 0
                m.gates = g.reshape(3, 2, 2)
                imp = np.abs(m.gate_gradients(SRC, TGT, pad=0)[1].reshape(-1))
                imp[gone] = np.inf
                for h in np.argsort(imp, kind="stable")[:n - len(hand)]:
                    hand.append(int(h))
                    gone[h] = True
            g = self.gates.copy().reshape(-1)
            g[hand[:n]] = 0
            m.gates = g.reshape(3, 2, 2)
            self.assertEqual(curve[k], self.nll(m), "point %d" % k)
            m.gates = self.gates
        self.assertEqual(list(order), hand)
        with self.assertRaises(libat.ArgumentError):
            prune.reestimated_curve(m, self.nll, SRC, TGT[:1])
        with self.assertRaises(libat.CallbackError):
            prune.reestimated_curve(m, lambda model: 1 / 0, SRC, TGT)
        np.testing.assert_array_equal(m.gates, self.gates)

    def test_orders(self):
        m = self.m
        scores = np.array([3, 1, 1, 0, 2, 5, 1, 4, 9, 8, 7, 6], np.float32)
        np.testing.assert_array_equal(prune.order_by_scores(m, scores),
                                      np.argsort(scores, kind="stable"))
        r = prune.random_order(m, 7)
        self.assertEqual(sorted(r), list(range(12)))
        np.testing.assert_array_equal(r, prune.random_order(m, 7))
        self.assertFalse(np.array_equal(r, prune.random_order(m, 8)))
        # a shuffle of an order is that order permuted as the identity is
        base = np.array([5, 3, 11, 0, 1, 2, 4, 6, 7, 8, 9, 10], np.int32)
        np.testing.assert_array_equal(prune.random_order(m, 7, base), base[r])

    def test_a_raising_metric(self):
        m = self.m
        calls = []

        def metric(model):
            calls.append(model.gates.copy())
            if len(calls) == 3:
                raise ZeroDivisionError("no score here")
            return self.nll(model)
        with self.assertRaises(libat.CallbackError) as cm:
            prune.prune_curve(m, metric, list(range(12)))
        self.assertIsInstance(cm.exception.__cause__, ZeroDivisionError)
        self.assertIn("no score here", str(cm.exception))
        self.assertIn("2 heads removed", str(cm.exception))
        self.assertEqual(len(calls), 3)
        np.testing.assert_array_equal(m.gates, self.gates)
        # a metric that gives no number is an error too
        with self.assertRaises(libat.CallbackError) as cm:
            prune.prune_metric(m, lambda model: None, [1])
        self.assertIsInstance(cm.exception.__cause__, TypeError)
        np.testing.assert_array_equal(m.gates, self.gates)
        # the model works as before
        self.assertEqual(prune.prune_curve(m, self.nll, [0], steps=1)[0], self.nll(m))

    def test_bad_input(self):
        m = self.m
        for order in ([], [12], [-1], [1, 1], [[0, 1]], ["a"], list(range(13))):
            with self.assertRaises(libat.ArgumentError, msg=repr(order)):
                prune.prune_curve(m, self.nll, order)
        for steps in (0, 10001, 1.5):
            with self.assertRaises(libat.ArgumentError):
                prune.prune_curve(m, self.nll, [0], steps=steps)
        with self.assertRaises(libat.ArgumentError):
            prune.prune_curve(m, "nll", [0])
        with self.assertRaises(libat.ArgumentError):
            prune.order_by_scores(m, np.zeros(11))
        with self.assertRaises(libat.NumericError):
            prune.order_by_scores(m, np.full(12, np.nan))
        with self.assertRaises(libat.ArgumentError):
            prune.copy_metric(SRC, TGT[:1])
        with self.assertRaises(libat.RangeError):
            prune.random_order(m, -1)
        np.testing.assert_array_equal(m.gates, self.gates)


if __name__ == "__main__":
    unittest.main()
