"""A process killed (SIGKILL) while saving never leaves a broken checkpoint or last_checkpoint."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

from det.checkpoint import Checkpointer

SAVER = r"""
import sys, torch
from torch import nn
from det.checkpoint import Checkpointer

torch.set_num_threads(1)
model = nn.Sequential(nn.Linear(512, 512), nn.Linear(512, 256))  # ~1.5 MB per file
checkpointer = Checkpointer(model, sys.argv[1])
i = int(sys.argv[2])
while True:
    i += 1
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(i)
    checkpointer.save(f"model_{i % 3}", iteration=i)
    print(i, flush=True)
"""


def make_model() -> nn.Module:
    return nn.Sequential(nn.Linear(512, 512), nn.Linear(512, 256))


def check_directory(save_dir) -> int:
    """Every checkpoint file loads and is self-consistent; returns the tagged iteration."""
    checkpointer = Checkpointer(make_model(), str(save_dir))
    for path in checkpointer.get_all_checkpoint_files():
        data = torch.load(path, weights_only=True)
        values = {float(v.flatten()[0]) for v in data["model"].values()}
        assert values == {float(data["iteration"])}, path
    assert checkpointer.has_checkpoint()
    last = checkpointer.get_checkpoint_file()
    model = make_model()
    extra = Checkpointer(model, str(save_dir)).load(last, strict=True)
    for p in model.parameters():
        assert torch.all(p == extra["iteration"])
    return extra["iteration"]


@pytest.mark.slow
def test_sigkill_during_save_loop_leaves_loadable_checkpoints(tmp_path):
    save_dir = tmp_path / "out"
    rng = random.Random(0)
    last_iteration = 0
    for _round in range(4):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(save_dir), str(last_iteration)],
                                stdout=subprocess.PIPE, text=True)
        try:
            # Wait for a few completed saves, then kill at a random moment of a later one.
            for _ in range(3):
                line = proc.stdout.readline()
                assert line, "saver died before saving"
            time.sleep(rng.uniform(0.0, 0.05))
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        iteration = check_directory(save_dir)
        assert iteration > last_iteration
        last_iteration = iteration
    # Only complete files under final names; temporaries never end in .pth.
    assert sorted(p.name for p in save_dir.glob("*.pth")) == ["model_0.pth", "model_1.pth", "model_2.pth"]
    assert (save_dir / "last_checkpoint").read_text() in {"model_0.pth", "model_1.pth", "model_2.pth"}


def test_failed_save_keeps_previous_file_and_tag(tmp_path, monkeypatch):
    model = make_model()
    checkpointer = Checkpointer(model, str(tmp_path))
    checkpointer.save("model_final", iteration=1)
    before = (tmp_path / "model_final.pth").read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        checkpointer.save("model_final", iteration=2)
    assert (tmp_path / "model_final.pth").read_bytes() == before
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_final.pth"]  # temp file removed
