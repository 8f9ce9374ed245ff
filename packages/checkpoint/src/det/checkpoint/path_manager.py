"""``PathManager``: detectron2's one object for file paths, local or remote (``utils.file_io``).

detectron2's scripts and users' code write ``PathManager.open(path, "w")``,
``PathManager.mkdirs(d)``, ``PathManager.get_local_path("detectron2://...")``. This is the same
iopath ``PathManager``, with one handler for ``detectron2://``, ``http://`` and ``https://`` that
downloads through :func:`det.checkpoint.file_io.get_local_path`, so a file fetched here and a
checkpoint loaded by ``DetectionCheckpointer`` share one cache (``$DET_CACHE``) and the same
atomic, resumable downloads. Remote paths are read-only::

    with PathManager.open("output/metrics.json", "w") as f: ...
    local = PathManager.get_local_path("detectron2://ImageNetPretrained/MSRA/R-50.pkl")
"""

from __future__ import annotations

from typing import IO, Any

try:
    from iopath.common.file_io import PathHandler
    from iopath.common.file_io import PathManager as PathManagerBase
except ImportError as e:
    raise ImportError(
        "det.checkpoint.path_manager (detectron2's PathManager) needs iopath: "
        "pip install 'det-checkpoint[path-manager]'"
    ) from e

from det.checkpoint.file_io import DETECTRON2_PREFIX, get_local_path

__all__ = ["PathHandler", "PathManager", "RemoteFileHandler"]


class RemoteFileHandler(PathHandler):  # type: ignore[misc]  # iopath ships no type information
    """``detectron2://`` (detectron2's model-zoo server) and ``http(s)://`` files: fetched once into
    det's cache, then read from there."""

    def _get_supported_prefixes(self) -> list[str]:
        return [DETECTRON2_PREFIX, "http://", "https://"]

    def _get_local_path(self, path: str, force: bool = False, **kwargs: Any) -> str:
        # `force` asks iopath handlers to re-download; det's cache is complete or absent (atomic
        # downloads), so the cached file is always the whole file
        cache_dir = kwargs.pop("cache_dir", None)
        self._check_kwargs(kwargs)
        return get_local_path(path, cache_dir=cache_dir)

    def _open(self, path: str, mode: str = "r", buffering: int = -1, **kwargs: Any) -> IO[Any]:
        if mode not in ("r", "rb"):
            raise ValueError(
                f"PathManager.open({path!r}, {mode!r}): remote files are read-only; open them "
                "with mode 'r' or 'rb', or write to a local path"
            )
        self._check_kwargs(kwargs)
        return open(self._get_local_path(path), mode, buffering=buffering)


PathManager = PathManagerBase()
PathManager.register_handler(RemoteFileHandler())
