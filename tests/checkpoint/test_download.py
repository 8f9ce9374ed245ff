"""detectron2:// and http(s) checkpoints: resolved, downloaded atomically into the cache, loaded."""

from __future__ import annotations

import http.server
import os
import pickle
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from det.checkpoint import (
    CheckpointLoadError,
    DetectionCheckpointer,
    get_cache_dir,
    get_local_path,
    resolve_url,
)
from det.checkpoint.file_io import download


class Server:
    """A local HTTP server on 127.0.0.1 serving ``files`` {url path: bytes} from a thread."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.truncate: dict[str, int] = {}  # url path -> bytes actually sent (Content-Length says more)
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: server.truncate.get(self.path, len(body))])
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def server():
    s = Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()
    s.thread.join(timeout=5)


def model_zoo_pkl(model: nn.Module) -> bytes:
    state = {k: v.numpy() + 1 for k, v in model.state_dict().items()}
    return pickle.dumps({"model": state, "__author__": "Detectron2 Model Zoo", "matching_heuristics": True})


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))


def test_resolve_url():
    assert resolve_url("detectron2://ImageNetPretrained/MSRA/R-50.pkl") == (
        "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MSRA/R-50.pkl")
    assert resolve_url("detectron2://COCO/model_final_f10217.pkl?matching_heuristics=True") == (
        "https://dl.fbaipublicfiles.com/detectron2/COCO/model_final_f10217.pkl")
    assert resolve_url("http://x/y.pth") == "http://x/y.pth"
    assert resolve_url("/local/y.pth") == "/local/y.pth"


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("DET_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert get_cache_dir() == os.path.join(os.path.expanduser("~"), ".cache", "det")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert get_cache_dir() == str(tmp_path / "xdg" / "det")
    monkeypatch.setenv("DET_CACHE", str(tmp_path / "det"))
    assert get_cache_dir() == str(tmp_path / "det")
    assert get_cache_dir(str(tmp_path / "explicit")) == str(tmp_path / "explicit")


def test_download_into_cache_then_reuse(server, cache_dir):
    model = small_model()
    server.files["/detectron2/COCO/model_final.pkl"] = model_zoo_pkl(model)
    url = server.url + "/detectron2/COCO/model_final.pkl"

    local = get_local_path(url, progress=False)
    assert local == str(cache_dir / "detectron2" / "COCO" / "model_final.pkl")
    assert Path(local).read_bytes() == server.files["/detectron2/COCO/model_final.pkl"]
    assert get_local_path(url, progress=False) == local
    assert server.requests == ["/detectron2/COCO/model_final.pkl"]  # second call used the cache
    assert sorted(os.listdir(cache_dir / "detectron2" / "COCO")) == ["model_final.pkl"]


def test_checkpointer_loads_from_url(server, cache_dir):
    source = small_model()
    server.files["/m/model_final.pkl"] = model_zoo_pkl(source)
    model = small_model()
    DetectionCheckpointer(model).load(server.url + "/m/model_final.pkl", strict=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, source.state_dict()[k] + 1)


def test_detectron2_prefix_goes_to_fbaipublicfiles(monkeypatch, cache_dir):
    seen = []

    def fake_download(url, directory, *, filename=None, progress=True, timeout=60.0):
        seen.append((url, directory, filename))
        raise CheckpointLoadError("offline")

    monkeypatch.setattr("det.checkpoint.file_io.download", fake_download)
    with pytest.raises(CheckpointLoadError, match="offline"):
        DetectionCheckpointer(small_model()).load("detectron2://ImageNetPretrained/MSRA/R-50.pkl")
    assert seen == [("https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MSRA/R-50.pkl",
                     str(cache_dir / "detectron2" / "ImageNetPretrained" / "MSRA"), "R-50.pkl")]


def test_cut_off_download_never_appears_under_final_name(server, cache_dir):
    body = model_zoo_pkl(small_model())
    server.files["/x/big.pkl"] = body
    server.truncate["/x/big.pkl"] = len(body) // 2
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointLoadError, match=r"Cannot download http://127\.0\.0\.1:\d+/x/big\.pkl|cut off"):
        DetectionCheckpointer(model).load(server.url + "/x/big.pkl")
    assert os.listdir(cache_dir / "x") == []  # no final file, no temporary left behind
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())

    # The next attempt (server fixed) downloads again and succeeds.
    del server.truncate["/x/big.pkl"]
    DetectionCheckpointer(model).load(server.url + "/x/big.pkl")
    assert os.listdir(cache_dir / "x") == ["big.pkl"]


def test_http_error_names_url(server, cache_dir):
    with pytest.raises(CheckpointLoadError, match=r"Cannot download .*/nope\.pkl: HTTP 404"):
        get_local_path(server.url + "/nope.pkl")


def test_progress_line_without_tqdm(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    server.files["/w.bin"] = np.arange(300_000, dtype=np.float32).tobytes()
    path = download(server.url + "/w.bin", str(tmp_path), progress=True)
    assert Path(path).read_bytes() == server.files["/w.bin"]
    err = capsys.readouterr().err
    assert "Downloading w.bin: 1.2/1.2 MB (100%)" in err


def test_unsafe_url_path_is_refused(cache_dir):
    with pytest.raises(ValueError, match="cache file name"):
        get_local_path("http://127.0.0.1:1/a/../../etc/passwd")


# --- PathManager (detectron2's utils.file_io) ----------------------------------------------------


def test_path_manager_reads_remote_files_through_det_cache(server, cache_dir):
    from det.checkpoint.path_manager import PathManager

    server.files["/detectron2/data/classes.json"] = b'["a", "b"]'
    url = server.url + "/detectron2/data/classes.json"
    with PathManager.open(url, "rb") as f:
        assert f.read() == b'["a", "b"]'
    local = PathManager.get_local_path(url)
    assert local == str(cache_dir / "detectron2" / "data" / "classes.json")  # the checkpointer's cache
    assert server.requests == ["/detectron2/data/classes.json"]  # fetched once
    with pytest.raises(ValueError, match=r"remote files are read-only; open them with mode 'r' or 'rb'"):
        PathManager.open(url, "w")


def test_path_manager_resolves_the_detectron2_prefix_in_the_cache(cache_dir):
    from det.checkpoint.path_manager import PathManager

    cached = cache_dir / "detectron2" / "ImageNetPretrained" / "MSRA" / "R-50.pkl"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"weights")
    assert PathManager.get_local_path("detectron2://ImageNetPretrained/MSRA/R-50.pkl") == str(cached)
    with PathManager.open("detectron2://ImageNetPretrained/MSRA/R-50.pkl", "rb") as f:
        assert f.read() == b"weights"


def test_path_manager_local_files_and_detectron2_name(tmp_path):
    from detectron2.utils.file_io import PathHandler, PathManager
    from iopath.common.file_io import PathHandler as IopathPathHandler

    from det.checkpoint.path_manager import PathManager as DetPathManager

    assert PathManager is DetPathManager and PathHandler is IopathPathHandler
    PathManager.mkdirs(str(tmp_path / "out" / "inference"))
    with PathManager.open(str(tmp_path / "out" / "inference" / "results.json"), "w") as f:
        f.write("[]")
    assert PathManager.exists(str(tmp_path / "out" / "inference" / "results.json"))
    assert PathManager.ls(str(tmp_path / "out" / "inference")) == ["results.json"]
    assert PathManager.get_local_path(str(tmp_path / "out")) == str(tmp_path / "out")
