"""Checkpointer and PeriodicCheckpointer: fvcore's checkpointing contract, loaded safely and saved atomically.

Names, arguments and the on-disk layout are fvcore's (``fvcore.common.checkpoint``): a checkpoint
is ``{"model": state_dict, <checkpointable>: state, **extra}`` saved as ``save_dir/<name>.pth``,
and ``save_dir/last_checkpoint`` holds the basename of the latest one.
"""

from __future__ import annotations

import copy
import logging
import os
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

from det.checkpoint.errors import CheckpointLoadError, IncompatibleCheckpointError
from det.checkpoint.file_io import get_local_path, is_url
from det.checkpoint.serialization import (
    atomic_write,
    load_safetensors_file,
    load_torch_file,
    save_safetensors_file,
    save_torch_file,
)

__all__ = [
    "Checkpointer",
    "PeriodicCheckpointer",
    "class_dependent_parameter_names",
    "get_missing_parameters_message",
    "get_unexpected_parameters_message",
]

_SAVE_FORMATS = {"pth": ".pth", "safetensors": ".safetensors"}


class _IncompatibleKeys(NamedTuple):
    """Like ``torch.nn.Module.load_state_dict``'s result, plus (key, checkpoint shape, model shape)."""

    missing_keys: list[str]
    unexpected_keys: list[str]
    incorrect_shapes: list[tuple[str, tuple[int, ...], tuple[int, ...]]]


