"""DLPack export of a view, in ctypes only: a DLManagedTensor (dlpack.h,
DLPACK_VERSION 0.6; Debian's libdlpack-dev) that points at the library's
memory, wrapped in a PyCapsule named "dltensor" made with
PyCapsule_New. numpy.from_dlpack (and torch.from_dlpack) take it without a
copy.

Who keeps what alive: each exported tensor has an entry in _LIVE holding
the ctypes structs (the tensor, its shape and strides) and the owner of the
memory (the model's hold, an at_view_hold()), so the library's memory
outlives the consumer's array. The consumer calls the tensor's deleter when
its array goes (the entry is dropped, which releases the hold once no other
array shares it); a capsule nobody consumed drops it in its destructor.
"""

import ctypes

c_int, c_int32, c_int64 = ctypes.c_int, ctypes.c_int32, ctypes.c_int64
c_uint8, c_uint16, c_uint64, c_void_p = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint64, ctypes.c_void_p

KDL_CPU = 1
KDL_FLOAT = 2


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", c_int), ("device_id", c_int)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", c_uint8), ("bits", c_uint8), ("lanes", c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", c_void_p),
        ("device", DLDevice),
        ("ndim", c_int),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(c_int64)),
        ("strides", ctypes.POINTER(c_int64)),
        ("byte_offset", c_uint64),
    ]


_DELETER = ctypes.CFUNCTYPE(None, c_void_p)


class DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", DLTensor), ("manager_ctx", c_void_p), ("deleter", _DELETER)]


# address of a DLManagedTensor -> what must live as long as it does
_LIVE = {}

_NAME = b"dltensor"  # a module constant: the capsule keeps a pointer to it

_api = ctypes.pythonapi
_api.PyCapsule_New.restype = ctypes.py_object
_api.PyCapsule_New.argtypes = [c_void_p, ctypes.c_char_p, c_void_p]
_api.PyCapsule_IsValid.restype = c_int
_api.PyCapsule_IsValid.argtypes = [c_void_p, ctypes.c_char_p]
_api.PyCapsule_GetPointer.restype = c_void_p
_api.PyCapsule_GetPointer.argtypes = [c_void_p, ctypes.c_char_p]


def _deleter(ptr, _live=_LIVE):
    # Called by the consumer (with or without the GIL: ctypes takes it).
    _live.pop(ptr, None)


def _capsule_destructor(capsule, _live=_LIVE, _api=_api, _name=_NAME):
    # Called when the capsule goes; a consumer that took the tensor renamed
    # the capsule ("used_dltensor") and owns it now.
    if _api.PyCapsule_IsValid(capsule, _name):
        _live.pop(_api.PyCapsule_GetPointer(capsule, _name), None)


_DELETER_FN = _DELETER(_deleter)
_DESTRUCTOR_FN = _DELETER(_capsule_destructor)
# A consumer may free its array (and so call the deleter) while the
# interpreter shuts down, after this module's globals are gone: the two
# callbacks are made immortal.
_api.Py_IncRef.argtypes = [ctypes.py_object]
_api.Py_IncRef(_DELETER_FN)
_api.Py_IncRef(_DESTRUCTOR_FN)


def export(address, shape, strides, owner):
    """A "dltensor" capsule for float32 memory at ``address`` with ``shape``
    and ``strides`` (in elements); ``owner`` is kept alive until the consumer
    lets go of it."""
    ndim = len(shape)
    managed = DLManagedTensor()
    shape_arr = (c_int64 * max(ndim, 1))(*shape)
    strides_arr = (c_int64 * max(ndim, 1))(*strides)
    t = managed.dl_tensor
    t.data = address
    t.device = DLDevice(KDL_CPU, 0)
    t.ndim = ndim
    t.dtype = DLDataType(KDL_FLOAT, 32, 1)
    t.shape = shape_arr
    t.strides = strides_arr
    t.byte_offset = 0
    managed.manager_ctx = None
    managed.deleter = _DELETER_FN
    key = ctypes.addressof(managed)
    _LIVE[key] = (managed, shape_arr, strides_arr, owner)
    return _api.PyCapsule_New(key, _NAME, ctypes.cast(_DESTRUCTOR_FN, c_void_p))


def live_count():
    """How many exported tensors are still held (for tests)."""
    return len(_LIVE)
