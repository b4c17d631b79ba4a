"""Head roles (libat.heads, include/at_analysis.h group patterns): the C
scores against a numpy reference of the formula on a real pass, synthetic
heads made by attention overrides labelled with their own template, and bad
input."""

import ctypes
import os
import unittest

import numpy as np

import support  # noqa: F401  (puts examples/python on the path)
import libat
from libat import heads

PAD = 0
KINDS = ("enc_self", "dec_self", "cross")


def batch():
    """A padded, non-square batch: S = 7 source and T = 5 target positions."""
    src = np.array([[1, 4, 2, 7, 3, 5, 6], [1, 8, 9, 3, 0, 0, 0]], np.int32)
    tgt = np.array([[1, 5, 6, 2, 9], [1, 3, 4, 0, 0]], np.int32)
    return src, tgt


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


def template_rows(name, k, rowv, keyv):
    """The template as (B, Lq, Lk) weights over valid keys (0 elsewhere)."""
    B, Lq, Lk = keyv.shape
    t = np.zeros((B, Lq, Lk))
    for b in range(B):
        rows = np.flatnonzero(rowv[b])
        for r, i in enumerate(rows):
            keys = np.flatnonzero(keyv[b, i])
            n = len(keys)
            if n == 0:
                continue
            if name == "diagonal":
                t[b, i, i] = 1
            elif name in ("prev", "next", "offset"):
                j = i + {"prev": -1, "next": 1}.get(name, k)
                if 0 <= j < Lk:
                    t[b, i, j] = 1
            elif name == "first":
                t[b, i, keys[0]] = 1
            elif name == "eos":
                t[b, i, keys[-1]] = 1
            elif name == "monotonic":
                nq = len(rows)
                c = 0 if nq < 2 else int(np.floor(r * (n - 1) / (nq - 1) + 0.5))
                for q in range(max(0, c - k), min(n, c + k + 1)):
                    t[b, i, keys[q]] = 1
    return t * keyv


def reference(a, rowv, keyv, name=None, k=0, tmpl=None):
    """The documented formula over a (B, h, Lq, Lk) array, in float64."""
    a = a.astype(np.float64)
    B, H = a.shape[:2]
    out = np.zeros(H)
    for h in range(H):
        vals = []
        for b in range(B):
            for i in np.flatnonzero(rowv[b]):
                kv = keyv[b, i]
                p = a[b, h, i][kv]
                if name == "broad":
                    if kv.sum() >= 2:   # overlap with uniform: 1 - TV(p, 1/n)
                        vals.append(1 - 0.5 * np.abs(p - 1.0 / kv.sum()).sum())
                    continue
                w = (tmpl[b if tmpl.shape[0] > 1 else 0, i])[kv]
                if w.max() > 0:
                    vals.append((p * w).sum() / w.max())
        out[h] = np.mean(vals) if vals else 0.0
    return out


class TestReference(unittest.TestCase):
    """C scores = numpy's on a real model's pass, every kind, layer and template."""

    @classmethod
    def setUpClass(cls):
        cls.m = support.small_model(seed=11)
        cls.src, cls.tgt = batch()
        cls.m.forward(cls.src, cls.tgt, pad=PAD)

    def test_builtin(self):
        cases = [("diagonal", 0), ("prev", 0), ("next", 0), ("offset", -2), ("offset", 2),
                 ("first", 0), ("eos", 0), ("broad", 0)]
        for kind in KINDS:
            rowv, keyv = masks(kind, self.src, self.tgt)
            for layer in range(2):
                a = self.m.attention(kind, layer).array
                for name, k in cases + ([("monotonic", 0), ("monotonic", 1)]
                                        if kind == "cross" else []):
                    with self.subTest(kind=kind, layer=layer, pattern=name, k=k):
                        got = heads.pattern_scores(self.m, kind, layer, name, k)
                        t = None if name == "broad" else template_rows(name, k, rowv, keyv)
                        want = reference(a, rowv, keyv, name, k, t)
                        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)

    def test_user_template(self):
        rng = np.random.default_rng(3)
        for kind in KINDS:
            rowv, keyv = masks(kind, self.src, self.tgt)
            a = self.m.attention(kind, 1).array
            for shape in ((a.shape[2], a.shape[3]), (a.shape[0], a.shape[2], a.shape[3])):
                t = rng.random(shape).astype(np.float32)
                got = heads.template_scores(self.m, kind, 1, t)
                want = reference(a, rowv, keyv, tmpl=t.reshape((-1,) + t.shape[-2:]))
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)

    def test_names(self):
        # the role library as include/at_analysis.h documents it, in its order
        self.assertEqual(list(heads.LIBRARY.items()), [
            ("diagonal", ("diagonal", 0)), ("prev", ("prev", 0)), ("next", ("next", 0)),
            ("prev2", ("offset", -2)), ("next2", ("offset", 2)), ("first", ("first", 0)),
            ("eos", ("eos", 0)), ("broad", ("broad", 0)), ("monotonic", ("monotonic", 0))])
        name = ctypes.c_char_p()
        self.assertNotEqual(heads._lib.at_head_role(9, ctypes.byref(name), None, None), 0)
        self.assertNotEqual(heads._lib.at_head_role(-1, None, None, None), 0)
        self.assertEqual([heads.pattern_name(i) for i in range(8)], list(heads.PATTERNS))
        self.assertIsNone(heads.pattern_name(8))
        self.assertIsNone(heads.pattern_name(-1))


