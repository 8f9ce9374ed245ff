"""Which trained model detectron2 published for each of its model-zoo configs (data).

``PUBLISHED_CHECKPOINTS[folder][config name]`` is the ``<model id>/<file>`` part of the URL of
the weights detectron2 trained with ``configs/<folder>/<config name>.yaml`` (``.py`` for the
LazyConfig ``new_baselines``); the full URL is
``CHECKPOINT_URL_PREFIX + folder/config name + "/" + that part``. These are facts about files on
detectron2's download server, listed as detectron2's ``model_zoo.py`` lists them; det serves no
weights of its own.
"""

from __future__ import annotations

__all__ = ["CHECKPOINT_URL_PREFIX", "PUBLISHED_CHECKPOINTS", "published_names"]

CHECKPOINT_URL_PREFIX = "https://dl.fbaipublicfiles.com/detectron2/"

PUBLISHED_CHECKPOINTS: dict[str, dict[str, str]] = {
    "COCO-Detection": {
        # Faster R-CNN
        "faster_rcnn_R_50_C4_1x": "137257644/model_final_721ade.pkl",
        "faster_rcnn_R_50_DC5_1x": "137847829/model_final_51d356.pkl",
        "faster_rcnn_R_50_FPN_1x": "137257794/model_final_b275ba.pkl",
        "faster_rcnn_R_50_C4_3x": "137849393/model_final_f97cb7.pkl",
        "faster_rcnn_R_50_DC5_3x": "137849425/model_final_68d202.pkl",
        "faster_rcnn_R_50_FPN_3x": "137849458/model_final_280758.pkl",
        "faster_rcnn_R_101_C4_3x": "138204752/model_final_298dad.pkl",
        "faster_rcnn_R_101_DC5_3x": "138204841/model_final_3e0943.pkl",
        "faster_rcnn_R_101_FPN_3x": "137851257/model_final_f6e8b1.pkl",
        "faster_rcnn_X_101_32x8d_FPN_3x": "139173657/model_final_68b088.pkl",
        # RetinaNet
        "retinanet_R_50_FPN_1x": "190397773/model_final_bfca0b.pkl",
        "retinanet_R_50_FPN_3x": "190397829/model_final_5bd44e.pkl",
        "retinanet_R_101_FPN_3x": "190397697/model_final_971ab9.pkl",
        # RPN alone, and Fast R-CNN on precomputed proposals
        "rpn_R_50_C4_1x": "137258005/model_final_450694.pkl",
        "rpn_R_50_FPN_1x": "137258492/model_final_02ce48.pkl",
        "fast_rcnn_R_50_FPN_1x": "137635226/model_final_e5f7ce.pkl",
    },
    "COCO-InstanceSegmentation": {
        "mask_rcnn_R_50_C4_1x": "137259246/model_final_9243eb.pkl",
        "mask_rcnn_R_50_DC5_1x": "137260150/model_final_4f86c3.pkl",
        "mask_rcnn_R_50_FPN_1x": "137260431/model_final_a54504.pkl",
        "mask_rcnn_R_50_C4_3x": "137849525/model_final_4ce675.pkl",
        "mask_rcnn_R_50_DC5_3x": "137849551/model_final_84107b.pkl",
        "mask_rcnn_R_50_FPN_3x": "137849600/model_final_f10217.pkl",
        "mask_rcnn_R_101_C4_3x": "138363239/model_final_a2914c.pkl",
        "mask_rcnn_R_101_DC5_3x": "138363294/model_final_0464b7.pkl",
        "mask_rcnn_R_101_FPN_3x": "138205316/model_final_a3ec72.pkl",
        "mask_rcnn_X_101_32x8d_FPN_3x": "139653917/model_final_2d9806.pkl",
    },
    # Large-scale jitter, long schedules: LazyConfig (.py) files, which det does not read.
    "new_baselines": {
        "mask_rcnn_R_50_FPN_100ep_LSJ": "42047764/model_final_bb69de.pkl",
        "mask_rcnn_R_50_FPN_200ep_LSJ": "42047638/model_final_89a8d3.pkl",
        "mask_rcnn_R_50_FPN_400ep_LSJ": "42019571/model_final_14d201.pkl",
        "mask_rcnn_R_101_FPN_100ep_LSJ": "42025812/model_final_4f7b58.pkl",
        "mask_rcnn_R_101_FPN_200ep_LSJ": "42131867/model_final_0bb7ae.pkl",
        "mask_rcnn_R_101_FPN_400ep_LSJ": "42073830/model_final_f96b26.pkl",
        "mask_rcnn_regnetx_4gf_dds_FPN_100ep_LSJ": "42047771/model_final_b7fbab.pkl",
        "mask_rcnn_regnetx_4gf_dds_FPN_200ep_LSJ": "42132721/model_final_5d87c1.pkl",
        "mask_rcnn_regnetx_4gf_dds_FPN_400ep_LSJ": "42025447/model_final_f1362d.pkl",
        "mask_rcnn_regnety_4gf_dds_FPN_100ep_LSJ": "42047784/model_final_6ba57e.pkl",
        "mask_rcnn_regnety_4gf_dds_FPN_200ep_LSJ": "42047642/model_final_27b9c1.pkl",
        "mask_rcnn_regnety_4gf_dds_FPN_400ep_LSJ": "42045954/model_final_ef3a80.pkl",
    },
    "COCO-Keypoints": {
        "keypoint_rcnn_R_50_FPN_1x": "137261548/model_final_04e291.pkl",
        "keypoint_rcnn_R_50_FPN_3x": "137849621/model_final_a6e10b.pkl",
        "keypoint_rcnn_R_101_FPN_3x": "138363331/model_final_997cc7.pkl",
        "keypoint_rcnn_X_101_32x8d_FPN_3x": "139686956/model_final_5ad38f.pkl",
    },
    "COCO-PanopticSegmentation": {
        "panoptic_fpn_R_50_1x": "139514544/model_final_dbfeb4.pkl",
        "panoptic_fpn_R_50_3x": "139514569/model_final_c10459.pkl",
        "panoptic_fpn_R_101_3x": "139514519/model_final_cafdb1.pkl",
    },
    "LVISv0.5-InstanceSegmentation": {
        "mask_rcnn_R_50_FPN_1x": "144219072/model_final_571f7c.pkl",
        "mask_rcnn_R_101_FPN_1x": "144219035/model_final_824ab5.pkl",
        "mask_rcnn_X_101_32x8d_FPN_1x": "144219108/model_final_5e3439.pkl",
    },
    "Cityscapes": {
        "mask_rcnn_R_50_FPN": "142423278/model_final_af9cf5.pkl",
    },
    "PascalVOC-Detection": {
        "faster_rcnn_R_50_C4": "142202221/model_final_b1acc2.pkl",
    },
    "Misc": {
        "mask_rcnn_R_50_FPN_1x_dconv_c3-c5": "138602867/model_final_65c703.pkl",
        "mask_rcnn_R_50_FPN_3x_dconv_c3-c5": "144998336/model_final_821d0b.pkl",
        "cascade_mask_rcnn_R_50_FPN_1x": "138602847/model_final_e9d89b.pkl",
        "cascade_mask_rcnn_R_50_FPN_3x": "144998488/model_final_480dd8.pkl",
        "mask_rcnn_R_50_FPN_3x_syncbn": "169527823/model_final_3b3c51.pkl",
        "mask_rcnn_R_50_FPN_3x_gn": "138602888/model_final_dc5d9e.pkl",
        "scratch_mask_rcnn_R_50_FPN_3x_gn": "138602908/model_final_01ca85.pkl",
        "scratch_mask_rcnn_R_50_FPN_9x_gn": "183808979/model_final_da7b4c.pkl",
        "scratch_mask_rcnn_R_50_FPN_9x_syncbn": "184226666/model_final_5ce33e.pkl",
        "panoptic_fpn_R_101_dconv_cascade_gn_3x": "139797668/model_final_be35db.pkl",
        # the one published checkpoint that is not a model_final
        "cascade_mask_rcnn_X_152_32x8d_FPN_IN5k_gn_dconv": "18131413/model_0039999_e76410.pkl",
    },
    # Detectron1's settings (no augmentation), for comparing the two.
    "Detectron1-Comparisons": {
        "faster_rcnn_R_50_FPN_noaug_1x": "137781054/model_final_7ab50c.pkl",
        "mask_rcnn_R_50_FPN_noaug_1x": "137781281/model_final_62ca52.pkl",
        "keypoint_rcnn_R_50_FPN_1x": "137781195/model_final_cce136.pkl",
    },
}


def published_names() -> list[str]:
    """Every config with a published checkpoint, as ``"<folder>/<config name>"`` (no suffix)."""
    return [f"{folder}/{name}" for folder, names in PUBLISHED_CHECKPOINTS.items() for name in names]
