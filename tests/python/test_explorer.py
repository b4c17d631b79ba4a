"""The explorer's analysis views from Python (libat.explorer): head grids, maps
and gold links attached from numpy arrays reach the page's data exactly, and
bad ones are refused. The gold figures are recomputed here with numpy from the
attention views."""

import base64
import json
import os
import re
import tempfile
import unittest

import numpy as np

from support import libat, small_model
from libat import explorer, rollout


def page_data(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r'<script type="application/json" id="at-data">\n(.*?)</script>', text, re.S)
    return json.loads(m.group(1))


def map_values(m):
    return np.frombuffer(base64.b64decode(m["values"]), "<f4").reshape(m["nrows"], m["ncols"])


@unittest.skipUnless(libat.HAVE_CHARTS and explorer.HAVE_ANALYSIS_VIEWS,
                     "this libat has no analysis views in its explorer")
class Explorer(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.m = small_model()              # 2 layers x 4 heads
        self.src = np.array([[1, 4, 2, 7, 3, 5], [1, 5, 5, 6, 0, 0]])
        self.tgt = np.array([[1, 3, 2, 4, 6], [1, 2, 7, 0, 0]])
        self.m.forward(self.src, self.tgt, pad=0)

    def tearDown(self):
        self.m.close()
        self.dir.cleanup()

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def test_values_reach_the_page(self):
        rng = np.random.default_rng(3)
        imp = rng.random((2, 4))
        imp[1, 2] = np.nan
        roles = [["prev", "broad", None, "first"], ["diagonal", "eos", "next", "broad"]]
        roll = rollout.rollout(self.m, "cross")           # (B, T, S)
        a = explorer.Analysis()
        a.add_headmap("importance", "cross", imp, labels=roles)
        a.add_headmap("ablation", "enc_self", imp - 0.5, diverging=True)
        a.add_map("rollout", "tgt", "src", roll[1])       # the pass's lengths: cut to 3 x 4
        a.add_map("tt", "tgt", "tgt", np.arange(9.0).reshape(3, 3) / 7)   # the lengths charted
        a.set_links([(0, 1), (2, 3), (2, 3), (1, 0), (4, 5)])   # (4, 5) beyond row 2's chart
        self.assertEqual(len(a), 4)
        d = page_data(self.m.chart(self.path("x.html"), "explorer", "cross", 1, 0, row=1,
                                   analysis=a))["analysis"]
        g0, g1 = d["grids"]
        self.assertEqual((g0["kind"], g0["layers"], g0["heads"], g0["diverging"]), ("cross", 2, 4, 0))
        self.assertEqual((g1["kind"], g1["diverging"]), ("enc_self", 1))
        for g, want in ((g0, imp), (g1, imp - 0.5)):       # every bit, NaN as null
            got = np.array([np.nan if v is None else v for v in g["values"]]).reshape(2, 4)
            np.testing.assert_array_equal(got, want)
        self.assertEqual(g0["labels"], [s for r in roles for s in r])
        self.assertIsNone(g1["labels"])
        m0, m1 = d["maps"]
        self.assertEqual((m0["rows"], m0["cols"], m0["nrows"], m0["ncols"]), ("target", "source", 3, 4))
        np.testing.assert_array_equal(map_values(m0), roll[1, :3, :4])
        np.testing.assert_array_equal(map_values(m1), (np.arange(9.0).reshape(3, 3) / 7).astype(np.float32))
        self.assertEqual(d["links"], [[0, 1], [1, 0], [2, 3]])

        # the gold figures, with numpy from the views of row 2 (3 x 4 charted)
        links = {(0, 1), (1, 0), (2, 3)}
        for layer in range(2):
            att = np.array(self.m.attention("cross", layer).array[1, :, :3, :4], np.float64)
            for h in range(4):
                mass = np.mean([sum(att[h, t, s] for (tt, s) in links if tt == t) for t in range(3)])
                hit = sum((t, int(np.argmax(att[h, t]))) in links for t in range(3))
                self.assertAlmostEqual(d["gold"]["mass"][layer * 4 + h], mass, places=7)
                self.assertAlmostEqual(d["gold"]["aer"][layer * 4 + h], 1 - 2 * hit / 6, places=7)

    def test_without_analysis(self):
        d = page_data(self.m.chart(self.path("x.html"), "explorer", "cross", 1, 0))["analysis"]
        self.assertEqual((d["grids"], d["maps"], d["links"]), ([], [], []))

    def test_errors(self):
        a = explorer.Analysis()
        with self.assertRaises(libat.ArgumentError):
            a.add_headmap("", "cross", np.zeros((2, 4)))
        with self.assertRaises(libat.ArgumentError):
            a.add_headmap("x" * 201, "cross", np.zeros((2, 4)))
        with self.assertRaises(libat.ArgumentError):
            a.add_headmap("t", "cross", np.zeros(8))                  # not 2-D
        with self.assertRaises(libat.ArgumentError):
            a.add_headmap("t", "cross", np.zeros((2, 4)), labels=[["a"] * 4])
        with self.assertRaises(libat.ArgumentError):
            a.add_headmap("t", "sideways", np.zeros((2, 4)))
        with self.assertRaises(libat.ArgumentError):
            a.add_map("t", "src", "middle", np.zeros((6, 6)))
        with self.assertRaises(libat.ArgumentError):
            a.set_links([(0, -1)])
        with self.assertRaises(libat.ArgumentError):
            a.set_links([(0, 1, 2)])
        self.assertEqual(len(a), 0)
        with self.assertRaises(libat.ArgumentError):
            self.m.chart(self.path("x.html"), "explorer", analysis="no")
        # the library's checks: a value not finite, then shapes the pass does not have
        for bad, err in ((explorer.Analysis().add_headmap("t", "cross", np.full((2, 4), np.inf)),
                          libat.NumericError),
                         (explorer.Analysis().add_headmap("t", "cross", np.zeros((3, 4))),
                          libat.ShapeError),
                         (explorer.Analysis().add_map("t", "src", "src", np.zeros((5, 6))),
                          libat.ShapeError),
                         (explorer.Analysis().set_links([(5, 0)]), libat.RangeError),
                         (explorer.Analysis().add_map("t", "src", "src", np.zeros((2001, 2000))),
                          libat.RangeError)):
            with self.subTest(err=err.__name__):
                with self.assertRaises(err):
                    self.m.chart(self.path("bad.html"), "explorer", "cross", 1, 0, analysis=bad)
                self.assertFalse(os.path.exists(self.path("bad.html")))


if __name__ == "__main__":
    unittest.main()
