"""The optional compiled part of jaxsyn: `jaxsyn.kernels._onednn`, oneDNN 3D convolution for XLA:CPU.

Everything else about the package lives in pyproject.toml. The extension needs g++ (C++17), the
XLA FFI headers (`jax.ffi.include_dir()`) and oneDNN 3.2 (`onednn-devel-cpu-gomp`, a build
requirement on Linux x86_64). Where any of them is missing the build prints why and goes on without
it: jaxsyn then runs its 3D convolutions on XLA.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NAME = "jaxsyn.kernels._onednn"


def _dist_file(dist: str, suffix: str) -> Path | None:
    """The installed file of distribution `dist` whose path ends with `suffix`."""
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.as_posix().endswith(suffix):
            return Path(f.locate()).resolve()
    return None


def _ffi_include() -> str:
    try:
        import jax

        return jax.ffi.include_dir()
    except Exception:  # jax not importable in this build environment: find jaxlib's headers
        spec = importlib.util.find_spec("jaxlib")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("jax/jaxlib (for the XLA FFI headers) is not installed") from None
        return str(Path(spec.submodule_search_locations[0]) / "include")


def _onednn_paths() -> tuple[str, str]:
    # (the wheel also ships a top-level include/dnnl.hpp; the include root is oneapi/dnnl's grandparent)
    header = _dist_file("onednn-devel-cpu-gomp", "include/oneapi/dnnl/dnnl.hpp")
    library = _dist_file("onednn-cpu-gomp", "libdnnl.so.3")
    prefix = Path(sys.prefix)
    if header is None and (prefix / "include/oneapi/dnnl/dnnl.hpp").is_file():
        header = prefix / "include/oneapi/dnnl/dnnl.hpp"
    # In pip's isolated build the runtime wheel sits in the build environment beside the headers
    # (<env>/include, <env>/lib), not yet in the target environment.
    candidates = [library] if library is not None and library.is_file() else []
    if header is not None:
        candidates.append(header.parents[3] / "lib" / "libdnnl.so.3")
    candidates.append(prefix / "lib" / "libdnnl.so.3")
    library = next((c for c in candidates if c.is_file()), None)
    if header is None or library is None:
        raise RuntimeError(
            "oneDNN 3.2 headers or library not found (pip install onednn-devel-cpu-gomp==2023.2.0)"
        )
    return str(header.parents[2]), str(library.parent)


class OptionalBuildExt(build_ext):
    """Builds the oneDNN extension when it can and says why when it cannot, never failing."""

    def build_extension(self, ext):
        try:
            if not (sys.platform.startswith("linux") and _machine() == "x86_64"):
                raise RuntimeError("the oneDNN path is built on Linux x86_64 only")
            include, libdir = _onednn_paths()
            ext.include_dirs += [_ffi_include(), include]
            ext.library_dirs += [libdir]
            super().build_extension(ext)
        except Exception as e:  # any failure: no extension, the XLA path
            print(f"jaxsyn: not building {ext.name} ({e}); 3D convolutions will use XLA")


def _machine() -> str:
    import platform

    return platform.machine()


setup(
    ext_modules=[
        Extension(
            NAME,
            sources=["kernels/conv3d_onednn.cc"],
            language="c++",
            # linked by soname; at run time jaxsyn.kernels preloads libdnnl.so.3 from the wheel
            extra_compile_args=["-std=c++17", "-O2", "-fvisibility=hidden", "-w"],
            extra_link_args=["-l:libdnnl.so.3"],
            optional=True,
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
