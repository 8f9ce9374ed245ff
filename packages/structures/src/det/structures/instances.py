"""`Instances`: the per-image bag of equally long fields (boxes, scores, classes, masks, ...)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, TypeGuard

import numpy as np
import torch

from det.structures.boxes import _check_cat_items

__all__ = ["Instances"]


def _is_plain_int(item: Any) -> TypeGuard[int | np.integer]:
    return isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_))


def _index_list(values: list[Any], item: Any) -> list[Any]:
    """Index a python list like a tensor: slices, bool masks and integer index vectors."""
    if isinstance(item, slice):
        return values[item]
    index = torch.as_tensor(np.asarray(item)) if not isinstance(item, torch.Tensor) else item
    if index.dtype == torch.bool:
        if index.numel() != len(values):
            raise IndexError(
                f"boolean mask of length {index.numel()} does not match list field of length {len(values)}"
            )
        return [v for v, keep in zip(values, index.tolist()) if keep]
    return [values[i] for i in index.reshape(-1).tolist()]


class Instances:
    """The instances of one image: named fields that all have the same length N.

    Invariant: every field has ``len(field) == len(instances)``; setting a field of another
    length is an error. Fields are read and written as attributes::

        instances = Instances((480, 640))
        instances.gt_boxes = Boxes(torch.rand(3, 4))
        big = instances[instances.gt_boxes.area() > 0.1]

    A field may be anything with ``__len__`` and ``__getitem__`` (tensors, ``Boxes``, masks,
    lists, ...). ``Instances.cat`` concatenates tensors, lists and types that have ``cat``.
    """

    def __init__(self, image_size: tuple[int, int], **kwargs: Any) -> None:
        self._image_size = image_size
        self._fields: dict[str, Any] = {}
        for k, v in kwargs.items():
            self.set(k, v)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the image these instances belong to."""
        return self._image_size

    def __setattr__(self, name: str, val: Any) -> None:
        if name.startswith("_"):
            super().__setattr__(name, val)
        else:
            self.set(name, val)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails; "_fields" must not recurse (e.g. during unpickling).
        if name == "_fields" or name not in self._fields:
            raise AttributeError(f"Cannot find field '{name}' in the given Instances!")
        return self._fields[name]

    def set(self, name: str, value: Any) -> None:
        """Set field ``name``; its length must equal that of the fields already present."""
        try:
            data_len = len(value)
        except TypeError:
            raise TypeError(
                f"Instances field '{name}' must have a length (tensor, Boxes, list, ...), "
                f"got {type(value).__name__}"
            ) from None
        replacing_only_field = len(self._fields) == 1 and name in self._fields
        if self._fields and not replacing_only_field and len(self) != data_len:
            raise ValueError(
                f"Adding a field '{name}' of length {data_len} to an Instances of length {len(self)}: "
                "every field of an Instances must have the same length"
            )
        self._fields[name] = value

    def has(self, name: str) -> bool:
        return name in self._fields

    def remove(self, name: str) -> None:
        if name not in self._fields:
            raise KeyError(f"Cannot remove field '{name}': Instances has fields {list(self._fields)}")
        del self._fields[name]

    def get(self, name: str) -> Any:
        if name not in self._fields:
            raise KeyError(
                f"Cannot find field '{name}' in the given Instances (fields: {list(self._fields)})"
            )
        return self._fields[name]

    def get_fields(self) -> dict[str, Any]:
        """The name -> value dict of all fields (the live dict: modifying it modifies ``self``)."""
        return self._fields

    def to(self, *args: Any, **kwargs: Any) -> Instances:
        """A new Instances with ``.to(*args, **kwargs)`` applied to every field that has ``to``."""
        ret = Instances(self._image_size)
        for k, v in self._fields.items():
            if hasattr(v, "to"):
                v = v.to(*args, **kwargs)
            ret.set(k, v)
        return ret

    def __getitem__(self, item: int | slice | torch.Tensor | Sequence[int]) -> Instances:
        """Index every field: an int keeps a length-1 Instances; slices, bool or long tensors select."""
        if isinstance(item, torch.Tensor) and item.dim() == 0 and item.dtype != torch.bool:
            item = int(item)  # a 0-dim index tensor behaves like the int it holds
        if _is_plain_int(item):
            n = len(self)
            if item >= n or item < -n:
                raise IndexError(f"Instances index {item} out of range for {n} instances")
            # A slice (not an int) keeps every field's leading dimension.
            item = slice(int(item), None, n)
        if (
            isinstance(item, torch.Tensor)
            and item.dtype == torch.bool
            and self._fields
            and (item.dim() != 1 or item.numel() != len(self))
        ):
            raise IndexError(
                f"Instances indexed with a bool mask of shape {tuple(item.shape)}, expected ({len(self)},)"
            )
        if (
            isinstance(item, torch.Tensor)
            and item.dtype == torch.bool
            and item.device.type != "cpu"
            and len(self._fields) > 1
        ):
            # one data-dependent step (a host synchronisation on a GPU) for all fields, not one
            # per field: the mask's indices select the same rows in the same order
            item = item.nonzero().squeeze(1)
        ret = Instances(self._image_size)
        for k, v in self._fields.items():
            if isinstance(v, list) and not isinstance(item, slice):
                ret.set(k, _index_list(v, item))
            else:
                ret.set(k, v[item])
        return ret

    def __len__(self) -> int:
        for v in self._fields.values():
            return len(v)
        raise NotImplementedError("Empty Instances does not support __len__!")

    def __iter__(self) -> Any:
        raise NotImplementedError("`Instances` object is not iterable!")

    @staticmethod
    def cat(instance_lists: list[Instances]) -> Instances:
        """Concatenate Instances of the same image size into one with the first item's fields.

        Later items may have extra fields (they are dropped, as in detectron2); one that lacks a
        field of the first item raises a ValueError.
        """
        _check_cat_items(instance_lists, Instances)
        if len(instance_lists) == 1:
            return instance_lists[0]

        image_size = instance_lists[0].image_size
        if not isinstance(image_size, torch.Tensor):  # a tensor while tracing: cannot compare
            for i in instance_lists[1:]:
                if i.image_size != image_size:
                    raise ValueError(f"Instances.cat: image sizes differ ({image_size} vs {i.image_size})")
        # detectron2's rule: the first item's fields are the result's; later items may carry
        # more (dropped) but not fewer
        names = list(instance_lists[0]._fields.keys())
        for idx, i in enumerate(instance_lists[1:], start=1):
            missing = [k for k in names if k not in i._fields]
            if missing:
                raise ValueError(
                    f"Instances.cat: fields differ: item {idx} lacks {missing}, which the first item "
                    f"has (item {idx} has {sorted(i._fields)})"
                )
        ret = Instances(image_size)
        for k in names:
            values: Any = [i.get(k) for i in instance_lists]
            v0 = values[0]
            if isinstance(v0, torch.Tensor):
                values = torch.cat(values, dim=0)
            elif isinstance(v0, list):
                values = list(itertools.chain(*values))
            elif hasattr(type(v0), "cat"):
                values = type(v0).cat(values)
            else:
                raise ValueError(f"Unsupported type {type(v0)} for concatenation")
            ret.set(k, values)
        return ret

    def __str__(self) -> str:
        n = len(self) if self._fields else 0
        fields = ", ".join(f"{k}: {v}" for k, v in self._fields.items())
        return (
            f"{self.__class__.__name__}(num_instances={n}, image_height={self._image_size[0]}, "
            f"image_width={self._image_size[1]}, fields=[{fields}])"
        )

    __repr__ = __str__
