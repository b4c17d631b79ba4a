"""Rollout, flow and value norms (libat.rollout, at_analysis.h's group
rollout) against references written here from the papers' formulas: numpy
for rollout (Abnar & Zuidema 2020 §3) and value norms (Kobayashi et al.
2020 §3, the value vectors recomputed from the layers' inputs and the
model's own weights), and max-flow by Debian's networkx when it is installed
and by a pure-Python Edmonds–Karp otherwise. The CLI is compared with the C
API through its output file when $ATTN names the program."""

import collections
import os
import subprocess
import tempfile
import unittest

import numpy as np

from support import libat, read_safetensors, small_model
from libat import rollout as ro

try:
    import networkx
except ImportError:   # Debian: python3-networkx
    networkx = None

SRC = np.array([[1, 4, 2, 7, 3, 0, 0],
                [1, 9, 8, 6, 5, 4, 2]], dtype=np.int32)
TGT = np.array([[1, 4, 2, 7, 0],
                [1, 9, 8, 6, 5]], dtype=np.int32)


def residual(a):
    """Ã = ½·mean_heads(A) + ½·I, rows renormalised: (B, L, L)."""
    m = a.astype(np.float64).mean(axis=1)
    m = 0.5 * m + 0.5 * np.eye(m.shape[-1])
    return m / m.sum(axis=-1, keepdims=True)


def ref_rollout(atts):
    r = np.broadcast_to(np.eye(atts[0].shape[-1]), residual(atts[0]).shape).copy()
    for a in atts:
        r = residual(a) @ r
    return r


def ref_cross(enc, dec, cross):
    """The decoder-side rule of docs/rollout.md: P_tt, R_ts per layer."""
    rss = ref_rollout(enc)
    b, _, t, s = cross[0].shape
    p = np.broadcast_to(np.eye(t), (b, t, t)).copy()
    rts = np.zeros((b, t, s))
    for sa, ca in zip(dec, cross):
        at = residual(sa)
        p, rts = at @ p, at @ rts
        rts = 0.5 * rts + 0.5 * (ca.astype(np.float64).mean(axis=1) @ rss)
        p = 0.5 * p
    return rts, p


def layer_norm(x, a, b, eps=1e-6):
    """The reference's LayerNorm: unbiased std, eps added to it."""
    x = x.astype(np.float64)
    mean = x.mean(-1, keepdims=True)
    std = x.std(-1, ddof=1, keepdims=True)
    return a * (x - mean) / (std + eps) + b


def edmonds_karp(cap, s, t):
    """Max-flow value on a dict graph {u: {v: capacity}} (BFS paths)."""
    res = collections.defaultdict(lambda: collections.defaultdict(float))
    for u, nb in cap.items():
        for v, c in nb.items():
            res[u][v] += c
            res[v][u] += 0.0
    total = 0.0
    while True:
        prev = {s: None}
        q = collections.deque([s])
        while q and t not in prev:
            u = q.popleft()
            for v, c in res[u].items():
                if c > 1e-12 and v not in prev:
                    prev[v] = u
                    q.append(v)
        if t not in prev:
            return total
        path, v = [], t
        while prev[v] is not None:
            path.append((prev[v], v))
            v = prev[v]
        d = min(res[u][v] for u, v in path)
        for u, v in path:
            res[u][v] -= d
            res[v][u] += d
        total += d


def ref_flow(atts, b):
    """flow[i][j]: max flow from (N, i) to (0, j) over edges (l, i) -> (l-1, j)
    of capacity Ã_l[i][j]."""
    caps = [residual(a)[b] for a in atts]
    n, L = len(caps), caps[0].shape[0]
    graph = {}
    for l in range(1, n + 1):
        for i in range(L):
            graph[(l, i)] = {(l - 1, j): float(caps[l - 1][i, j]) for j in range(L)}
    out = np.zeros((L, L))
    if networkx is not None:
        g = networkx.DiGraph()
        for u, nb in graph.items():
            for v, c in nb.items():
                g.add_edge(u, v, capacity=c)
    for i in range(L):
        for j in range(L):
            if networkx is not None:
                out[i, j] = networkx.maximum_flow_value(
                    g, (n, i), (0, j), flow_func=networkx.algorithms.flow.edmonds_karp)
            else:
                out[i, j] = edmonds_karp(graph, (n, i), (0, j))
    return out


