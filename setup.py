# Metadata lives in pyproject.toml; this file only hooks cffi's build of
# the native core into setuptools, which pyproject.toml cannot express.
from setuptools import setup

setup(cffi_modules=["_native/build_core.py:ffibuilder"])
