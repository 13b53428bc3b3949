"""The NumPy reference: qcore's arithmetic, written once, naive and readable.

Every formula is stated in docs/ARITHMETIC.md; the C core (:mod:`qcore.ops`) must agree
with these functions bit for bit. This package never imports the C extension.
"""

from .dtypes import INT_TYPES, IntType, int_type

__all__ = ["INT_TYPES", "IntType", "int_type"]
