"""The C ABI of libat through ctypes: finding and loading libat.so, the
at_view struct and the prototypes of every function the module calls.

Nothing here is public; libat/__init__.py re-exports what is.
"""

import ctypes
import ctypes.util
import os

#: The ABI this module was written for: the SONAME's number (libat.so.0)
#: and AT_VERSION_MAJOR of include/at.h.
ABI_MAJOR = 0

c_int, c_int32, c_int64, c_uint64 = ctypes.c_int, ctypes.c_int32, ctypes.c_int64, ctypes.c_uint64
c_double, c_float, c_size_t = ctypes.c_double, ctypes.c_float, ctypes.c_size_t
c_void_p, c_char_p, POINTER = ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER


class CView(ctypes.Structure):
    """struct at_view of include/at.h (final: it never changes size or layout)."""

    _fields_ = [
        ("data", c_void_p),
        ("ndim", c_int32),
        ("reserved", c_int32),
        ("shape", c_int64 * 4),
        ("stride", c_int64 * 4),
        ("generation", c_uint64),
    ]


class CBeamOptions(ctypes.Structure):
    """struct at_beam_options of include/at.h (it may grow at its end:
    struct_size says which version the caller filled)."""

    _fields_ = [
        ("struct_size", c_size_t),
        ("beam_size", c_int32),
        ("reserved", c_int32),
        ("alpha", c_double),
        ("max_len_a", c_double),
        ("max_len_b", c_double),
    ]


class CTapEvent(ctypes.Structure):
    """struct at_tap_event of include/at.h: what a tap is handed."""

    _fields_ = [
        ("site", c_int),
        ("kind", c_int),
        ("layer", c_int32),
        ("pass_", c_int),
        ("step", c_int32),
        ("pos_begin", c_int32),
        ("pos_end", c_int32),
        ("batch", c_int32),
        ("row_begin", c_int32),
        ("reserved", c_int32),
        ("data", c_void_p),
        ("view", CView),
    ]


#: at_tap_fn: at_status (*)(void *user, const at_tap_event *ev).
TAP_FN = ctypes.CFUNCTYPE(c_int, c_void_p, POINTER(CTapEvent))


def _candidates():
    """Where to look for the library, in order. LIBAT_PATH, when set, is the
    only place looked at (a file, or a directory holding libat.so.0)."""
    names = ("libat.so.%d" % ABI_MAJOR, "libat.so")
    env = os.environ.get("LIBAT_PATH")
    if env:
        if os.path.isdir(env):
            return [os.path.join(env, n) for n in names], True
        return [env], True
    found = []
    # The source tree: examples/python/libat -> lib/ at the top of the tree.
    here = os.path.dirname(os.path.abspath(__file__))
    top = os.path.normpath(os.path.join(here, os.pardir, os.pardir, os.pardir))
    found += [os.path.join(top, "lib", n) for n in names]
    # An installed copy: the linker's cache and paths, then the loader's own
    # search (LD_LIBRARY_PATH, the default directories).
    name = ctypes.util.find_library("at")
    if name:
        found.append(name)
    found.append(names[0])
    return found, False


def source_tree_library():
    """The path the module looks at in the source tree (lib/libat.so.0)."""
    here = os.path.dirname(os.path.abspath(__file__))
    top = os.path.normpath(os.path.join(here, os.pardir, os.pardir, os.pardir))
    return os.path.join(top, "lib", "libat.so.%d" % ABI_MAJOR)


def load():
    """Load libat and declare its functions; returns (CDLL, path)."""
    candidates, explicit = _candidates()
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
        if not hasattr(lib, "at_version_number"):
            errors.append("%s: not libat (no at_version_number)" % path)
            continue
        lib.at_version_number.restype = ctypes.c_uint
        lib.at_version_number.argtypes = []
        major = lib.at_version_number() // 10000
        if major != ABI_MAJOR:
            errors.append("%s: libat ABI %d, this module needs %d" % (path, major, ABI_MAJOR))
            continue
        _declare(lib)
        return lib, path
    how = ("LIBAT_PATH=%s" % os.environ.get("LIBAT_PATH") if explicit else
           "the source tree's lib/, the linker's paths (LD_LIBRARY_PATH) and LIBAT_PATH")
    raise ImportError(
        "libat: cannot load libat.so.%d (looked in %s; build it with "
        "`cmake --build build`, or set LIBAT_PATH to the library or its directory):\n  %s"
        % (ABI_MAJOR, how, "\n  ".join(errors)))


