"""Arguments are checked in Python before they reach the C library: ctypes
would pass a Python int to a C int by dropping its high bits (2**40 becomes
0, 2**32 + 1 becomes 1) and int() would drop a float's fraction, so a wrong
argument silently became another, valid one. Each case here did that (or
raised a Python error that is not the library's) before the checks."""

import os
import tempfile
import unittest

import numpy as np

from support import libat, small_model

SRC = np.array([[1, 4, 2, 7, 3, 0]], dtype=np.int32)
TGT = SRC[:, :4]
BIG = 2 ** 40          # int32 truncation: 0
WRAP1 = 2 ** 32 + 1    # int32 truncation: 1, a valid layer, index, thread count


class Case(unittest.TestCase):
    def setUp(self):
        self.m = small_model()
        self.m.forward(SRC, TGT, pad=0)

    def tearDown(self):
        self.m.close()

    def refused(self, cls, fn, *args, **kw):
        """fn(*args, **kw) raises exactly ``cls`` (a library error) and
        leaves the model's last pass alone: nothing reached the library."""
        gen = self.m.generation
        with self.assertRaises(libat.AtError) as cm:
            fn(*args, **kw)
        self.assertIs(type(cm.exception), cls, cm.exception)
        self.assertEqual(self.m.generation, gen)
        return cm.exception


class Passes(Case):
    def test_forward_pad(self):
        e = self.refused(libat.RangeError, self.m.forward, SRC, TGT, pad=BIG)
        self.assertIn("pad", str(e))
        self.assertIn("[-2147483648, 2147483647]", str(e))      # the allowed range
        self.assertEqual(e.call, "at_forward")
        for bad in (True, 0.5, "0", None):
            with self.subTest(pad=bad):
                self.refused(libat.ArgumentError, self.m.forward, SRC, TGT, pad=bad)
        for good in (np.int64(0), 0.0, np.int8(0)):                # integers, whole floats
            self.m.forward(SRC, TGT, pad=good)

    def test_forward_ids(self):
        self.refused(libat.RangeError, self.m.forward, [[1, BIG]], [[1]])
        self.refused(libat.ArgumentError, self.m.forward, [[1.5, 2]], [[1]])

    def test_greedy_decode(self):
        m = self.m
        want = m.greedy_decode(SRC, 4, start=1, pad=0, end=-1)
        self.refused(libat.RangeError, m.greedy_decode, SRC, 4, start=BIG + 1)   # was 1
        self.refused(libat.RangeError, m.greedy_decode, SRC, 4, end=2 ** 32 - 1)  # was -1
        self.refused(libat.RangeError, m.greedy_decode, SRC, 4, pad=BIG)
        self.refused(libat.RangeError, m.greedy_decode, SRC, 2 ** 32 + 4)        # was 4
        e = self.refused(libat.ArgumentError, m.greedy_decode, SRC, -1)  # was numpy's error
        self.assertIn("max_len", str(e))
        self.refused(libat.ArgumentError, m.greedy_decode, SRC, 0)
        self.refused(libat.ArgumentError, m.greedy_decode, SRC, 2.5)               # was 2
        self.refused(libat.RangeError, m.greedy_decode, SRC, 5002)      # > max_len + 1
        self.refused(libat.ArgumentError, m.greedy_decode, SRC, 4, start=True)
        np.testing.assert_array_equal(m.greedy_decode(SRC, 4.0, start=np.int32(1)), want)

    def test_losses_pad(self):
        y = np.array([[1, 3, 5, 7, 9, 2]])
        for fn in (self.m.train_step, self.m.eval_loss):
            with self.subTest(fn.__name__):
                self.refused(libat.RangeError, fn, y, y, pad=2 ** 32)          # was 0
                self.refused(libat.ArgumentError, fn, y, y, pad="0")
        self.assertEqual(self.m.steps, 0)


