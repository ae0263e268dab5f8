"""jaxsyn.kernels: CPU and accelerator kernels, each with an XLA reference and a dispatch.

`conv3d`: 3D convolution through oneDNN on the CPU (an XLA FFI extension, `conv3d_onednn.cc`,
built by `pip install`), XLA elsewhere or when the extension is absent. `available()` says whether
the oneDNN path can run, `info()` what `implementation=None` picks and why.
"""

from jaxsyn.kernels.conv import (
    ENV,
    IMPLEMENTATIONS,
    KernelUnavailableError,
    available,
    conv3d,
    conv3d_xla,
    conv_general_dilated,
    info,
    use,
)

__all__ = [
    "ENV",
    "IMPLEMENTATIONS",
    "KernelUnavailableError",
    "available",
    "conv3d",
    "conv3d_xla",
    "conv_general_dilated",
    "info",
    "use",
]
