"""Interventions from Python: taps as Python callables over writable numpy
arrays of the library's memory, head gates and their gradients, attention
overrides from numpy, head importance, the capture policy."""

import gc
import json
import os
import struct
import subprocess
import tempfile
import unittest
import weakref

import numpy as np

from support import libat, small_model

SRC = np.array([[1, 4, 2, 7, 3, 0, 0],
                [1, 9, 8, 6, 5, 4, 2]], dtype=np.int32)
Y = np.array([[1, 4, 2, 7, 3, 0],
              [1, 9, 8, 6, 5, 4]], dtype=np.int32)   # full targets (B, T + 1)
TGT = Y[:, :-1]                                         # decoder input (B, T)
B, S, T = 2, 7, 5
N, H, D, DFF, V = 2, 4, 32, 64, 11
DK = D // H
KINDS = ("enc_self", "dec_self", "cross")
LENS = {"enc_self": (S, S), "dec_self": (T, T), "cross": (T, S)}   # (Lq, Lk)


def write_safetensors(path, tensors):
    """int32 tensors as a safetensors file (a json header, then the data)."""
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        raw = np.ascontiguousarray(a, dtype="<i4").tobytes()
        header[name] = {"dtype": "I32", "shape": list(a.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def logprobs(m):
    m.forward(SRC, TGT, pad=0)
    return m.output("logprobs").copy()


def expected_shape(site, kind):
    """The shape at.h gives each site, for the batch above."""
    if site in ("ff_hidden", "layer_out"):
        L = S if kind == "enc_self" else T
        return (B, L, DFF if site == "ff_hidden" else D)
    model = {"src_embed": (B, S, D), "tgt_embed": (B, T, D), "memory": (B, S, D),
             "decoder": (B, T, D), "logprobs": (B, T, V)}
    if site in model:
        return model[site]
    lq, lk = LENS[kind]
    return {"q": (B, H, lq, DK), "k": (B, H, lk, DK), "v": (B, H, lk, DK),
            "scores": (B, H, lq, lk), "probs": (B, H, lq, lk), "head_out": (B, H, lq, DK),
            "attn_out": (B, lq, D)}[site]


class Base(unittest.TestCase):
    def setUp(self):
        self.assertTrue(libat.HAVE_INTERVENTIONS,
                        "libat %s at %s has no interventions" % (libat.version(),
                                                                 libat.LIBRARY_PATH))
        self.m = small_model()
        self.plain = logprobs(self.m)

    def tearDown(self):
        self.m.close()

    def assertBitIdentical(self, a, b):
        self.assertEqual(a.shape, b.shape)
        self.assertTrue(np.array_equal(a.view(np.uint32), b.view(np.uint32)),
                        "max |diff| %g" % float(np.max(np.abs(a - b))))


class Sites(Base):
    def test_names(self):
        self.assertEqual(libat.SITES, tuple(s.name.lower() for s in libat.Site))
        for s in libat.Site:
            self.assertEqual(libat.site_name(s), s.name.lower())
            self.assertEqual(libat.site_name(int(s)), s.name.lower())
        with self.assertRaises(libat.ArgumentError):
            libat.site_name(len(libat.SITES))


class Taps(Base):
    def test_every_site_shape(self):
        seen = {}
        flags = []

        def record(ev, x):
            key = (ev.site, ev.kind, ev.layer)
            self.assertNotIn(key, seen)   # once per forward pass
            seen[key] = (x.shape, ev)
            flags.append((x.dtype, x.flags.writeable))
            self.assertEqual(x.shape[0], ev.batch)

        for site in libat.SITES:
            self.m.add_tap(site, record)
        lp = logprobs(self.m)
        # A tap on attn_out adds the residual after the output projection
        # instead of inside its GEMM (docs/interventions.md, Exactness): the
        # last bits move. Bit for bit without it: test_reading_changes_nothing.
        np.testing.assert_allclose(lp, self.plain, rtol=0, atol=1e-5)
        want = set()
        for site in libat.SITES:
            if site in ("ff_hidden", "layer_out"):
                want |= {(site, k, l) for k in ("enc_self", "dec_self") for l in range(N)}
            elif site in ("src_embed", "tgt_embed", "memory", "decoder", "logprobs"):
                want.add((site, None, 0))
            else:
                want |= {(site, k, l) for k in KINDS for l in range(N)}
        self.assertEqual(set(seen), want)
        for (site, kind, layer), (shape, ev) in seen.items():
            self.assertEqual(shape, expected_shape(site, kind), (site, kind, layer))
            self.assertEqual((ev.pass_, ev.step, ev.batch), ("forward", -1, B))
            self.assertEqual(ev.pos_begin, 0)
            # The rows' positions: queries for attention sites (k and v are
            # over the keys: at.h leaves which length open there).
            if site in ("k", "v"):
                self.assertIn(ev.pos_end, LENS[kind], (site, kind, layer))
            elif site in ("q", "scores", "probs", "head_out"):
                self.assertEqual(ev.pos_end, shape[2], (site, kind, layer))
            else:
                self.assertEqual(ev.pos_end, shape[1], (site, kind, layer))
        self.assertTrue(all(dt == np.float32 and w for dt, w in flags))

    def test_reading_changes_nothing(self):
        n = [0]

        def read(ev, x):
            n[0] += 1
            float(x.sum())

        for site in libat.SITES:
            if site != "attn_out":
                self.m.add_tap(site, read)
        self.assertBitIdentical(logprobs(self.m), self.plain)
        self.assertGreater(n[0], 0)

    def test_arrays_are_the_library_memory(self):
        got = {}

        def keep(ev, x):
            got[(ev.site, ev.kind, ev.layer)] = x.copy()
            got["array"] = x

        self.m.add_tap("probs", keep, kind="cross", layer=1)
        self.m.add_tap("logprobs", keep)
        logprobs(self.m)
        self.assertBitIdentical(got[("probs", "cross", 1)], self.m.attention("cross", 1).copy())
        self.assertBitIdentical(got[("logprobs", None, 0)], self.plain)
        # Read-only once the tap has returned: it is the library's memory again.
        self.assertFalse(got["array"].flags.writeable)
        with self.assertRaises(ValueError):
            got["array"][0, 0, 0] = 1.0

    def test_editing_tap_and_removal(self):
        def zero(ev, x):
            x[...] = 0.0

        t = self.m.add_tap("ff_hidden", zero, kind="enc_self", layer=0)
        self.assertEqual(self.m.taps, (t,))
        edited = logprobs(self.m)
        self.assertFalse(np.array_equal(edited, self.plain))
        other = self.m.share()                 # a new handle starts with no taps
        self.assertEqual(other.taps, ())
        self.assertBitIdentical(logprobs(other), self.plain)
        other.close()
        # The edit is what the rest of the pass used: the layer's output is
        # x + W_2 * 0 + b_2 of its norm, the same as with the weights W_2 zeroed.
        t.remove()
        self.assertFalse(t.active)
        self.assertEqual(self.m.taps, ())
        self.assertBitIdentical(logprobs(self.m), self.plain)
        with self.m.tap("ff_hidden", zero, kind="enc_self", layer=0) as t2:
            self.assertTrue(t2.active)
            self.assertBitIdentical(logprobs(self.m), edited)
        self.assertFalse(t2.active)
        self.assertBitIdentical(logprobs(self.m), self.plain)

    def test_edit_equals_gate(self):
        """Zeroing head 2 of cross layer 1 in head_out (before its gate) is
        the gate 0 on that head."""
        def zero_head(ev, x):
            x[:, 2] = 0.0

        with self.m.tap("head_out", zero_head, kind="cross", layer=1):
            tapped = logprobs(self.m)
        self.m.set_gate("cross", 1, 2, 0.0)
        gated = logprobs(self.m)
        self.assertFalse(np.array_equal(gated, self.plain))
        np.testing.assert_allclose(tapped, gated, rtol=0, atol=1e-6)

    def test_remove_one_keeps_others_in_order(self):
        order = []
        taps = [self.m.add_tap("memory", (lambda i: lambda ev, x: order.append(i))(i))
                for i in range(3)]
        logprobs(self.m)
        self.assertEqual(order, [0, 1, 2])
        self.m.remove_tap(taps[1])
        self.m.remove_tap(taps[1])      # not on: nothing
        del order[:]
        logprobs(self.m)
        self.assertEqual(order, [0, 2])
        self.assertEqual(self.m.taps, (taps[0], taps[2]))
        self.m.clear_taps()
        del order[:]
        logprobs(self.m)
        self.assertEqual(order, [])

    def test_callbacks_kept_alive(self):
        calls = []

        class Fn:
            def __call__(self, ev, x):
                calls.append(ev.site)

        fn = Fn()
        ref = weakref.ref(fn)
        self.m.add_tap("decoder", fn)
        del fn
        gc.collect()
        logprobs(self.m)                 # the ctypes callback is alive while registered
        self.assertEqual(calls, ["decoder"])
        self.assertIsNotNone(ref())
        self.m.clear_taps()
        gc.collect()
        self.assertIsNone(ref())         # and let go once removed

    def test_greedy_decode_events(self):
        events = []
        self.m.add_tap("probs", lambda ev, x: events.append((ev, x.shape)), kind="dec_self",
                       layer=0)
        self.m.add_tap("memory", lambda ev, x: events.append((ev, x.shape)))
        out = self.m.greedy_decode(SRC, max_len=4, start=1, pad=0)
        self.assertEqual(out.shape, (B, 4))
        self.assertEqual(events[0][0].site, "memory")
        self.assertEqual((events[0][0].pass_, events[0][0].step), ("greedy", -1))
        steps = [(ev, shape) for ev, shape in events if ev.site == "probs"]
        self.assertEqual(len(steps), 3)
        for t, (ev, shape) in enumerate(steps):
            self.assertEqual((ev.pass_, ev.step, ev.pos_begin, ev.pos_end, ev.batch),
                             ("greedy", t, t, t + 1, B))
            self.assertEqual(shape, (B, H, 1, t + 1))

    def test_beam_and_train_events(self):
        events = []
        self.m.add_tap("probs", lambda ev, x: events.append((ev, x.shape)), kind="cross",
                       layer=1)
        self.m.add_tap("k", lambda ev, x: events.append((ev, x.shape)), kind="cross", layer=1)
        self.m.beam_decode(SRC, beam=3, max_len_a=4, max_len_b=0)
        k = [ev for ev, _ in events if ev.site == "k"]
        self.assertEqual([(ev.pass_, ev.step) for ev in k], [("beam", -1)])   # once
        probs = [(ev, shape) for ev, shape in events if ev.site == "probs"]
        self.assertEqual(len(probs), 3)
        for t, (ev, shape) in enumerate(probs):
            self.assertEqual((ev.pass_, ev.step, ev.pos_begin, ev.pos_end), ("beam", t, t, t + 1))
            self.assertLessEqual(ev.batch, B * 3)          # the live hypotheses
            self.assertEqual(shape, (ev.batch, H, 1, S))
        del events[:]
        self.m.train_step(SRC, Y)
        self.assertEqual([(ev.pass_, ev.step, shape) for ev, shape in events if
                          ev.site == "probs"], [("train", -1, (B, H, T, S))])

    def test_exception_propagates(self):
        class Boom(Exception):
            pass

        def boom(ev, x):
            raise Boom("no %s today" % ev.site)

        self.m.add_tap("scores", boom, kind="cross", layer=0)
        for run in (lambda: self.m.forward(SRC, TGT), lambda: self.m.nll(SRC, Y),
                    lambda: self.m.greedy_decode(SRC, 4), lambda: self.m.train_step(SRC, Y)):
            with self.assertRaises(libat.CallbackError) as cm:
                run()
            e = cm.exception
            self.assertEqual((e.status, e.status_name), (9, "AT_E_CALLBACK"))
            self.assertIsInstance(e, libat.AtError)
            self.assertIsInstance(e.__cause__, Boom)
            self.assertIn("no scores today", str(e))
        self.assertEqual(self.m.steps, 0)   # the failed step changed nothing
        self.m.clear_taps()
        self.assertBitIdentical(logprobs(self.m), self.plain)

    def test_base_exceptions_as_they_are(self):
        def stop(ev, x):
            raise KeyboardInterrupt

        self.m.add_tap("memory", stop)
        with self.assertRaises(KeyboardInterrupt):
            self.m.forward(SRC, TGT)
        self.m.clear_taps()
        self.assertBitIdentical(logprobs(self.m), self.plain)

    def test_tap_must_not_use_its_model(self):
        self.m.add_tap("memory", lambda ev, x: self.m.forward(SRC, TGT))
        with self.assertRaises(libat.CallbackError) as cm:
            self.m.forward(SRC, TGT)
        self.assertIsInstance(cm.exception.__cause__, libat.StateError)
        self.assertIn("must not use its own model", str(cm.exception.__cause__))

    def test_bad_arguments(self):
        f = lambda ev, x: None  # noqa: E731
        with self.assertRaisesRegex(ValueError, "unknown site 'nosuch'"):
            self.m.add_tap("nosuch", f)
        with self.assertRaisesRegex(ValueError, "unknown site 99"):
            self.m.add_tap(99, f)
        with self.assertRaisesRegex(ValueError, "must be callable"):
            self.m.add_tap("q", 42)
        with self.assertRaisesRegex(ValueError, "unknown attention kind"):
            self.m.add_tap("q", f, kind="sideways")
        with self.assertRaisesRegex(ValueError, "count from 0"):
            self.m.add_tap("q", f, layer=-1)
        with self.assertRaises(libat.ArgumentError) as cm:     # the library's refusals
            self.m.add_tap("q", f, layer=N)
        self.assertEqual(cm.exception.call, "at_tap_add")
        self.assertTrue(cm.exception.message)
        with self.assertRaises(libat.ArgumentError):
            self.m.add_tap("ff_hidden", f, kind="cross")
        self.assertEqual(self.m.taps, ())


class Gates(Base):
    def test_default_and_get_set(self):
        np.testing.assert_array_equal(self.m.gates, np.ones((3, N, H), np.float32))
        self.m.set_gate("cross", 1, 2, 0.25)
        self.assertEqual(self.m.gate("cross", 1, 2), 0.25)
        self.assertEqual(self.m.gate(libat.Attn.CROSS, 1, 1), 1.0)
        self.m.set_gate(None, 0, None, 0.5)     # layer 0 of every kind
        g = self.m.gates
        self.assertTrue(np.all(g[:, 0] == 0.5))
        self.assertEqual(g[2, 1, 2], 0.25)
        want = np.arange(3 * N * H, dtype=np.float32).reshape(3, N, H) / 10
        self.m.gates = want
        np.testing.assert_array_equal(self.m.gates, want)
        self.m.gates = 1.0
        np.testing.assert_array_equal(self.m.gates, np.ones((3, N, H), np.float32))
        g = self.m.gates
        g[0, 0, 0] = 7                        # a copy
        self.assertEqual(self.m.gate(0, 0, 0), 1.0)
        other = self.m.share()                 # a new handle starts at 1
        self.m.set_gate(None, None, None, 0.0)
        np.testing.assert_array_equal(other.gates, np.ones((3, N, H), np.float32))
        other.close()

    def test_ones_bit_identical_and_zero_changes(self):
        self.m.set_gate(None, None, None, 1.0)
        self.assertBitIdentical(logprobs(self.m), self.plain)
        self.m.set_gate("cross", 1, None, 0.0)
        cut = logprobs(self.m)
        self.assertFalse(np.array_equal(cut, self.plain))
        self.assertTrue(np.all(np.isfinite(cut)))
        self.m.reset_interventions()
        np.testing.assert_array_equal(self.m.gates, np.ones((3, N, H), np.float32))
        self.assertBitIdentical(logprobs(self.m), self.plain)

    def test_gradients_finite_difference(self):
        """dL/dxi against a central difference (eps 1e-2) of nll(). The loss
        is computed in float32 (L ~ 2.4 here, rounding ~ 1e-6 relative), so
        the difference quotient carries ~ 1e-4 of rounding and O(eps^2) of
        truncation: |fd - g| <= 2e-3 + 2% |g|."""
        self.m.set_gate("enc_self", 1, 3, 0.7)     # not only at xi = 1
        loss, grad = self.m.gate_gradients(SRC, Y, pad=0)
        self.assertEqual(grad.shape, (3, N, H))
        self.assertEqual(grad.dtype, np.float32)
        self.assertTrue(np.all(np.isfinite(grad)))
        self.assertGreater(float(np.abs(grad).max()), 0.0)
        base, ntok = self.m.nll(SRC, Y, pad=0)
        self.assertEqual(ntok, int(np.sum(Y[:, 1:] != 0)))
        self.assertAlmostEqual(loss, base, delta=1e-5 * abs(base))
        eps = 1e-2
        for k, l, h in ((0, 0, 1), (1, 1, 0), (2, 1, 2), (0, 1, 3)):
            xi = self.m.gate(k, l, h)
            self.m.set_gate(k, l, h, xi + eps)
            up = self.m.nll(SRC, Y, pad=0)[0]
            self.m.set_gate(k, l, h, xi - eps)
            down = self.m.nll(SRC, Y, pad=0)[0]
            self.m.set_gate(k, l, h, xi)
            fd = (up - down) / (2 * eps)
            g = float(grad[k, l, h])
            self.assertLessEqual(abs(fd - g), 2e-3 + 0.02 * abs(g),
                                 "gate %s: fd %g, gradient %g" % ((k, l, h), fd, g))

    def test_head_importance(self):
        r = self.m.head_importance(SRC, Y, pad=0)
        self.assertEqual(set(r), {"loss", "tokens", "layers", "heads", "importance",
                                  "ablation"})
        self.assertEqual((r["tokens"], r["layers"], r["heads"]),
                         (int(np.sum(Y[:, 1:] != 0)), N, H))
        loss, grad = self.m.gate_gradients(SRC, Y, pad=0)
        base = self.m.nll(SRC, Y, pad=0)[0]
        self.assertEqual(r["loss"], loss)
        for part in ("importance", "ablation"):
            self.assertEqual(set(r[part]), set(KINDS))
        for k, kind in enumerate(KINDS):
            self.assertEqual(r["importance"][kind].shape, (N, H))
            np.testing.assert_array_equal(r["importance"][kind], np.abs(grad[k]))
            self.assertEqual(r["ablation"][kind].shape, (N, H))
        self.m.set_gate("cross", 1, 2, 0.0)
        self.assertEqual(r["ablation"]["cross"][1, 2], self.m.nll(SRC, Y, pad=0)[0] - base)
        # At the gates as they are (as attn importance --gate), and put back.
        self.m.gates = 1.0
        self.m.set_gate("dec_self", 0, 1, 0.5)
        before = self.m.gates
        r = self.m.head_importance(SRC, Y, pad=0, ablation=False)
        np.testing.assert_array_equal(self.m.gates, before)
        np.testing.assert_array_equal(r["importance"]["dec_self"],
                                      np.abs(self.m.gate_gradients(SRC, Y)[1][1]))
        self.assertTrue(np.all(np.isnan(r["ablation"]["cross"])))

    def test_head_importance_as_the_cli(self):
        """The same numbers as `attn importance --json` on the same model and
        batch (CTest passes the program in ATTN; skipped without it)."""
        attn = os.environ.get("ATTN")
        if not attn or not os.path.exists(attn):
            self.skipTest("ATTN does not name the attn program")
        with tempfile.TemporaryDirectory() as d:
            model, batch = os.path.join(d, "m.safetensors"), os.path.join(d, "b.safetensors")
            self.m.save(model)
            write_safetensors(batch, {"src": SRC, "tgt": Y})
            p = subprocess.run([attn, "importance", "--model", model, "--input", batch,
                                "--pad", "0", "--json", "--threads", "1"],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr)
        cli = json.loads(p.stdout)
        r = self.m.head_importance(SRC, Y, pad=0)
        self.assertEqual(set(cli), set(r))
        for key in ("tokens", "layers", "heads"):
            self.assertEqual(cli[key], r[key])
        self.assertAlmostEqual(cli["loss"], r["loss"], delta=1e-6 * abs(r["loss"]))
        for part in ("importance", "ablation"):
            self.assertEqual(set(cli[part]), set(KINDS))
            for kind in KINDS:
                np.testing.assert_allclose(np.array(cli[part][kind]), r[part][kind],
                                           rtol=1e-5, atol=1e-7, err_msg="%s %s"
                                           % (part, kind))

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "unknown attention kind 'sideways'"):
            self.m.set_gate("sideways", 0, 0, 1.0)
        with self.assertRaisesRegex(ValueError, "None means every one"):
            self.m.set_gate("cross", -1, 0, 1.0)
        with self.assertRaises(libat.ArgumentError) as cm:
            self.m.set_gate("cross", 0, H, 1.0)          # the library's check
        self.assertEqual(cm.exception.call, "at_gate_set")
        with self.assertRaises(libat.NumericError):
            self.m.set_gate("cross", 0, 0, float("nan"))
        with self.assertRaisesRegex(ValueError, "must be a number"):
            self.m.set_gate("cross", 0, 0, "1")
        with self.assertRaisesRegex(ValueError, "needs one attention kind"):
            self.m.gate(None, 0, 0)
        with self.assertRaisesRegex(ValueError, "broadcast to"):
            self.m.gates = np.ones((3, N + 1, H))
        with self.assertRaises(libat.NumericError):
            self.m.gates = np.full((3, N, H), np.inf)
        np.testing.assert_array_equal(self.m.gates, np.ones((3, N, H), np.float32))
        with self.assertRaisesRegex(ValueError, "src has 2 rows, tgt 1"):
            self.m.gate_gradients(SRC, Y[:1])


class AttentionGradients(Base):
    def test_against_differences_of_an_override(self):
        """dL/dA against a central difference of nll() over an override of
        the model's own attention with one entry moved by eps (an override
        need not be row-stochastic): the gradient that flows into A from
        downstream, as at_analysis.h defines it."""
        loss, grads = self.m.attention_gradients(SRC, Y, pad=0)
        self.assertEqual(sorted(grads), ["cross", "dec_self", "enc_self"])
        self.assertEqual(len(grads["cross"]), N)
        g = np.array(grads["cross"][1])          # views end with the next pass
        base, _ = self.m.nll(SRC, Y, pad=0)
        self.assertAlmostEqual(loss, base, delta=1e-5 * abs(base))
        self.m.forward(SRC, Y[:, :-1], pad=0)
        own = np.array(self.m.attention("cross", 1), dtype=np.float32)
        self.assertEqual(g.shape, own.shape)
        eps = 1e-2
        for b, h, i, j in ((0, 0, 0, 1), (1, 2, 3, 0), (0, 3, 2, 4)):
            nll = []
            for sign in (1, -1):
                p = own.copy()
                p[b, h, i, j] += sign * eps
                self.m.override_attention("cross", 1, p)
                nll.append(self.m.nll(SRC, Y, pad=0)[0])
            self.m.override_attention("cross", 1, None)
            fd = (nll[0] - nll[1]) / (2 * eps)
            self.assertLessEqual(abs(fd - g[b, h, i, j]), 2e-3 + 2e-2 * abs(fd),
                                 "dL/dA[%d, %d, %d, %d]: %g, differences %g"
                                 % (b, h, i, j, g[b, h, i, j], fd))

    def test_integrated_gradients_and_chefer(self):
        errs = []
        for steps in (1, 8, 64):
            attr, err = self.m.integrated_gradients(SRC, Y, "cross", 1, steps=steps)
            self.assertEqual(attr.shape, (SRC.shape[0], H, Y.shape[1] - 1, SRC.shape[1]))
            errs.append(err)
        self.assertLess(errs[2], errs[0])
        rss, rqq, rqs = self.m.relevance_chefer(SRC, Y, target=2)
        self.assertEqual(rqs.shape, (SRC.shape[0], Y.shape[1] - 1, SRC.shape[1]))
        self.assertTrue(np.all(np.isfinite(rss)) and np.all(rqq.diagonal(0, 1, 2) >= 1))

    def test_target_position_and_bad_input(self):
        value, grads = self.m.attention_gradients(SRC, Y, pad=0, target=1)
        self.assertLess(value, 0.0)             # a log-probability
        self.assertTrue(np.all(np.isfinite(np.array(grads["enc_self"][0]))))
        with self.assertRaises(libat.AtError):
            self.m.attention_gradients(SRC, Y, pad=0, target=Y.shape[1] - 1)


class Overrides(Base):
    def test_own_attention_bit_identical(self):
        for kind in KINDS:
            for layer in range(N):
                self.m.forward(SRC, TGT)
                own = self.m.attention(kind, layer).copy()
                self.m.override_attention(kind, layer, own)
                self.assertBitIdentical(logprobs(self.m), self.plain)
                self.m.override_attention(kind, layer, None)
        self.m.forward(SRC, TGT)
        head = self.m.attention("cross", 1)[:, 3]              # one head, (B, T, S)
        self.m.override_attention("cross", 1, head.astype(np.float64), head=3)
        self.assertBitIdentical(logprobs(self.m), self.plain)

    def test_change_and_clear(self):
        uniform = np.zeros((B, H, T, S), np.float32)
        uniform[:, :, :, :] = 1.0 / S
        self.m.override_attention("cross", 0, uniform)
        lp = logprobs(self.m)
        self.assertFalse(np.array_equal(lp, self.plain))
        np.testing.assert_allclose(self.m.attention("cross", 0).copy(), uniform, rtol=0,
                                   atol=0)
        self.m.override_attention("cross", 0, None)
        self.assertBitIdentical(logprobs(self.m), self.plain)
        self.m.override_attention("cross", 0, uniform[:, 0], head=0)
        self.assertFalse(np.array_equal(logprobs(self.m), self.plain))
        self.m.reset_interventions()
        self.assertBitIdentical(logprobs(self.m), self.plain)

    def test_bad_arguments(self):
        ok = np.full((B, H, T, S), 1.0 / S)
        with self.assertRaisesRegex(libat.ShapeError, "one head"):
            self.m.override_attention("cross", 0, ok, head=1)
        with self.assertRaisesRegex(libat.ShapeError, "every head"):
            self.m.override_attention("cross", 0, ok[:, 0])
        with self.assertRaisesRegex(libat.ShapeError, "heads"):
            self.m.override_attention("cross", 0, ok[:, :2])
        with self.assertRaisesRegex(ValueError, "needs one attention kind"):
            self.m.override_attention(None, 0, ok)
        with self.assertRaisesRegex(ValueError, "real numbers"):
            self.m.override_attention("cross", 0, np.array([["a"]]))
        with self.assertRaises(libat.NumericError):
            bad = ok.copy()
            bad[0, 0, 0, 0] = np.nan
            self.m.override_attention("cross", 0, bad)
        with self.assertRaises(libat.ArgumentError):          # decoder looks ahead
            self.m.override_attention("dec_self", 0, np.full((B, H, T, T), 1.0 / T))
        with self.assertRaises(libat.ArgumentError):
            self.m.override_attention("cross", N, ok)
        # Lengths that do not fit the pass: the pass fails.
        self.m.override_attention("cross", 0, ok[:, :, :, :S - 1])
        with self.assertRaises(libat.ShapeError):
            self.m.forward(SRC, TGT)
        self.m.override_attention("cross", 0, None)
        self.assertBitIdentical(logprobs(self.m), self.plain)


class Capture(Base):
    def test_drop_keep(self):
        self.m.forward(SRC, TGT)
        kept_bytes = self.m.activation_bytes
        self.assertGreater(kept_bytes, 0)
        full = self.m.attention("cross", 1).copy()
        self.m.set_capture(keep=False)
        lp = logprobs(self.m)
        self.assertBitIdentical(lp, self.plain)         # the same numbers, not kept
        self.assertLess(self.m.activation_bytes, kept_bytes)
        with self.assertRaises(libat.StateError):
            self.m.attention("cross", 1)
        with self.assertRaises(libat.StateError):
            self.m.attention_head("cross", 1, 2)
        with self.assertRaises(libat.StateError):
            self.m.gate_gradients(SRC, Y)
        with self.assertRaises(libat.StateError):
            self.m.train_step(SRC, Y)
        self.assertEqual(self.m.steps, 0)
        self.m.set_capture("cross", 1, 2, True)        # one head
        self.m.forward(SRC, TGT)
        v = self.m.attention_head("cross", 1, 2)
        self.assertEqual(v.shape, (B, T, S))
        self.assertBitIdentical(v.copy(), full[:, 2])
        with self.assertRaises(libat.StateError):
            self.m.attention("cross", 1)               # needs every head of the layer
        self.m.reset_interventions()                   # keeps every attention again
        self.m.forward(SRC, TGT)
        self.assertBitIdentical(self.m.attention("cross", 1).copy(), full)
        self.assertEqual(self.m.activation_bytes, kept_bytes)
        self.assertBitIdentical(self.m.attention_head("cross", 0, 1).copy(),
                                self.m.attention("cross", 0)[:, 1])

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "keep"):
            self.m.set_capture(keep=2)
        with self.assertRaisesRegex(ValueError, "needs one head"):
            self.m.attention_head("cross", 0, None)
        with self.assertRaises(libat.ArgumentError):
            self.m.set_capture("cross", N, None, False)


if __name__ == "__main__":
    unittest.main()
