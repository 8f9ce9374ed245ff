"""Training loop, visualization, test-time augmentation, model analysis and the commands of det
(the data pipeline is det.data, the evaluators det.evaluation; both are re-exported here).

Public names are imported on first use (PEP 562), so ``import det.engine`` stays cheap::

    from det.engine import DatasetCatalog, DatasetMapper, COCOEvaluator, Visualizer
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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

# det-engine's own public names (and DefaultPredictor, detectron2's engine name for core's
# predictor). The public names of det.engine.train, det.data and det.evaluation are det.engine's
# too (``also=`` below): found in those packages' own tables, never copied here.
if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    from det.core.predictor import DefaultPredictor as DefaultPredictor

    # model statistics (detectron2's utils.analysis)
    from det.engine.analysis import FlopCountAnalysis as FlopCountAnalysis
    from det.engine.analysis import activation_count_operators as activation_count_operators
    from det.engine.analysis import flop_count_operators as flop_count_operators
    from det.engine.analysis import parameter_count as parameter_count
    from det.engine.analysis import parameter_count_table as parameter_count_table
    from det.engine.demo import run_demo as run_demo

    # test-time augmentation (detectron2's modeling.test_time_augmentation)
    from det.engine.test_time_augmentation import GeneralizedRCNNWithTTA as GeneralizedRCNNWithTTA

    # detectron2's engine.hooks and utils.comm (submodules of det.engine.train); launch is the
    # function here (in det.engine.train the name is its submodule's)
    from det.engine.train import comm as comm
    from det.engine.train import hooks as hooks
    from det.engine.train.launch import launch as launch
    from det.engine.visualizer import ColorMode as ColorMode
    from det.engine.visualizer import VisImage as VisImage
    from det.engine.visualizer import Visualizer as Visualizer

__getattr__, __dir__ = lazy_exports(
    __name__, also=("det.engine.train", "det.data", "det.evaluation"), public=("__version__",)
)
