"""Triton kernels for det's ops on CUDA devices."""

from det.ops_cuda.version import __version__

__all__ = ["__version__"]
