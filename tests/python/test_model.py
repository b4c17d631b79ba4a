"""Models from Python: configuration, errors, checkpoints, the golden
forward pass, training, decoding, statistics, shared handles in threads."""

import ast
import ctypes
import math
import os
import subprocess
import sys
import tempfile
import threading
import unittest

import numpy as np

from support import DATA, TOP, copy_batch, header_version, libat, read_safetensors, small_model

TINY = os.path.join(DATA, "golden", "tiny")


def cpu_flags():
    """The CPU's feature flags, as /proc/cpuinfo lists them (not as libat reads them)."""
    with open("/proc/cpuinfo") as f:
        for row in f:
            if row.startswith("flags"):
                return set(row.split(":", 1)[1].split())
    return set()


class Library(unittest.TestCase):
    def test_loaded_from_libat_path(self):
        want = os.environ.get("LIBAT_PATH")
        if want and not os.path.isdir(want):
            self.assertEqual(os.path.realpath(libat.LIBRARY_PATH), os.path.realpath(want))
        # Without LIBAT_PATH the source tree's lib/ comes first.
        self.assertEqual(libat._capi.source_tree_library(),
                         os.path.join(TOP, "lib", "libat.so.0"))

    def test_version(self):
        major, minor, patch = header_version()
        self.assertEqual(libat.version(), "%d.%d.%d" % (major, minor, patch))
        self.assertEqual(libat.version_number(), major * 10000 + minor * 100 + patch)

    def test_params(self):
        self.assertEqual(libat.PARAMS["src_vocab"], 1)
        self.assertEqual(libat.PARAMS["adam_eps"], 17)
        d = libat.config_defaults()
        self.assertEqual((d["layers"], d["d_model"], d["heads"], d["d_ff"]), (6, 512, 8, 2048))
        self.assertIsInstance(d["layers"], int)
        self.assertAlmostEqual(d["dropout"], 0.1)
        self.assertEqual(libat.param_bounds("layers"), (1.0, 256.0))

    def test_noam_rate(self):
        for step in (0, 1, 50, 400, 5000):
            s = max(step, 1)
            want = 2.0 * 512 ** -0.5 * min(s ** -0.5, s * 400 ** -1.5)
            self.assertAlmostEqual(libat.noam_rate(step, 512, 2.0, 400), want, places=12)

    def test_threads(self):
        n = libat.get_threads()
        self.assertGreaterEqual(n, 1)
        libat.set_threads(1)
        self.assertEqual(libat.get_threads(), 1)
        libat.set_threads(0)
        self.assertEqual(libat.get_threads(), n)
        with self.assertRaises(libat.ArgumentError):
            libat.set_threads(-1)

    def test_blas_report(self):
        """OPENBLAS_CORETYPE=Prescott (SSE kernels) is a fallback exactly when
        /proc/cpuinfo lists AVX; OpenBLAS reads the variable when it loads, so
        a child process asks."""
        fallback, line = libat.blas_report()
        self.assertIsInstance(fallback, bool)
        self.assertIn("OpenBLAS runs its", line)
        lib = libat.model._lib
        self.assertEqual(lib.at_blas_report(None, 5), -1)       # NULL with a size
        self.assertEqual(lib.at_blas_report(None, 0), int(fallback))
        small = ctypes.create_string_buffer(8)                  # cut, NUL-terminated
        self.assertEqual(lib.at_blas_report(small, 8), int(fallback))
        self.assertEqual(small.value.decode(), line[:7])
        flags = cpu_flags()
        pkg = os.path.dirname(os.path.dirname(os.path.abspath(libat.__file__)))
        env = dict(os.environ, OPENBLAS_CORETYPE="Prescott", PYTHONPATH=pkg)
        child = subprocess.run([sys.executable, "-c", "import libat; print(libat.blas_report())"],
                               env=env, capture_output=True, text=True, check=True)
        fallback, line = ast.literal_eval(child.stdout.strip())
        self.assertIn("Prescott", line)
        self.assertEqual(fallback, "avx" in flags)
        if "avx512f" in flags:
            self.assertIn("OPENBLAS_CORETYPE=SkylakeX", line)

    def test_kernel_name(self):
        """The kernels follow /proc/cpuinfo, not a table of CPU models;
        LIBAT_GEMM (read by a child process, once) picks another that the CPU
        can run, or OpenBLAS, and a name it cannot run is ignored."""
        flags = cpu_flags()
        best = ("avx512" if "avx512f" in flags else
                "avx2" if {"avx2", "fma"} <= flags else "generic")
        if "LIBAT_GEMM" not in os.environ:
            self.assertEqual(libat.kernel_name(), best)
        pkg = os.path.dirname(os.path.dirname(os.path.abspath(libat.__file__)))
        for asked, want in (("generic", "generic"), ("openblas", "openblas"),
                            ("sse9", best), ("", best)):
            env = dict(os.environ, LIBAT_GEMM=asked, PYTHONPATH=pkg)
            child = subprocess.run([sys.executable, "-c", "import libat; print(libat.kernel_name())"],
                                   env=env, capture_output=True, text=True, check=True)
            self.assertEqual(child.stdout.strip(), want, asked)

    def test_kernel_peak(self):
        """The ceiling is a positive, finite rate of libat's kernels; out of
        range arguments are refused, and with OpenBLAS's products (a child
        process: LIBAT_GEMM is read once) there is nothing of libat's to
        measure."""
        lib = libat.model._lib
        for bad in (0.0, -1.0, 61.0, float("nan"), float("inf")):
            self.assertEqual(lib.at_kernel_peak(bad), -1.0, bad)
            with self.assertRaises(libat.ArgumentError):
                libat.kernel_peak(bad)
        with self.assertRaises(libat.ArgumentError):
            libat.kernel_peak("1")
        if os.environ.get("LIBAT_GEMM") == "openblas":
            self.assertIsNone(libat.kernel_peak(0.05))
        else:
            one = libat.kernel_peak(0.05)
            self.assertGreater(one, 0.0)
            self.assertTrue(math.isfinite(one))
        pkg = os.path.dirname(os.path.dirname(os.path.abspath(libat.__file__)))
        env = dict(os.environ, LIBAT_GEMM="openblas", PYTHONPATH=pkg)
        child = subprocess.run([sys.executable, "-c", "import libat; print(libat.kernel_peak(0.05))"],
                               env=env, capture_output=True, text=True, check=True)
        self.assertEqual(child.stdout.strip(), "None")