class Rollout(unittest.TestCase):
    def setUp(self):
        self.m = small_model()
        self.m.forward(SRC, TGT, pad=0)
        self.att = {k: [self.m.attention(k, i).array.copy() for i in range(2)]
                    for k in ("enc_self", "dec_self", "cross")}

    def tearDown(self):
        self.m.close()

    def test_self_rollout(self):
        for kind in ("enc_self", "dec_self"):
            got = ro.rollout(self.m, kind)
            want = ref_rollout(self.att[kind])
            self.assertEqual(got.shape, want.shape)
            self.assertEqual(got.dtype, np.float32)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-5)

    def test_cross_rollout(self):
        got = ro.rollout(self.m, "cross")
        want, p = ref_cross(self.att["enc_self"], self.att["dec_self"], self.att["cross"])
        self.assertEqual(got.shape, (2, 5, 7))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        # [P_tt | R_ts] is a distribution; P_tt = 2^-N · rollout.dec_self
        np.testing.assert_allclose(got.sum(-1), 1 - 0.25, rtol=1e-5)
        np.testing.assert_allclose(p, 0.25 * ro.rollout(self.m, "dec_self"), atol=1e-6)

    def test_flow(self):
        got = ro.flow(self.m)
        self.assertEqual(got.shape, (2, 7, 7))
        for b in range(2):
            np.testing.assert_allclose(got[b], ref_flow(self.att["enc_self"], b), atol=2e-5)
        dec = ro.flow(self.m, "dec_self")
        np.testing.assert_allclose(dec[1], ref_flow(self.att["dec_self"], 1), atol=2e-5)
        # a causal decoder: nothing flows from position i to a later one
        self.assertTrue(np.all(np.triu(dec[1], 1) < 1e-6))

    def v_input(self, kind, layer):
        """The input of the layer's value projection, recomputed."""
        m = self.m
        if kind == "cross":
            return m.output("memory").array.astype(np.float64)
        side, out, emb = (("encoder", "enc_layer", "src_embed") if kind == "enc_self"
                          else ("decoder", "dec_layer", "tgt_embed"))
        x = m.output(emb).array if layer == 0 else m.output(out, layer - 1).array
        pre = "%s.layers.%d.sublayer.0.norm." % (side, layer)
        return layer_norm(x, m.tensor(pre + "a_2").array, m.tensor(pre + "b_2").array)

    def test_value_norm(self):
        m, h = self.m, 4
        names = {"enc_self": "encoder.layers.%d.self_attn",
                 "dec_self": "decoder.layers.%d.self_attn",
                 "cross": "decoder.layers.%d.src_attn"}
        for kind, name in names.items():
            for layer in range(2):
                pre = (name % layer) + ".linears."
                wv, bv = m.tensor(pre + "2.weight").array, m.tensor(pre + "2.bias").array
                wo = m.tensor(pre + "3.weight").array.astype(np.float64)
                v = self.v_input(kind, layer) @ wv.T.astype(np.float64) + bv   # (B, Lk, d)
                dk = wo.shape[0] // h
                norms = np.stack([np.linalg.norm(v[..., j * dk:(j + 1) * dk] @
                                                 wo[:, j * dk:(j + 1) * dk].T, axis=-1)
                                  for j in range(h)], axis=1)                  # (B, h, Lk)
                want = self.att[kind][layer] * norms[:, :, None, :]
                got = ro.value_norm(m, kind, layer)
                self.assertEqual(got.shape, want.shape)
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


