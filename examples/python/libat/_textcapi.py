"""The C ABI of libat_text (include/at_text.h) through ctypes: finding and
loading libat_text.so, its structs and the prototypes the module calls.

Loaded on first use only (libat.text calls load()), so that the core binding
works on a machine without the text library. Nothing here is public.
"""

import ctypes
import ctypes.util
import os

from ._capi import ABI_MAJOR, POINTER, c_char_p, c_double, c_int, c_int32, c_int64, c_size_t
from ._capi import c_void_p

AT_BLEU_ORDERS = 4


class CBleuScore(ctypes.Structure):
    """struct at_bleu_score (it may grow at its end: struct_size)."""

    _fields_ = [
        ("struct_size", c_size_t),
        ("score", c_double),
        ("precisions", c_double * AT_BLEU_ORDERS),
        ("bp", c_double),
        ("ratio", c_double),
        ("hyp_len", c_int64),
        ("ref_len", c_int64),
        ("counts", c_int64 * AT_BLEU_ORDERS),
        ("totals", c_int64 * AT_BLEU_ORDERS),
        ("segments", c_int64),
    ]


class CChrfScore(ctypes.Structure):
    """struct at_chrf_score."""

    _fields_ = [
        ("struct_size", c_size_t),
        ("score", c_double),
        ("precision", c_double),
        ("recall", c_double),
        ("beta", c_double),
        ("char_order", c_int32),
        ("effective_order", c_int32),
        ("segments", c_int64),
    ]


class CTokOptions(ctypes.Structure):
    """struct at_tokenizer_options (a field left 0 takes its default)."""

    _fields_ = [
        ("struct_size", c_size_t),
        ("model", c_int32),
        ("vocab_size", c_int32),
        ("character_coverage", c_double),
        ("threads", c_int32),
        ("reserved", c_int32),
        ("max_sentences", c_int64),
    ]


class CAlignLink(ctypes.Structure):
    """struct at_align_link."""

    _fields_ = [("src", c_int32), ("tgt", c_int32), ("sure", c_int32)]


class CAlignCounts(ctypes.Structure):
    """struct at_align_counts."""

    _fields_ = [("hyp", c_int64), ("sure", c_int64), ("hit_sure", c_int64),
                ("hit_possible", c_int64)]


class CAlignBatch(ctypes.Structure):
    """struct at_align_batch (struct_size set by the caller)."""

    _fields_ = [
        ("struct_size", c_size_t),
        ("rows", c_int32),
        ("src_len", c_int32),
        ("tgt_len", c_int32),
        ("reserved", c_int32),
        ("src", c_void_p),
        ("tgt", c_void_p),
        ("ys", c_void_p),
        ("lines", c_void_p),
    ]


class CAlignEvalInfo(ctypes.Structure):
    """struct at_align_eval_info (struct_size set by the caller)."""

    _fields_ = [
        ("struct_size", c_size_t),
        ("lines", c_int64),
        ("truncated", c_int64),
        ("pieces", c_int64),
        ("no_links", c_int64),
        ("pending", c_int64),
        ("gold", c_int64),
        ("layers", c_int32),
        ("heads", c_int32),
        ("best_layer", c_int32),
        ("best_head", c_int32),
        ("best_aer", c_double),
    ]


