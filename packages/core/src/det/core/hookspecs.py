"""The hooks a det plugin can implement: the plugin author's manual.

A plugin is a module named by an entry point in the ``det`` group::

    [project.entry-points.det]
    my_backbones = "my_backbones.det_plugin"

The module must stay cheap to import (no torch, no heavy modules): ``det plugins`` imports it
just to read its declarations. It declares the plugin API it was written for and implements any
of the hooks below with :data:`det.core.hookimpl`::

    from det.core.hookspecs import hookimpl

    DET_PLUGIN_API_VERSION = 1

    @hookimpl
    def det_components():
        return [("BACKBONE", "build_toy_backbone", "my_backbones.toy:build_toy_backbone")]

Every hook returns declarations, never objects: a component is a ``"module:attribute"`` string that
is imported only when something is built from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pluggy

PROJECT_NAME = "det"
"""Entry-point group and pluggy project name."""

PLUGIN_API_VERSION = 1
"""Bumped when a hook changes incompatibly. A plugin module declares the version it was written for
as ``DET_PLUGIN_API_VERSION``; a plugin declaring another one is refused (and reported by name)."""

HOOK_NAMES = ("det_components", "det_ops", "det_checkpoint_converters", "det_extend_config", "det_cli_commands",
              "det_detectron2_names")
"""Every hook of this module, in the order the plugin manager collects them."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

ComponentDecl = tuple[str, str, str]
"""(kind, name, "module:attribute"), e.g. ("ROI_HEADS", "StandardROIHeads", "det.heads.roi.roi_heads:StandardROIHeads")."""

OpDecl = tuple[str, str, str]
"""(op name, device type, "module:attribute"), e.g. ("nms", "cuda", "det.ops_cuda.nms_kernels:nms")."""

ConverterDecl = tuple[str, str]
"""(converter name, "module:attribute") of a checkpoint converter."""

CommandDecl = tuple[str, str, str]
"""(command name, one-line help, "module:attribute") of a ``det`` subcommand."""

Detectron2NameDecl = tuple[str, str, str]
"""(detectron2 module path, name, "module:attribute") that det-compat-detectron2 serves, e.g.
("detectron2.modeling", "ViT", "det.backbones.vit:ViT"); name ``"*"`` with ``"module:*"`` serves
every public name of that module."""


@hookspec
def det_components() -> Iterable[ComponentDecl]:
    """Declare the components this plugin provides.

    Called once, when the registry is first used. Return (kind, name, "module:attribute") triples.
    Kinds follow detectron2's registries: META_ARCH, BACKBONE, PROPOSAL_GENERATOR, RPN_HEAD,
    ANCHOR_GENERATOR, ROI_HEADS, ROI_BOX_HEAD, ROI_MASK_HEAD, ROI_KEYPOINT_HEAD, SEM_SEG_HEADS.
    The attribute is what the matching ``build_*`` calls with ``(cfg, input_shape)`` (or ``cfg``
    for META_ARCH): a class with ``from_config`` or a function. Other kinds are free: det-engine's
    ``build_lr_scheduler`` calls an ``LR_SCHEDULER`` component named by
    ``SOLVER.LR_SCHEDULER_NAME`` with ``(cfg, optimizer)``.
    """
    raise NotImplementedError


@hookspec
def det_ops() -> Iterable[OpDecl]:
    """Declare implementations of det's dispatched ops for a device type.

    Called once, when an op is first dispatched. Return (op name, device type, "module:attribute").
    The op names are those of :mod:`det.core.layers.ops` (nms, batched_nms, roi_align, ...). The
    implementation must accept the reference implementation's arguments and give its results.
    """
    raise NotImplementedError


@hookspec
def det_checkpoint_converters() -> Iterable[ConverterDecl]:
    """Declare checkpoint converters: (name, ``"module:attribute"``) of a callable
    ``(checkpoint: dict[str, Any]) -> dict[str, Any] | None`` that returns the checkpoint with det
    names when it recognises the file, else None. Tried in order when a checkpoint is loaded.

    det-core hands them to ``det.checkpoint.register_converter`` on the first component lookup,
    wrapped so that the module is imported only when the converter first runs.
    """
    raise NotImplementedError


@hookspec
def det_extend_config(cfg: Any) -> None:
    """Add config keys for this plugin's components to ``cfg`` (a yacs CfgNode, not frozen).

    Called by :func:`det.core.get_cfg` after the standard schema is built and before any user
    YAML is merged, so that YAML files can set the new keys. Only add keys; never change a
    standard default.
    """


@hookspec
def det_cli_commands() -> Iterable[CommandDecl]:
    """Declare ``det`` subcommands: (name, one-line help, "module:attribute").

    The attribute is a function ``register(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]``:
    it adds the command's arguments and returns the function that runs it. It is imported only
    when that command runs (or its ``--help`` is shown).
    """
    raise NotImplementedError


@hookspec
def det_detectron2_names() -> Iterable[Detectron2NameDecl]:
    """Declare names of detectron2's import paths that this plugin's objects stand for, for the
    ``detectron2`` namespace of det-compat-detectron2 (a plugin does not need that distribution to
    declare them): (detectron2 module path, name, "module:attribute").

    Called once, the first time the namespace is asked for a module path or a name its own table
    lacks. A path that does not exist yet (``"detectron2.modeling.backbone.vit"``) is created.
    Name ``"*"`` with target ``"module:*"`` serves every public name of ``module`` under that path::

        ("detectron2.modeling", "ViT", "det.backbones.vit:ViT"),
        ("detectron2.modeling.backbone.vit", "*", "det.backbones.vit.vit:*"),
    """
    raise NotImplementedError


__all__ = [
    "HOOK_NAMES",
    "PLUGIN_API_VERSION",
    "PROJECT_NAME",
    "CommandDecl",
    "ComponentDecl",
    "ConverterDecl",
    "Detectron2NameDecl",
    "OpDecl",
    "det_checkpoint_converters",
    "det_cli_commands",
    "det_components",
    "det_detectron2_names",
    "det_extend_config",
    "det_ops",
    "hookimpl",
    "hookspec",
]