# name: (restype, argtypes). c_void_p stands for the opaque handles.
_PROTOS = {
    "at_version_string": (c_char_p, []),
    "at_status_string": (c_char_p, [c_int]),
    "at_config_create": (c_int, [POINTER(c_void_p)]),
    "at_config_free": (None, [c_void_p]),
    "at_config_set": (c_int, [c_void_p, c_int, c_double]),
    "at_config_get": (c_int, [c_void_p, c_int, POINTER(c_double)]),
    "at_param_bounds": (c_int, [c_int, POINTER(c_double), POINTER(c_double)]),
    "at_param_name": (c_char_p, [c_int]),
    "at_model_create": (c_int, [c_void_p, POINTER(c_void_p)]),
    "at_model_load": (c_int, [c_char_p, c_void_p, POINTER(c_void_p)]),
    "at_model_load_buffer": (c_int, [c_char_p, c_size_t, c_void_p, POINTER(c_void_p)]),
    "at_model_save": (c_int, [c_void_p, c_char_p]),
    "at_model_save_training": (c_int, [c_void_p, c_char_p]),
    "at_model_share": (c_int, [c_void_p, POINTER(c_void_p)]),
    "at_model_free": (None, [c_void_p]),
    "at_errmsg": (c_char_p, [c_void_p]),
    "at_model_set": (c_int, [c_void_p, c_int, c_double]),
    "at_model_get": (c_int, [c_void_p, c_int, POINTER(c_double)]),
    "at_get_attention": (c_int, [c_void_p, c_int, c_int, POINTER(CView)]),
    "at_get_output": (c_int, [c_void_p, c_int, c_int, POINTER(CView)]),
    "at_model_generation": (c_uint64, [c_void_p]),
    "at_view_hold": (c_int, [c_void_p, POINTER(c_void_p)]),
    "at_hold_release": (None, [c_void_p]),
    "at_model_tensor_count": (c_int, [c_void_p]),
    "at_model_tensor": (c_int, [c_void_p, c_int, POINTER(c_char_p), POINTER(CView)]),
    "at_model_tensor_trainable": (c_int, [c_void_p, c_int]),
    "at_model_tensor_write": (c_int, [c_void_p, c_int, c_void_p, c_size_t]),
    "at_model_find_tensor": (c_int, [c_void_p, c_char_p, POINTER(CView)]),
    "at_forward": (c_int, [c_void_p, c_void_p, c_void_p, c_int, c_int, c_int, c_int32]),
    "at_greedy_decode": (c_int, [c_void_p, c_void_p, c_int, c_int, c_int32, c_int, c_int32,
                                 c_int32, c_void_p, POINTER(c_int)]),
    "at_beam_options_init": (None, [c_void_p]),
    "at_beam_decode": (c_int, [c_void_p, c_void_p, c_int, c_int, c_int32, c_int32, c_int32,
                               c_void_p, c_void_p, c_int, c_void_p, c_void_p]),
    "at_model_set_meta": (c_int, [c_void_p, c_char_p, c_char_p]),
    "at_model_get_meta": (c_int, [c_void_p, c_char_p, POINTER(c_char_p)]),
    "at_model_meta_count": (c_int, [c_void_p]),
    "at_model_meta_key": (c_char_p, [c_void_p, c_int]),
    "at_set_threads": (c_int, [c_int]),
    "at_get_threads": (c_int, []),
    "at_blas_report": (c_int, [c_char_p, c_size_t]),
    "at_kernel_name": (c_char_p, []),
    "at_kernel_peak": (c_double, [c_double]),
    "at_attention_stats": (c_int, [c_void_p, c_int, c_int, c_int, c_int, c_void_p]),
    "at_attention_js": (c_int, [c_void_p, c_int, c_int, c_void_p]),
    "at_train_step": (c_int, [c_void_p, c_void_p, c_void_p, c_int, c_int, c_int, c_int32,
                              POINTER(c_float), POINTER(c_int64)]),
    "at_eval_loss": (c_int, [c_void_p, c_void_p, c_void_p, c_int, c_int, c_int, c_int32,
                             POINTER(c_float), POINTER(c_int64)]),
    "at_model_grad": (c_int, [c_void_p, c_int, POINTER(CView)]),
    "at_model_steps": (c_uint64, [c_void_p]),
    "at_model_learning_rate": (c_double, [c_void_p]),
    "at_noam_rate": (c_double, [c_int64, c_int, c_double, c_int64]),
}

