"""``det train``: train (or with ``--eval-only`` evaluate) a model from a config file, on one or
several processes (detectron2's ``tools/train_net.py``), on your own COCO-format data or on the
datasets a config names.

    det train --config-file configs/COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml \\
        --train-json data/train.json --train-images data/images/train \\
        --val-json data/val.json --val-images data/images/val \\
        --weights model_final_f10217.pkl --output out/ SOLVER.MAX_ITER 2000
    det train --resume --output out/                    # continue out/ after an interruption
    det train --config-file configs/my.yaml SOLVER.MAX_ITER 1000 OUTPUT_DIR out/
    det train --config-file configs/my.yaml --num-gpus 2          # 2 processes (gloo on CPU)
    det train --config-file mask_rcnn_R_50_FPN_1x.py train.max_iter=100   # a LazyConfig: key=value
    torchrun --nnodes 2 --nproc-per-node 4 ... -m det.core.cli train --config-file configs/my.yaml

With --train-json (repeatable: one --train-images folder for all, or one per json), the command
checks the data (``det data check``) and the weights before building anything, registers the
datasets, sets NUM_CLASSES (and the keypoint count) from the json, fine-tunes from --weights
(class-dependent layers of a checkpoint trained on other classes start afresh), evaluates on the
--val-json data at the end (and every TEST.EVAL_PERIOD), and leaves in --output everything the
other commands need: config.yaml, datasets.json, model_final.pth, metrics.json,
training_curves.png, inference/results.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from det.engine.commands._common import (
    CONFIG_FILE,
    DATASETS_FILE,
    USER_ERRORS,
    CommandError,
    announce_config,
    check_weights,
    load_config,
    register_datasets_file,
    report_user_error,
    require_datasets,
    run_folder_file,
    setup_cfg,
    show_examples,
    split_opts,
    write_datasets_file,
)
from det.engine.commands._lazy import is_lazy_config

__all__ = ["TrainPlan", "main", "plan_training", "register", "run"]

logger = logging.getLogger("det.engine.commands.train")

_OWN_DATA_FLAGS = ("train_json", "train_images", "val_json", "val_images")
_DEFAULT_OKS_SIGMA = 0.05  # for keypoint sets other than COCO's 17, unless TEST.KEYPOINT_OKS_SIGMAS says


@dataclass
class TrainPlan:
    """What ``det train`` will do, decided (and every input checked) before anything is built
    or written: the final config, the datasets file to write and register, whether to resume,
    and the lines to log once logging is set up."""

    cfg: Any
    datasets_file: str | None = None
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    resume: bool = False
    notes: list[str] = field(default_factory=list)


def _uses_own_data(args: argparse.Namespace) -> bool:
    return any(getattr(args, k, None) for k in _OWN_DATA_FLAGS)


def _pair_folders(jsons: Sequence[str], folders: Sequence[str], split: str) -> list[tuple[str, str]]:
    if not jsons:
        if folders:
            raise CommandError(f"--{split}-images needs --{split}-json (the COCO json that lists the images)")
        return []
    if not folders:
        raise CommandError(f"--{split}-json needs --{split}-images (the folder its file_name entries are in)")
    if len(folders) not in (1, len(jsons)):
        raise CommandError(f"give one --{split}-images folder, or one per --{split}-json ({len(jsons)}); "
                           f"got {len(folders)}")
    return [(j, folders[0] if len(folders) == 1 else folders[i]) for i, j in enumerate(jsons)]


def _dataset_names(pairs: list[tuple[str, str, str]]) -> list[str]:
    """A name per (split, json, folder): the json's stem, made unique."""
    names: list[str] = []
    for _split, json_file, _ in pairs:
        name, k = Path(json_file).stem, 2
        base = name
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


def _flip_map(names: Sequence[str]) -> list[list[str]]:
    """Left/right keypoint pairs by name ("left_eye" <-> "right_eye"), for horizontal flips."""
    pairs = []
    for name in names:
        for left, right in (("left", "right"), ("Left", "Right"), ("LEFT", "RIGHT")):
            if left in name and name.replace(left, right) in names:
                pairs.append([name, name.replace(left, right)])
                break
    return pairs


def _num_classes_keys(cfg: Any) -> list[str]:
    """Every ``MODEL.<X>.NUM_CLASSES`` of thing classes (ROI_HEADS, RETINANET, a plugin's head);
    SEM_SEG_HEAD counts stuff classes, not the json's categories."""
    return [f"MODEL.{key}.NUM_CLASSES" for key, node in cfg.MODEL.items()
            if isinstance(node, dict) and "NUM_CLASSES" in node and key != "SEM_SEG_HEAD"]


