"""``DefaultTrainer`` and the helpers of a standard training script (detectron2's
``engine.defaults``): argument parser, set-up, writers, DDP wrapping.

    args = default_argument_parser().parse_args()
    cfg = get_cfg(); cfg.merge_from_file(args.config_file); cfg.merge_from_list(args.opts)
    default_setup(cfg, args)
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    trainer.train()
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from det.checkpoint import DetectionCheckpointer
from det.engine.train import comm, hooks
from det.engine.train.logger import setup_logger
from det.engine.train.precise_bn import get_bn_modules
from det.engine.train.solver import build_lr_scheduler as _build_lr_scheduler
from det.engine.train.solver import build_optimizer as _build_optimizer
from det.engine.train.train_loop import AMPTrainer, SimpleTrainer, TrainerBase
from det.engine.train.writers import CommonMetricPrinter, EventWriter, JSONWriter, TensorboardXWriter

__all__ = [
    "DefaultTrainer",
    "create_ddp_model",
    "default_argument_parser",
    "default_setup",
    "default_writers",
    "seed_all_rng",
]

logger = logging.getLogger(__name__)

TORCH_VERSION: tuple[int, ...] = tuple(int(x) for x in torch.__version__.split(".")[:2])
"""(major, minor) of the installed torch (detectron2.utils.env.TORCH_VERSION), e.g. (2, 14)."""


def create_ddp_model(model: torch.nn.Module, *, fp16_compression: bool = False, **kwargs: Any) -> torch.nn.Module:
    """Wrap ``model`` in ``DistributedDataParallel`` when more than one process trains (else
    return it unchanged). ``kwargs`` go to DDP; on CUDA ``device_ids`` defaults to this
    process's local GPU."""
    if comm.get_world_size() == 1:
        return model
    if "device_ids" not in kwargs and next(model.parameters()).device.type == "cuda":
        kwargs["device_ids"] = [comm.get_local_rank()]
    ddp = DistributedDataParallel(model, **kwargs)
    if fp16_compression:
        from torch.distributed.algorithms.ddp_comm_hooks import default as comm_hooks

        ddp.register_comm_hook(state=None, hook=comm_hooks.fp16_compress_hook)
    return ddp


