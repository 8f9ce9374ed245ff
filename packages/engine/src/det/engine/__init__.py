"""Training loop, visualization, test-time augmentation, model analysis and the commands of det
(the data pipeline is det.data, the evaluators det.evaluation; both are re-exported here).

Public names are imported on first use (PEP 562), so ``import det.engine`` stays cheap::

    from det.engine import DatasetCatalog, DatasetMapper, COCOEvaluator, Visualizer
"""

from __future__ import annotations

from det.core.lazy import alias_package, lazy_exports
from det.engine.version import __version__  # noqa: F401 (public, below)

# The data pipeline and the evaluators moved to det-data and det-evaluation; their old paths keep
# working for one release as aliases of the same modules.
alias_package(
    "det.engine.data", "det.data", warning="det.engine.data moved to det.data (distribution det-data); import det.data"
)
alias_package(
    "det.engine.evaluation",
    "det.evaluation",
    warning="det.engine.evaluation moved to det.evaluation (distribution det-evaluation); import det.evaluation",
)

# name -> module that defines it, for det-engine's own modules (and DefaultPredictor, detectron2's
# engine name for core's predictor). The public names of det.engine.train, det.data and
# det.evaluation are det.engine's too: found in those packages' own tables, never copied here.
_LAZY = {
    # test-time augmentation (detectron2's modeling.test_time_augmentation)
    "GeneralizedRCNNWithTTA": "det.engine.test_time_augmentation",
    # visualization
    "Visualizer": "det.engine.visualizer",
    "ColorMode": "det.engine.visualizer",
    "VisImage": "det.engine.visualizer",
    # detectron2's engine.hooks and utils.comm; launch is the function (in det.engine.train the
    # name is its submodule's)
    "hooks": "det.engine.train",
    "comm": "det.engine.train",
    "launch": "det.engine.train.launch",
    "DefaultPredictor": "det.core.predictor",
    # model statistics (detectron2's utils.analysis)
    "parameter_count": "det.engine.analysis",
    "parameter_count_table": "det.engine.analysis",
    "flop_count_operators": "det.engine.analysis",
    "activation_count_operators": "det.engine.analysis",
    "run_demo": "det.engine.demo",
}

__getattr__, __dir__ = lazy_exports(
    __name__, _LAZY, also=("det.engine.train", "det.data", "det.evaluation"), public=("__version__",)
)
