"""Arrays whose data starts at an odd byte offset: C reads floats and int32 through typed
pointers, so the wrappers must copy such arrays (or write through an aligned buffer)."""

from __future__ import annotations

import numpy as np


def misaligned(a: np.ndarray) -> np.ndarray:
    """A copy of ``a`` (any dtype) whose first element sits one byte past an aligned address."""
    a = np.asarray(a)
    raw = np.zeros(a.nbytes + 1, np.uint8)[1:]
    view = raw.view(a.dtype).reshape(a.shape)
    view[...] = a
    assert a.dtype.alignment == 1 or not a.size or not view.flags.aligned
    return view
