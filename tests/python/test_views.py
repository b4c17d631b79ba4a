"""Views: zero-copy numpy arrays on library memory, read-only, and an error
(not stale data) once the library has reused the memory."""

import ctypes
import gc
import os
import subprocess
import sys
import unittest
import weakref

import numpy as np

from support import copy_batch, libat, small_model

SRC = np.array([[1, 4, 2, 7, 3, 0, 0],
                [1, 9, 8, 6, 5, 4, 2]], dtype=np.int32)
TGT = SRC[:, :5]


def c_view(model, kind, layer):
    """at_get_attention called directly, to compare with what the module says."""
    from libat import _capi
    lib = libat.model._lib
    cv = _capi.CView()
    assert lib.at_get_attention(model._h.ptr, int(kind), layer, ctypes.byref(cv)) == 0
    return cv


class ZeroCopy(unittest.TestCase):
    def setUp(self):
        self.m = small_model()
        self.m.forward(SRC, TGT, pad=0)

    def tearDown(self):
        self.m.close()

    def test_same_memory_shape_strides(self):
        for kind, shape in (("enc_self", (2, 4, 7, 7)), ("dec_self", (2, 4, 5, 5)),
                            ("cross", (2, 4, 5, 7))):
            for layer in range(2):
                v = self.m.attention(kind, layer)
                a = v.array
                cv = c_view(self.m, libat.Attn[kind.upper()], layer)
                self.assertEqual(a.shape, shape)
                self.assertEqual(v.shape, shape)
                self.assertEqual(a.ctypes.data, cv.data)           # same address
                self.assertEqual(a.ctypes.data, v.address)
                self.assertEqual(a.strides, tuple(4 * cv.stride[i] for i in range(4)))
                self.assertEqual(a.dtype, np.float32)
                self.assertFalse(a.flags.writeable)
                self.assertFalse(a.flags.owndata)
                np.testing.assert_allclose(a.sum(axis=-1), 1.0, rtol=1e-5)

    def test_read_only(self):
        a = self.m.attention("cross", 0).array
        with self.assertRaises(ValueError):
            a[0, 0, 0, 0] = 1.0

    def test_masks_in_the_weights(self):
        enc = self.m.attention("enc_self", 0).array
        self.assertTrue(np.all(enc[0, :, :, 5:] == 0.0))    # row 0: keys 5, 6 are pad
        self.assertTrue(np.all(enc[1] > 0.0))               # row 1 has no pad
        dec = self.m.attention("dec_self", 1).array
        self.assertTrue(np.all(np.triu(np.ones((5, 5)), 1)[None, None] * dec == 0.0))
        src_mask = self.m.output("src_mask").array
        np.testing.assert_array_equal(src_mask[:, 0, :], (SRC != 0).astype(np.float32))

    def test_asarray_and_indexing(self):
        v = self.m.attention("cross", 1)
        a = np.asarray(v)
        self.assertEqual(a.ctypes.data, v.address)             # zero-copy
        b = np.array(v)                                        # np.array copies
        self.assertNotEqual(b.ctypes.data, v.address)
        self.assertTrue(b.flags.writeable)
        head = v[0, 2]                                         # indexing copies
        np.testing.assert_array_equal(head, a[0, 2])
        self.assertTrue(head.flags.owndata)
        self.assertEqual(float(np.sum(v)), float(a.sum()))
        self.assertEqual(len(v), 2)
        self.assertEqual(v.element_strides, (4 * 5 * 7, 5 * 7, 7, 1))

    def test_logprobs(self):
        lp = self.m.output("logprobs")
        self.assertEqual(lp.shape, (2, 5, 11))
        np.testing.assert_allclose(np.exp(lp.array).sum(-1), 1.0, rtol=1e-5)
        self.assertEqual(self.m.output(libat.Output.DEC_LAYER, 1).shape, (2, 5, 32))


