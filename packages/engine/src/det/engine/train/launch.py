"""Start a multi-process training job (detectron2's ``engine.launch``), or join one started by
``torchrun``.

    launch(main, num_gpus_per_machine=2, args=(cfg_file,))        # 2 local processes, gloo on CPU
    torchrun --nproc_per_node=2 -m det.core.cli train --config-file F   # torchrun sets the env

The backend is NCCL when CUDA is available, else gloo (CPU). ``num_gpus_per_machine`` is the
number of processes per machine: GPUs, or CPU workers when there is no GPU.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

__all__ = ["DEFAULT_TIMEOUT", "launch"]

DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)

logger = logging.getLogger(__name__)


def _find_free_port() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # port 0: the OS picks a free one
    port = sock.getsockname()[1]
    sock.close()
    return int(port)


def _backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def _check_devices(num_gpus_per_machine: int) -> None:
    if torch.cuda.is_available() and num_gpus_per_machine > torch.cuda.device_count():
        raise ValueError(
            f"{num_gpus_per_machine} processes per machine requested but only {torch.cuda.device_count()} "
            "CUDA devices are visible")


def _started_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ and "MASTER_ADDR" in os.environ


def launch(
    main_func: Callable[..., Any],
    num_gpus_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: str | None = "auto",
    args: Sequence[Any] = (),
    timeout: datetime.timedelta = DEFAULT_TIMEOUT,
) -> None:
    """Run ``main_func(*args)`` in ``num_machines * num_gpus_per_machine`` processes that form a
    torch.distributed group, or once in this process when that product is 1.

    Under ``torchrun`` (``WORLD_SIZE``/``RANK``/``MASTER_ADDR`` in the environment) this process
    is one worker already: the group is initialised from the environment and ``main_func`` runs
    here; the other arguments are ignored.

    Args:
        main_func: a module-level function (it is pickled for the ``spawn`` start method).
        num_gpus_per_machine: processes to start on this machine.
        num_machines, machine_rank: for jobs over several machines.
        dist_url: ``"auto"`` (a free local port, one machine only) or ``tcp://host:port`` that
            every machine can reach (machine 0's address).
    """
    if _started_by_torchrun():
        _torchrun_worker(main_func, args, timeout)
        return
    if num_gpus_per_machine < 1 or num_machines < 1:
        raise ValueError(f"need num_gpus_per_machine >= 1 and num_machines >= 1, got {num_gpus_per_machine}, {num_machines}")
    if not 0 <= machine_rank < num_machines:
        raise ValueError(f"machine_rank must be in [0, {num_machines}), got {machine_rank}")
    world_size = num_machines * num_gpus_per_machine
    if world_size == 1:
        main_func(*args)
        return
    _check_devices(num_gpus_per_machine)
    if dist_url in (None, "auto"):
        if num_machines != 1:
            raise ValueError('dist_url="auto" only works on one machine; pass tcp://<machine 0>:<port>')
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    if num_machines > 1 and dist_url.startswith("file://"):
        logger.warning("file:// is not a reliable init method across machines; prefer tcp://")
    mp.start_processes(
        _distributed_worker,
        nprocs=num_gpus_per_machine,
        args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, tuple(args), timeout),
        daemon=False,
    )


def _set_cpu_threads(local_size: int) -> None:
    # N processes each using every core would oversubscribe the CPU many times over.
    if not torch.cuda.is_available():
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(local_size, 1)))


def _distributed_worker(
    local_rank: int,
    main_func: Callable[..., Any],
    world_size: int,
    num_gpus_per_machine: int,
    machine_rank: int,
    dist_url: str,
    args: tuple,
    timeout: datetime.timedelta = DEFAULT_TIMEOUT,
) -> None:
    global_rank = machine_rank * num_gpus_per_machine + local_rank
    os.environ["LOCAL_RANK"] = str(local_rank)
    os.environ["LOCAL_WORLD_SIZE"] = str(num_gpus_per_machine)
    try:
        dist.init_process_group(
            backend=_backend(), init_method=dist_url, world_size=world_size, rank=global_rank, timeout=timeout)
    except Exception:
        logging.getLogger(__name__).error("Process group URL: %s", dist_url)
        raise
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    _set_cpu_threads(num_gpus_per_machine)
    try:
        dist.barrier()  # every process joined before any work starts
        main_func(*args)
    finally:
        dist.destroy_process_group()


def _torchrun_worker(main_func: Callable[..., Any], args: Sequence[Any], timeout: datetime.timedelta) -> None:
    already = dist.is_available() and dist.is_initialized()
    if not already:
        dist.init_process_group(backend=_backend(), init_method="env://", timeout=timeout)
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    _set_cpu_threads(int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    try:
        main_func(*args)
    finally:
        if not already:
            dist.destroy_process_group()
