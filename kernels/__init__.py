"""jaxsyn.kernels: accelerator and CPU kernels, each with an XLA reference and a dispatch.

Empty so far: the first kernel (oneDNN 3D convolution for CPU) is tracked in its own issue.
"""