def synthetic(name, k, rowv, keyv, H):
    """Probabilities (B, H, Lq, Lk) that follow a template: its rows
    normalised, uniform over valid keys where it has none ('broad': uniform)."""
    keyv = keyv.astype(np.float64)
    uniform = keyv / np.maximum(keyv.sum(-1, keepdims=True), 1)
    if name == "broad":
        p = uniform
    else:
        t = template_rows(name, k, rowv, keyv.astype(bool))
        s = t.sum(-1, keepdims=True)
        p = np.where(s > 0, t / np.where(s > 0, s, 1), uniform)
    return np.repeat(p[:, None], H, axis=1).astype(np.float32)


class TestSynthetic(unittest.TestCase):
    """Heads overridden with a template's pattern are labelled with it."""

    def test_labels(self):
        m = support.small_model(seed=5)
        src, tgt = batch()
        H = m.get("heads")
        # Decoder self-attention cannot look ahead (next, next2), and its last
        # visible key is the query itself (eos is the diagonal there).
        cases = {
            "enc_self": ["diagonal", "prev", "next", "prev2", "next2", "first", "eos", "broad"],
            "dec_self": ["diagonal", "prev", "prev2", "first", "broad"],
            "cross": ["diagonal", "prev", "next", "prev2", "next2", "first", "eos", "broad",
                      "monotonic"],
        }
        for kind, names in cases.items():
            rowv, keyv = masks(kind, src, tgt)
            for name in names:
                pat, k = heads.LIBRARY[name]
                with self.subTest(kind=kind, template=name):
                    m.reset_interventions()
                    p = synthetic(pat, k, rowv, keyv, H)
                    m.override_attention(kind, 1, p)
                    m.forward(src, tgt, pad=PAD)
                    labels = heads.label_heads(m, kinds=[kind])[kind][1]
                    for best, score, scores in labels:
                        self.assertEqual(best, name, scores)
                        self.assertGreater(score, 0.99)

    def test_user_template_wins(self):
        m = support.small_model(seed=5)
        src, tgt = batch()
        t = np.zeros((tgt.shape[1], src.shape[1]), np.float32)
        t[:, 2] = 1   # every query on source position 2 (valid in both rows)
        p = np.broadcast_to(t, (src.shape[0], m.get("heads")) + t.shape)
        m.override_attention("cross", 0, p)
        m.forward(src, tgt, pad=PAD)
        labels = heads.label_heads(m, kinds=["cross"],
                                   templates={"pos2": {"cross": t}})["cross"][0]
        self.assertEqual([b for b, _, _ in labels], ["pos2"] * m.get("heads"))


