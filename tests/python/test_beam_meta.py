"""Model.metadata (at_model_set_meta and friends) through save and load, and
Model.beam_decode: greedy's ids at beam 1, the scores and the attention of
the returned hypotheses against a teacher-forced forward pass."""

import math
import os
import tempfile
import unittest

import numpy as np

from support import copy_batch, libat, small_model


class Metadata(unittest.TestCase):
    def test_dict_like(self):
        m = small_model()
        md = m.metadata
        self.assertEqual(len(md), 0)
        self.assertEqual(dict(md), {})
        md["note"] = "first"
        md["corpus"] = "Reina-Valera 1909 → KJV"
        md["note"] = "changed"          # keeps its place
        self.assertEqual(list(md), ["note", "corpus"])
        self.assertEqual(md["note"], "changed")
        self.assertEqual(m.metadata.get("corpus"), "Reina-Valera 1909 → KJV")
        self.assertIn("note", md)
        self.assertNotIn("d_model", md)  # libat's own keys are not listed
        self.assertIsNone(md.get("missing"))
        with self.assertRaises(KeyError):
            md["missing"]
        del md["note"]
        self.assertEqual(list(md), ["corpus"])
        with self.assertRaises(KeyError):
            del md["note"]
        md.update({"a": "1", "b": ""})
        self.assertEqual(md["b"], "")
        self.assertEqual(md.pop("a"), "1")
        self.assertIn("corpus", repr(md))

    def test_save_load(self):
        m = small_model()
        big = "x" * 200000
        m.metadata.update({"tokenizer": big, "ключ": "значение", "empty": ""})
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "m.safetensors")
            m.save(p)
            n = libat.Model.load(p)
            self.assertEqual(dict(n.metadata), {"tokenizer": big, "ключ": "значение",
                                                "empty": ""})
            self.assertEqual(list(n.metadata), ["tokenizer", "ключ", "empty"])
            m.save_training(p)
            self.assertEqual(dict(libat.Model.load(p).metadata), dict(m.metadata))
            with open(p, "rb") as f:
                self.assertEqual(dict(libat.Model.from_bytes(f.read()).metadata),
                                 dict(m.metadata))

    def test_shared(self):
        m = small_model()
        m.metadata["k"] = "v"
        s = m.share()
        self.assertEqual(s.metadata["k"], "v")
        with self.assertRaises(libat.StateError):
            s.metadata["k"] = "w"
        with self.assertRaises(libat.StateError):
            del m.metadata["k"]
        s.close()
        del s
        import gc
        gc.collect()
        m.metadata["k"] = "w"
        self.assertEqual(m.metadata["k"], "w")

    def test_bad_input(self):
        md = small_model().metadata
        for key in ("format", "libat_version", "step", "d_model", "heads", ""):
            with self.assertRaises(libat.ArgumentError, msg=key):
                md[key] = "1"
        with self.assertRaises(libat.ArgumentError):
            md["k" * 257] = "1"
        with self.assertRaises(libat.ArgumentError):
            md["k"] = 1
        with self.assertRaises(libat.ArgumentError):
            md["k"] = None
        with self.assertRaises(libat.ArgumentError):
            md[1] = "v"
        with self.assertRaises(libat.ArgumentError):
            md["k"] = "a\0b"
        with self.assertRaises(libat.FormatError):
            md["k"] = "lone \udc80"
        with self.assertRaises(libat.FormatError):
            md["bad \udc80"] = "v"
        self.assertEqual(len(md), 0)
        m = small_model()
        m.close()
        with self.assertRaises(libat.StateError):
            m.metadata