class Checkpointer:
    """Saves and loads a model together with other checkpointable objects (optimizer, scheduler).

    Invariant: a load either fully succeeds or leaves the model as it was (the file is read,
    checked and, in strict mode, compared with the model before any parameter is written), and a
    save never leaves a partial ``.pth`` or ``last_checkpoint`` behind. Usage::

        checkpointer = Checkpointer(model, "output", optimizer=optimizer)
        checkpointer.save("model_0000999", iteration=999)    # output/model_0000999.pth
        extra = checkpointer.resume_or_load("weights.pth", resume=True)  # {"iteration": 999}

    Args:
        model: the module; a ``DistributedDataParallel``/``DataParallel`` wrapper is unwrapped
            (``model.module``) so checkpoints carry no ``module.`` prefix.
        save_dir: folder for :meth:`save` and ``last_checkpoint``; "" disables saving.
        save_to_disk: False disables saving (e.g. on non-main workers).
        strict: default for :meth:`load`'s ``strict``: raise
            :class:`~det.checkpoint.errors.IncompatibleCheckpointError` (model untouched) on any
            missing, unexpected or wrongly shaped key instead of loading what fits and logging.
        save_format: ``"pth"`` (torch.save, the default) or ``"safetensors"`` (model tensors plus
            JSON-serialisable extras; needs ``pip install 'det-checkpoint[safetensors]'``).
        checkpointables: objects with ``state_dict()``/``load_state_dict()`` saved next to the model.
    """

    def __init__(
        self,
        model: nn.Module,
        save_dir: str = "",
        *,
        save_to_disk: bool = True,
        strict: bool = False,
        save_format: str = "pth",
        **checkpointables: Any,
    ) -> None:
        if isinstance(model, DistributedDataParallel | DataParallel):
            model = model.module
        if not isinstance(model, nn.Module):
            raise TypeError(f"Checkpointer needs a torch.nn.Module as model, got {type(model).__name__}")
        for key, obj in checkpointables.items():
            if not (callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "load_state_dict", None))):
                raise TypeError(
                    f"checkpointable {key!r} ({type(obj).__name__}) must have state_dict() and "
                    "load_state_dict() methods")
        if save_format not in _SAVE_FORMATS:
            raise ValueError(f"save_format must be one of {sorted(_SAVE_FORMATS)}, got {save_format!r}")
        self.model = model
        self.checkpointables: dict[str, Any] = copy.copy(checkpointables)
        self.logger: logging.Logger = logging.getLogger(__name__)
        self.save_dir = os.fspath(save_dir) if save_dir else ""
        self.save_to_disk = save_to_disk
        self.strict = strict
        self.save_format = save_format
        self._strict_load: bool | None = None
        self._assign_load = False
        self._assigned = False
        self._skipped_shapes: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
        self.last_incompatible_keys: _IncompatibleKeys | None = None
        """What the last :meth:`load` left out (missing keys after dropping those shared with a
        loaded name, unexpected keys, wrong shapes); None before any load, after ``load("")``, or
        when an fvcore-style ``_load_model`` override returned nothing."""
        self.last_load_assigned = False
        """Whether the last :meth:`load` *assigned* the checkpoint's tensors to the model
        (``assign=True`` and it was safe, see :meth:`load`) rather than copying them."""

    # --- saving -------------------------------------------------------------------------------

    def save(self, name: str, **kwargs: Any) -> None:
        """Write the model, the checkpointables and ``kwargs`` to ``save_dir/<name>.pth`` (or
        ``.safetensors``) atomically, then point ``last_checkpoint`` at it."""
        if not self.save_dir or not self.save_to_disk:
            return
        basename = f"{name}{_SAVE_FORMATS[self.save_format]}"
        if not name or os.path.basename(basename) != basename or name in (".", ".."):
            raise ValueError(f"checkpoint name must be a plain file name without folders, got {name!r}")
        data: dict[str, Any] = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)

        os.makedirs(self.save_dir, exist_ok=True)
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info("Saving checkpoint to %s", save_file)
        if self.save_format == "safetensors":
            save_safetensors_file(data, save_file)
        else:
            save_torch_file(data, save_file)
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        """Atomically write ``last_filename_basename`` into ``save_dir/last_checkpoint``."""
        save_file = os.path.join(self.save_dir, "last_checkpoint")
        with atomic_write(save_file, "w") as f:
            f.write(last_filename_basename)

    # --- finding ------------------------------------------------------------------------------

    def has_checkpoint(self) -> bool:
        """Whether ``save_dir`` has a ``last_checkpoint`` file."""
        return bool(self.save_dir) and os.path.exists(os.path.join(self.save_dir, "last_checkpoint"))

    def get_checkpoint_file(self) -> str:
        """The latest checkpoint file in ``save_dir`` ("" when there is none)."""
        save_file = os.path.join(self.save_dir, "last_checkpoint")
        try:
            with open(save_file) as f:
                last_saved = f.read().strip()
        except OSError:
            # Possibly deleted by another process between has_checkpoint() and now.
            return ""
        return os.path.join(self.save_dir, last_saved) if last_saved else ""

    def get_all_checkpoint_files(self) -> list[str]:
        """All checkpoint files (``.pth`` and ``.safetensors``) in ``save_dir``."""
        if not self.save_dir or not os.path.isdir(self.save_dir):
            return []
        return [
            os.path.join(self.save_dir, file)
            for file in sorted(os.listdir(self.save_dir))
            if file.endswith(tuple(_SAVE_FORMATS.values())) and os.path.isfile(os.path.join(self.save_dir, file))
        ]

    # --- loading ------------------------------------------------------------------------------

    def resume_or_load(self, path: str, *, resume: bool = True) -> dict[str, Any]:
        """With ``resume`` and a ``last_checkpoint`` in ``save_dir``: load that file with every
        checkpointable (continue training). Otherwise load the model alone from ``path``."""
        if resume and self.has_checkpoint():
            path = self.get_checkpoint_file()
            return self.load(path)
        return self.load(path, checkpointables=[])

    def load(self, path: str, checkpointables: Sequence[str] | None = None, *,
             strict: bool | None = None, assign: bool = False) -> dict[str, Any]:
        """Load ``path`` (a file, ``detectron2://...`` or an http(s) URL) into the model and the
        named checkpointables (all of them when None).

        ``strict`` (default: the constructor's) raises
        :class:`~det.checkpoint.errors.IncompatibleCheckpointError` instead of loading when keys
        are missing, unexpected or of the wrong shape. Returns the checkpoint's remaining entries
        (e.g. what :meth:`save` got as ``**kwargs``); ``{}`` when ``path`` is empty.

        ``assign=True`` makes the model's parameters and buffers *be* the loaded tensors
        (``load_state_dict(assign=True)``, no second copy of the weights; ``requires_grad`` of
        each parameter is kept) instead of copying into the existing ones. Only for a model whose
        parameter objects nobody holds yet (e.g. just built, before an optimizer or a DDP wrapper
        takes them: those would keep the replaced tensors). Each loaded tensor is first converted
        to the model tensor's dtype, device and strides, and cloned when it shares memory with
        another entry; when the model has lazy or shared (tied) parameters the load copies as
        usual. :attr:`last_load_assigned` says which way it went.
        """
        self.last_incompatible_keys = None
        self.last_load_assigned = False
        if not path:
            self.logger.info("No checkpoint found. Initializing model from scratch")
            return {}
        path = os.fspath(path)
        self.logger.info("Loading checkpoint from %s", path)
        local = self._get_local_path(path)
        checkpoint = self._load_file(local)
        if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), Mapping):
            raise CheckpointLoadError(f"Checkpoint {path} has no 'model' state dict")
        if checkpointables is not None:
            unknown = [k for k in checkpointables if k not in self.checkpointables]
            if unknown:
                raise ValueError(f"unknown checkpointables {unknown}; this checkpointer has {sorted(self.checkpointables)}")

        # Passed through attributes rather than arguments so that subclasses overriding
        # _load_model(self, checkpoint) the fvcore way keep working.
        self._strict_load = self.strict if strict is None else strict
        self._assign_load = assign
        self._assigned = False
        try:
            incompatible = self._load_model(checkpoint)
            self.last_load_assigned = self._assigned
        finally:
            self._strict_load = None
            self._assign_load = False
            self._assigned = False
            self._skipped_shapes = []
        if incompatible is not None:
            self.last_incompatible_keys = incompatible._replace(
                missing_keys=_filter_reused_missing_keys(self.model, list(incompatible.missing_keys)))
            self._log_incompatible_keys(incompatible)

        for key in self.checkpointables if checkpointables is None else checkpointables:
            if key in checkpoint:
                self.logger.info("Loading %s from %s", key, path)
                self.checkpointables[key].load_state_dict(checkpoint.pop(key))
        return checkpoint

    def _get_local_path(self, path: str) -> str:
        if os.path.isfile(path):
            return path
        if is_url(path):
            return get_local_path(path)
        raise FileNotFoundError(f"Checkpoint {path} not found")

    def _load_file(self, f: str) -> dict[str, Any]:
        """Read a local checkpoint file into ``{"model": state_dict, ...}``; subclasses add formats.

        ``.safetensors`` goes through safetensors, everything else through
        ``torch.load(weights_only=True)``. A bare state dict is wrapped as ``{"model": it}``.
        """
        if f.endswith(".safetensors"):
            return load_safetensors_file(f)
        try:
            loaded = load_torch_file(f)
        except CheckpointLoadError as e:
            if f.endswith(".pkl"):
                raise type(e)(f"{e}\n(model-zoo and Caffe2 .pkl files are read by DetectionCheckpointer)") from e
            raise
        if not isinstance(loaded, dict):
            raise CheckpointLoadError(f"Checkpoint {f} holds a {type(loaded).__name__}, expected a dict")
        if "model" not in loaded:
            loaded = {"model": loaded}
        return loaded

    def _load_model(self, checkpoint: dict[str, Any]) -> _IncompatibleKeys:
        """Load ``checkpoint.pop("model")`` into the model; return what did not fit.

        Reads two attributes set around the call: ``_strict_load`` (this load's strictness) and
        ``_skipped_shapes`` (shape mismatches a subclass already dropped while renaming keys).
        """
        strict = self.strict if getattr(self, "_strict_load", None) is None else self._strict_load
        skipped_shapes = getattr(self, "_skipped_shapes", None) or []
        state_dict = _copy_state_dict(checkpoint.pop("model"))
        self._convert_ndarray_to_tensor(state_dict)
        # A model saved while wrapped in (Distributed)DataParallel has every key under "module.".
        _strip_prefix_if_present(state_dict, "module.")

        model_state_dict = self.model.state_dict()
        incorrect_shapes = list(skipped_shapes)
        reported = {k for k, _, _ in incorrect_shapes}
        for k in list(state_dict):
            if k not in model_state_dict:
                continue
            model_param = model_state_dict[k]
            if isinstance(model_param, nn.parameter.UninitializedParameter):
                continue  # lazy modules take their shape from the checkpoint
            shape_model, shape_ckpt = tuple(model_param.shape), tuple(state_dict[k].shape)
            if shape_model != shape_ckpt:
                if k not in reported:
                    incorrect_shapes.append((k, shape_ckpt, shape_model))
                state_dict.pop(k)

        if strict:
            expected = _IncompatibleKeys(
                missing_keys=_filter_reused_missing_keys(self.model, [k for k in model_state_dict if k not in state_dict]),
                unexpected_keys=[k for k in state_dict if k not in model_state_dict],
                incorrect_shapes=incorrect_shapes,
            )
            expected = self._filter_incompatible(expected)
            if any(expected):
                raise IncompatibleCheckpointError(
                    "Strict loading refused the checkpoint; the model was not changed.\n"
                    + _incompatible_message(expected))

        for k, v in state_dict.items():
            if k in model_state_dict and (v.is_sparse or v.device.type == "meta"):
                raise CheckpointLoadError(f"Checkpoint entry {k!r} is a {v.layout}/{v.device.type} tensor; expected a dense tensor")
        assign = bool(getattr(self, "_assign_load", False)) and _prepare_assign(self.model, state_dict, model_state_dict)
        result = self.model.load_state_dict(state_dict, strict=False, assign=assign)
        self._assigned = assign
        return self._filter_incompatible(_IncompatibleKeys(
            missing_keys=list(result.missing_keys),
            unexpected_keys=list(result.unexpected_keys),
            incorrect_shapes=incorrect_shapes,
        ))

    def _filter_incompatible(self, incompatible: _IncompatibleKeys) -> _IncompatibleKeys:
        """Hook: drop mismatches that are expected for this kind of model (none here)."""
        return incompatible

    def _log_incompatible_keys(self, incompatible: _IncompatibleKeys) -> None:
        class_dependent = class_dependent_parameter_names(self.model) if incompatible.incorrect_shapes else set()
        for k, c, m in incompatible.incorrect_shapes:
            if k in class_dependent:
                # fine-tuning on another label set: expected, and exactly these layers start afresh
                self.logger.info(
                    "Re-initialised class-dependent parameter '%s' (not loaded): %s in the checkpoint, %s "
                    "in the model, which predicts another number of classes", k, c, m)
        others = [x for x in incompatible.incorrect_shapes if x[0] not in class_dependent]
        if others:
            self.logger.warning(
                "Skip loading %d parameters whose shapes differ between checkpoint and model; you "
                "might want to double check if this is expected:\n%s", len(others),
                "\n".join(f"  {k}: {c} in the checkpoint but {m} in the model" for k, c, m in others))
        if incompatible.missing_keys:
            reinitialised = {k for k, _, _ in incompatible.incorrect_shapes if k in class_dependent}
            missing = [k for k in _filter_reused_missing_keys(self.model, incompatible.missing_keys)
                       if k not in reinitialised]
            if missing:
                self.logger.warning(get_missing_parameters_message(missing))
        if incompatible.unexpected_keys:
            self.logger.warning(get_unexpected_parameters_message(incompatible.unexpected_keys))

    def _convert_ndarray_to_tensor(self, state_dict: dict[str, Any]) -> None:
        """In place: numpy arrays become tensors; anything else that is not a tensor is refused."""
        for k in list(state_dict):
            v = state_dict[k]
            if isinstance(v, torch.Tensor):
                continue
            if not isinstance(v, np.ndarray):
                raise CheckpointLoadError(
                    f"Unsupported type found in checkpoint! {k}: {type(v).__name__} (expected a tensor or numpy array)")
            if v.dtype == object:
                raise CheckpointLoadError(f"Checkpoint entry {k!r} is a numpy array of Python objects, expected numbers")
            # Arrays rebuilt from a pickle can be read-only, which torch.from_numpy warns about.
            state_dict[k] = torch.from_numpy(v if v.flags.writeable else v.copy())