_PROTOS = {
    "at_text_errmsg": (c_char_p, []),
    "at_bleu_create": (c_int, [POINTER(c_void_p)]),
    "at_bleu_free": (None, [c_void_p]),
    "at_bleu_set": (c_int, [c_void_p, c_int, c_double]),
    "at_bleu_add": (c_int, [c_void_p, c_char_p, c_size_t, POINTER(c_char_p),
                            POINTER(c_size_t), c_size_t]),
    "at_bleu_result": (c_int, [c_void_p, POINTER(CBleuScore)]),
    "at_bleu_reset": (c_int, [c_void_p]),
    "at_chrf_create": (c_int, [POINTER(c_void_p)]),
    "at_chrf_free": (None, [c_void_p]),
    "at_chrf_set": (c_int, [c_void_p, c_int, c_double]),
    "at_chrf_add": (c_int, [c_void_p, c_char_p, c_size_t, POINTER(c_char_p),
                            POINTER(c_size_t), c_size_t]),
    "at_chrf_result": (c_int, [c_void_p, POINTER(CChrfScore)]),
    "at_chrf_reset": (c_int, [c_void_p]),
    "at_text_eval_files": (c_int, [c_char_p, POINTER(c_char_p), c_size_t, c_void_p, c_void_p]),
    "at_tokenizer_train": (c_int, [POINTER(c_char_p), c_size_t, POINTER(CTokOptions),
                                   POINTER(c_void_p)]),
    "at_tokenizer_load": (c_int, [c_char_p, POINTER(c_void_p)]),
    "at_tokenizer_load_buffer": (c_int, [c_char_p, c_size_t, POINTER(c_void_p)]),
    "at_tokenizer_load_base64": (c_int, [c_char_p, c_size_t, POINTER(c_void_p)]),
    "at_tokenizer_free": (None, [c_void_p]),
    "at_tokenizer_serialize": (c_int, [c_void_p, POINTER(c_void_p), POINTER(c_size_t)]),
    "at_tokenizer_to_base64": (c_int, [c_void_p, POINTER(c_void_p), POINTER(c_size_t)]),
    "at_tokenizer_save": (c_int, [c_void_p, c_char_p]),
    "at_tokenizer_encode": (c_int, [c_void_p, c_char_p, c_size_t, POINTER(c_void_p),
                                    POINTER(c_size_t)]),
    "at_tokenizer_encode_pieces": (c_int, [c_void_p, c_char_p, c_size_t,
                                           POINTER(POINTER(c_char_p)), POINTER(c_size_t)]),
    "at_tokenizer_decode": (c_int, [c_void_p, c_void_p, c_size_t, POINTER(c_void_p),
                                    POINTER(c_size_t)]),
    "at_tokenizer_vocab_size": (c_int32, [c_void_p]),
    "at_tokenizer_piece": (c_int, [c_void_p, c_int32, POINTER(c_char_p)]),
    "at_tokenizer_id": (c_int, [c_void_p, c_char_p, c_size_t, POINTER(c_int32)]),
    "at_tokenizer_special_id": (c_int32, [c_void_p, c_int]),
    "at_align_words": (c_int, [c_char_p, c_size_t, POINTER(c_int32)]),
    "at_align_parse": (c_int, [c_char_p, c_size_t, c_int32, c_int32, c_void_p, c_size_t,
                               POINTER(c_size_t)]),
    "at_align_score": (c_int, [POINTER(CAlignCounts), c_void_p, c_size_t, c_void_p, c_size_t,
                               c_int32, c_int32]),
    "at_align_rates": (c_int, [POINTER(CAlignCounts), POINTER(c_double), POINTER(c_double),
                               POINTER(c_double)]),
    "at_align_eval_create": (c_int, [POINTER(c_void_p), c_void_p, c_void_p, c_int32, c_int32,
                                     c_int32]),
    "at_align_eval_free": (None, [c_void_p]),
    "at_align_eval_add": (c_int, [c_void_p, c_char_p, c_size_t, c_char_p, c_size_t, c_char_p,
                                  c_size_t]),
    "at_align_eval_add_corpus": (c_int, [c_void_p, c_char_p, c_char_p, c_int64]),
    "at_align_eval_next": (c_int, [c_void_p, c_int32, POINTER(CAlignBatch)]),
    "at_align_eval_feed": (c_int, [c_void_p, c_int, c_int32, c_void_p, c_void_p]),
    "at_align_eval_counts": (c_int, [c_void_p, c_int, c_int32, c_int32, POINTER(CAlignCounts)]),
    "at_align_eval_result": (c_int, [c_void_p, POINTER(CAlignEvalInfo)]),
    "at_align_eval_merge": (c_int, [c_void_p, c_void_p]),
    "at_align_eval_sums": (c_int, [c_void_p, c_void_p, c_size_t, POINTER(c_size_t)]),
    "at_align_eval_add_sums": (c_int, [c_void_p, c_void_p, c_size_t]),
}


def _candidates(core_path):
    """Where to look, in order. LIBAT_TEXT_PATH, when set, is the only place
    looked at (a file, or a directory holding libat_text.so.0); otherwise
    next to the libat that was loaded, the source tree's lib/, the linker's
    paths."""
    names = ("libat_text.so.%d" % ABI_MAJOR, "libat_text.so")
    env = os.environ.get("LIBAT_TEXT_PATH")
    if env:
        if os.path.isdir(env):
            return [os.path.join(env, n) for n in names], True
        return [env], True
    found = []
    core_dir = os.path.dirname(core_path) if core_path and os.sep in core_path else None
    if core_dir:
        found += [os.path.join(core_dir, n) for n in names]
    here = os.path.dirname(os.path.abspath(__file__))
    top = os.path.normpath(os.path.join(here, os.pardir, os.pardir, os.pardir))
    found += [os.path.join(top, "lib", n) for n in names if os.path.join(top, "lib") != core_dir]
    name = ctypes.util.find_library("at_text")
    if name:
        found.append(name)
    found.append(names[0])
    return found, False


def load(core_path):
    """Load libat_text and declare its functions; returns (CDLL, path).
    Raises ImportError saying where it looked."""
    candidates, explicit = _candidates(core_path)
    errors = []
    for path in candidates:
        if os.sep in path and not os.path.exists(path):
            errors.append("%s: no such file" % path)
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            errors.append("%s: %s" % (path, e))
            continue
        if not hasattr(lib, "at_text_version_number"):
            errors.append("%s: not libat_text (no at_text_version_number)" % path)
            continue
        lib.at_text_version_number.restype = ctypes.c_uint
        lib.at_text_version_number.argtypes = []
        major = lib.at_text_version_number() // 10000
        if major != ABI_MAJOR:
            errors.append("%s: libat_text ABI %d, this module needs %d" % (path, major, ABI_MAJOR))
            continue
        missing = [n for n in _PROTOS if not hasattr(lib, n)]
        if missing:
            errors.append("%s: older than this module (no %s)" % (path, ", ".join(missing[:3])))
            continue
        for n, (res, args) in _PROTOS.items():
            fn = getattr(lib, n)
            fn.restype = res
            fn.argtypes = args
        return lib, path
    how = ("LIBAT_TEXT_PATH=%s" % os.environ.get("LIBAT_TEXT_PATH") if explicit else
           "beside libat, the source tree's lib/, the linker's paths (LD_LIBRARY_PATH) and "
           "LIBAT_TEXT_PATH")
    raise ImportError(
        "libat.text: cannot load libat_text.so.%d (looked %s; it is built with libat when "
        "libsentencepiece-dev and libsword-dev are installed; set LIBAT_TEXT_PATH to the "
        "library or its directory):\n  %s" % (ABI_MAJOR, how, "\n  ".join(errors)))