class Errors(unittest.TestCase):
    """Each status is its own exception class, carrying at_errmsg()."""

    def test_config(self):
        with self.assertRaises(libat.ArgumentError) as cm:
            libat.Model(d_model=30, heads=4)       # not a multiple: checked at create
        self.assertEqual(cm.exception.status, 1)
        self.assertTrue(cm.exception.message)
        with self.assertRaises(libat.ArgumentError) as cm:
            libat.Model(layers=0)
        self.assertIn("layers", str(cm.exception))
        with self.assertRaises(libat.ArgumentError) as cm:
            libat.Model(no_such_key=1)
        self.assertIn("no_such_key", str(cm.exception))
        self.assertIsInstance(cm.exception, ValueError)

    def test_run(self):
        m = small_model()
        with self.assertRaises(libat.StateError) as cm:
            m.attention("cross", 0)                # nothing computed yet
        self.assertEqual(cm.exception.status_name, "AT_E_STATE")
        with self.assertRaises(libat.RangeError) as cm:
            m.forward([[1, 2, 11]], [[1]])
        self.assertIn("src[0][2]", str(cm.exception))
        self.assertEqual(cm.exception.call, "at_forward")
        m.forward([[1, 2, 3]], [[1, 2]])
        with self.assertRaises(libat.ArgumentError):
            m.attention("cross", 2)                # layer out of range
        with self.assertRaises(libat.ArgumentError):
            m.attention("sideways", 0)
        with self.assertRaises(libat.ShapeError):
            m.write_tensor(0, np.zeros(3))
        with self.assertRaises(libat.ArgumentError):
            m.tensor("no.such.tensor")
        with self.assertRaises(libat.ArgumentError):
            m.forward(np.zeros((2, 3, 4), np.int32))
        m.close()

    def test_numeric(self):
        with small_model() as m:
            w = m.tensor(0).copy()
            bad = w.copy()
            bad.flat[3] = np.nan
            with self.assertRaises(libat.NumericError) as cm:
                m.write_tensor(0, bad)
            self.assertEqual((cm.exception.status, cm.exception.status_name), (8, "AT_E_NUMERIC"))
            self.assertIsInstance(cm.exception, ArithmeticError)
            np.testing.assert_array_equal(m.tensor(0).copy(), w)      # nothing written

    def test_files(self):
        with self.assertRaises(libat.AtIOError) as cm:
            libat.Model.load("/nonexistent/model.safetensors")
        self.assertIsInstance(cm.exception, OSError)
        self.assertIn("nonexistent", str(cm.exception))
        with self.assertRaises(libat.FormatError):
            libat.Model.from_bytes(b"this is not a safetensors file")
        with self.assertRaises(libat.ArgumentError) as cm:   # PyTorch export, wrong heads
            libat.Model.load(os.path.join(TINY, "model.safetensors"), heads=3)
        self.assertIn("heads", str(cm.exception))