def _check_data(pairs: list[tuple[str, str, str]], plan: TrainPlan) -> list[Any]:
    """``det data check`` on every (split, json, folder); refusals are a CommandError naming the
    first fault, the rest become log lines."""
    from det.data.check import DataCheckError, check_coco_json

    reports = []
    for split, json_file, image_root in pairs:
        try:
            report = check_coco_json(json_file, image_root, max_examples=1)
        except DataCheckError as e:
            raise CommandError(f"--{split}-json: {e}") from None
        if report.refused:
            first = report.refused[0]
            more = f" (and {len(report.refused) - 1} more kinds of fault)" if len(report.refused) > 1 else ""
            raise CommandError(
                f"{json_file}: {first.counted()}, e.g. {first.examples[0]}{more}; fix the data "
                f"before training (`det data check {json_file} --images {image_root}` lists every fault)")
        if split == "train" and report.num_images == 0:
            raise CommandError(f"{json_file} lists no images to train on")
        plan.notes.append(f"data check: {report.summary()}: {report.verdict()}")
        reports.append(report)
    return reports


def _plan_own_data(args: argparse.Namespace, opts: list[str], plan: TrainPlan) -> None:
    """--train-json/--val-json: datasets, class counts and output folder from the command line."""
    if not args.config_file:
        raise CommandError("--train-json needs --config-file (a model-zoo YAML such as "
                           "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml)")
    if not args.output:
        raise CommandError("--train-json needs --output (the folder for checkpoints, config.yaml and results)")
    train = _pair_folders(args.train_json or [], args.train_images or [], "train")
    val = _pair_folders(args.val_json or [], args.val_images or [], "val")
    if not train:
        raise CommandError("--val-json needs --train-json (the data to train on)")
    cfg = load_config(args.config_file)
    if cfg.MODEL.META_ARCHITECTURE in ("SemanticSegmentor", "PanopticFPN"):
        raise CommandError(f"{args.config_file} is a {cfg.MODEL.META_ARCHITECTURE} config; --train-json takes COCO "
                           "instance/keypoint data: choose a detection, instance-segmentation or keypoint config")
    pairs = [("train", j, d) for j, d in train] + [("val", j, d) for j, d in val]
    reports = _check_data(pairs, plan)
    first = reports[0]
    for (_, json_file, _), report in zip(pairs[1:], reports[1:]):
        if (report.classes, report.category_ids) != (first.classes, first.category_ids):
            raise CommandError(f"{json_file} has other categories than {pairs[0][1]} "
                               f"({report.classes} vs {first.classes}); every json of a run needs the same ones")
    names = _dataset_names(pairs)
    metadata: dict[str, Any] = {"thing_classes": list(first.classes)}
    if first.keypoint_names:
        metadata["keypoint_names"] = list(first.keypoint_names)
        metadata["keypoint_flip_map"] = _flip_map(first.keypoint_names)
    for name, (_, json_file, image_root) in zip(names, pairs):
        plan.datasets[name] = {"json_file": os.path.abspath(json_file), "image_root": os.path.abspath(image_root),
                               "metadata": metadata}

    cfg.DATASETS.TRAIN = tuple(names[: len(train)])
    cfg.DATASETS.TEST = tuple(names[len(train):])
    keys = _num_classes_keys(cfg)
    cfg.merge_from_list([x for key in keys for x in (key, len(first.classes))])
    set_line = ", ".join(f"{k}={len(first.classes)}" for k in keys)
    classes = ", ".join(first.classes)
    line = f"from {pairs[0][1]}: {len(first.classes)} classes ({classes}) -> {set_line}"
    if cfg.MODEL.KEYPOINT_ON:
        num_kp = len(first.keypoint_names)
        if not num_kp:
            raise CommandError(f"{args.config_file} trains keypoints (MODEL.KEYPOINT_ON) but {pairs[0][1]} has no "
                               "category with 'keypoints'; choose a detection or instance-segmentation config")
        cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS = num_kp
        line += f"; {num_kp} keypoints -> MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS={num_kp}"
        if num_kp != 17 and len(cfg.TEST.KEYPOINT_OKS_SIGMAS) != num_kp:
            cfg.TEST.KEYPOINT_OKS_SIGMAS = [_DEFAULT_OKS_SIGMA] * num_kp
            line += f", TEST.KEYPOINT_OKS_SIGMAS={_DEFAULT_OKS_SIGMA} each (set it for a meaningful keypoint AP)"
    plan.notes.append(line)
    if cfg.MODEL.MASK_ON:
        missing = sum(r.num_without_segmentation for r in reports[: len(train)])
        if missing:
            raise CommandError(f"{args.config_file} trains masks (MODEL.MASK_ON) but {missing} annotations of the "
                               "training data have no 'segmentation'; choose a box-only config such as "
                               "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml")
        rle = sum(r.num_rle_masks for r in reports)
        if rle and cfg.INPUT.MASK_FORMAT != "bitmask":
            cfg.INPUT.MASK_FORMAT = "bitmask"
            plan.notes.append(f"INPUT.MASK_FORMAT=bitmask: the data has {rle} RLE masks, which polygons cannot hold")
    if args.weights is not None:
        cfg.MODEL.WEIGHTS = args.weights
    cfg.OUTPUT_DIR = os.path.abspath(args.output)
    cfg.merge_from_list(opts)
    plan.cfg = cfg
    plan.datasets_file = os.path.join(cfg.OUTPUT_DIR, DATASETS_FILE)