class PeriodicCheckpointer:
    """Saves a checkpoint every ``period`` iterations and a final one at ``max_iter``.

    Invariant: at most ``max_to_keep`` periodic checkpoints stay on disk (oldest deleted first;
    ``<file_prefix>_final`` is never deleted). Usage::

        periodic = PeriodicCheckpointer(checkpointer, period=1000, max_iter=90000, max_to_keep=3)
        for iteration in range(start_iter, 90000):
            train_one_step(); periodic.step(iteration)   # model_0000999.pth, ..., model_final.pth
    """

    def __init__(self, checkpointer: Any, period: int, max_iter: int | None = None,
                 max_to_keep: int | None = None, file_prefix: str = "model") -> None:
        if int(period) <= 0:
            raise ValueError(f"period must be a positive number of iterations, got {period!r}")
        if max_to_keep is not None and max_to_keep <= 0:
            raise ValueError(f"max_to_keep must be positive or None, got {max_to_keep!r}")
        self.checkpointer = checkpointer
        self.period = int(period)
        self.max_iter = max_iter
        self.max_to_keep = max_to_keep
        self.recent_checkpoints: list[str] = []
        self.file_prefix = file_prefix

    def step(self, iteration: int, **kwargs: Any) -> None:
        """At iteration ``iteration`` (0-based): save ``<prefix>_{iteration:07d}`` when
        ``(iteration + 1) % period == 0`` and ``<prefix>_final`` when ``iteration >= max_iter - 1``;
        ``iteration`` and ``kwargs`` are stored as extra data."""
        iteration = int(iteration)
        additional_state = {"iteration": iteration, **kwargs}

        if (iteration + 1) % self.period == 0:
            self.checkpointer.save(f"{self.file_prefix}_{iteration:07d}", **additional_state)
            if self.max_to_keep is not None:
                self.recent_checkpoints.append(self.checkpointer.get_checkpoint_file())
                if len(self.recent_checkpoints) > self.max_to_keep:
                    file_to_delete = self.recent_checkpoints.pop(0)
                    final_names = tuple(f"{self.file_prefix}_final{ext}" for ext in _SAVE_FORMATS.values())
                    if file_to_delete and os.path.exists(file_to_delete) and not file_to_delete.endswith(final_names):
                        os.remove(file_to_delete)

        if self.max_iter is not None and iteration >= self.max_iter - 1:
            self.checkpointer.save(f"{self.file_prefix}_final", **additional_state)

    def save(self, name: str, **kwargs: Any) -> None:
        """Save outside the schedule; same arguments as :meth:`Checkpointer.save`."""
        self.checkpointer.save(name, **kwargs)


