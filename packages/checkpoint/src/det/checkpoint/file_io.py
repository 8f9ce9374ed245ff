"""Turning ``detectron2://`` and http(s) checkpoint paths into local files.

``detectron2://X`` means ``https://dl.fbaipublicfiles.com/detectron2/X`` (detectron2's own
``Detectron2Handler``), so every ``MODEL.WEIGHTS`` of the model-zoo YAMLs resolves unchanged.
Downloads land in a cache folder, under the URL's path, and are written atomically: the bytes go
to a temporary file that is renamed only once the whole body has arrived, so an interrupted
download never shows up under the final name and is simply retried next time.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlparse

from det.checkpoint.errors import CheckpointLoadError

__all__ = ["DETECTRON2_PREFIX", "DETECTRON2_URL_PREFIX", "download", "get_cache_dir", "get_local_path",
           "is_url", "resolve_url"]

DETECTRON2_PREFIX = "detectron2://"
DETECTRON2_URL_PREFIX = "https://dl.fbaipublicfiles.com/detectron2/"

_CHUNK = 1 << 20


def get_cache_dir(cache_dir: str | None = None) -> str:
    """Where downloaded checkpoints are kept.

    First of: the ``cache_dir`` argument, ``$DET_CACHE``, ``$XDG_CACHE_HOME/det``, ``~/.cache/det``.
    """
    if cache_dir:
        return os.path.expanduser(cache_dir)
    if os.environ.get("DET_CACHE"):
        return os.path.expanduser(os.environ["DET_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = os.path.expanduser(xdg) if xdg else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "det")


def is_url(path: str) -> bool:
    """Whether ``path`` names a remote file (``detectron2://``, ``http://`` or ``https://``)."""
    return isinstance(path, str) and path.startswith((DETECTRON2_PREFIX, "http://", "https://"))


def resolve_url(path: str) -> str:
    """``detectron2://X`` -> ``https://dl.fbaipublicfiles.com/detectron2/X`` (query dropped, as
    detectron2 does); any other string is returned unchanged."""
    if path.startswith(DETECTRON2_PREFIX):
        name = urlparse(path)._replace(query="").geturl()[len(DETECTRON2_PREFIX) :]
        return DETECTRON2_URL_PREFIX + name
    return path


def _cache_path(url: str, cache_dir: str) -> str:
    rel = urlparse(url).path.lstrip("/")
    parts = [p for p in rel.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise ValueError(f"Cannot derive a cache file name from URL {url!r}: expected a path like /dir/file.pkl")
    return os.path.join(cache_dir, *parts)


def get_local_path(path: str, *, cache_dir: str | None = None, progress: bool = True) -> str:
    """A local file for ``path``: itself if it is not a URL, else the cached download (fetched now if
    it is not cached yet). The cache mirrors the URL's path, e.g.
    ``<cache>/detectron2/ImageNetPretrained/MSRA/R-50.pkl``."""
    if not is_url(path):
        return path
    url = resolve_url(path)
    local = _cache_path(url, get_cache_dir(cache_dir))
    if os.path.isfile(local):
        return local
    return download(url, os.path.dirname(local), filename=os.path.basename(local), progress=progress)


class _Progress:
    """tqdm when it is installed, else one self-overwriting line on stderr."""

    def __init__(self, total: int | None, desc: str, enabled: bool) -> None:
        self.total, self.desc, self.enabled, self.done = total, desc, enabled, 0
        self._bar: Any = None
        self._last_print = 0.0
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024)

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last_print >= 0.5 or (self.total is not None and self.done >= self.total):
            self._last_print = now
            mb = self.done / 1e6
            if self.total:
                line = f"{self.desc}: {mb:.1f}/{self.total / 1e6:.1f} MB ({100 * self.done // self.total}%)"
            else:
                line = f"{self.desc}: {mb:.1f} MB"
            print("\r" + line, end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            print(file=sys.stderr, flush=True)


def download(url: str, directory: str, *, filename: str | None = None, progress: bool = True,
             timeout: float = 60.0) -> str:
    """Download ``url`` to ``directory/filename`` (default: the URL's last path part) and return it.

    The body is streamed into a temporary file in ``directory`` and renamed to the final name only
    after all of it arrived (checked against Content-Length when the server sends one) and was
    fsynced. Raises :class:`CheckpointLoadError` naming the URL on any HTTP or network failure.
    """
    filename = filename or os.path.basename(urlparse(url).path)
    if not filename:
        raise ValueError(f"Cannot derive a file name from URL {url!r}; pass filename=")
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, filename)
    request = urllib.request.Request(url, headers={"User-Agent": "det-checkpoint"})
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + filename + ".", suffix=".part")
    bar: _Progress | None = None
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            bar = _Progress(total, f"Downloading {filename}", progress)
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                bar.update(len(chunk))
            if total is not None and bar.done != total:
                raise CheckpointLoadError(
                    f"Download of {url} was cut off after {bar.done} of {total} bytes; nothing was "
                    "saved, try again")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, urllib.error.HTTPError):
            raise CheckpointLoadError(f"Cannot download {url}: HTTP {e.code} {e.reason}") from e
        if isinstance(e, CheckpointLoadError):
            raise
        if isinstance(e, OSError | urllib.error.URLError) or type(e).__module__ == "http.client":
            raise CheckpointLoadError(f"Cannot download {url}: {e}") from e
        raise
    finally:
        if bar is not None:
            bar.close()
    return target
