"""Two processes with gloo on the CPU train a tiny Mask R-CNN through ``launch``: DDP keeps
their parameters (and, with naiveSyncBN, their BatchNorm statistics) identical, only rank 0 writes the checkpoint and metrics, and the checkpoint
loads into a single-process model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

SCRIPT = textwrap.dedent('''
    import json, sys
    from pathlib import Path

    import torch

    from det.data.shapes import ShapesConfig, register_shapes

    OUT = Path(sys.argv[1])
    NAMES = ("ddp_shapes_train", "ddp_shapes_val")
    # at import: spawned workers re-import this file and need the datasets too
    register_shapes(ShapesConfig(num_train=8, num_val=4, seed=2, min_image_size=64, max_image_size=80,
                                 min_shape_size=16, max_shape_size=36), OUT / "data", names=NAMES)


    def main(out):
        from det.core.config import get_cfg
        from det.engine.demo import DEMO_CONFIG
        from det.engine.train import comm
        from det.engine.train.defaults import DefaultTrainer, default_setup

        cfg = get_cfg()
        cfg.merge_from_file(str(DEMO_CONFIG))
        cfg.merge_from_list([
            "DATASETS.TRAIN", (NAMES[0],), "DATASETS.TEST", (NAMES[1],),
            "INPUT.MIN_SIZE_TRAIN", (64,), "INPUT.MAX_SIZE_TRAIN", 128, "INPUT.MIN_SIZE_TEST", 64,
            "MODEL.FPN.OUT_CHANNELS", 32, "MODEL.ROI_BOX_HEAD.FC_DIM", 32, "MODEL.ROI_MASK_HEAD.CONV_DIM", 16,
            "MODEL.ROI_MASK_HEAD.NORM", "",  # 16 channels: narrower than GroupNorm's 32 groups
            "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", 32, "SOLVER.IMS_PER_BATCH", 4, "SOLVER.MAX_ITER", 3,
            "SOLVER.WARMUP_ITERS", 1, "SOLVER.CHECKPOINT_PERIOD", 1000, "OUTPUT_DIR", str(out / "train"),
            # SyncBN that works with gloo: batch statistics over both processes
            "MODEL.RESNETS.NORM", "naiveSyncBN",
        ])

        class Trainer(DefaultTrainer):
            progress_bar = False

        default_setup(cfg, None)
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=False)
        results = trainer.train()
        params = torch.cat([p.detach().flatten() for p in trainer.model.module.parameters()])
        gathered = comm.all_gather(params)
        bn_stats = torch.cat([b.detach().flatten().float() for n, b in trainer.model.module.named_buffers()
                              if n.endswith(("running_mean", "running_var"))])
        gathered_bn = comm.all_gather(bn_stats)
        first_batch_ids = comm.all_gather(sorted(d["image_id"] for d in next(iter(trainer.data_loader))))
        if comm.is_main_process():
            torch.save(params, out / "rank0_params.pt")
            (out / "report.json").write_text(json.dumps({
                "world_size": comm.get_world_size(),
                "ddp": type(trainer.model).__name__,
                "max_param_diff": max(float((p - gathered[0]).abs().max()) for p in gathered),
                "max_bn_stat_diff": max(float((b - gathered_bn[0]).abs().max()) for b in gathered_bn),
                "norm": type(trainer.model.module.backbone.bottom_up.stem.conv1.norm).__name__,
                "batch_ids": first_batch_ids,
                "results": results,
            }))


    if __name__ == "__main__":
        from det.engine.train.launch import launch

        launch(main, 2, args=(OUT,))
''')


@pytest.mark.slow
def test_two_gloo_processes_train_in_sync(tmp_path):
    script = tmp_path / "ddp_job.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["world_size"] == 2 and report["ddp"] == "DistributedDataParallel"
    assert report["max_param_diff"] == 0.0
    # with naiveSyncBN the running statistics agree too (DDP does not broadcast buffers)
    assert report["norm"] == "NaiveSyncBatchNorm" and report["max_bn_stat_diff"] < 1e-5
    # the sampler shards: each rank gets its own images, total batch 4 = 2 per rank
    assert [len(ids) for ids in report["batch_ids"]] == [2, 2]
    assert set(report["results"]) == {"bbox", "segm"}

    out = tmp_path / "train"
    names = sorted(os.listdir(out))
    assert "model_final.pth" in names and "metrics.json" in names
    assert not [n for n in names if "rank" in n and n.endswith(".pth")]
    # metrics written once: one line per written iteration
    iterations = [json.loads(line)["iteration"] for line in (out / "metrics.json").read_text().splitlines()]
    assert iterations == sorted(set(iterations))

    # the checkpoint loads into a single-process model and holds rank 0's parameters
    from det.checkpoint import DetectionCheckpointer
    from det.core import build_model
    from det.core.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(str(out / "config.yaml"))
    model = build_model(cfg)
    DetectionCheckpointer(model).load(str(out / "model_final.pth"), strict=True)
    params = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert torch.equal(params, torch.load(tmp_path / "rank0_params.pt", weights_only=True))