def default_argument_parser(epilog: str | None = None, parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """detectron2's training-script arguments: ``--config-file``, ``--resume``, ``--eval-only``,
    ``--num-gpus``, ``--num-machines``, ``--machine-rank``, ``--dist-url`` and trailing
    ``KEY VALUE`` config overrides (``opts``). Pass ``parser`` to fill an existing one (a
    ``det`` subcommand)."""
    if parser is None:
        parser = argparse.ArgumentParser(
            epilog=epilog or "Run on one machine: det train --config-file cfg.yaml --num-gpus 2",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to config file")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="Whether to attempt to resume from the checkpoint directory (OUTPUT_DIR/last_checkpoint).",
    )
    parser.add_argument("--eval-only", action="store_true", help="perform evaluation only")
    parser.add_argument("--num-gpus", type=int, default=1,
                        help="number of processes per machine (GPUs; CPU processes with gloo when there is no GPU)")
    parser.add_argument("--num-machines", type=int, default=1, help="total number of machines")
    parser.add_argument("--machine-rank", type=int, default=0, help="the rank of this machine (unique per machine)")
    parser.add_argument(
        "--dist-url",
        default="auto",
        help="initialization URL for pytorch distributed backend: 'auto' (one machine) or "
        "tcp://<machine 0 address>:<port>",
    )
    parser.add_argument(
        "opts",
        help="Modify config options at the end of the command. For YAML (yacs) configs: space-separated "
        "'PATH.KEY VALUE' pairs, e.g. SOLVER.MAX_ITER 100 MODEL.WEIGHTS model.pth. For Python LazyConfig "
        "files: 'path.key=value', e.g. train.max_iter=100 train.init_checkpoint=model.pth",
        default=None,
        nargs=argparse.REMAINDER,
    )
    return parser


def seed_all_rng(seed: int | None = None) -> int:
    """Seed python, numpy and torch; a random seed when ``seed`` is None. Returns the seed."""
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little") % (2**31)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return seed


def _try_get_key(cfg: Any, *keys: str, default: Any = None) -> Any:
    """The first of ``keys`` (dotted) that ``cfg`` has: a yacs config's ``OUTPUT_DIR`` or a
    LazyConfig's ``train.output_dir``, as detectron2's default_setup looks them up."""
    from det.core.config import CfgNode

    if isinstance(cfg, CfgNode):
        cfg = cfg.clone()  # yacs: select on a copy, so no key is created
    for key in keys:
        node = cfg
        try:
            for part in key.split("."):
                node = node[part] if isinstance(node, dict) or hasattr(node, "keys") else getattr(node, part)
        except (KeyError, AttributeError, TypeError):
            continue
        return node
    return default


def default_setup(cfg: Any, args: Any) -> None:
    """Create the output folder, set up logging (stdout on rank 0, ``log.txt`` in it), write the
    config to ``<output>/config.yaml`` (main process), seed the RNGs (offset by rank; random when
    negative) and apply ``FLOAT32_PRECISION`` when set.

    ``cfg`` is a yacs config (``OUTPUT_DIR``, ``SEED``, ``CUDNN_BENCHMARK``) or, as in detectron2,
    a LazyConfig (``train.output_dir``, ``train.seed``, ``train.cudnn_benchmark``; saved with
    ``LazyConfig.save``)."""
    from det.core.config import CfgNode

    output_dir = _try_get_key(cfg, "OUTPUT_DIR", "output_dir", "train.output_dir", default="")
    if comm.is_main_process() and output_dir:
        os.makedirs(output_dir, exist_ok=True)
    rank = comm.get_rank()
    # detectron2's scripts log to "detectron2" (and fvcore to "fvcore"): set them up as detectron2 does
    for name in ("fvcore", "detectron2"):
        setup_logger(output_dir or None, distributed_rank=rank, name=name)
    setup_logger(output_dir or None, distributed_rank=rank, name="det")
    logger.info("Rank of current process: %d. World size: %d", rank, comm.get_world_size())
    from det.core.machine import collect_env_info

    logger.info("Environment info:\n%s", collect_env_info())
    logger.info("Command line arguments: %s", args)
    if getattr(args, "config_file", ""):
        with open(args.config_file) as f:
            logger.info("Contents of args.config_file=%s:\n%s", args.config_file, f.read())
    if comm.is_main_process() and output_dir:
        path = os.path.join(output_dir, "config.yaml")
        if isinstance(cfg, CfgNode):
            with open(path, "w") as f:
                f.write(cfg.dump())
        else:
            from det.core.config import LazyConfig

            LazyConfig.save(cfg, path)
        logger.info("Full config saved to %s", path)
    seed = _try_get_key(cfg, "SEED", "train.seed", default=-1)
    seed_all_rng(None if seed < 0 else seed + rank)
    precision = _try_get_key(cfg, "FLOAT32_PRECISION", "train.float32_precision", default="")
    if precision:
        set_float32_precision(precision)
    if not (hasattr(args, "eval_only") and args.eval_only):
        torch.backends.cudnn.benchmark = _try_get_key(cfg, "CUDNN_BENCHMARK", "train.cudnn_benchmark", default=False)


_FLOAT32_PRECISIONS = ("highest", "high", "medium")


def set_float32_precision(precision: str) -> None:
    """float32 matmul precision for torch (``torch.set_float32_matmul_precision``) and cuDNN:
    "high" and "medium" allow TF32 on GPUs that have it, "highest" forbids it."""
    if precision not in _FLOAT32_PRECISIONS:
        raise ValueError(f"FLOAT32_PRECISION must be one of {_FLOAT32_PRECISIONS} or '' (leave torch's), got {precision!r}")
    logger.info("Setting float32 precision to %s", precision)
    torch.set_float32_matmul_precision(precision)
    torch.backends.cudnn.allow_tf32 = precision != "highest"


def default_writers(output_dir: str, max_iter: int | None = None) -> list[EventWriter]:
    """Console (with ETA), ``output_dir/metrics.json`` and TensorBoard (when installed) writers."""
    writers: list[EventWriter] = [
        CommonMetricPrinter(max_iter),
        JSONWriter(os.path.join(output_dir, "metrics.json")),
    ]
    if _tensorboard_available():
        writers.append(TensorboardXWriter(output_dir))
    return writers


def _tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


class DefaultTrainer(TrainerBase):
    """A trainer with detectron2's standard behaviour, built from a config: model, SGD optimizer,
    LR schedule, train loader, DDP, checkpointing, periodic evaluation and metric writers.

    Invariant: every ``build_*`` is a classmethod taking the config, so a subclass changes one
    part by overriding one method; checkpoints hold the model, the optimizer, the scheduler and
    the iteration, so ``resume_or_load(resume=True)`` continues a run where it stopped::

        trainer = DefaultTrainer(cfg)
        trainer.resume_or_load(resume=False)   # cfg.MODEL.WEIGHTS, or the last checkpoint if resuming
        trainer.train()                        # to cfg.SOLVER.MAX_ITER; returns the last eval results
    """

    writer_period: int = 20
    """Iterations between two writes of the metric writers."""

    progress_bar: bool | None = None
    """Show a tqdm :class:`~det.engine.train.hooks.ProgressBar`: None = when stderr is a terminal."""

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        det_logger = logging.getLogger("det")
        if not det_logger.isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())

        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        # the sampler draws its seed from numpy's RNG (shared_random_seed): a resumed run builds
        # its loader again from this state, so that it gets the same seed and order
        self._loader_rng_state = np.random.get_state()
        data_loader = self.build_train_loader(cfg)

        model = create_ddp_model(model, broadcast_buffers=False)
        self._trainer = (AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer)(model, data_loader, optimizer)

        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = DetectionCheckpointer(
            # trainer state (iteration, optimizer, scheduler through the LRScheduler hook) goes
            # into every checkpoint next to the model
            model,
            cfg.OUTPUT_DIR,
            trainer=weakref.proxy(self),
        )
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self._last_eval_results: Any = None
        self.register_hooks(self.build_hooks())

    def resume_or_load(self, resume: bool = True) -> None:
        """``resume`` and ``OUTPUT_DIR/last_checkpoint`` exists: load that checkpoint with the
        trainer state and continue at the iteration after it, with the training data in the
        order the interrupted run would have seen it (given the same ``SEED``; when
        :meth:`build_train_loader` is overridden, the subclass's loader starts over). Otherwise
        load ``MODEL.WEIGHTS`` (model only; none when empty) and start at 0."""
        self.checkpointer.resume_or_load(self.cfg.MODEL.WEIGHTS, resume=resume)
        if resume and self.checkpointer.has_checkpoint():
            # the checkpoint stores the iteration that just finished
            self.start_iter = self.iter + 1
            if self.start_iter > 0:
                self._resume_data_order()

    def _resume_data_order(self) -> None:
        if getattr(type(self).build_train_loader, "__func__", None) is not DefaultTrainer.build_train_loader.__func__:
            logger.warning("%s overrides build_train_loader: its data order restarts from the beginning on resume",
                           type(self).__name__)
            return
        from det.data.build import build_resumed_train_loader

        state = np.random.get_state()
        np.random.set_state(self._loader_rng_state)
        try:
            self._trainer.data_loader = build_resumed_train_loader(self.cfg, self.start_iter)
        finally:
            np.random.set_state(state)
        self._trainer._data_loader_iter_obj = None

    def build_hooks(self) -> list[hooks.HookBase | None]:
        """IterationTimer, LRScheduler, PreciseBN (``TEST.PRECISE_BN.ENABLED`` and the model has
        BN layers in training mode), PeriodicCheckpointer (main process), EvalHook, PeriodicWriter
        (main process); a ProgressBar per :attr:`progress_bar`."""
        cfg = self.cfg.clone()
        cfg.defrost()
        cfg.DATALOADER.NUM_WORKERS = 0  # for PreciseBN's loader: saves memory and start-up time

        ret: list[hooks.HookBase | None] = [
            hooks.IterationTimer(),
            hooks.LRScheduler(),
            # same period as the evaluation and registered before it, so that evaluation sees the
            # precise statistics; with its own loader, so training's batches are not consumed
            hooks.PreciseBN(
                cfg.TEST.EVAL_PERIOD, self.model, self.build_train_loader(cfg), cfg.TEST.PRECISE_BN.NUM_ITER
            )
            if cfg.TEST.PRECISE_BN.ENABLED and get_bn_modules(self.model)
            else None,
        ]
        # After PreciseBN: the statistics it updates belong in the checkpoints. (A checkpoint
        # period that differs from EVAL_PERIOD gives some checkpoints older statistics.)
        if comm.is_main_process():
            ret.append(hooks.PeriodicCheckpointer(self.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD))

        def test_and_save_results() -> Any:
            self._last_eval_results = self.test(self.cfg, self.model)
            return self._last_eval_results

        # Runs on every process: evaluation gathers predictions from all of them.
        ret.append(hooks.EvalHook(cfg.TEST.EVAL_PERIOD, test_and_save_results))
        if comm.is_main_process():
            ret.append(hooks.PeriodicWriter(self.build_writers(), period=self.writer_period))
            if self.progress_bar or (self.progress_bar is None and sys.stderr.isatty()):
                ret.append(hooks.ProgressBar())
        return ret

    def build_writers(self) -> list[EventWriter]:
        return default_writers(self.cfg.OUTPUT_DIR, self.max_iter)

    def train(self) -> Any:  # type: ignore[override]  # detectron2's signature: no arguments
        """Train to ``max_iter``; returns the last evaluation's results (None without evaluation)."""
        super().train(self.start_iter, self.max_iter)
        if len(self.cfg.TEST.EXPECTED_RESULTS) and comm.is_main_process():
            from det.evaluation.testing import verify_results

            if not hasattr(self, "_last_eval_results"):
                raise RuntimeError("No evaluation results obtained during training!")
            verify_results(self.cfg, self._last_eval_results)
        return self._last_eval_results

    def run_step(self) -> None:
        self._trainer.iter = self.iter
        self._trainer.run_step()

    def state_dict(self) -> dict:
        ret = super().state_dict()
        ret["_trainer"] = self._trainer.state_dict()
        return ret

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._trainer.load_state_dict(state_dict["_trainer"])

    # the wrapped SimpleTrainer's parts, for hooks and user code
    @property
    def model(self) -> torch.nn.Module:
        return self._trainer.model

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._trainer.optimizer

    @property
    def data_loader(self) -> Any:
        return self._trainer.data_loader

    @classmethod
    def build_model(cls, cfg: Any) -> torch.nn.Module:
        """``det.core.build_model(cfg)``."""
        from det.core.modeling.build import build_model

        model = build_model(cfg)
        logger.info("Model:\n%s", model)
        return model

    @classmethod
    def build_optimizer(cls, cfg: Any, model: torch.nn.Module) -> torch.optim.Optimizer:
        """:func:`det.engine.train.solver.build_optimizer`."""
        return _build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(cls, cfg: Any, optimizer: torch.optim.Optimizer) -> Any:
        """:func:`det.engine.train.solver.build_lr_scheduler`."""
        return _build_lr_scheduler(cfg, optimizer)

    @classmethod
    def build_train_loader(cls, cfg: Any) -> Any:
        """``build_detection_train_loader(cfg)``."""
        from det.data.build import build_detection_train_loader

        return build_detection_train_loader(cfg)

    @classmethod
    def build_test_loader(cls, cfg: Any, dataset_name: str) -> Any:
        """``build_detection_test_loader(cfg, dataset_name)``."""
        from det.data.build import build_detection_test_loader

        return build_detection_test_loader(cfg, dataset_name)

    @classmethod
    def build_evaluator(cls, cfg: Any, dataset_name: str, output_folder: str | None = None) -> Any:
        """The evaluator(s) for the dataset's ``evaluator_type`` metadata, as detectron2's
        ``tools/train_net.py`` picks them:

        - ``"coco"`` (or no type but a ``json_file``): COCOEvaluator
        - ``"sem_seg"``: SemSegEvaluator
        - ``"coco_panoptic_seg"``: COCOPanopticEvaluator, with SemSegEvaluator when the metadata
          has a ``sem_seg_root`` and COCOEvaluator when it has a ``json_file`` (the "separated"
          datasets), combined in DatasetEvaluators
        - ``"lvis"``: LVISEvaluator; ``"pascal_voc"``: PascalVOCDetectionEvaluator;
          ``"cityscapes_instance"`` / ``"cityscapes_sem_seg"``: the Cityscapes evaluators

        Results go to ``OUTPUT_DIR/inference`` unless ``output_folder`` is given."""
        from det.data.catalog import MetadataCatalog
        from det.evaluation import (
            CityscapesInstanceEvaluator,
            CityscapesSemSegEvaluator,
            COCOEvaluator,
            COCOPanopticEvaluator,
            DatasetEvaluators,
            LVISEvaluator,
            PascalVOCDetectionEvaluator,
            SemSegEvaluator,
        )

        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference")
        meta = MetadataCatalog.get(dataset_name)
        evaluator_type = meta.get("evaluator_type", None)
        if evaluator_type == "lvis":
            return LVISEvaluator(dataset_name, output_dir=output_folder)
        if evaluator_type == "pascal_voc":
            return PascalVOCDetectionEvaluator(dataset_name)
        if evaluator_type == "cityscapes_instance":
            return CityscapesInstanceEvaluator(dataset_name)
        if evaluator_type == "cityscapes_sem_seg":
            return CityscapesSemSegEvaluator(dataset_name)
        evaluators: list[Any] = []
        if evaluator_type == "sem_seg" or (evaluator_type == "coco_panoptic_seg" and meta.get("sem_seg_root", None)):
            evaluators.append(SemSegEvaluator(dataset_name, distributed=True, output_dir=output_folder))
        if evaluator_type == "coco" or (
            evaluator_type in (None, "coco_panoptic_seg") and meta.get("json_file", None)
        ):
            evaluators.append(COCOEvaluator(dataset_name, output_dir=output_folder))
        if evaluator_type == "coco_panoptic_seg":
            evaluators.append(COCOPanopticEvaluator(dataset_name, output_folder))
        if not evaluators:
            raise NotImplementedError(
                f"No evaluator for dataset {dataset_name!r} (evaluator_type={evaluator_type!r}); override "
                "DefaultTrainer.build_evaluator or pass evaluators to DefaultTrainer.test")
        return evaluators[0] if len(evaluators) == 1 else DatasetEvaluators(evaluators)

    @classmethod
    def test(cls, cfg: Any, model: torch.nn.Module, evaluators: Any = None) -> OrderedDict | dict:
        """Evaluate ``model`` on each of ``cfg.DATASETS.TEST``; returns ``{dataset: results}``
        (just the results when there is one dataset)."""
        from det.evaluation.evaluator import inference_on_dataset
        from det.evaluation.testing import print_csv_format

        if evaluators is not None:
            if not isinstance(evaluators, list | tuple):
                evaluators = [evaluators]
            if len(cfg.DATASETS.TEST) != len(evaluators):
                raise ValueError(
                    f"{len(cfg.DATASETS.TEST)} test datasets (DATASETS.TEST) but {len(evaluators)} evaluators")
        results: OrderedDict = OrderedDict()
        for idx, dataset_name in enumerate(cfg.DATASETS.TEST):
            data_loader = cls.build_test_loader(cfg, dataset_name)
            if evaluators is not None:
                evaluator = evaluators[idx]
            else:
                try:
                    evaluator = cls.build_evaluator(cfg, dataset_name)
                except NotImplementedError:
                    logger.warning("No evaluator found. Use `DefaultTrainer.test(evaluators=)`, or implement its "
                                   "`build_evaluator` method.")
                    results[dataset_name] = {}
                    continue
            results_i = inference_on_dataset(model, data_loader, evaluator, progress=sys.stderr.isatty())
            results[dataset_name] = results_i
            if comm.is_main_process() and results_i:
                if not isinstance(results_i, Mapping):
                    raise TypeError(f"Evaluator must return a dict on the main process. Got {results_i} instead.")
                logger.info("Evaluation results for %s in csv format:", dataset_name)
                print_csv_format(results_i)
        if len(results) == 1:
            return next(iter(results.values()))
        return results

    @classmethod
    def test_with_TTA(cls, cfg: Any, model: torch.nn.Module) -> OrderedDict:
        """Evaluate ``model`` with test-time augmentation (``cfg.TEST.AUG``: sizes, flip) on each of
        ``cfg.DATASETS.TEST``, writing to ``OUTPUT_DIR/inference_TTA``; result keys end in ``_TTA``
        (detectron2's ``tools/train_net.py``; ``det train`` calls it when ``TEST.AUG.ENABLED``)."""
        from det.engine.test_time_augmentation import GeneralizedRCNNWithTTA

        logger.info("Running inference with test-time augmentation ...")
        tta_model = GeneralizedRCNNWithTTA(cfg, model)
        output_folder = os.path.join(cfg.OUTPUT_DIR, "inference_TTA")
        evaluators = [cls.build_evaluator(cfg, name, output_folder=output_folder) for name in cfg.DATASETS.TEST]
        results = cls.test(cfg, tta_model, evaluators)
        return OrderedDict((f"{key}_TTA", value) for key, value in results.items())

    @staticmethod
    def auto_scale_workers(cfg: Any, num_workers: int) -> Any:
        """With ``SOLVER.REFERENCE_WORLD_SIZE`` set (> 0) and a different world size: scale
        batch size, LR, iterations and periods linearly (detectron2's rule). Else ``cfg``."""
        old_world_size = cfg.SOLVER.REFERENCE_WORLD_SIZE
        if old_world_size == 0 or old_world_size == num_workers:
            return cfg
        cfg = cfg.clone()
        frozen = cfg.is_frozen()
        cfg.defrost()
        if cfg.SOLVER.IMS_PER_BATCH % old_world_size != 0:
            raise ValueError("Invalid REFERENCE_WORLD_SIZE in config!")
        scale = num_workers / old_world_size
        bs = cfg.SOLVER.IMS_PER_BATCH = round(cfg.SOLVER.IMS_PER_BATCH * scale)
        lr = cfg.SOLVER.BASE_LR = cfg.SOLVER.BASE_LR * scale
        max_iter = cfg.SOLVER.MAX_ITER = round(cfg.SOLVER.MAX_ITER / scale)
        warmup_iter = cfg.SOLVER.WARMUP_ITERS = round(cfg.SOLVER.WARMUP_ITERS / scale)
        cfg.SOLVER.STEPS = tuple(round(s / scale) for s in cfg.SOLVER.STEPS)
        cfg.TEST.EVAL_PERIOD = round(cfg.TEST.EVAL_PERIOD / scale)
        cfg.SOLVER.CHECKPOINT_PERIOD = round(cfg.SOLVER.CHECKPOINT_PERIOD / scale)
        cfg.SOLVER.REFERENCE_WORLD_SIZE = num_workers
        logger.info("Auto-scaling the config to batch_size=%d, learning_rate=%s, max_iter=%d, warmup=%d.",
                    bs, lr, max_iter, warmup_iter)
        if frozen:
            cfg.freeze()
        return cfg