class BeamDecode(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # A model trained a little on the copy task, so that hypotheses differ.
        cls.m = small_model(seed=5, warmup=20, max_len=30)
        rng = np.random.default_rng(0)
        for _ in range(40):
            y = copy_batch(rng, batch=16, length=8)
            cls.m.train_step(y, y)
        src = copy_batch(np.random.default_rng(1), batch=5, length=8)
        src[1, 5:] = 0      # rows of different lengths
        src[3, 3:] = 0
        cls.src = src

    def test_beam1_is_greedy(self):
        m, src = self.m, self.src
        for max_len in (2, 6, 12):
            want = m.greedy_decode(src, max_len, start=1, pad=0)
            got = m.beam_decode(src, beam=1, alpha=0.0, max_len_a=max_len, max_len_b=0,
                                start=1, end=-1, pad=0)
            np.testing.assert_array_equal(got.ids, want)
            np.testing.assert_array_equal(got.lengths, [max_len] * len(src))

    def test_result(self):
        m, src = self.m, self.src
        r = m.beam_decode(src, beam=4, alpha=0.6, max_len_a=3, max_len_b=1, end=2)
        self.assertIsInstance(r, libat.BeamResult)
        self.assertEqual(r.ids.dtype, np.int32)
        self.assertEqual(r.ids.shape, (len(src), int(r.lengths.max())))
        nonpad = (src != 0).sum(1)
        for b in range(len(src)):
            L = r.lengths[b]
            self.assertEqual(r.ids[b, 0], 1)
            self.assertGreaterEqual(L, 2)
            self.assertLessEqual(L, math.floor(3 + 1 * nonpad[b]))
            ended = np.nonzero(r.ids[b, 1:L] == 2)[0]
            self.assertTrue(len(ended) == 0 or ended[0] == L - 2, r.ids[b])
            self.assertTrue((r.ids[b, L:] == 0).all())
        ids, lengths, scores = r   # a named tuple
        self.assertTrue(np.isfinite(scores).all())

    def _teacher_forced(self, r, alpha):
        """The views after beam_decode equal a forward pass over each row's
        hypothesis; each score is log P / lp from that pass."""
        m, src = self.m, self.src
        layers = m.get("layers")
        kinds = ("cross", "dec_self")
        after = {(k, l): m.attention(k, l).copy() for k in kinds for l in range(layers)}
        dec = m.output("decoder").copy()
        T = int(r.lengths.max()) - 1
        for k in kinds:
            self.assertEqual(after[(k, 0)].shape[2], T)
        for b in range(len(src)):
            L = int(r.lengths[b])
            # The same source mask, no target padding (a hypothesis may hold
            # the pad id, which beam search does not mask): the row's source
            # without its trailing pads, and pad -1.
            S = int((src[b] != 0).sum())
            self.assertTrue((src[b, S:] == 0).all())
            m.forward(src[b:b + 1, :S], r.ids[b:b + 1, :L - 1], pad=-1)
            for (k, l), a in after.items():
                want = m.attention(k, l).array[0]
                keys = want.shape[-1]
                np.testing.assert_allclose(a[b, :, :L - 1, :keys], want, atol=1e-5, rtol=0,
                                           err_msg="%s layer %d row %d" % (k, l, b))
                self.assertTrue((a[b, :, :, keys:L - 1 if k == "dec_self" else None] == 0)
                                .all())      # masked source pads, later positions
                self.assertTrue((a[b, :, L - 1:] == 0).all())
            np.testing.assert_allclose(dec[b, :L - 1], m.output("decoder").array[0],
                                       atol=1e-5, rtol=0)
            lp = m.output("logprobs").array[0]
            logp = sum(float(lp[t, r.ids[b, t + 1]]) for t in range(L - 1))
            self.assertAlmostEqual(r.scores[b], logp / ((5 + (L - 1)) / 6) ** alpha, places=3)

    def test_attention_follows_the_beam(self):
        for beam, alpha, end in ((4, 0.6, 2), (3, 0.0, -1), (8, 1.0, 2)):
            r = self.m.beam_decode(self.src, beam=beam, alpha=alpha, max_len_a=4,
                                   max_len_b=1, end=end)
            self._teacher_forced(r, alpha)

    def test_views_end(self):
        m = self.m
        m.forward(self.src, self.src)
        v = m.attention("cross", 0)
        m.beam_decode(self.src, beam=2, max_len_a=4, max_len_b=0)
        with self.assertRaises(libat.StaleViewError):
            v.array

    def test_bad_input(self):
        m, src = self.m, self.src
        for kw in (dict(beam=0), dict(beam=257), dict(alpha=-1), dict(alpha=float("nan")),
                   dict(max_len_b=-1), dict(max_len_a=1, max_len_b=0)):
            with self.assertRaises(libat.ArgumentError, msg=str(kw)):
                m.beam_decode(src, **kw)
        for kw in (dict(beam=1.5), dict(beam="4"), dict(alpha="0.6"), dict(beam=True)):
            with self.assertRaises(libat.ArgumentError, msg=str(kw)):
                m.beam_decode(src, **kw)
        with self.assertRaises(libat.RangeError):
            m.beam_decode([[1, 99]])
        with self.assertRaises(libat.RangeError):
            m.beam_decode(src, start=2 ** 40)
        with self.assertRaises(libat.ArgumentError):
            m.beam_decode([[[1]]])
        m.forward(src, src)
        try:
            m.beam_decode(src, beam=0)
        except libat.ArgumentError:
            pass
        m.attention("cross", 0)   # refused in Python: the last pass stands


if __name__ == "__main__":
    unittest.main()
