"""Build hook: cffi compiles the C core (csrc/) into ``qcore._qcore`` at install time.

Everything else about the package lives in pyproject.toml.
"""

from setuptools import setup

setup(cffi_modules=["csrc/ffi_build.py:ffibuilder"])