class Lifetime(unittest.TestCase):
    """Touching a view after the next pass raises StaleViewError."""

    def setUp(self):
        self.m = small_model()
        self.m.forward(SRC, TGT, pad=0)

    def tearDown(self):
        self.m.close()

    def assertStale(self, v):
        self.assertFalse(v.is_current)
        for touch in (lambda: v.array, lambda: np.asarray(v), lambda: v[0],
                      lambda: v.copy(), lambda: v.__dlpack__(), v.check,
                      lambda: np.from_dlpack(v)):
            with self.assertRaises(libat.StaleViewError) as cm:
                touch()
            self.assertIn("stale", str(cm.exception))
        self.assertIsInstance(cm.exception, libat.StateError)
        self.assertIn("stale", repr(v))

    def test_next_forward_ends_views(self):
        v = self.m.attention("cross", 0)
        kept = v.copy()
        self.assertTrue(v.is_current)
        self.assertEqual(v.generation, self.m.generation)
        self.m.forward(SRC[:, ::-1].copy(), TGT, pad=0)
        self.assertStale(v)
        w = self.m.attention("cross", 0)
        self.assertTrue(w.is_current)
        self.assertFalse(np.array_equal(w.array, kept))    # the memory was reused
        self.assertEqual(w.address, v.address)             # same arena, same size

    def test_every_pass_ends_views(self):
        rng = np.random.default_rng(1)
        y = copy_batch(rng)
        passes = {
            "forward": lambda: self.m.forward(SRC, TGT),
            "train_step": lambda: self.m.train_step(y, y),
            "eval_loss": lambda: self.m.eval_loss(y, y),
            "greedy_decode": lambda: self.m.greedy_decode(SRC, 6),
            "write_tensor": lambda: self.m.write_tensor(0, self.m.tensor(0).copy()),
        }
        for name, run in passes.items():
            with self.subTest(name):
                self.m.forward(SRC, TGT)
                v = self.m.attention("enc_self", 1)
                o = self.m.output("memory")
                run()
                self.assertStale(v)
                self.assertStale(o)

    def test_failed_pass_ends_views(self):
        v = self.m.attention("cross", 0)
        with self.assertRaises(libat.RangeError):
            self.m.forward([[1, 99]], [[1]])
        self.assertStale(v)
        with self.assertRaises(libat.StateError):            # nothing computed now
            self.m.attention("cross", 0)

    def test_close_ends_views_but_not_borrowed_memory(self):
        v = self.m.attention("cross", 1)
        raw = v.array                      # the caller's responsibility from here
        expected = raw.copy()
        handle = weakref.ref(self.m._h)
        hold = weakref.ref(raw.base._libat_owner)
        self.m.close()
        self.assertTrue(self.m.closed)
        with self.assertRaises(libat.StaleViewError) as cm:
            v.array
        self.assertIn("closed", str(cm.exception))
        with self.assertRaises(libat.StateError):
            self.m.forward(SRC, TGT)
        gc.collect()
        self.assertIsNone(handle())        # the model is freed at close() ...
        np.testing.assert_array_equal(raw, expected)   # ... the array's hold keeps its memory
        del raw
        gc.collect()
        self.assertIsNone(hold())          # ... until the array goes

    def test_close_frees_at_once_without_borrowers(self):
        m = small_model()
        m.forward(SRC, TGT)
        v = m.attention("cross", 0)
        v.copy()
        handle = weakref.ref(m._h)
        with m:
            pass
        self.assertIsNone(handle())
        self.assertFalse(v.is_current)

    def test_parameter_views_live_with_the_model(self):
        w = self.m.tensor("decoder.layers.1.src_attn.linears.3.weight")
        self.assertEqual(w.shape, (32, 32))
        before = w.copy()
        self.m.forward(SRC[:, :3], TGT[:, :2])
        self.assertTrue(w.is_current)                       # a pass keeps parameters
        y = copy_batch(np.random.default_rng(2))
        self.m.train_step(y, y)
        self.assertTrue(w.is_current)
        self.assertFalse(np.array_equal(w.array, before))   # updated in place: live values
        g = self.m.grad("decoder.layers.1.src_attn.linears.3.weight")
        self.assertEqual(g.shape, (32, 32))
        self.m.forward(SRC, TGT)
        self.assertFalse(g.is_current)                      # gradients end with the pass
        self.m.close()
        self.assertFalse(w.is_current)


