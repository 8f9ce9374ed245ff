"""det.engine.data and det.engine.evaluation moved to det-data / det-evaluation; the old import
paths are aliases of the very same modules for one release, and det.engine re-exports the moved
packages' names (lazily: tests/test_lazy_exports.py checks every lazy package)."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-W", "always::DeprecationWarning", "-c", code],
                         capture_output=True, text=True, check=True)
    return out.stdout + out.stderr


def test_old_paths_are_the_same_modules_and_objects():
    out = _run(
        "import det.engine.data.transforms as old_t, det.data.transforms as new_t\n"
        "from det.engine.data.catalog import DatasetCatalog as A\n"
        "from det.data import DatasetCatalog as B\n"
        "import det.engine.evaluation.coco_evaluation as old_e, det.evaluation.coco_evaluation as new_e\n"
        "import det.engine.data.datasets.coco as c\n"
        "assert old_t is new_t and A is B and old_e is new_e, 'copies'\n"
        "assert c.__name__ == 'det.data.datasets.coco', c.__name__\n"
        "import sys; assert sys.modules['det.engine.data'] is sys.modules['det.data']\n"
        "print('same')\n"
    )
    assert "same" in out
    assert "det.engine.data moved to det.data (distribution det-data)" in out
    assert "det.engine.evaluation moved to det.evaluation (distribution det-evaluation)" in out


def test_new_paths_do_not_warn_and_import_no_engine():
    out = _run("import sys, det.data, det.evaluation; print(sorted(m for m in sys.modules if m.startswith('det.engine')))")
    assert "moved to" not in out
    assert out.strip().endswith("[]")


def test_det_engine_reexports_data_evaluation_and_training_names_lazily():
    out = _run(
        "import sys, det.engine\n"
        "assert 'torch' not in sys.modules and det.engine.__version__\n"
        "from det.engine import DatasetCatalog, COCOEvaluator, DefaultTrainer, Visualizer, hooks\n"
        "import det.data, det.evaluation, det.engine.train\n"
        "assert DatasetCatalog is det.data.DatasetCatalog and COCOEvaluator is det.evaluation.COCOEvaluator\n"
        "assert DefaultTrainer is det.engine.train.DefaultTrainer and hooks is det.engine.train.hooks\n"
        "names = set(det.engine.__all__)\n"
        "assert set(det.evaluation.__all__) <= names and {'DatasetMapper', 'load_lvis_json', 'launch'} <= names\n"
        "assert not {'transforms', 'datasets', 'solver'} & names  # submodules of the others stay theirs\n"
        "print('shapes_val' in DatasetCatalog)\n"
    )
    assert out.strip().splitlines()[-1] == "True"
