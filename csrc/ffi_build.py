"""cffi builder for ``qcore._qcore`` (out-of-line API mode).

The declarations are the regions between ``/* cdef: begin */`` and ``/* cdef: end */`` in
the public headers, so the header stays the single statement of the C interface. Every
``csrc/src/**/*.c`` file is compiled with the same flags; SIMD sources enable their own
instruction sets with ``#pragma GCC target`` and guard themselves by architecture, so the
same build works on x86-64, aarch64 and armv7.

Extra flags (sanitizers, debug) come from the ``QCORE_CFLAGS`` / ``QCORE_LDFLAGS``
environment variables.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
INCLUDE = HERE / "include"
HEADERS = ("qcore.h", "qcore_kernels.h", "qcore_gemm.h", "qcore_conv.h", "qcore_format.h", "qcore_activation.h",
           "qcore_linear.h", "qcore_attention.h")
_CDEF = re.compile(r"/\* cdef: begin \*/(.*?)/\* cdef: end \*/", re.S)

# -ffp-contract=off: no FMA contraction, so float requantization rounds exactly as the
# NumPy reference does (docs/ARITHMETIC.md).
BASE_CFLAGS = ["-std=c11", "-O3", "-ffp-contract=off", "-fno-math-errno", "-Wall", "-Wextra",
               "-Wno-unused-parameter", "-D_GNU_SOURCE"]


def cdef_text() -> str:
    """Concatenate the cdef regions of the public headers."""
    parts = []
    for name in HEADERS:
        parts.extend(_CDEF.findall((INCLUDE / name).read_text()))
    return "\n".join(parts)


def sources() -> list[str]:
    """Every C source of the library, relative to the project root, in a stable order."""
    root = HERE.parent
    return sorted(str(p.relative_to(root)) for p in (HERE / "src").rglob("*.c"))


ffibuilder = FFI()
ffibuilder.cdef(cdef_text())
ffibuilder.set_source(
    "qcore._qcore",
    '#include "qcore.h"\n',
    sources=sources(),
    include_dirs=[str(INCLUDE.relative_to(HERE.parent)), str((HERE / "src").relative_to(HERE.parent))],
    extra_compile_args=BASE_CFLAGS + shlex.split(os.environ.get("QCORE_CFLAGS", "")),
    extra_link_args=["-pthread"] + shlex.split(os.environ.get("QCORE_LDFLAGS", "")),
    libraries=["m"],
)

if __name__ == "__main__":
    os.chdir(HERE.parent)
    ffibuilder.compile(verbose=True)