def class_dependent_parameter_names(model: nn.Module) -> set[str]:
    """Full names of the model's parameters whose shape follows the label set it predicts (number
    of classes or keypoints), as its modules declare them: a module with a
    ``class_dependent_parameters()`` method returns its own parameter names (FastRCNNOutputLayers:
    ``cls_score.weight``, ...). When such a parameter's shape differs from a checkpoint's, the
    checkpoint was trained for another label set and the parameter keeps its initialisation."""
    if isinstance(model, DistributedDataParallel | DataParallel):
        model = model.module
    names: set[str] = set()
    for prefix, module in model.named_modules():
        declare = getattr(module, "class_dependent_parameters", None)
        if callable(declare):
            names.update(f"{prefix}.{name}" if prefix else name for name in declare())
    return names


# --- messages and helpers (fvcore's names) ----------------------------------------------------


def _group_checkpoint_keys(keys: Iterable[str]) -> dict[str, list[str]]:
    """Group keys by module: the part before the last "." -> the last parts."""
    groups: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        pos = key.rfind(".")
        if pos >= 0:
            groups[key[:pos]].append(key[pos + 1 :])
        else:
            groups.setdefault(key, [])
    return groups


def _group_to_str(group: list[str]) -> str:
    if not group:
        return ""
    if len(group) == 1:
        return "." + group[0]
    return ".{" + ", ".join(group) + "}"


