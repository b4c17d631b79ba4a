"""libat from Python: the annotated Transformer, with every attention tensor
as a zero-copy numpy array.

A pure-Python module over libat's C ABI (ctypes); it needs numpy and
nothing else. It loads, in this order: $LIBAT_PATH (the library, or its
directory) when set, and only then; the source tree's lib/libat.so.0; an
installed libat.so.0 (the linker's cache, LD_LIBRARY_PATH).

    import numpy as np, libat
    m = libat.Model(layers=2, d_model=32, heads=4, d_ff=64)
    src = np.array([[1, 4, 2, 7, 3, 0]])
    m.forward(src, src[:, :4], pad=0)
    a = m.attention("cross", 1)   # View (batch, head, query, key): no copy
    a.array[0, 2]                 # zero-copy read-only ndarray, checked when taken
    a[0, 2]                       # a copy, checked
    m.forward(src, src[:, :4])    # a new pass: `a` is now stale
    a.array                       # raises libat.StaleViewError

Interventions (taps over writable arrays, head gates, attention overrides):

    with m.tap("ff_hidden", lambda ev, x: x.fill(0), kind="enc_self", layer=1):
        m.forward(src, src[:, :4])   # the pass runs on the zeroed hidden layer
    m.set_gate("cross", 1, None, 0.0)  # remove every head of cross layer 1
    m.head_importance(src, src, pad=0)["importance"]["cross"]   # (N, h)

Text (libat_text, loaded on first use: the core works without it) and
translation models that carry their tokenizer:

    from libat import text
    tok = text.Tokenizer.train(["train.src", "train.tgt"], vocab_size=8000)
    text.bleu(hypotheses, references).score
    t = libat.Translator.load("model.safetensors")
    t.translate(["En el principio creó Dios los cielos y la tierra."], beam=4)

See docs/python.md in the source tree.
"""

from .errors import (AtError, ArgumentError, AtIOError, CallbackError, FormatError,
                     NumericError, OutOfMemoryError, RangeError, ShapeError, StaleViewError,
                     StateError)
from .model import (CHARTS, HAVE_CHARTS, HAVE_INTERVENTIONS, LIBRARY_PATH, PARAMS, PASSES,
                    SITES, STAT_NAMES, Attn, BeamResult, Metadata, Model, Output, Site, Tap,
                    TapEvent, View, blas_report, config_defaults, get_threads, kernel_name,
                    kernel_peak, noam_rate, param_bounds, set_threads, site_name, version,
                    version_number)
from . import text
from . import heads
from . import rollout
from . import patching
from . import align
from . import prune
from . import snapshots
from . import explorer
from .translate import Evaluation, Translation, Translator, TruncationWarning

__all__ = [
    "AtError", "ArgumentError", "AtIOError", "CallbackError", "FormatError", "NumericError",
    "OutOfMemoryError", "RangeError", "ShapeError", "StaleViewError", "StateError",
    "CHARTS", "HAVE_CHARTS", "HAVE_INTERVENTIONS", "LIBRARY_PATH", "PARAMS", "PASSES", "SITES",
    "STAT_NAMES", "Attn", "BeamResult", "Metadata", "Model", "Output", "Site", "Tap", "TapEvent",
    "View", "blas_report", "config_defaults", "get_threads", "kernel_name", "kernel_peak", "noam_rate", "param_bounds", "set_threads",
    "site_name", "version", "version_number",
    "text", "Evaluation", "Translation", "Translator", "TruncationWarning",
]