class Golden(unittest.TestCase):
    """The PyTorch reference's tiny case, through Python."""

    def test_forward_matches_pytorch(self):
        io = read_safetensors(os.path.join(TINY, "io.safetensors"))
        with libat.Model.load(os.path.join(TINY, "model.safetensors"), heads=4) as m:
            self.assertEqual(m.config["d_model"], 32)
            self.assertEqual(len(m.tensor_names()), 94)
            m.forward(io["src"], io["tgt"], pad=0)
            np.testing.assert_allclose(m.output("logprobs").array, io["logprobs"], atol=1e-4)
            for kind in ("enc_self", "dec_self", "cross"):
                for layer in range(2):
                    np.testing.assert_allclose(m.attention(kind, layer).array,
                                               io["attn.%s.%d" % (kind, layer)], atol=1e-5)
            np.testing.assert_array_equal(m.output("tgt_mask").array, io["tgt_mask"])

    def test_greedy_matches_pytorch(self):
        io = read_safetensors(os.path.join(TINY, "io.safetensors"))
        with libat.Model.load(os.path.join(TINY, "model.safetensors"), heads=4) as m:
            ys = m.greedy_decode(io["greedy.src"], max_len=io["greedy.ys"].shape[1], start=1,
                                 pad=-1)
            np.testing.assert_array_equal(ys, io["greedy.ys"])
            np.testing.assert_allclose(m.attention("cross", 1).array,
                                       io["greedy.cross_attn_last.1"], atol=1e-5)


class Checkpoints(unittest.TestCase):
    def test_save_load(self):
        src = np.array([[1, 3, 5, 7, 9]])
        with tempfile.TemporaryDirectory() as d, small_model(seed=3) as m:
            path = os.path.join(d, "m.safetensors")
            m.save(path)
            m.forward(src, src)
            want = m.output("logprobs").copy()
            with open(path, "rb") as f:
                data = f.read()
            for other in (libat.Model.load(path), libat.Model.from_bytes(data)):
                with other:
                    self.assertEqual(other.config, m.config)
                    other.forward(src, src)
                    np.testing.assert_array_equal(other.output("logprobs").array, want)

    def test_training_checkpoint_resumes(self):
        rng = np.random.default_rng(5)
        batches = [copy_batch(rng, batch=16) for _ in range(6)]
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "t.safetensors")
            a = small_model(dropout=0.1, lr=1, warmup=10)
            for y in batches[:3]:
                a.train_step(y, y)
            a.save_training(path)
            for y in batches[3:]:
                a.train_step(y, y)
            b = libat.Model.load(path)
            self.assertEqual(b.steps, 3)
            for y in batches[3:]:
                b.train_step(y, y)
            self.assertEqual(b.steps, 6)
            for name in ("encoder.layers.0.self_attn.linears.0.weight", "generator.proj.bias"):
                np.testing.assert_array_equal(a.tensor(name).array, b.tensor(name).array)
            a.close()
            b.close()


