"""Heads forming during training (libat.snapshots, include/at_analysis.h
group snapshots): a Recorder inside a Python training loop; the attention
it saved at step k against the PyTorch reference (tests/torch/reference.py)
run on the checkpoint saved at step k; the statistics and role scores
against numpy computed from that attention; training untouched by the
recorder; the file's names and shapes; bad input."""

import os
import sys
import tempfile
import unittest

import numpy as np

import support  # noqa: F401  (puts examples/python on the path)
from support import TOP, copy_batch, small_model
import libat
from libat import snapshots

sys.path.insert(0, os.path.join(TOP, "tests", "torch"))
import torch  # noqa: E402
import reference  # noqa: E402

PAD = 0
KINDS = ("enc_self", "dec_self", "cross")
# a padded probe: row 1 has two pads at the end of src and one of tgt
PROBE_SRC = np.array([[1, 4, 2, 7, 3, 5, 6, 9], [1, 8, 9, 3, 5, 2, 0, 0]], np.int32)
PROBE_TGT = np.array([[1, 4, 2, 7, 3, 5, 6], [1, 8, 9, 3, 5, 2, 0]], np.int32)


def masks(kind, src, tgt):
    """(row_valid (B, Lq), key_valid (B, Lq, Lk)) from the ids alone."""
    sv, tv = src != PAD, tgt != PAD
    T = tgt.shape[1]
    if kind == "enc_self":
        return sv, np.broadcast_to(sv[:, None, :], sv.shape + sv.shape[1:])
    if kind == "cross":
        return tv, np.broadcast_to(sv[:, None, :], (sv.shape[0], T, sv.shape[1]))
    causal = np.tril(np.ones((T, T), bool))
    return tv, causal[None] & tv[:, None, :]


def numpy_stats(a, rowv, keyv):
    """at_attention_stats (top-3) of every head of a (B, h, Lq, Lk) block:
    (h, 7) = entropy, entropy_norm, max, dispersion, top3, distance, rows."""
    B, H, Lq, Lk = a.shape
    out = np.zeros((H, 7))
    for h in range(H):
        acc = np.zeros(6)
        rows = 0
        for b in range(B):
            for i in range(Lq):
                if not rowv[b, i]:
                    continue
                keys = np.nonzero(keyv[b, i])[0]
                p = a[b, h, i, keys].astype(np.float64)
                nz = p[p > 0]
                ent = -np.sum(nz * np.log(nz))
                acc += [ent, ent / np.log(len(keys)) if len(keys) > 1 else 0.0, p.max(),
                        1 - p.max(), np.sort(p)[::-1][:3].sum(), np.sum(p * np.abs(i - keys))]
                rows += 1
        out[h, :6] = acc / rows
        out[h, 6] = rows
    return out


def numpy_prev(a, rowv, keyv):
    """The "prev" role score of every head: the mean over valid rows that
    have a valid key i - 1 of the mass there."""
    B, H, Lq, _ = a.shape
    res = []
    for h in range(H):
        vals = [a[b, h, i, i - 1] for b in range(B) for i in range(1, Lq)
                if rowv[b, i] and keyv[b, i, i - 1]]
        res.append(np.mean(vals))
    return np.array(res)


