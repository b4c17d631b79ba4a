"""Exceptions: one class per at_status, each carrying the library's message
(at_errmsg) and the status, plus StaleViewError for a view whose memory the
library has since reused."""


class AtError(Exception):
    """A libat call failed. ``status`` is the at_status value (an int),
    ``status_name`` its name ("AT_E_SHAPE"), ``message`` what at_errmsg()
    said, ``call`` the C function that failed."""

    status = None
    status_name = "AT_ERROR"

    def __init__(self, message, call=None):
        super().__init__(message)
        self.message = message
        self.call = call

    def __str__(self):
        msg = self.message or "failed"
        if self.call and not msg.startswith(self.call.split("(")[0]):
            msg = "%s: %s" % (self.call, msg)
        return "%s (%s)" % (msg, self.status_name)


class ArgumentError(AtError, ValueError):
    """AT_E_ARG: an argument is invalid (out of bounds, unknown key or kind)."""
    status, status_name = 1, "AT_E_ARG"


class OutOfMemoryError(AtError, MemoryError):
    """AT_E_NOMEM: memory could not be allocated."""
    status, status_name = 2, "AT_E_NOMEM"


class AtIOError(AtError, OSError):
    """AT_E_IO: a file could not be opened, read, written or renamed."""
    status, status_name = 3, "AT_E_IO"


class FormatError(AtError):
    """AT_E_FORMAT: a file is malformed."""
    status, status_name = 4, "AT_E_FORMAT"


class ShapeError(AtError):
    """AT_E_SHAPE: a tensor is missing or has the wrong shape."""
    status, status_name = 5, "AT_E_SHAPE"


class RangeError(AtError, ValueError):
    """AT_E_RANGE: an id or length is outside what the model supports."""
    status, status_name = 6, "AT_E_RANGE"


class StateError(AtError, RuntimeError):
    """AT_E_STATE: the result asked for has not been computed (or the weights
    are shared and cannot change); also a closed model."""
    status, status_name = 7, "AT_E_STATE"


class NumericError(AtError, ArithmeticError):
    """AT_E_NUMERIC: a value is not finite (NaN or infinity): in a file's
    weights, in values written to a tensor, or in a training step's loss or
    gradients (the step then changes nothing)."""
    status, status_name = 8, "AT_E_NUMERIC"


class CallbackError(AtError, RuntimeError):
    """AT_E_CALLBACK: a host callback (a tap, Model.add_tap) failed and the
    pass stopped. When the tap was a Python callable that raised, that
    exception is this one's ``__cause__`` (``raise ... from``)."""
    status, status_name = 9, "AT_E_CALLBACK"


class StaleViewError(StateError):
    """A view was used after the library reused its memory: a later pass
    (forward, train_step, eval_loss, nll, gate_gradients, greedy_decode, beam_decode,
    write_tensor) ended it,
    or its model was closed. Take the view again, or keep a copy(). Also a
    read (attention, output, ...) by a thread whose last pass on the model
    another thread's pass has replaced since."""
    status_name = "stale view"


_BY_STATUS = {cls.status: cls for cls in
              (ArgumentError, OutOfMemoryError, AtIOError, FormatError, ShapeError,
               RangeError, StateError, NumericError, CallbackError)}


def error_for(status, message, call=None):
    """The exception for a status code (AtError for a code this module does
    not know: the library may be newer)."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        err = AtError(message, call)
        err.status = status
        err.status_name = "status %d" % status
        return err
    return cls(message, call)