class BadInput(unittest.TestCase):
    def setUp(self):
        self.m = small_model(max_len=128)

    def tearDown(self):
        self.m.close()

    def test_no_pass(self):
        for call in (lambda: ro.rollout(self.m, "enc_self"), lambda: ro.flow(self.m),
                     lambda: ro.value_norm(self.m, "enc_self", 0)):
            with self.assertRaisesRegex(libat.StateError, "no enc_self attention"):
                call()

    def test_missing_target(self):
        self.m.forward(SRC, None, pad=0)
        self.assertEqual(ro.rollout(self.m, "enc_self").shape, (2, 7, 7))
        for kind in ("dec_self", "cross"):
            with self.assertRaisesRegex(libat.StateError, "with a target"):
                ro.rollout(self.m, kind)
            with self.assertRaisesRegex(libat.StateError, "at_value_norm"):
                ro.value_norm(self.m, kind, 0)

    def test_wrong_kind_and_layer(self):
        self.m.forward(SRC, TGT, pad=0)
        with self.assertRaises(libat.ArgumentError):
            ro.rollout(self.m, "diagonal")
        with self.assertRaisesRegex(libat.ArgumentError, "flow is defined over self"):
            ro.flow(self.m, "cross")
        with self.assertRaisesRegex(libat.ArgumentError, "layer 2 is outside"):
            ro.value_norm(self.m, "cross", 2)
        with self.assertRaisesRegex(libat.ArgumentError, "layer -1 is outside"):
            ro.value_norm(self.m, "enc_self", -1)

    def test_flow_too_long(self):
        src = np.ones((1, 65), np.int32)
        self.m.forward(src, None, pad=0)
        with self.assertRaisesRegex(libat.RangeError, "at most 64 tokens") as e:
            ro.flow(self.m)
        self.assertIn("length 65", str(e.exception))
        self.assertEqual(ro.rollout(self.m).shape, (1, 65, 65))   # rollout has no limit

    def test_dropped_heads(self):
        self.m.set_capture("enc_self", 1, 2, keep=False)
        self.m.forward(SRC, TGT, pad=0)
        with self.assertRaisesRegex(libat.StateError, "capture policy"):
            ro.rollout(self.m, "cross")
        with self.assertRaisesRegex(libat.StateError, "capture policy"):
            ro.value_norm(self.m, "enc_self", 1)
        ro.value_norm(self.m, "enc_self", 0)   # layer 0 is whole


@unittest.skipUnless(os.environ.get("ATTN"), "ATTN (the attn program) not set")
class Cli(unittest.TestCase):
    def test_same_as_the_api(self):
        m = small_model()
        with tempfile.TemporaryDirectory() as d:
            model, batch, out = (os.path.join(d, n) for n in ("m.st", "b.st", "r.st"))
            m.save(model)
            write_batch(batch, {"src": SRC, "tgt": TGT})
            subprocess.run([os.environ["ATTN"], "rollout", "--model", model, "--input", batch,
                            "--out", out, "--flow", "--value-norm"], check=True,
                           stdout=subprocess.DEVNULL)
            got = read_safetensors(out)
        m.forward(SRC, TGT, pad=0)
        for kind in ("enc_self", "dec_self", "cross"):
            np.testing.assert_array_equal(got["rollout." + kind], ro.rollout(m, kind))
            for layer in range(2):
                np.testing.assert_array_equal(got["vnorm.%s.%d" % (kind, layer)],
                                              ro.value_norm(m, kind, layer))
        np.testing.assert_array_equal(got["flow.enc_self"], ro.flow(m))
        np.testing.assert_array_equal(got["flow.dec_self"], ro.flow(m, "dec_self"))
        m.close()


def write_batch(path, tensors):
    """A safetensors file of int32 tensors."""
    import json
    import struct
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        raw = np.ascontiguousarray(a, dtype="<i4").tobytes()
        header[name] = {"dtype": "I32", "shape": list(a.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


if __name__ == "__main__":
    unittest.main()
