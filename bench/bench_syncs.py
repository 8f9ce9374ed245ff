"""Host synchronisations per forward pass of every meta-architecture, on CUDA, counted without a GPU.

Each model of ``_meta_archs.py`` (stock zoo config, narrow layers, two 64x96 images on "cuda:0")
runs one training forward pass (the losses) and one inference under
:class:`det.core.emulated_cuda.EmulatedCUDA`, which records every point where the host would wait
for the GPU: a value read (``.item()``, ``bool(t)``), a copy between host and device (blocking
copies synchronise the stream), or an output whose size depends on the data (``nonzero``,
boolean-mask indexing, NMS). Counts depend on the batch (two images here; most sites run once per
image) and on the model's structure (FPN levels, cascade stages), not on the weights.

det's ops are served by det-core's reference implementations here (det-ops-cuda's Triton kernels
take minutes in Triton's interpreter); the last table gives each op's own synchronisations under
both providers, so a GPU run's count is the model's minus the reference's plus the kernels'.

    .venv/bin/python bench/bench_syncs.py                  # all meta-architectures, ~1 min
    .venv/bin/python bench/bench_syncs.py --detail mask_rcnn_fpn   # and where each one comes from
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Triton kernels must be defined for the interpreter (they are only called on tiny inputs below)
os.environ.setdefault("TRITON_INTERPRET", "1")


def count_model(name: str, *, detail: bool = False) -> dict:
    """{"train": {kind: n}, "inference": {kind: n}} (+ "sites": summaries) for one meta-architecture."""
    import _meta_archs
    import torch

    from det.core import EventStorage
    from det.core.emulated_cuda import EmulatedCUDA, emulate_module

    model = _meta_archs.build(name)
    batch = _meta_archs.make_batch(name)
    result: dict = {}
    with EmulatedCUDA() as mode, _reference_ops():
        emulate_module(model)
        cuda_batch = _meta_archs.batch_to(batch, "cuda")
        mode.reset()
        model.train()
        torch.manual_seed(0)
        with EventStorage(0):
            model(cuda_batch)
        result["train"] = mode.count_syncs()
        train_sites = mode.sync_summary()
        mode.reset()
        model.eval()
        with torch.no_grad():
            model(_meta_archs.inference_inputs(cuda_batch))
        result["inference"] = mode.count_syncs()
        if detail:
            result["sites"] = {"train": train_sites, "inference": mode.sync_summary()}
    return result


def count_ops() -> dict[str, dict[str, int]]:
    """Host synchronisations of one call of each dispatched op, per provider, on small inputs."""
    import torch

    from det.core.emulated_cuda import EmulatedCUDA, to_emulated
    from det.core.layers.ops import REFERENCE_OPS, _reference, dispatch

    g = torch.Generator().manual_seed(0)
    boxes = torch.rand(12, 4, generator=g) * 20
    boxes[:, 2:] += boxes[:, :2] + 1
    rotated = torch.cat([boxes[:, :2] + 5, boxes[:, 2:] - boxes[:, :2], torch.rand(12, 1, generator=g) * 90], 1)
    scores = torch.rand(12, generator=g)
    idxs = torch.randint(0, 3, (12,), generator=g)
    features = torch.rand(1, 4, 16, 16, generator=g)
    rois = torch.cat([torch.zeros(12, 1), boxes], 1)
    rrois = torch.cat([torch.zeros(12, 1), rotated], 1)
    masks = torch.rand(12, 7, 7, generator=g)
    calls = {
        "nms": lambda f, e: f(e(boxes), e(scores), 0.5),
        "batched_nms": lambda f, e: f(e(boxes), e(scores), e(idxs), 0.5),
        "nms_rotated": lambda f, e: f(e(rotated), e(scores), 0.5),
        "box_iou_rotated": lambda f, e: f(e(rotated), e(rotated)),
        "roi_align": lambda f, e: f(e(features), e(rois), (7, 7), 1.0, 2, True),
        "roi_align_rotated": lambda f, e: f(e(features), e(rrois), (7, 7), 1.0, 2),
        "paste_masks": lambda f, e: f(e(masks), e(boxes), (40, 40), 0.5),
    }
    table: dict[str, dict[str, int]] = {}
    for op, call in calls.items():
        row = {}
        providers = {"det-core (reference)": _reference[op].load()}
        with EmulatedCUDA():
            kernel = dispatch(op, to_emulated(boxes))
        if kernel is not providers["det-core (reference)"]:
            providers["det-ops-cuda"] = kernel
        for provider, impl in providers.items():
            with EmulatedCUDA() as mode:
                call(impl, to_emulated)
                row[provider] = sum(mode.count_syncs().values())
        table[op] = row
    assert set(table) <= set(REFERENCE_OPS)
    return table


class _reference_ops:
    """DET_FORCE_REFERENCE_OPS=1 for the duration (det's op dispatch reads it on every call)."""

    def __enter__(self) -> None:
        self.saved = os.environ.get("DET_FORCE_REFERENCE_OPS")
        os.environ["DET_FORCE_REFERENCE_OPS"] = "1"

    def __exit__(self, *exc: object) -> None:
        if self.saved is None:
            os.environ.pop("DET_FORCE_REFERENCE_OPS", None)
        else:
            os.environ["DET_FORCE_REFERENCE_OPS"] = self.saved


def _row(counts: dict[str, int]) -> str:
    return " ".join(f"{counts[k]:>4}" for k in counts) + f" {sum(counts.values()):>6}"


def main(argv: list[str] | None = None) -> int:
    import _common
    import _meta_archs
    import torch

    from det.core.emulated_cuda import SYNC_KINDS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archs", nargs="*", help=f"meta-architectures (default: all of {', '.join(_meta_archs.ARCHS)})")
    parser.add_argument("--detail", action="store_true", help="list every synchronising line")
    args = parser.parse_args(argv)
    names = args.archs or list(_meta_archs.ARCHS)
    unknown = [n for n in names if n not in _meta_archs.ARCHS]
    if unknown:
        print(f"bench_syncs: unknown meta-architecture(s) {unknown}; choose from {list(_meta_archs.ARCHS)}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    print(f"machine: {_common.machine_line()}")
    print(f"{_common.load_line()} (counts do not depend on the machine)")
    kinds = " ".join(f"{k[:4]:>4}" for k in SYNC_KINDS)
    print(f"{'meta-architecture':<24} {'pass':<9} {kinds}  total   (item, to_host, to_device, data_dependent)")
    start = time.perf_counter()
    for name in names:
        counts = count_model(name, detail=args.detail)
        for phase in ("train", "inference"):
            print(f"{name:<24} {phase:<9} {_row(counts[phase])}")
        if args.detail:
            for phase, sites in counts["sites"].items():
                print(f"  {phase}:")
                for n, kind, op, where in sites:
                    print(f"    {n:>3} {kind:<14} {op:<22} {where}")
    print("\nper call of each dispatched op (small inputs):")
    for op, row in count_ops().items():
        print(f"  {op:<18} " + ", ".join(f"{p}: {n}" for p, n in row.items()))
    print(f"seconds={time.perf_counter() - start:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