def get_missing_parameters_message(keys: Iterable[str]) -> str:
    """Model parameters/buffers absent from the checkpoint, one line per module:
    ``  backbone.res2.0.conv1.{weight, bias}``."""
    groups = _group_checkpoint_keys(keys)
    return "Some model parameters or buffers are not found in the checkpoint:\n" + "\n".join(
        "  " + k + _group_to_str(v) for k, v in groups.items())


def get_unexpected_parameters_message(keys: Iterable[str]) -> str:
    """Checkpoint keys the model does not use, one line per module."""
    groups = _group_checkpoint_keys(keys)
    return "The checkpoint state_dict contains keys that are not used by the model:\n" + "\n".join(
        "  " + k + _group_to_str(v) for k, v in groups.items())


def _incompatible_message(incompatible: _IncompatibleKeys) -> str:
    parts = []
    if incompatible.incorrect_shapes:
        parts.append("Parameters with a different shape in the checkpoint:\n" + "\n".join(
            f"  {k}: {c} in the checkpoint but {m} in the model" for k, c, m in incompatible.incorrect_shapes))
    if incompatible.missing_keys:
        parts.append(get_missing_parameters_message(incompatible.missing_keys))
    if incompatible.unexpected_keys:
        parts.append(get_unexpected_parameters_message(incompatible.unexpected_keys))
    return "\n".join(parts)


