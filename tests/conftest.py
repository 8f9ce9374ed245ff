"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No GPU on CI: Triton kernels (det-ops-cuda) run in Triton's interpreter. Triton decides when a
# kernel is *defined*, so this is set before any test module can import one.
os.environ.setdefault("TRITON_INTERPRET", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DET_SHARED_DIR", REPO_ROOT.parent / "shared"))
GOLDEN = SHARED / "golden"
GOLDEN_CASES = ("mask_rcnn_R_50_FPN", "faster_rcnn_R_50_C4", "keypoint_rcnn_R_50_FPN", "retinanet_R_50_FPN")


def pytest_configure(config: pytest.Config) -> None:
    # Two pytest-xdist workers on two cores: one torch thread each keeps them from fighting.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


def pytest_report_header(config: pytest.Config) -> str:
    # CI logs say which CPU level the suite ran on: tests that need bf16 or AVX-512 select
    # themselves by this (det.core.machine), so the same suite passes on AVX2-only machines.
    from det.core.machine import inference_choices, machine_info

    return f"det machine: {machine_info().describe()}; choices: {inference_choices().describe()}"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"../shared not found at {SHARED}; set DET_SHARED_DIR to the shared folder")
    return SHARED


@pytest.fixture(scope="session")
def golden_dir(shared_dir: Path) -> Path:
    return shared_dir / "golden"


@pytest.fixture(scope="session")
def configs_dir(shared_dir: Path) -> Path:
    return shared_dir / "detectron2-configs"


@pytest.fixture(scope="session")
def reference_dir(shared_dir: Path) -> Path:
    return shared_dir / "reference"


@pytest.fixture
def disable_plugins(monkeypatch: pytest.MonkeyPatch):
    """``disable_plugins("det-deeplab", ...)``: those distributions installed but disabled through
    DET_DISABLE_PLUGINS, as if they were not installed; plugin discovery starts afresh, and again
    (with nothing disabled) after the test."""
    from det.core import plugins

    def disable(*names: str) -> None:
        monkeypatch.setenv(plugins.DISABLE_ENV, ",".join(names))
        plugins.reset()

    monkeypatch.delenv(plugins.DISABLE_ENV, raising=False)
    plugins.reset()
    yield disable
    monkeypatch.delenv(plugins.DISABLE_ENV, raising=False)
    plugins.reset()


# --- Child virtual environments: how used-by and plugin tests install real wheels -------------

import subprocess  # noqa: E402
import sys  # noqa: E402
import sysconfig  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from importlib import metadata  # noqa: E402
from typing import Any  # noqa: E402

MAIN_SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])