class Reads(Case):
    def test_attention(self):
        self.refused(libat.ArgumentError, self.m.attention, "cross", BIG)     # was layer 0
        self.refused(libat.ArgumentError, self.m.attention, "cross", WRAP1)   # was layer 1
        self.refused(libat.ArgumentError, self.m.attention, "cross", 1.7)     # was layer 1
        self.refused(libat.ArgumentError, self.m.attention, "cross", "1")
        self.refused(libat.ArgumentError, self.m.attention, "cross", True)
        self.refused(libat.ArgumentError, self.m.attention, 2 ** 32 + 2, 0)   # was cross
        self.refused(libat.ArgumentError, self.m.attention, 7, 0)         # not an Attn
        self.refused(libat.ArgumentError, self.m.attention, False, 0)
        want = self.m.attention("cross", 1).copy()
        for kind, layer in ((libat.Attn.CROSS, np.int64(1)), (2, 1.0), (2.0, np.uint8(1))):
            np.testing.assert_array_equal(self.m.attention(kind, layer).copy(), want)

    def test_output(self):
        self.refused(libat.ArgumentError, self.m.output, "enc_layer", WRAP1)
        self.refused(libat.ArgumentError, self.m.output, BIG + 6)          # was logprobs 6
        self.refused(libat.ArgumentError, self.m.output, 99)

    def test_stats_and_js(self):
        self.refused(libat.ArgumentError, self.m.attention_stats, "cross", WRAP1)
        self.refused(libat.ArgumentError, self.m.attention_stats, "cross", 0, topk=2 ** 32 + 2)
        self.refused(libat.ArgumentError, self.m.attention_stats, "cross", 0, topk=2.5)
        self.refused(libat.ArgumentError, self.m.attention_js, "cross", BIG)
        self.refused(libat.ArgumentError, self.m.attention_js, 2 ** 32, 0)

    def test_tensors(self):
        m = self.m
        w0 = m.tensor(0).copy()
        shape0 = m.tensor(0).shape
        self.refused(libat.ArgumentError, m.write_tensor, BIG, np.zeros(shape0))  # was tensor 0
        np.testing.assert_array_equal(m.tensor(0).copy(), w0)
        self.refused(libat.ArgumentError, m.write_tensor, 0, "abc")      # was numpy's error
        self.refused(libat.ArgumentError, m.tensor, BIG)
        self.refused(libat.ArgumentError, m.tensor, 0.5)
        self.refused(libat.ArgumentError, m.trainable, BIG)              # was tensor 0: True
        self.refused(libat.ArgumentError, m.tensor, True)
        y = np.array([[1, 3, 5, 7, 9, 2]])
        m.train_step(y, y)
        self.refused(libat.ArgumentError, m.grad, BIG)
        self.assertEqual(m.tensor(np.int16(3)).shape, m.tensor(3).shape)


class Settings(unittest.TestCase):
    def test_params(self):
        with self.assertRaises(libat.ArgumentError) as cm:    # was silently seed 2**53
            small_model(seed=2 ** 53 + 1)
        self.assertIn("seed", str(cm.exception))
        self.assertIn("9007199254740992", str(cm.exception))
        for bad in (dict(layers="2"), dict(lr=True), dict(dropout="0.1"), dict(layers=2.5),
                    dict(seed=-1), dict(d_ff=[64])):
            with self.subTest(**{k: repr(v) for k, v in bad.items()}):
                with self.assertRaises(libat.ArgumentError):
                    small_model(**bad)
        m = small_model(seed=np.int64(5), packed=False, lr=np.float32(0.5))
        self.assertEqual(m.get("seed"), 5)
        self.assertEqual(m.get("packed"), 0)
        with self.assertRaises(libat.ArgumentError):
            m.set(seed="3")                                   # was float("3")
        with self.assertRaises(libat.ArgumentError):
            m.set(seed=2 ** 64 + 3)
        with self.assertRaises(libat.ArgumentError):
            m.set(lr=10 ** 400)                               # OverflowError before
        with self.assertRaises(libat.ArgumentError):
            m.get(["lr"])                                     # TypeError before
        self.assertEqual(m.get("seed"), 5)
        m.close()

    def test_threads(self):
        n = libat.get_threads()
        try:
            libat.set_threads(1)
            for bad in (2 ** 32, WRAP1, 1.5, "2", True):    # 2**32 was 0: every core
                with self.subTest(n=bad):
                    with self.assertRaises(libat.ArgumentError):
                        libat.set_threads(bad)
                    self.assertEqual(libat.get_threads(), 1)
        finally:
            libat.set_threads(0)
        self.assertEqual(libat.get_threads(), n)

    def test_noam_rate(self):
        want = libat.noam_rate(1, 512)
        for args in ((2 ** 64 + 1, 512), (1, 2 ** 32 + 512), (1, 512, 1.0, 2 ** 64 + 400),
                     (1.5, 512), (1, 512, "2")):
            with self.subTest(args=args):
                with self.assertRaises(libat.ArgumentError):
                    libat.noam_rate(*args)
        self.assertEqual(libat.noam_rate(np.int64(1), 512.0), want)