def plan_training(args: argparse.Namespace) -> TrainPlan:
    """Check every input of ``det train`` and decide what it does; builds and writes nothing.
    Raises :class:`CommandError` (or a ValueError/KeyError/OSError naming the input) on a
    mistake: a missing or unreadable config/weights/data, a dataset with refused faults, a
    dataset name that is not registered, an output folder holding another run."""
    opts = split_opts(args.opts)
    plan = TrainPlan(cfg=None, resume=bool(args.resume))
    if args.resume and args.output and not args.config_file:
        if _uses_own_data(args):
            raise CommandError("with --resume --output OUT the datasets come from OUT/datasets.json; "
                               "drop --train-json/--val-json (or give --config-file to start a new run)")
        config = run_folder_file(args.output, CONFIG_FILE)
        cfg = setup_cfg(str(config), opts, weights=args.weights)
        cfg.defrost()
        cfg.OUTPUT_DIR = os.path.abspath(args.output)
        plan.cfg = cfg
        plan.datasets_file = str(config.parent / DATASETS_FILE)
    elif _uses_own_data(args):
        _plan_own_data(args, opts, plan)
    else:
        if not args.config_file:
            raise CommandError("--config-file is required (or --resume --output OUT to continue a run)")
        cfg = setup_cfg(args.config_file, opts, weights=args.weights)
        cfg.defrost()
        if args.output:
            cfg.OUTPUT_DIR = os.path.abspath(args.output)
        plan.cfg = cfg
    cfg = plan.cfg
    if not plan.datasets:  # names from the config: registered by a datasets.json or in Python
        if not args.eval_only:
            require_datasets(cfg.DATASETS.TRAIN, "DATASETS.TRAIN")
        if len(cfg.DATASETS.TEST) or args.eval_only:
            require_datasets(cfg.DATASETS.TEST, "DATASETS.TEST")

    output = Path(cfg.OUTPUT_DIR) if cfg.OUTPUT_DIR else None
    if output is not None and output.exists() and not output.is_dir():
        raise CommandError(f"output {os.fspath(output)!r} is a file; give a folder")
    last_file = output / "last_checkpoint" if output is not None else None
    has_run = last_file is not None and last_file.is_file()
    if plan.datasets and has_run and not args.resume and not args.eval_only:
        raise CommandError(f"{output} holds a training run already (last_checkpoint): add --resume to "
                           "continue it, or choose another --output")
    resuming = args.resume and has_run and not args.eval_only
    if resuming:
        assert last_file is not None
        last = last_file.read_text().strip()
        if not (last_file.parent / last).is_file():
            raise CommandError(f"{last_file} names {last}, which is missing; delete last_checkpoint "
                               "to start from MODEL.WEIGHTS, or restore the file")
    else:
        check_weights(cfg.MODEL.WEIGHTS, "--weights" if args.weights is not None else "MODEL.WEIGHTS")
    if not cfg.MODEL.WEIGHTS and not resuming:
        plan.notes.append("MODEL.WEIGHTS is empty: training from randomly initialised weights")
    if cfg.SEED < 0 and not args.eval_only:
        cfg.SEED, origin = _seed_for(output, resuming)
        plan.notes.append(f"SEED -1: using {cfg.SEED} ({origin}), saved in config.yaml so that --resume replays "
                          "the same data order")
    cfg.freeze()
    return plan


def _seed_for(output: Path | None, resuming: bool) -> tuple[int, str]:
    """The interrupted run's seed when resuming (from its config.yaml), else a new random one."""
    saved = output / CONFIG_FILE if output is not None else None
    if resuming and saved is not None and saved.is_file():
        import yaml

        try:
            seed = int((yaml.safe_load(saved.read_text()) or {}).get("SEED", -1))
        except (yaml.YAMLError, TypeError, ValueError, AttributeError):
            seed = -1
        if seed >= 0:
            return seed, f"the interrupted run's, from {saved}"
    return int.from_bytes(os.urandom(4), "little") % 2**31, "drawn now"