@dataclass
class ChildVenv:
    """A throwaway venv made in seconds: no pip of its own, no copy of torch.

    It reaches third-party packages of the main environment through a `.pth` file instead of
    installing them again (torch alone is 5.5 GB). Wheels are installed into it for real, with
    the main environment's pip, so entry points and metadata behave as after `pip install`.
    """

    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        return self.root / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"

    def pip_install(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        """`pip install --no-index ARGS` into this venv (nothing is fetched from an index)."""
        cmd = [sys.executable, "-m", "pip", "--python", str(self.python), "install", "--no-index",
               "--disable-pip-version-check", *map(str, args)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise AssertionError(f"pip install failed:\n{result.stdout}\n{result.stderr}")
        return result

    def pip_install_names(self, *args: str | Path) -> set[str]:
        """`pip_install(ARGS)`, returning the names of the distributions pip installed."""
        stdout = self.pip_install(*args).stdout
        [line] = [x for x in stdout.splitlines() if x.startswith("Successfully installed ")]
        return {x.rsplit("-", 1)[0] for x in line.split()[2:]}

    def run(self, code: str, *, env: dict[str, str] | None = None, check: bool = True,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run python `code` in this venv; raise with its output when `check` and it fails."""
        full_env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
        full_env.update(env or {})
        result = subprocess.run([str(self.python), "-c", code], capture_output=True, text=True,
                                env=full_env, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"child python failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result


def _distribution_files(name: str) -> set[Path]:
    """Top-level files and folders (package dirs, .libs, dist-info) that one installed distribution owns."""
    dist = metadata.distribution(name)
    tops: set[Path] = set()
    for file in dist.files or []:
        first = Path(file).parts[0]
        if first not in {"..", "bin"} and not first.endswith(".pth"):
            tops.add(MAIN_SITE_PACKAGES / first)
    return tops


def _requirement_closure(names: list[str]) -> set[str]:
    """The given distributions and everything they require, following extras too (torch needs
    `cuda-toolkit[cudart,...]`): a child venv must satisfy pip's resolver, not only imports."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    done: set[tuple[str, frozenset[str]]] = set()
    todo: list[tuple[str, frozenset[str]]] = [(name, frozenset()) for name in names]
    while todo:
        name, extras = todo.pop()
        key = (name.lower().replace("_", "-"), extras)
        if key in done:
            continue
        done.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(key[0])
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
                todo.append((req.name, frozenset(req.extras)))
    return seen


@pytest.fixture(scope="session")
def third_party_of():
    """`third_party_of("det-core", "det-heads-mask")`: the third-party distributions those det
    distributions need, read from their installed metadata (their requirement closure minus det's
    own). A child venv inheriting exactly these lets pip install the det wheels and nothing else, and
    stays right when a distribution declares a new dependency."""

    def names(*det_distributions: str) -> list[str]:
        return sorted(n for n in _requirement_closure(list(det_distributions)) if not n.startswith("det-"))

    return names


@pytest.fixture
def make_child_venv(tmp_path: Path):
    """Factory: `make_child_venv(inherit="all")` or `make_child_venv(inherit=["torch", "numpy"])`.

    inherit="all": the child sees everything the main .venv has (det's editable members included),
    so a wheel installed into it adds to the full toolkit. A list: the child sees only those
    third-party distributions and their requirement closure (symlinked), e.g. to prove that
    det-structures works where torchvision, yacs and pluggy are absent.
    """
    count = 0

    def make(inherit: str | list[str] = "all") -> ChildVenv:
        nonlocal count
        count += 1
        root = tmp_path / f"venv{count}"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
        venv = ChildVenv(root)
        if inherit == "all":
            line = f"import site; site.addsitedir({str(MAIN_SITE_PACKAGES)!r})\n"
        else:
            shelf = root / "inherited"
            shelf.mkdir()
            for dist_name in sorted(_requirement_closure(list(inherit))):
                for top in _distribution_files(dist_name):
                    if top.exists() and not (shelf / top.name).exists():
                        (shelf / top.name).symlink_to(top)
            line = f"{shelf}\n"
        (venv.site_packages / "_det_inherited.pth").write_text(line)
        return venv

    return make


@pytest.fixture(scope="session")
def wheel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wheels")


def build_wheel(project: Path, out_dir: Path) -> Path:
    """Build one project's wheel from the tree (no index, no build isolation: hatchling is in .venv)."""
    import tempfile

    staging = Path(tempfile.mkdtemp(dir=out_dir))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "-w", str(staging), str(project)],
        capture_output=True, text=True)
    built = list(staging.glob("*.whl"))
    if result.returncode != 0 or len(built) != 1:
        raise AssertionError(f"building a wheel of {project} failed:\n{result.stdout}\n{result.stderr}")
    return built[0]


@pytest.fixture(scope="session")
def wheel_builder():
    """`wheel_builder(project_dir, out_dir) -> Path` of the built wheel."""
    return build_wheel


def _all_projects() -> dict[str, Path]:
    """Every distribution folder of the tree, by its project name."""
    import tomllib

    projects = {}
    for pyproject in sorted(REPO_ROOT.glob("packages/**/pyproject.toml")):
        projects[tomllib.loads(pyproject.read_text())["project"]["name"]] = pyproject.parent
    return projects


@pytest.fixture(scope="session")
def all_wheels_projects() -> dict[str, Path]:
    """Project name -> folder of every distribution of the tree."""
    return _all_projects()


@pytest.fixture(scope="session")
def all_wheels(all_wheels_projects, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a wheel of every distribution of the tree, so that
    `pip install --no-index --find-links all_wheels NAME` picks NAME's closure itself."""
    wheels = tmp_path_factory.mktemp("all-det-wheels")
    for folder in all_wheels_projects.values():
        wheel = build_wheel(folder, wheels)
        wheel.rename(wheels / wheel.name)
    return wheels


# --- Golden parity: detectron2's own outputs and a tolerant instance matcher ------------------


@dataclass
class GoldenCase:
    """One case of ../shared/golden: its files, loaded on demand (see that folder's README), and
    det's model of it. The one place golden tests build, load and run models::

        model = case.model("pth")        # eval mode, every weight from model_final.pth (strict); shared
        outputs = case.predict("pkl")    # that model's outputs on the case's inputs; shared
        fresh = case.build("pth", cfg)   # a new model (to train or change), from cfg or case.cfg()
    """

    root: Path

    def __post_init__(self) -> None:
        self._models: dict[str, Any] = {}
        self._predictions: dict[str, list[dict]] = {}

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def config_file(self) -> Path:
        return self.root / "config.yaml"

    @property
    def pth(self) -> Path:
        return self.root / "model_final.pth"

    @property
    def pkl(self) -> Path:
        return self.root / "model_final.pkl"

    def load(self, name: str):
        import torch

        return torch.load(self.root / name, weights_only=True)

    @property
    def inputs(self) -> list[dict]:
        return self.load("inputs.pt")

    @property
    def outputs(self) -> list[dict]:
        """detectron2's outputs on :attr:`inputs`."""
        return self.load("outputs.pt")

    def cfg(self):
        """The case's config (``get_cfg()`` merged with its config.yaml), on the CPU."""
        from det.core import get_cfg

        cfg = get_cfg()
        cfg.merge_from_file(str(self.config_file))
        cfg.MODEL.DEVICE = "cpu"
        return cfg

    def build(self, weights: str | Path | None = None, cfg: Any = None):
        """A new model in eval mode from ``cfg`` (default :meth:`cfg`), with every weight from
        ``weights`` ("pth", "pkl" or a path; strict: no missing or unexpected name) when given."""
        import torch

        from det.checkpoint import DetectionCheckpointer
        from det.core import build_model

        torch.manual_seed(1)  # not detectron2's init: every weight must come from the file
        model = build_model(cfg if cfg is not None else self.cfg()).eval()
        if weights is not None:
            path = {"pth": self.pth, "pkl": self.pkl}.get(str(weights), weights)
            DetectionCheckpointer(model).load(str(path), strict=True)
        return model

    def model(self, weights: str = "pth"):
        """:meth:`build` with ``weights``, once per case: tests share it, so they must not change it."""
        if weights not in self._models:
            self._models[weights] = self.build(weights)
        return self._models[weights]

    def predict(self, weights: str = "pth") -> list[dict]:
        """The outputs of :meth:`model` on :attr:`inputs` (no gradients), computed once."""
        import torch

        if weights not in self._predictions:
            with torch.no_grad():
                self._predictions[weights] = self.model(weights)(self.inputs)
        return self._predictions[weights]


_GOLDEN_CASES: dict[str, GoldenCase] = {}


@pytest.fixture(scope="session")
def golden_case(golden_dir: Path):
    """`golden_case("mask_rcnn_R_50_FPN") -> GoldenCase` (one object per case and session)."""

    def get(name: str) -> GoldenCase:
        root = golden_dir / name
        if not root.is_dir():
            pytest.fail(f"golden case {name} not found under {golden_dir}")
        return _GOLDEN_CASES.setdefault(name, GoldenCase(root))

    return get


@pytest.fixture(scope="module")
def golden(request: pytest.FixtureRequest, golden_case) -> GoldenCase:
    """The golden case named by the test module's ``GOLDEN_CASE``."""
    name = getattr(request.module, "GOLDEN_CASE", None)
    if name is None:
        pytest.fail(f"{request.module.__name__} uses the `golden` fixture without a GOLDEN_CASE name")
    return golden_case(name)


@pytest.fixture(scope="module")
def pth_model(golden: GoldenCase):
    """The module's golden model, weights from model_final.pth (shared: do not change it)."""
    return golden.model("pth")


@pytest.fixture(scope="module")
def pth_outputs(golden: GoldenCase) -> list[dict]:
    """:func:`pth_model`'s outputs on the golden inputs."""
    return golden.predict("pth")


def match_golden_instances(ours, golden: dict, *, box_tol: float = 0.05, score_tol: float = 2e-3,
                           mask_iou: float = 0.99, keypoint_tol: float = 0.25,
                           max_unmatched: int = 2) -> list[tuple[int, int]]:
    """Match det's `Instances` (or a dict of its fields) with one image of detectron2's outputs.

    Scores of neighbours can differ by 1 ulp, so order is not trusted: each golden instance is
    paired with an unused one of ours of the same class whose score and box are within tolerance
    (closest box first). Up to `max_unmatched` golden instances may stay unpaired, and only at the
    score cut-off (a near-tie at the top-k boundary swaps which one is kept). Masks (IoU) and
    keypoints (x, y) of paired instances are checked too. Returns the (golden, ours) index pairs.
    """
    import torch

    fields = ours.get_fields() if hasattr(ours, "get_fields") else dict(ours)
    boxes = fields["pred_boxes"]
    boxes = boxes.tensor if hasattr(boxes, "tensor") else torch.as_tensor(boxes)
    scores, classes = fields["scores"], fields["pred_classes"]
    g_boxes, g_scores, g_classes = golden["pred_boxes"], golden["scores"], golden["pred_classes"]
    if tuple(golden["image_size"]) != tuple(ours.image_size if hasattr(ours, "image_size") else golden["image_size"]):
        raise AssertionError(f"image_size {ours.image_size} != golden {golden['image_size']}")
    assert abs(len(scores) - len(g_scores)) <= max_unmatched, (len(scores), len(g_scores))
    box_diff = (g_boxes[:, None, :] - boxes[None, :, :].to(g_boxes.dtype)).abs().amax(dim=2)
    score_diff = (g_scores[:, None] - scores[None, :].to(g_scores.dtype)).abs()
    ok = (box_diff <= box_tol) & (score_diff <= score_tol) & (g_classes[:, None] == classes[None, :])
    used: set[int] = set()
    pairs: list[tuple[int, int]] = []
    unmatched: list[int] = []
    for gi in range(len(g_scores)):
        candidates = [int(j) for j in ok[gi].nonzero().flatten() if int(j) not in used]
        if not candidates:
            unmatched.append(gi)
            continue
        best = min(candidates, key=lambda j: float(box_diff[gi, j]))
        used.add(best)
        pairs.append((gi, best))
    if unmatched:
        cutoff = float(g_scores.min()) if len(g_scores) else 0.0
        far = [gi for gi in unmatched if float(g_scores[gi]) > cutoff + 10 * score_tol]
        detail = [(gi, g_classes[gi].item(), g_scores[gi].item(), g_boxes[gi].tolist()) for gi in unmatched[:5]]
        assert len(unmatched) <= max_unmatched and not far, f"unmatched golden instances: {detail}"
    if "pred_masks" in golden and "pred_masks" in fields:
        for gi, oi in pairs:
            g, o = golden["pred_masks"][gi].bool(), fields["pred_masks"][oi].bool()
            union = (g | o).sum().item()
            iou = (g & o).sum().item() / union if union else 1.0
            assert iou >= mask_iou, f"mask IoU {iou:.4f} < {mask_iou} for golden instance {gi}"
    if "pred_keypoints" in golden and "pred_keypoints" in fields:
        for gi, oi in pairs:
            diff = (golden["pred_keypoints"][gi, :, :2] - fields["pred_keypoints"][oi, :, :2]).abs().max().item()
            assert diff <= keypoint_tol, f"keypoints differ by {diff:.3f} px for golden instance {gi}"
    return pairs


@pytest.fixture(scope="session")
def assert_matches_golden():
    """The instance matcher `match_golden_instances(ours, golden_image_dict, **tolerances)`."""
    return match_golden_instances


# --- A small COCO-format dataset of one's own: what `det train --train-json ...` is given ---------


def write_coco_dataset(root: Path, *, num_train: int = 8, num_val: int = 4, seed: int = 0,
                       width: int = 72, height: int = 64) -> dict[str, Path]:
    """Write a 2-class COCO dataset under ``root``: ``annotations/{train,val}.json`` and
    ``images/{train,val}/`` (PNG train, JPEG val images). Classes "disk" (red, category id 3) and
    "block" (blue, id 7; ids with gaps as in real files), 1-2 objects an image with polygon
    masks. Returns the paths (``train_json``, ``train_images``, ``val_json``, ``val_images``)."""
    import json
    import math
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    categories = [{"id": 3, "name": "disk", "supercategory": "shape"},
                  {"id": 7, "name": "block", "supercategory": "shape"}]
    paths: dict[str, Path] = {}
    ann_id = 1
    for split, count, ext in (("train", num_train, "png"), ("val", num_val, "jpg")):
        image_dir = root / "images" / split
        image_dir.mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            image_id = 100 + i if split == "train" else 500 + i
            image = Image.new("RGB", (width, height), tuple(rng.randrange(90, 150) for _ in range(3)))
            draw = ImageDraw.Draw(image)
            for _ in range(rng.randint(1, 2)):
                cat = rng.choice(categories)
                size = rng.randint(16, 26)
                x0, y0 = rng.uniform(2, width - size - 2), rng.uniform(2, height - size - 2)
                if cat["name"] == "disk":
                    r = size / 2
                    poly = [c for k in range(16) for c in (x0 + r + r * math.cos(2 * math.pi * k / 16),
                                                          y0 + r + r * math.sin(2 * math.pi * k / 16))]
                    color = (220, 40, 30)
                else:
                    poly = [x0, y0, x0 + size, y0, x0 + size, y0 + size, x0, y0 + size]
                    color = (30, 60, 220)
                draw.polygon(poly, fill=color)
                xs, ys = poly[0::2], poly[1::2]
                bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
                annotations.append({"id": ann_id, "image_id": image_id, "category_id": cat["id"],
                                    "bbox": [round(v, 2) for v in bbox], "area": round(bbox[2] * bbox[3], 2),
                                    "segmentation": [[round(v, 2) for v in poly]], "iscrowd": 0})
                ann_id += 1
            file_name = f"{split}_{i:03d}.{ext}"
            image.save(image_dir / file_name, quality=95) if ext == "jpg" else image.save(image_dir / file_name)
            images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        json_file = root / "annotations" / f"{split}.json"
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
        paths[f"{split}_json"], paths[f"{split}_images"] = json_file, image_dir
    return paths


@pytest.fixture(scope="session")
def make_coco_dataset():
    """``make(root, **kwargs)``: :func:`write_coco_dataset` as a fixture."""
    return write_coco_dataset
