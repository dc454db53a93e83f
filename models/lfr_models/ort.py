"""ONNX Runtime's C library, taken unchanged from the PyPI wheel ``onnxruntime``.

The wheel (manylinux_2_28 x86_64, CPython 3.11 tag: the library inside does not depend on Python)
contains ``onnxruntime/capi/libonnxruntime.so.<version>``, which needs only glibc and libstdc++. The Rust
services load it at run time (``ort`` crate with ``load-dynamic``; ``ORT_DYLIB_PATH`` pointing at it).
"""

from __future__ import annotations

ELF_MAGIC = b"\x7fELF"


def build(library: bytes, version: str) -> bytes:
    """Check that the extracted member is an ELF shared object of the expected version and return it."""
    if not library.startswith(ELF_MAGIC):
        raise ValueError("libonnxruntime member is not an ELF file")
    if f"{version}".encode() not in library:
        raise ValueError(f"libonnxruntime does not mention version {version}")
    return library
