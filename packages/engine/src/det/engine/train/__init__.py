"""Training (detectron2's ``engine`` + ``solver``): the loop, hooks, writers, optimizer and LR
schedules, ``DefaultTrainer``, distributed launch and ``comm`` helpers.

    from det.engine.train import DefaultTrainer, default_argument_parser, launch
    trainer = DefaultTrainer(cfg); trainer.resume_or_load(resume=False); trainer.train()

Names are imported on first use, so ``import det.engine.train`` does not import torch.
"""

from __future__ import annotations

from det.core.lazy import lazy_exports

_LAZY = {
    "HookBase": "det.engine.train.train_loop",
    "TrainerBase": "det.engine.train.train_loop",
    "SimpleTrainer": "det.engine.train.train_loop",
    "AMPTrainer": "det.engine.train.train_loop",
    "DefaultTrainer": "det.engine.train.defaults",
    "create_ddp_model": "det.engine.train.defaults",
    "default_argument_parser": "det.engine.train.defaults",
    "default_setup": "det.engine.train.defaults",
    "default_writers": "det.engine.train.defaults",
    "seed_all_rng": "det.engine.train.defaults",
    "launch": "det.engine.train.launch",
    "setup_logger": "det.engine.train.logger",
    "log_first_n": "det.engine.train.logger",
    "log_every_n": "det.engine.train.logger",
    "log_every_n_seconds": "det.engine.train.logger",
    "create_small_table": "det.engine.train.logger",
    "build_optimizer": "det.engine.train.solver",
    "build_lr_scheduler": "det.engine.train.solver",
    "get_default_optimizer_params": "det.engine.train.solver",
    "maybe_add_gradient_clipping": "det.engine.train.solver",
    "reduce_param_groups": "det.engine.train.solver",
    "LRMultiplier": "det.engine.train.lr_scheduler",
    "WarmupParamScheduler": "det.engine.train.lr_scheduler",
    "WarmupMultiStepLR": "det.engine.train.lr_scheduler",
    "WarmupCosineLR": "det.engine.train.lr_scheduler",
    "MultiStepParamScheduler": "det.engine.train.lr_scheduler",
    "CosineParamScheduler": "det.engine.train.lr_scheduler",
    "StepWithFixedGammaParamScheduler": "det.engine.train.lr_scheduler",
    "ParamScheduler": "det.engine.train.lr_scheduler",
    "set_float32_precision": "det.engine.train.defaults",
    "get_bn_modules": "det.engine.train.precise_bn",
    "update_bn_stats": "det.engine.train.precise_bn",
    "EventWriter": "det.engine.train.writers",
    "JSONWriter": "det.engine.train.writers",
    "CommonMetricPrinter": "det.engine.train.writers",
    "TensorboardXWriter": "det.engine.train.writers",
}
_SUBMODULES = (
    "comm", "hooks", "solver", "lr_scheduler", "writers", "defaults", "train_loop", "launch", "precise_bn", "logger",
)  # fmt: skip
_LAZY.update({name: f"det.engine.train.{name}" for name in _SUBMODULES})


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = sorted(_LAZY)