def _trim_metrics(path: Path, start_iter: int) -> None:
    """Drop ``metrics.json`` records of iterations >= ``start_iter``: a resumed run redoes them."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by the interruption
        if isinstance(record, dict) and record.get("iteration", -1) < start_iter:
            kept.append(line)
    # in place, not by a rename: the trainer's JSONWriter holds the file open (appending)
    with open(path, "r+") as f:
        f.write("".join(k + "\n" for k in kept))
        f.truncate()


def main(args: argparse.Namespace, plan: TrainPlan | None = None) -> Any:
    """Train, or evaluate with ``args.eval_only``; returns the evaluation results (if any). With
    ``TEST.AUG.ENABLED`` the model is also evaluated with test-time augmentation (at the end of
    training), as detectron2's ``tools/train_net.py`` does. ``plan`` (from
    :func:`plan_training`, made when missing) carries the checked config to every process."""
    from det.checkpoint import DetectionCheckpointer
    from det.engine.train import comm
    from det.engine.train.defaults import DefaultTrainer, default_setup

    if args.config_file and is_lazy_config(args.config_file):
        return lazy_main(args)
    if plan is None:
        plan = plan_training(args)
    if plan.datasets_file:
        register_datasets_file(plan.datasets_file)  # in a process started by launch, too
    cfg = plan.cfg
    default_setup(cfg, args)
    for note in plan.notes:
        logger.info("%s", note)
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
    trainer.resume_or_load(resume=plan.resume)
    if cfg.TEST.AUG.ENABLED:
        from det.engine.train import hooks

        trainer.register_hooks([hooks.EvalHook(0, lambda: trainer.test_with_TTA(cfg, trainer.model))])
    output = Path(cfg.OUTPUT_DIR) if cfg.OUTPUT_DIR else None
    if output is not None and comm.is_main_process():
        _trim_metrics(output / "metrics.json", trainer.start_iter)
    results = trainer.train()
    if output is not None and comm.is_main_process():
        _write_run_summary(output, results)
    return results


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


def _write_run_summary(output: Path, results: Any) -> None:
    """The final evaluation in ``inference/results.json`` and the curves in ``training_curves.png``."""
    from det.engine.demo import plot_training_curves

    if results:
        (output / "inference").mkdir(parents=True, exist_ok=True)
        (output / "inference" / "results.json").write_text(json.dumps(results, indent=2, default=float))
    if (output / "metrics.json").is_file():
        plot_training_curves(output / "metrics.json", output / "training_curves.png")


def run(args: argparse.Namespace) -> int:
    from det.engine.train.launch import launch

    plan: TrainPlan | None = None
    try:
        # in the launching process, before any worker starts, anything is built or written
        if args.config_file and is_lazy_config(args.config_file):
            announce_config("train", args.config_file)
            if _uses_own_data(args) or args.weights or args.output:
                raise CommandError("--train-json/--val-json/--weights/--output take a YAML config; with a "
                                   "LazyConfig set dataloader.*.dataset.names, train.init_checkpoint and "
                                   "train.output_dir as key=value overrides")
            from det.engine.commands._lazy import setup_lazy_cfg

            setup_lazy_cfg(args.config_file, args.opts)
        else:
            announce_config("train", args.config_file or os.path.join(args.output or "", CONFIG_FILE))
            plan = plan_training(args)
    except USER_ERRORS as e:
        return report_user_error("train", e)
    if plan is not None and plan.datasets_file and plan.datasets:
        os.makedirs(plan.cfg.OUTPUT_DIR, exist_ok=True)
        write_datasets_file(plan.datasets_file, plan.datasets)
    logging.getLogger("det").info("Command line arguments: %s", args)
    try:
        launch(
            main,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args, plan),
        )
    except USER_ERRORS as e:  # e.g. a file that vanished since the check; the traceback is in log.txt
        return report_user_error("train", e)
    return 0


def register(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    from det.engine.train.defaults import default_argument_parser

    own = parser.add_argument_group("your own COCO-format data (each flag repeatable)")
    own.add_argument("--train-json", action="append", metavar="JSON", help="COCO json of the training data")
    own.add_argument("--train-images", action="append", metavar="DIR",
                     help="folder of the training images (one for all --train-json, or one per json)")
    own.add_argument("--val-json", action="append", metavar="JSON", help="COCO json of the validation data")
    own.add_argument("--val-images", action="append", metavar="DIR", help="folder of the validation images")
    parser.add_argument("--weights", default=None, metavar="FILE",
                        help="checkpoint to start from (MODEL.WEIGHTS): .pth, model-zoo .pkl or URL")
    parser.add_argument("--output", default=None, metavar="DIR",
                        help="output folder (OUTPUT_DIR); with --resume alone: the run to continue")
    default_argument_parser(parser=parser)
    show_examples(parser, __doc__)
    return run
