"""Training (detectron2's ``engine`` + ``solver``): the loop, hooks, writers, optimizer and LR
schedules, ``DefaultTrainer``, distributed launch and ``comm`` helpers.

    from det.engine.train import DefaultTrainer, default_argument_parser, launch
    trainer = DefaultTrainer(cfg); trainer.resume_or_load(resume=False); trainer.train()

Names are imported on first use, so ``import det.engine.train`` does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.core.lazy import exported, lazy_exports

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    # the submodules (detectron2's engine.hooks, utils.comm, ...): `launch` is the module here
    from det.engine.train import comm as comm
    from det.engine.train import defaults as defaults
    from det.engine.train import hooks as hooks
    from det.engine.train import launch as launch
    from det.engine.train import logger as logger
    from det.engine.train import lr_scheduler as lr_scheduler
    from det.engine.train import precise_bn as precise_bn
    from det.engine.train import solver as solver
    from det.engine.train import train_loop as train_loop
    from det.engine.train import writers as writers
    from det.engine.train.defaults import DefaultTrainer as DefaultTrainer
    from det.engine.train.defaults import create_ddp_model as create_ddp_model
    from det.engine.train.defaults import default_argument_parser as default_argument_parser
    from det.engine.train.defaults import default_setup as default_setup
    from det.engine.train.defaults import default_writers as default_writers
    from det.engine.train.defaults import seed_all_rng as seed_all_rng
    from det.engine.train.defaults import set_float32_precision as set_float32_precision
    from det.engine.train.logger import create_small_table as create_small_table
    from det.engine.train.logger import log_every_n as log_every_n
    from det.engine.train.logger import log_every_n_seconds as log_every_n_seconds
    from det.engine.train.logger import log_first_n as log_first_n
    from det.engine.train.logger import setup_logger as setup_logger
    from det.engine.train.lr_scheduler import CosineParamScheduler as CosineParamScheduler
    from det.engine.train.lr_scheduler import LRMultiplier as LRMultiplier
    from det.engine.train.lr_scheduler import MultiStepParamScheduler as MultiStepParamScheduler
    from det.engine.train.lr_scheduler import ParamScheduler as ParamScheduler
    from det.engine.train.lr_scheduler import (
        StepWithFixedGammaParamScheduler as StepWithFixedGammaParamScheduler,
    )
    from det.engine.train.lr_scheduler import WarmupCosineLR as WarmupCosineLR
    from det.engine.train.lr_scheduler import WarmupMultiStepLR as WarmupMultiStepLR
    from det.engine.train.lr_scheduler import WarmupParamScheduler as WarmupParamScheduler
    from det.engine.train.precise_bn import get_bn_modules as get_bn_modules
    from det.engine.train.precise_bn import update_bn_stats as update_bn_stats
    from det.engine.train.solver import build_lr_scheduler as build_lr_scheduler
    from det.engine.train.solver import build_optimizer as build_optimizer
    from det.engine.train.solver import get_default_optimizer_params as get_default_optimizer_params
    from det.engine.train.solver import maybe_add_gradient_clipping as maybe_add_gradient_clipping
    from det.engine.train.solver import reduce_param_groups as reduce_param_groups
    from det.engine.train.train_loop import AMPTrainer as AMPTrainer
    from det.engine.train.train_loop import HookBase as HookBase
    from det.engine.train.train_loop import SimpleTrainer as SimpleTrainer
    from det.engine.train.train_loop import TrainerBase as TrainerBase
    from det.engine.train.writers import CommonMetricPrinter as CommonMetricPrinter
    from det.engine.train.writers import EventWriter as EventWriter
    from det.engine.train.writers import JSONWriter as JSONWriter
    from det.engine.train.writers import TensorboardXWriter as TensorboardXWriter


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above

__all__ = exported(__name__)