class Recorder(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def train(self, m, steps, rec=None, save_at=None, seed=3):
        rng = np.random.default_rng(seed)
        for _ in range(steps):
            y = copy_batch(rng, batch=16, length=8)
            m.train_step(y, y, pad=PAD)
            if rec is not None and rec.maybe_take():
                rec.save(self.path("run.snapshots.safetensors"))
            if save_at is not None and m.steps == save_at:
                m.save(self.path("step%d.safetensors" % save_at))

    def test_attention_equals_reference_at_step_k(self):
        """The snapshot at step 6 is the reference's pass of the checkpoint
        saved at step 6; its statistics and role scores numpy's of it."""
        m = small_model(dropout=0.1, attn_dropout=0.1, lr=1.0, warmup=20)
        with snapshots.Recorder(m, PROBE_SRC, PROBE_TGT, pad=PAD, every=3) as rec:
            rec.take()
            self.train(m, 12, rec, save_at=6)
            self.assertEqual(len(rec), 5)
        s = snapshots.load(self.path("run.snapshots.safetensors"))
        np.testing.assert_array_equal(s.steps, [0, 3, 6, 9, 12])
        np.testing.assert_array_equal(s.src, PROBE_SRC)
        np.testing.assert_array_equal(s.tgt, PROBE_TGT)
        self.assertEqual(s.metadata["every"], "3")
        k = list(s.steps).index(6)
        ref = reference.load_model(self.path("step6.safetensors"), heads=4)
        src, tgt = torch.from_numpy(PROBE_SRC.astype(np.int64)), torch.from_numpy(
            PROBE_TGT.astype(np.int64))
        with torch.no_grad():
            ref(src, tgt, reference.src_mask_of(src, PAD), reference.tgt_mask_of(tgt, PAD))
        for kind in KINDS:
            rowv, keyv = masks(kind, PROBE_SRC, PROBE_TGT)
            for layer in range(2):
                want = ref.attention(kind)[layer].numpy()
                got = s.attn[kind][layer][k]
                np.testing.assert_allclose(got, want, atol=2e-6, err_msg="%s %d" % (kind, layer))
                np.testing.assert_allclose(s.stats[kind][layer][k],
                                           numpy_stats(want, rowv, keyv), atol=1e-5)
                if kind != "cross":
                    np.testing.assert_allclose(
                        s.roles[kind][layer][k][:, snapshots.ROLES.index("prev")],
                        numpy_prev(want, rowv, keyv), atol=1e-5)
                mono = s.roles[kind][layer][:, :, snapshots.ROLES.index("monotonic")]
                self.assertEqual(bool(np.isnan(mono).all()), kind != "cross")
        # the snapshots differ over training (the test could fail)
        self.assertGreater(np.abs(s.attn["cross"][1][0] - s.attn["cross"][1][-1]).max(), 1e-3)

    def test_training_untouched(self):
        """With a recorder the run is the same bit for bit, and the model's
        last pass and views survive a snapshot."""
        a = small_model(dropout=0.1, attn_dropout=0.1, lr=1.0, warmup=20)
        b = small_model(dropout=0.1, attn_dropout=0.1, lr=1.0, warmup=20)
        a.set_gate("cross", 1, 2, 0.5)
        b.set_gate("cross", 1, 2, 0.5)
        with snapshots.Recorder(a, PROBE_SRC, PROBE_TGT, every=2) as rec:
            self.train(a, 4, rec)
            self.train(b, 4)
            self.assertEqual(len(rec), 2)
            a.save_training(self.path("a.safetensors"))
            b.save_training(self.path("b.safetensors"))
            with open(self.path("a.safetensors"), "rb") as fa, \
                    open(self.path("b.safetensors"), "rb") as fb:
                self.assertEqual(fa.read(), fb.read())
            x = copy_batch(np.random.default_rng(9), batch=3, length=5)
            a.forward(x, x[:, :4], pad=PAD)
            view = a.attention("enc_self", 0)
            before = view.array.copy()
            rec.take(step=100)
            np.testing.assert_array_equal(view.array, before)   # not stale, not changed
            self.assertEqual(a.gate("cross", 1, 2), 0.5)

    def test_gates_apply_to_the_probe(self):
        """A gated head changes the later layers' attention of the probe."""
        m = small_model()
        with snapshots.Recorder(m, PROBE_SRC, PROBE_TGT) as rec:
            rec.take(step=0)
            m.set_gate("enc_self", 0, None, 0.0)
            rec.take(step=1)
            rec.save(self.path("g.safetensors"))
        s = snapshots.load(self.path("g.safetensors"))
        np.testing.assert_array_equal(s.attn["enc_self"][0][0], s.attn["enc_self"][0][1])
        self.assertGreater(np.abs(s.attn["enc_self"][1][0] - s.attn["enc_self"][1][1]).max(),
                           1e-4)

    def test_encoder_only_and_settled(self):
        m = small_model()
        with snapshots.Recorder(m, PROBE_SRC) as rec:
            rec.take(step=0)
            rec.take(step=5)
            rec.save(self.path("e.safetensors"))
        s = snapshots.load(self.path("e.safetensors"))
        self.assertEqual(sorted(s.attn), ["enc_self"])
        self.assertIsNone(s.tgt)
        self.assertEqual(s.attn["enc_self"][1].shape, (2, 2, 4, 8, 8))
        self.assertEqual(s.stats["enc_self"][0].shape, (2, 4, 7))
        self.assertEqual(s.roles["enc_self"][0].shape, (2, 4, 9))
        got = snapshots.settled(s)["enc_self"]
        for layer in range(2):
            best = np.nanargmax(s.roles["enc_self"][layer][-1], axis=1)
            for h in range(4):
                role, since = got[layer][h]
                self.assertEqual(role, snapshots.ROLES[best[h]])
                self.assertIn(since, (0, 5))

    def test_bad_input(self):
        m = small_model()
        with self.assertRaises(libat.RangeError) as cm:   # id 11 outside vocab 11
            snapshots.Recorder(m, [[1, 11, 2]])
        self.assertIn("outside the vocabulary", str(cm.exception))
        with self.assertRaises(libat.ArgumentError):
            snapshots.Recorder(m, PROBE_SRC, PROBE_TGT[:1])
        with self.assertRaises(libat.RangeError) as cm:
            snapshots.Recorder(m, PROBE_SRC, every=0)
        self.assertIn("every", str(cm.exception))
        with snapshots.Recorder(m, PROBE_SRC, PROBE_TGT) as rec:
            with self.assertRaises(libat.StateError):
                rec.save(self.path("none.safetensors"))   # nothing taken yet
            rec.take(step=4)
            with self.assertRaises(libat.RangeError):
                rec.take(step=4)                          # steps must increase
            with self.assertRaises(libat.ShapeError):
                rec.take(small_model(heads=2), step=5)
            with self.assertRaises(libat.AtIOError) as cm:
                rec.save(self.path("no/such/dir/s.safetensors"))
            self.assertIn("no/such/dir", str(cm.exception))
            with self.assertRaises(libat.ArgumentError):
                rec.set_meta("every", "3")
            rec.set_meta("probe", "mine")
            rec.save(self.path("ok.safetensors"))
        self.assertEqual(snapshots.load(self.path("ok.safetensors")).metadata["probe"], "mine")
        with self.assertRaises(libat.StateError):
            rec.take(step=9)                              # closed


if __name__ == "__main__":
    unittest.main()
