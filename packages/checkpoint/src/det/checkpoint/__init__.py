"""Safe loading and atomic saving of detectron2-style checkpoints.

``DetectionCheckpointer(model).load(path)`` reads native ``.pth``, model-zoo and Caffe2 ``.pkl``,
``.safetensors`` and ``detectron2://``/http(s) paths without running code from the file;
``save()`` writes atomically. See README.md for the formats and the strict mode.
"""

from det.checkpoint.c2_model_loading import (
    align_and_update_state_dicts,
    convert_basic_c2_names,
    convert_c2_detectron_names,
)
from det.checkpoint.checkpointer import (
    Checkpointer,
    PeriodicCheckpointer,
    class_dependent_parameter_names,
    get_missing_parameters_message,
    get_unexpected_parameters_message,
)
from det.checkpoint.converters import (
    apply_converters,
    register_converter,
    registered_converters,
    unregister_converter,
)
from det.checkpoint.detection_checkpoint import DetectionCheckpointer
from det.checkpoint.errors import CheckpointLoadError, IncompatibleCheckpointError, UnsafeCheckpointError
from det.checkpoint.file_io import get_cache_dir, get_local_path, resolve_url
from det.checkpoint.version import __version__

__all__ = [
    "CheckpointLoadError",
    "Checkpointer",
    "DetectionCheckpointer",
    "IncompatibleCheckpointError",
    "PeriodicCheckpointer",
    "UnsafeCheckpointError",
    "__version__",
    "align_and_update_state_dicts",
    "apply_converters",
    "class_dependent_parameter_names",
    "convert_basic_c2_names",
    "convert_c2_detectron_names",
    "get_cache_dir",
    "get_local_path",
    "get_missing_parameters_message",
    "get_unexpected_parameters_message",
    "register_converter",
    "registered_converters",
    "resolve_url",
    "unregister_converter",
]