def _strip_prefix_if_present(state_dict: dict[str, Any], prefix: str) -> None:
    """Remove ``prefix`` from every key, but only if every (non-empty) key has it."""
    keys = sorted(state_dict)
    if not keys or not all(len(k) == 0 or k.startswith(prefix) for k in keys):
        return
    for key in keys:
        state_dict[key[len(prefix) :]] = state_dict.pop(key)
    # torch's per-module metadata (versions) is keyed by module name: "" for the wrapper itself,
    # "module" for the real model, "module.xx" below it.
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:
        for key in list(metadata):
            if key:
                metadata[key[len(prefix) :]] = metadata.pop(key)


def _copy_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """A shallow copy that keeps torch's ``_metadata`` (module versions used by
    ``_load_from_state_dict`` upgrades), so loading never mutates the caller's mapping."""
    copied: dict[str, Any] = OrderedDict(state_dict)
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:
        copied._metadata = copy.deepcopy(metadata)  # type: ignore[attr-defined]
    return copied


def _prepare_assign(model: nn.Module, state_dict: dict[str, Any], model_state_dict: Mapping[str, Any]) -> bool:
    """Make ``state_dict``'s tensors fit to become the model's own (``load_state_dict(assign=True)``),
    in place; False (nothing changed) when the model cannot take assigned tensors safely.

    Refused: lazy (uninitialised) parameters, and a tensor the model holds under two names (tied
    weights: assigning would untie them). Each entry the model uses is converted to the model
    tensor's dtype/device and strides; one that shares memory with an earlier entry, or is a view
    of a bigger storage, is cloned, so no two model tensors share memory that the model's did not.
    """
    named = list(model.state_dict(keep_vars=True).values())
    if any(isinstance(t, nn.parameter.UninitializedParameter | nn.parameter.UninitializedBuffer) for t in named):
        return False
    if len({id(t) for t in named}) != len(named):
        return False  # one tensor under several names
    seen_storage: set[int] = set()
    for k in list(state_dict):
        target = model_state_dict.get(k)
        if target is None:
            continue
        v = state_dict[k]
        # a model built on the meta device takes the loaded tensors where they are
        device = v.device if target.device.type == "meta" else target.device
        if v.dtype != target.dtype or v.device != device:
            v = v.to(device=device, dtype=target.dtype)
        if v.numel() > 1 and v.stride() != target.stride():
            v = torch.empty_strided(target.size(), target.stride(), dtype=target.dtype,
                                    device=device).copy_(v)
        storage = v.untyped_storage()
        if v.numel() > 0 and (storage.data_ptr() in seen_storage
                              or storage.nbytes() > v.numel() * v.element_size()):
            v = v.clone(memory_format=torch.preserve_format)
            storage = v.untyped_storage()
        if v.numel() > 0:
            seen_storage.add(storage.data_ptr())
        state_dict[k] = v.detach()
    return True


def _named_modules_with_dup(model: nn.Module, prefix: str = "") -> Iterable[tuple[str, nn.Module]]:
    """``model.named_modules()`` including modules reachable under several names."""
    yield prefix, model
    for name, module in model._modules.items():
        if module is None:
            continue
        yield from _named_modules_with_dup(module, prefix + ("." if prefix else "") + name)


def _filter_reused_missing_keys(model: nn.Module, keys: list[str]) -> list[str]:
    """Drop missing keys whose tensor was loaded under another name (shared parameters)."""
    keyset = set(keys)
    param_to_names: dict[Any, set[str]] = defaultdict(set)
    for module_prefix, module in _named_modules_with_dup(model):
        for name, param in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False)):
            if param is None:
                continue
            param_to_names[param].add((module_prefix + "." if module_prefix else "") + name)
    for names in param_to_names.values():
        if any(n in keyset for n in names) and not all(n in keyset for n in names):
            keyset.difference_update(names)
    return [k for k in keys if k in keyset]
