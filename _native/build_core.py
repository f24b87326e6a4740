"""cffi build script for the native core, ``aiospawn._core``.

setup.py names ``ffibuilder`` in ``cffi_modules``, so ``pip install .``
compiles the C sources in this folder into an extension module inside the
package. The declarations handed to cffi are the ones between the cdef
markers of aiospawn.h, so the C code and the Python binding read one list.
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
SOURCES = ["spawn.c", "child.c"]

# The child runs on the parent's thread pointer (CLONE_VM without
# CLONE_SETTLS): no stack-protector canary writes, no lazy PLT binding that
# would enter the dynamic linker from the child. -Werror keeps the core
# warning-free.
COMPILE_ARGS = [
    "-std=gnu11",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-fno-stack-protector",
    "-fvisibility=hidden",
]
LINK_ARGS = ["-Wl,-z,now"]


def read_cdef() -> str:
    header = (HERE / "aiospawn.h").read_text()
    start = header.index("/* cdef-begin */")
    end = header.index("/* cdef-end */")
    return header[start:end]


ffibuilder = FFI()
ffibuilder.cdef(read_cdef())
ffibuilder.set_source(
    "aiospawn._core",
    '#include "aiospawn.h"',
    sources=[str(Path("_native") / name) for name in SOURCES],
    include_dirs=["_native"],
    extra_compile_args=COMPILE_ARGS,
    extra_link_args=LINK_ARGS,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