class TestBadInput(unittest.TestCase):
    """A status and a message, never a crash."""

    def setUp(self):
        self.m = support.small_model(seed=2)
        self.src, self.tgt = batch()

    def raises(self, exc, fn, *args, words=()):
        with self.assertRaises(exc) as cm:
            fn(*args)
        for w in words:
            self.assertIn(w, str(cm.exception))

    def test_before_a_pass(self):
        self.raises(libat.StateError, heads.pattern_scores, self.m, "enc_self", 0, "prev",
                    words=["computed"])

    def test_arguments(self):
        m = self.m
        m.forward(self.src, self.tgt, pad=PAD)
        self.raises(libat.ArgumentError, heads.pattern_scores, m, "enc_self", 0, 99,
                    words=["unknown pattern 99"])
        self.raises(libat.ArgumentError, heads.pattern_scores, m, "enc_self", 0, "nope",
                    words=["unknown pattern"])
        self.raises(libat.ArgumentError, heads.pattern_scores, m, "enc_self", 2, "prev",
                    words=["layer 2"])
        self.raises(libat.ArgumentError, heads.pattern_scores, m, 7, 0, "prev",
                    words=["unknown kind 7"])
        self.raises(libat.ArgumentError, heads.pattern_scores, m, "enc_self", 0, "offset", 0,
                    words=["k = 0"])
        self.raises(libat.ArgumentError, heads.pattern_scores, m, "enc_self", 0, "prev", 1,
                    words=["k = 1"])
        self.raises(libat.ArgumentError, heads.pattern_scores, m, "cross", 0, "monotonic", -1,
                    words=["k = -1"])
        self.raises(libat.ArgumentError, heads.pattern_scores, m, "dec_self", 0, "monotonic",
                    words=["cross-attention"])

    def test_templates(self):
        m = self.m
        m.forward(self.src, self.tgt, pad=PAD)
        self.raises(libat.ShapeError, heads.template_scores, m, "cross", 0,
                    np.ones((7, 5)), words=["q_len 5", "k_len 7"])
        self.raises(libat.ShapeError, heads.template_scores, m, "cross", 0,
                    np.ones((3, 5, 7)), words=["batch 1 or 2"])
        self.raises(libat.ShapeError, heads.template_scores, m, "cross", 0, np.ones(5))
        bad = np.ones((5, 7))
        bad[1, 3] = -1
        self.raises(libat.NumericError, heads.template_scores, m, "cross", 0, bad,
                    words=["[0, 1, 3]", ">= 0"])
        bad[1, 3] = np.nan
        self.raises(libat.NumericError, heads.template_scores, m, "cross", 0, bad)

    def test_dropped_head(self):
        m = self.m
        m.set_capture("cross", 1, 2, keep=False)
        m.forward(self.src, self.tgt, pad=PAD)
        self.raises(libat.StateError, heads.pattern_scores, m, "cross", 1, "first",
                    words=["dropped head 2"])
        heads.pattern_scores(m, "cross", 0, "first")   # another layer is whole

    def test_encoder_only(self):
        m = self.m
        m.forward(self.src, pad=PAD)
        heads.pattern_scores(m, "enc_self", 0, "first")
        self.raises(libat.StateError, heads.pattern_scores, m, "cross", 0, "first",
                    words=["with a target"])


@unittest.skipUnless(os.environ.get("ATTN"), "ATTN does not name the attn program")
class TestCLI(unittest.TestCase):
    """attn heads --json agrees with the Python labels on the same pass."""

    def test_json(self):
        import json
        import subprocess
        import tempfile
        m = support.small_model(seed=9)
        src, tgt = batch()
        with tempfile.TemporaryDirectory() as d:
            mp = os.path.join(d, "m.safetensors")
            m.save(mp)
            ip = os.path.join(d, "in.safetensors")
            _write_ids(ip, {"src": src, "tgt": tgt})
            out = subprocess.run([os.environ["ATTN"], "heads", "--model", mp, "--input", ip,
                                  "--json"], capture_output=True, text=True, check=True)
        got = json.loads(out.stdout)
        m.forward(src, tgt, pad=PAD)
        want = heads.label_heads(m)
        self.assertEqual(got["patterns"], list(heads.LIBRARY))
        for kind in KINDS:
            for layer, row in enumerate(got["heads"][kind]):
                for h, cell in enumerate(row):
                    best, score, scores = want[kind][layer][h]
                    self.assertEqual(cell["best"], best)
                    self.assertAlmostEqual(cell["score"], score, places=7)
                    if kind != "cross":
                        self.assertIsNone(cell["scores"]["monotonic"])


def _write_ids(path, tensors):
    """A safetensors file of int32 tensors."""
    import json
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


if __name__ == "__main__":
    unittest.main()