class Files(Case):
    def test_paths_with_nul(self):
        with tempfile.TemporaryDirectory() as d:
            cut = os.path.join(d, "m")
            for fn in (self.m.save, self.m.save_training, libat.Model.load):
                with self.subTest(fn.__name__):
                    with self.assertRaises(libat.ArgumentError):
                        fn(cut + "\0.safetensors")                 # was written to `cut`
                    self.assertFalse(os.path.exists(cut))
            with self.assertRaises(libat.ArgumentError):
                self.m.save(42)
        with self.assertRaises(libat.ArgumentError):
            libat.Model.from_bytes(4096)                           # was 4096 zero bytes


@unittest.skipUnless(libat.HAVE_CHARTS, "this libat has no charts (include/at_viz.h)")
class Charts(Case):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "c.svg")

    def tearDown(self):
        self.dir.cleanup()
        super().tearDown()

    def test_names_and_formats(self):
        e = self.refused(libat.ArgumentError, self.m.chart, self.path, fmt="pdf")  # KeyError
        self.assertIn("pdf", str(e))
        self.refused(libat.ArgumentError, self.m.chart, self.path, "nochart")      # ValueError
        self.refused(libat.ArgumentError, self.m.chart, self.path, 2 ** 32)        # heatmap
        self.refused(libat.ArgumentError, self.m.chart, self.path, fmt=2 ** 32 + 1)
        self.assertFalse(os.path.exists(self.path))

    def test_integers(self):
        m, p = self.m, self.path
        self.refused(libat.ArgumentError, m.chart, p, "heatmap", "cross", WRAP1, 0)
        self.refused(libat.ArgumentError, m.chart, p, "heatmap", "cross", 0, BIG)
        self.refused(libat.ArgumentError, m.chart, p, "heatmap", "cross", 0, 1.5)
        self.refused(libat.ArgumentError, m.chart, p, "heatmap", row=2 ** 32)
        self.refused(libat.ArgumentError, m.chart, p, "heatmap", topk=WRAP1)
        self.refused(libat.ArgumentError, m.chart, p, "heatmap", cell="8")
        self.refused(libat.RangeError, m.chart, p, "heatmap", src_ids=[1, BIG, 2])
        self.refused(libat.ArgumentError, m.chart, p, "heatmap", src_ids=[1.5, 2])
        self.assertFalse(os.path.exists(p))
        m.chart(p, "heatmap", trim=False, cell=np.int32(8), row=0.0)    # bools for trim

    def test_strings_with_nul(self):
        m, p = self.m, self.path
        self.refused(libat.ArgumentError, m.chart, p, caption="cut\0here")   # was "cut"
        self.refused(libat.ArgumentError, m.chart, p, font="Noto\0Sans")
        self.refused(libat.ArgumentError, m.chart, p, src_labels=["a", "b\0c"])
        self.refused(libat.ArgumentError, m.chart, p, caption=b"bytes")
        self.refused(libat.ArgumentError, m.chart, p[:-4] + "\0.svg")
        self.assertFalse(os.path.exists(p))


if __name__ == "__main__":
    unittest.main()
