"""Charts from Python (include/at_viz.h), when the library has them."""

import json
import os
import tempfile
import unittest

import numpy as np

from support import libat, small_model


@unittest.skipUnless(libat.HAVE_CHARTS, "this libat has no charts (include/at_viz.h)")
class Charts(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.m = small_model()
        src = np.array([[1, 4, 2, 7, 3, 0], [1, 5, 5, 6, 2, 8]])
        self.m.forward(src, src[:, :4], pad=0)

    def tearDown(self):
        self.m.close()
        self.dir.cleanup()

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def test_formats_from_the_extension(self):
        svg = self.m.chart(self.path("h.svg"), "heatmap", "cross", 1, 2,
                           src_labels=["<s>", "a", "b", "c", "d", "<pad>"], caption="copy")
        with open(svg, encoding="utf-8") as f:
            text = f.read()
        self.assertIn("<svg", text)
        self.assertIn("&lt;s&gt;", text)                    # labels escaped
        with open(self.m.chart(self.path("s.json"), "stats"), encoding="utf-8") as f:
            spec = json.load(f)
        self.assertIn("vega-lite", spec["$schema"])
        html = self.m.chart(self.path("x.html"), "explorer", "enc_self", 0, 0)
        with open(html, encoding="utf-8") as f:
            self.assertIn("<html", f.read().lower())

    def test_every_chart(self):
        for chart in libat.CHARTS:
            with self.subTest(chart):
                ext = ".html" if chart == "explorer" else ".svg"
                p = self.m.chart(self.path(chart + ext), chart, kind="dec_self", layer=1, head=3,
                                 src_ids=[1, 4, 2, 7, 3, 0], row=1)
                self.assertGreater(os.path.getsize(p), 100)

    def test_errors(self):
        with self.assertRaises(libat.ArgumentError):
            self.m.chart(self.path("h.svg"), "heatmap", "cross", 0, 9)      # head 9 of 4
        with self.assertRaises(libat.ArgumentError):
            self.m.chart(self.path("h.png"), "heatmap")                     # unknown format
        with self.assertRaises(libat.ArgumentError):
            self.m.chart(self.path("h.svg"), "heatmap", row=5)              # batch of 2
        self.assertFalse(os.path.exists(self.path("h.svg")))
        with self.assertRaises(libat.AtIOError):
            self.m.chart(os.path.join(self.path("missing"), "h.svg"), "heatmap")


if __name__ == "__main__":
    unittest.main()
