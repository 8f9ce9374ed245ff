"""``det train``: train (or with ``--eval-only`` evaluate) a model from a config file, on one or
several processes (detectron2's ``tools/train_net.py``).

    det train --config-file configs/my.yaml SOLVER.MAX_ITER 1000 OUTPUT_DIR out/
    det train --config-file configs/my.yaml --resume              # continue from out/last_checkpoint
    det train --config-file configs/my.yaml --num-gpus 2          # 2 processes (gloo on CPU)
    det train --config-file mask_rcnn_R_50_FPN_1x.py train.max_iter=100   # a LazyConfig: key=value
    torchrun --nnodes 2 --nproc-per-node 4 ... -m det.core.cli train --config-file configs/my.yaml
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

from det.engine.commands._common import (
    CommandError,
    announce_config,
    report_user_error,
    setup_cfg,
    show_examples,
)
from det.engine.commands._lazy import is_lazy_config

__all__ = ["main", "register", "run"]


def main(args: argparse.Namespace) -> Any:
    """Train, or evaluate with ``args.eval_only``; returns the evaluation results (if any). With
    ``TEST.AUG.ENABLED`` the model is also evaluated with test-time augmentation (at the end of
    training), as detectron2's ``tools/train_net.py`` does."""
    from det.checkpoint import DetectionCheckpointer
    from det.engine.train import comm
    from det.engine.train.defaults import DefaultTrainer, default_setup

    if is_lazy_config(args.config_file):
        return lazy_main(args)
    cfg = setup_cfg(args.config_file, args.opts)
    default_setup(cfg, args)
    if args.eval_only:
        model = DefaultTrainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        results = DefaultTrainer.test(cfg, model)
        if cfg.TEST.AUG.ENABLED:
            results.update(DefaultTrainer.test_with_TTA(cfg, model))
        if comm.is_main_process():
            from det.evaluation.testing import verify_results

            verify_results(cfg, results)
        return results
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    if cfg.TEST.AUG.ENABLED:
        from det.engine.train import hooks

        trainer.register_hooks([hooks.EvalHook(0, lambda: trainer.test_with_TTA(cfg, trainer.model))])
    return trainer.train()


def lazy_main(args: argparse.Namespace) -> Any:
    """detectron2's ``tools/lazyconfig_train_net.py`` main: train, or evaluate ``train.init_checkpoint``
    with ``--eval-only``."""
    from det.checkpoint import DetectionCheckpointer
    from det.engine.commands._lazy import build_lazy_model, do_test, do_train, setup_lazy_cfg
    from det.engine.train.defaults import create_ddp_model, default_setup

    cfg = setup_lazy_cfg(args.config_file, args.opts)
    default_setup(cfg, args)
    if args.eval_only:
        model = create_ddp_model(build_lazy_model(cfg))
        DetectionCheckpointer(model).load(cfg.train.init_checkpoint)
        results = do_test(cfg, model)
        print(results)
        return results
    do_train(args, cfg)
    return None


def run(args: argparse.Namespace) -> int:
    from det.engine.train.launch import launch

    try:
        # checked here, in the launching process, so a bad config fails before any worker starts
        announce_config("train", args.config_file)
        if is_lazy_config(args.config_file):
            from det.engine.commands._lazy import setup_lazy_cfg

            setup_lazy_cfg(args.config_file, args.opts)
        else:
            setup_cfg(args.config_file, args.opts)
    except (CommandError, KeyError, ValueError) as e:
        return report_user_error("train", e)
    logging.getLogger("det").info("Command line arguments: %s", args)
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
    return 0


def register(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    from det.engine.train.defaults import default_argument_parser

    default_argument_parser(parser=parser)
    show_examples(parser, __doc__)
    return run