class Training(unittest.TestCase):
    def test_copy_task_learns(self):
        rng = np.random.default_rng(0)
        m = small_model(lr=1, warmup=20, dropout=0.0)
        y = copy_batch(rng, batch=32)
        first, ntok = m.eval_loss(y, y)
        self.assertEqual(ntok, 32 * 9)
        for _ in range(40):
            b = copy_batch(rng, batch=32)
            loss, _ = m.train_step(b, b)
        self.assertEqual(m.steps, 40)
        self.assertLess(m.eval_loss(y, y)[0], first * 0.8)
        self.assertAlmostEqual(m.learning_rate, libat.noam_rate(40, 32, 1.0, 20))
        g = m.grad(0)
        self.assertEqual(g.shape, m.tensor(0).shape)
        self.assertTrue(np.any(g.array != 0))
        m.set(lr=0.25)
        self.assertEqual(m.get("lr"), 0.25)
        with self.assertRaises(libat.ArgumentError):
            m.set(d_model=64)                      # a shape cannot change
        m.close()

    def test_write_tensor(self):
        with small_model() as m:
            name = "generator.proj.bias"
            m.write_tensor(name, np.arange(11, dtype=np.float32))
            np.testing.assert_array_equal(m.tensor(name).array, np.arange(11))
            self.assertTrue(m.trainable(name))
            self.assertFalse(m.trainable("src_embed.1.pe"))


class Decoding(unittest.TestCase):
    def test_shapes_and_views(self):
        with small_model() as m:
            src = np.array([[1, 2, 3, 4, 5], [1, 5, 4, 3, 0]])
            ys = m.greedy_decode(src, max_len=6, start=1, pad=0)
            self.assertEqual(ys.shape, (2, 6))
            self.assertEqual(ys.dtype, np.int32)
            self.assertTrue(np.all(ys[:, 0] == 1))
            self.assertEqual(m.attention("dec_self", 0).shape, (2, 4, 5, 5))
            self.assertEqual(m.attention("cross", 1).shape, (2, 4, 5, 5))
            one = m.greedy_decode([1, 2, 3], max_len=4)          # 1-D: a batch of one
            self.assertEqual(one.shape, (1, 4))


class Statistics(unittest.TestCase):
    def test_stats_and_js(self):
        with small_model() as m:
            src = np.array([[1, 2, 3, 4, 0, 0], [1, 6, 5, 4, 3, 2]])
            m.forward(src, src[:, :4])
            st = m.attention_stats("enc_self", 1, topk=2)
            self.assertEqual(tuple(st), libat.STAT_NAMES)
            for name, v in st.items():
                self.assertEqual(v.shape, (4,), name)
            self.assertTrue(np.all(st["rows"] == 4 + 6))      # padded query rows left out
            np.testing.assert_allclose(st["max"] + st["dispersion"], 1.0)
            self.assertTrue(np.all((st["entropy_norm"] >= 0) & (st["entropy_norm"] <= 1)))
            js = m.attention_js("cross", 0)
            self.assertEqual(js.shape, (4, 4))
            np.testing.assert_allclose(js, js.T)
            np.testing.assert_array_equal(np.diag(js), 0)


class Sharing(unittest.TestCase):
    """Handles that share one set of weights, run from Python threads (ctypes
    releases the GIL during each call), give what one thread gives."""

    THREADS, PASSES = 4, 24

    def batch(self, p):
        rng = np.random.default_rng(p)
        src = rng.integers(1, 11, size=(2, 7))
        return src, src[:, :6]

    def test_threads_bit_equal(self):
        base = small_model(seed=13)
        alone = []
        for p in range(self.PASSES):
            base.forward(*self.batch(p))
            alone.append(base.output("logprobs").copy())
        handles = [base.share() for _ in range(self.THREADS)]
        together = [None] * self.PASSES
        errors = []

        def run(t):
            try:
                for p in range(t, self.PASSES, self.THREADS):
                    handles[t].forward(*self.batch(p))
                    together[p] = handles[t].output("logprobs").copy()
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=run, args=(t,)) for t in range(self.THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.assertEqual(errors, [])
        for p in range(self.PASSES):
            np.testing.assert_array_equal(together[p], alone[p])

        # Shared weights are read-only everywhere until the others go.
        y = copy_batch(np.random.default_rng(0))
        with self.assertRaises(libat.StateError):
            base.train_step(y, y)
        with self.assertRaises(libat.StateError):
            handles[0].write_tensor(0, base.tensor(0).copy())
        w = handles[1].tensor(0)
        self.assertEqual(w.address, base.tensor(0).address)       # not copied
        base.close()                                              # any order
        for h in handles[1:]:
            h.close()
        self.assertFalse(w.is_current)
        handles[0].train_step(y, y)                               # alone again
        handles[0].close()


if __name__ == "__main__":
    unittest.main()
