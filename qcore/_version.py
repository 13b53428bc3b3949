"""The package version; the C library reports the same string (``QC_VERSION`` in qcore.h)."""

__version__ = "0.1.0"
