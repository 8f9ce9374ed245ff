"""Every kernel compiles for a real GPU (sm_80 cubin), without a GPU: the interpreter does not check
what only the compiler does (types, layouts, atomics, float64 math, register pressure)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

COMPILE_ALL = r"""
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from det.ops_cuda import mask_kernels, nms_kernels, roi_align_kernels, rotated_iou_kernels
from det.ops_cuda.nms_kernels import GPU_COLUMNS

assert isinstance(nms_kernels._nms_mask_kernel, triton.runtime.JITFunction)
target = GPUTarget("cuda", 80, 32)


def compile_kernel(fn, signature, constexprs):
    signature = {**signature, **{name: "constexpr" for name in constexprs}}
    compiled = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs), target=target)
    assert compiled.asm["cubin"], fn
    print("compiled", fn.__name__, constexprs)


roi_args = {"num_images": "i32", "channels": "i32", "height": "i32", "width": "i32", "pooled_h": "i32",
            "pooled_w": "i32", "spatial_scale": "fp32", "sampling_ratio": "i32"}
for f, (eps, parallel_eps) in (("fp32", (1e-5, 1e-6)), ("fp64", (1e-9, 1e-12))):
    for has_idxs in (True, False):
        compile_kernel(nms_kernels._nms_mask_kernel,
                       {"boxes_ptr": f"*{f}", "idxs_ptr": "*i64", "mask_ptr": "*i32", "n": "i32", "n_words": "i32",
                        "iou_threshold": "fp32"}, {"HAS_IDXS": has_idxs, "BLOCK": 16})
    compile_kernel(nms_kernels._nms_rotated_mask_kernel,
                   {"boxes_ptr": f"*{f}", "mask_ptr": "*i32", "n": "i32", "n_words": "i32", "iou_threshold": "fp32"},
                   {"EPS": eps, "PARALLEL_EPS": parallel_eps, "ROWS": 1, "COLUMNS": GPU_COLUMNS})
    compile_kernel(rotated_iou_kernels._box_iou_rotated_kernel,
                   {"boxes1_ptr": f"*{f}", "boxes2_ptr": f"*{f}", "out_ptr": f"*{f}", "n": "i32", "m": "i32"},
                   {"EPS": eps, "PARALLEL_EPS": parallel_eps, "BLOCK": 4})
    io = {"rois_ptr": f"*{f}"}
    for aligned, rotated in ((True, False), (False, False), (True, True)):
        for backward in (False, True):
            compile_kernel(roi_align_kernels._roi_align_kernel,
                           {"src_ptr": f"*{f}", **io, "dst_ptr": f"*{f}", **roi_args},
                           {"ALIGNED": aligned, "ROTATED": rotated, "BACKWARD": backward, "BLOCK": 128})
    # triton turns integer arguments equal to 1 into constants: one image, sampling ratio 1
    ones = {k: v for k, v in roi_args.items() if k not in ("num_images", "sampling_ratio")}
    compile_kernel(roi_align_kernels._roi_align_kernel,
                   {"src_ptr": f"*{f}", **io, "dst_ptr": f"*{f}", **ones},
                   {"num_images": 1, "sampling_ratio": 1, "ALIGNED": True, "ROTATED": False, "BACKWARD": False,
                    "BLOCK": 128})
compile_kernel(nms_kernels._nms_reduce_kernel,
               {"mask_ptr": "*i32", "removed_ptr": "*i32", "keep_ptr": "*i8", "n": "i32", "n_words": "i32"},
               {"BLOCK_WORDS": 64})
for binary in (True, False):
    compile_kernel(mask_kernels._paste_masks_kernel,
                   {"masks_ptr": "*fp32", "boxes_ptr": "*fp32", "out_ptr": "*u8", "mask_size": "i32", "img_h": "i32",
                    "img_w": "i32", "threshold": "fp32"}, {"BINARY": binary, "BLOCK": 512})
"""


def _has_cuda_backend() -> bool:
    try:
        from triton.backends import backends
    except ImportError:
        return False
    return "nvidia" in backends


@pytest.mark.slow
@pytest.mark.skipif(not _has_cuda_backend(), reason="this triton has no CUDA compiler backend")
def test_every_kernel_compiles_for_sm80(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton-cache")  # really compile, not a cache hit
    result = subprocess.run(
        [sys.executable, "-c", COMPILE_ALL], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("compiled ") == 25
