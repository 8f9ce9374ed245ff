"""detectron2's model zoo for det: zoo configs by name, their published weights, built models.

    from det import model_zoo
    cfg = model_zoo.get_config("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml", trained=True)
    model = model_zoo.get("COCO-Detection/retinanet_R_50_FPN_1x.yaml", trained=True)

det ships no copy of detectron2's configs: set ``$DET_MODEL_ZOO_CONFIGS`` to a configs folder (e.g.
a detectron2 checkout's ``configs/``), pass ``configs_root=``, or install detectron2.
"""

from det.model_zoo.model_zoo import (
    CONFIGS_ENV_VAR,
    ConfigNotFoundError,
    get,
    get_checkpoint_url,
    get_config,
    get_config_file,
    get_configs_root,
)

__all__ = ["CONFIGS_ENV_VAR", "ConfigNotFoundError", "get", "get_checkpoint_url", "get_config",
           "get_config_file", "get_configs_root"]
