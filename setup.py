# Metadata lives in pyproject.toml; this file only hooks cffi's build of
# the native core into setuptools, which pyproject.toml cannot express.
from setuptools import setup

setup(
    cffi_modules=["_native/build_core.py:ffibuilder"],
    # cffi compiles the core against the stable ABI (the file is _core.abi3.so).
    # Tagged cp310-abi3, one wheel installs on CPython 3.10 and later, and
    # scripts/package tests it on 3.10 to 3.13.
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