# Interventions (the group "interventions" of include/at.h, libat 0.2):
# declared when the library has them; the methods that need them say so
# otherwise.
_INTERVENTION_PROTOS = {
    "at_site_name": (c_char_p, [c_int]),
    "at_site_from_name": (c_int, [c_char_p, POINTER(c_int)]),
    "at_tap_add": (c_int, [c_void_p, c_int, c_int, c_int, TAP_FN, c_void_p]),
    "at_tap_clear": (c_int, [c_void_p]),
    "at_gate_set": (c_int, [c_void_p, c_int, c_int, c_int, c_float]),
    "at_gate_get": (c_int, [c_void_p, c_int, c_int, c_int, POINTER(c_float)]),
    "at_gate_gradients": (c_int, [c_void_p, c_void_p, c_void_p, c_int, c_int, c_int, c_int32,
                                  POINTER(c_double), c_void_p]),
    "at_eval_nll": (c_int, [c_void_p, c_void_p, c_void_p, c_int, c_int, c_int, c_int32,
                            POINTER(c_double), POINTER(c_int64)]),
    "at_attention_override": (c_int, [c_void_p, c_int, c_int, c_int, c_void_p, c_int, c_int,
                                      c_int]),
    "at_interventions_reset": (c_int, [c_void_p]),
    "at_capture_set": (c_int, [c_void_p, c_int, c_int, c_int, c_int]),
    "at_get_attention_head": (c_int, [c_void_p, c_int, c_int, c_int, POINTER(CView)]),
    "at_model_activation_bytes": (c_size_t, [c_void_p]),
    # at_analysis.h: gradients with respect to attention
    "at_attention_gradients": (c_int, [c_void_p, c_void_p, c_void_p, c_int, c_int, c_int,
                                       c_int32, c_int, POINTER(c_double)]),
    "at_get_attention_grad": (c_int, [c_void_p, c_int, c_int, POINTER(CView)]),
    "at_integrated_gradients": (c_int, [c_void_p, c_void_p, c_void_p, c_int, c_int, c_int,
                                        c_int32, c_int, c_int, c_int, c_int, c_void_p,
                                        POINTER(c_double)]),
    "at_relevance_chefer": (c_int, [c_void_p, c_void_p, c_void_p, c_int, c_int, c_int,
                                    c_int32, c_int, c_void_p, c_void_p, c_void_p]),
}

# Charts (include/at_viz.h): used when the library has them.
_VIZ_PROTOS = {
    "at_viz_options_create": (c_int, [POINTER(c_void_p)]),
    "at_viz_options_free": (None, [c_void_p]),
    "at_viz_options_set": (c_int, [c_void_p, c_int, c_int]),
    "at_viz_options_set_labels": (c_int, [c_void_p, c_int, POINTER(c_char_p), c_int]),
    "at_viz_options_set_ids": (c_int, [c_void_p, c_int, c_void_p, c_int]),
    "at_viz_options_set_font": (c_int, [c_void_p, c_char_p]),
    "at_viz_options_set_caption": (c_int, [c_void_p, c_char_p]),
    "at_viz_save": (c_int, [c_char_p, c_void_p, c_int, c_int, c_int, c_int, c_int, c_void_p]),
    "at_viz_chart_name": (c_char_p, [c_int]),
    "at_viz_format_ext": (c_char_p, [c_int]),
}


def _declare(lib):
    for name, (res, args) in _PROTOS.items():
        fn = getattr(lib, name)  # AttributeError: a library older than this module
        fn.restype = res
        fn.argtypes = args
    lib.have_interventions = all(hasattr(lib, name) for name in _INTERVENTION_PROTOS)
    for name, (res, args) in _INTERVENTION_PROTOS.items():
        if hasattr(lib, name):
            fn = getattr(lib, name)
            fn.restype = res
            fn.argtypes = args
    lib.have_viz = all(hasattr(lib, name) for name in _VIZ_PROTOS)
    if lib.have_viz:
        for name, (res, args) in _VIZ_PROTOS.items():
            fn = getattr(lib, name)
            fn.restype = res
            fn.argtypes = args