# Run in a child process: reading freed memory crashes it rather than the
# suite. A batch of (2, 60) puts the arena in a block of its own (mmap), so
# the larger batch that moves it unmaps the old block and a read of the old
# address faults; without a hold it did (SIGSEGV).
_KEEP_ACROSS_A_LARGER_BATCH = r"""
import gc, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from support import small_model

m = small_model()
src = np.arange(120, dtype=np.int32).reshape(2, 60) % 10 + 1
m.forward(src, src)
kept = {"array": m.attention("cross", 1).array,
        "asarray": np.asarray(m.output("logprobs")),
        "dlpack": np.from_dlpack(m.attention("enc_self", 0)),
        "slice": m.attention("dec_self", 1).array[1, 2],
        "tensor": m.tensor(0).array}
want = {k: v.copy() for k, v in kept.items()}
big = np.ones((4, 120), np.int32)
m.forward(big, big)                     # a larger batch: the arena moves
m.forward(big[:, :100], big)
gc.collect()
for k in kept:                          # the old block is held, not reused
    assert np.array_equal(kept[k], want[k]), k
m.close()                               # the model goes; what the arrays hold stays
gc.collect()
junk = [np.full(1 << 18, 7.0, np.float32) for _ in range(64)]   # reuse freed memory
for k in kept:
    assert np.array_equal(kept[k], want[k]), k
print("ok", sorted(kept))
"""


class Holds(unittest.TestCase):
    """Arrays and DLPack tensors own an at_view_hold() on the memory they
    point into: never freed under them."""

    def test_arrays_survive_a_larger_batch_and_close(self):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        r = subprocess.run([sys.executable, "-c", _KEEP_ACROSS_A_LARGER_BATCH,
                            os.path.dirname(os.path.abspath(__file__))],
                           env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, "the child %s:\n%s" % (
            "was killed by signal %d" % -r.returncode if r.returncode < 0
            else "exited with %d" % r.returncode, r.stderr[-2000:]))
        self.assertIn("ok", r.stdout)

    def test_one_hold_per_pass(self):
        m = small_model()
        m.forward(SRC, TGT)
        a = m.attention("cross", 1).array
        b = m.output("memory").array
        w = m.tensor(3).array
        self.assertIs(a.base._libat_owner, b.base._libat_owner)    # shared, not one each
        self.assertIs(a.base._libat_owner, w.base._libat_owner)
        first = weakref.ref(a.base._libat_owner)
        m.forward(SRC[:, :4], TGT[:, :3])
        c = m.attention("cross", 1).array
        self.assertIsNot(c.base._libat_owner, first())              # a new pass, a new hold
        del a, b, w
        gc.collect()
        self.assertIsNone(first())              # released when its last array goes
        m.close()


class DLPack(unittest.TestCase):
    def setUp(self):
        self.m = small_model()
        self.m.forward(SRC, TGT, pad=0)
        self.live = libat._dlpack.live_count()

    def tearDown(self):
        self.m.close()

    def test_numpy_from_dlpack_shares_memory(self):
        v = self.m.attention("cross", 1)
        d = np.from_dlpack(v)
        self.assertEqual(d.ctypes.data, v.address)
        self.assertEqual(d.shape, v.shape)
        self.assertEqual(d.strides, v.strides)
        self.assertEqual(d.dtype, np.float32)
        self.assertFalse(d.flags.writeable)
        np.testing.assert_array_equal(d, v.array)
        self.assertEqual(v.__dlpack_device__(), (1, 0))
        self.assertEqual(libat._dlpack.live_count(), self.live + 1)
        del d
        gc.collect()
        self.assertEqual(libat._dlpack.live_count(), self.live)   # the deleter ran

    def test_strided_views(self):
        for layer in range(2):
            v = self.m.output(libat.Output.ENC_LAYER, layer)
            d = np.from_dlpack(v)
            self.assertEqual(d.ctypes.data, v.address)
            np.testing.assert_array_equal(d, v.array)

    def test_tensor_outlives_close(self):
        v = self.m.attention("enc_self", 0)
        d = np.from_dlpack(v)
        expected = v.copy()
        handle = weakref.ref(self.m._h)
        self.m.close()
        gc.collect()
        self.assertIsNone(handle())                    # freed at close() ...
        np.testing.assert_array_equal(d, expected)     # ... the tensor's hold keeps its memory
        self.assertEqual(libat._dlpack.live_count(), self.live + 1)
        del d
        gc.collect()
        self.assertEqual(libat._dlpack.live_count(), self.live)   # released by the deleter

    def test_unconsumed_capsule(self):
        cap = self.m.attention("cross", 0).__dlpack__()
        self.assertEqual(type(cap).__name__, "PyCapsule")
        self.assertEqual(libat._dlpack.live_count(), self.live + 1)
        del cap
        gc.collect()
        self.assertEqual(libat._dlpack.live_count(), self.live)   # the capsule's destructor

    def test_stream_refused(self):
        with self.assertRaises(BufferError):
            self.m.attention("cross", 0).__dlpack__(stream=1)


if __name__ == "__main__":
    unittest.main()
