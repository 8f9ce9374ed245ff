"""Metadata of detectron2's builtin datasets: class names, dataset ids, colours, keypoints.

Only data and the functions that turn it into ``MetadataCatalog`` entries; nothing here reads a
file. The tables are facts about the datasets (COCO's category ids and panopticapi's colours,
the COCO person keypoints, Pascal VOC, Cityscapes and ADE20K class names) and the metadata keys
follow detectron2, so a model trained with detectron2 finds the class names it expects::

    meta = get_builtin_metadata("coco")
    meta["thing_classes"][0], meta["thing_dataset_id_to_contiguous_id"][90]  # ('person', 79)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ADE20K_SEM_SEG_CATEGORIES",
    "CITYSCAPES_CATEGORIES",
    "COCO_CATEGORIES",
    "COCO_PERSON_KEYPOINT_FLIP_MAP",
    "COCO_PERSON_KEYPOINT_NAMES",
    "KEYPOINT_CONNECTION_RULES",
    "VOC_CLASS_NAMES",
    "get_builtin_metadata",
]

# COCO's 133 panoptic categories: (dataset id, name, isthing, RGB colour), in id order. The 80
# "thing" ones are the instance-detection categories (ids 1..90 with gaps); the colours are the
# ones panopticapi's panoptic_coco_categories.json gives.
_COCO_TABLE: tuple[tuple[int, str, int, tuple[int, int, int]], ...] = (
    (1, "person", 1, (220, 20, 60)),
    (2, "bicycle", 1, (119, 11, 32)),
    (3, "car", 1, (0, 0, 142)),
    (4, "motorcycle", 1, (0, 0, 230)),
    (5, "airplane", 1, (106, 0, 228)),
    (6, "bus", 1, (0, 60, 100)),
    (7, "train", 1, (0, 80, 100)),
    (8, "truck", 1, (0, 0, 70)),
    (9, "boat", 1, (0, 0, 192)),
    (10, "traffic light", 1, (250, 170, 30)),
    (11, "fire hydrant", 1, (100, 170, 30)),
    (13, "stop sign", 1, (220, 220, 0)),
    (14, "parking meter", 1, (175, 116, 175)),
    (15, "bench", 1, (250, 0, 30)),
    (16, "bird", 1, (165, 42, 42)),
    (17, "cat", 1, (255, 77, 255)),
    (18, "dog", 1, (0, 226, 252)),
    (19, "horse", 1, (182, 182, 255)),
    (20, "sheep", 1, (0, 82, 0)),
    (21, "cow", 1, (120, 166, 157)),
    (22, "elephant", 1, (110, 76, 0)),
    (23, "bear", 1, (174, 57, 255)),
    (24, "zebra", 1, (199, 100, 0)),
    (25, "giraffe", 1, (72, 0, 118)),
    (27, "backpack", 1, (255, 179, 240)),
    (28, "umbrella", 1, (0, 125, 92)),
    (31, "handbag", 1, (209, 0, 151)),
    (32, "tie", 1, (188, 208, 182)),
    (33, "suitcase", 1, (0, 220, 176)),
    (34, "frisbee", 1, (255, 99, 164)),
    (35, "skis", 1, (92, 0, 73)),
    (36, "snowboard", 1, (133, 129, 255)),
    (37, "sports ball", 1, (78, 180, 255)),
    (38, "kite", 1, (0, 228, 0)),
    (39, "baseball bat", 1, (174, 255, 243)),
    (40, "baseball glove", 1, (45, 89, 255)),
    (41, "skateboard", 1, (134, 134, 103)),
    (42, "surfboard", 1, (145, 148, 174)),
    (43, "tennis racket", 1, (255, 208, 186)),
    (44, "bottle", 1, (197, 226, 255)),
    (46, "wine glass", 1, (171, 134, 1)),
    (47, "cup", 1, (109, 63, 54)),
    (48, "fork", 1, (207, 138, 255)),
    (49, "knife", 1, (151, 0, 95)),
    (50, "spoon", 1, (9, 80, 61)),
    (51, "bowl", 1, (84, 105, 51)),
    (52, "banana", 1, (74, 65, 105)),
    (53, "apple", 1, (166, 196, 102)),
    (54, "sandwich", 1, (208, 195, 210)),
    (55, "orange", 1, (255, 109, 65)),
    (56, "broccoli", 1, (0, 143, 149)),
    (57, "carrot", 1, (179, 0, 194)),
    (58, "hot dog", 1, (209, 99, 106)),
    (59, "pizza", 1, (5, 121, 0)),
    (60, "donut", 1, (227, 255, 205)),
    (61, "cake", 1, (147, 186, 208)),
    (62, "chair", 1, (153, 69, 1)),
    (63, "couch", 1, (3, 95, 161)),
    (64, "potted plant", 1, (163, 255, 0)),
    (65, "bed", 1, (119, 0, 170)),
    (67, "dining table", 1, (0, 182, 199)),
    (70, "toilet", 1, (0, 165, 120)),
    (72, "tv", 1, (183, 130, 88)),
    (73, "laptop", 1, (95, 32, 0)),
    (74, "mouse", 1, (130, 114, 135)),
    (75, "remote", 1, (110, 129, 133)),
    (76, "keyboard", 1, (166, 74, 118)),
    (77, "cell phone", 1, (219, 142, 185)),
    (78, "microwave", 1, (79, 210, 114)),
    (79, "oven", 1, (178, 90, 62)),
    (80, "toaster", 1, (65, 70, 15)),
    (81, "sink", 1, (127, 167, 115)),
    (82, "refrigerator", 1, (59, 105, 106)),
    (84, "book", 1, (142, 108, 45)),
    (85, "clock", 1, (196, 172, 0)),
    (86, "vase", 1, (95, 54, 80)),
    (87, "scissors", 1, (128, 76, 255)),
    (88, "teddy bear", 1, (201, 57, 1)),
    (89, "hair drier", 1, (246, 0, 122)),
    (90, "toothbrush", 1, (191, 162, 208)),
    (92, "banner", 0, (255, 255, 128)),
    (93, "blanket", 0, (147, 211, 203)),
    (95, "bridge", 0, (150, 100, 100)),
    (100, "cardboard", 0, (168, 171, 172)),
    (107, "counter", 0, (146, 112, 198)),
    (109, "curtain", 0, (210, 170, 100)),
    (112, "door-stuff", 0, (92, 136, 89)),
    (118, "floor-wood", 0, (218, 88, 184)),
    (119, "flower", 0, (241, 129, 0)),
    (122, "fruit", 0, (217, 17, 255)),
    (125, "gravel", 0, (124, 74, 181)),
    (128, "house", 0, (70, 70, 70)),
    (130, "light", 0, (255, 228, 255)),
    (133, "mirror-stuff", 0, (154, 208, 0)),
    (138, "net", 0, (193, 0, 92)),
    (141, "pillow", 0, (76, 91, 113)),
    (144, "platform", 0, (255, 180, 195)),
    (145, "playingfield", 0, (106, 154, 176)),
    (147, "railroad", 0, (230, 150, 140)),
    (148, "river", 0, (60, 143, 255)),
    (149, "road", 0, (128, 64, 128)),
    (151, "roof", 0, (92, 82, 55)),
    (154, "sand", 0, (254, 212, 124)),
    (155, "sea", 0, (73, 77, 174)),
    (156, "shelf", 0, (255, 160, 98)),
    (159, "snow", 0, (255, 255, 255)),
    (161, "stairs", 0, (104, 84, 109)),
    (166, "tent", 0, (169, 164, 131)),
    (168, "towel", 0, (225, 199, 255)),
    (171, "wall-brick", 0, (137, 54, 74)),
    (175, "wall-stone", 0, (135, 158, 223)),
    (176, "wall-tile", 0, (7, 246, 231)),
    (177, "wall-wood", 0, (107, 255, 200)),
    (178, "water-other", 0, (58, 41, 149)),
    (180, "window-blind", 0, (183, 121, 142)),
    (181, "window-other", 0, (255, 73, 97)),
    (184, "tree-merged", 0, (107, 142, 35)),
    (185, "fence-merged", 0, (190, 153, 153)),
    (186, "ceiling-merged", 0, (146, 139, 141)),
    (187, "sky-other-merged", 0, (70, 130, 180)),
    (188, "cabinet-merged", 0, (134, 199, 156)),
    (189, "table-merged", 0, (209, 226, 140)),
    (190, "floor-other-merged", 0, (96, 36, 108)),
    (191, "pavement-merged", 0, (96, 96, 96)),
    (192, "mountain-merged", 0, (64, 170, 64)),
    (193, "grass-merged", 0, (152, 251, 152)),
    (194, "dirt-merged", 0, (208, 229, 228)),
    (195, "paper-merged", 0, (206, 186, 171)),
    (196, "food-other-merged", 0, (152, 161, 64)),
    (197, "building-other-merged", 0, (116, 112, 0)),
    (198, "rock-merged", 0, (0, 114, 143)),
    (199, "wall-other-merged", 0, (102, 102, 156)),
    (200, "rug-merged", 0, (250, 141, 255)),
)

#: detectron2's ``COCO_CATEGORIES``: one dict per panoptic category, ``{"color": [r, g, b],
#: "isthing": 0|1, "id": int, "name": str}``.
COCO_CATEGORIES: list[dict[str, Any]] = [
    {"color": list(color), "isthing": isthing, "id": cid, "name": name}
    for cid, name, isthing, color in _COCO_TABLE
]

COCO_PERSON_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye", "right_eye",
    "left_ear", "right_ear",
    "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
    "left_hip", "right_hip",
    "left_knee", "right_knee",
    "left_ankle", "right_ankle",
)  # fmt: skip

#: Keypoints that swap places when the image is flipped horizontally.
COCO_PERSON_KEYPOINT_FLIP_MAP: tuple[tuple[str, str], ...] = tuple(
    (f"left_{part}", f"right_{part}")
    for part in ("eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle")
)

#: (keypoint, keypoint, RGB colour) of the lines the Visualizer draws between keypoints.
KEYPOINT_CONNECTION_RULES: list[tuple[str, str, tuple[int, int, int]]] = [
    # face
    ("left_ear", "left_eye", (102, 204, 255)),
    ("right_ear", "right_eye", (51, 153, 255)),
    ("left_eye", "nose", (102, 0, 204)),
    ("nose", "right_eye", (51, 102, 255)),
    # arms
    ("left_shoulder", "right_shoulder", (255, 128, 0)),
    ("left_shoulder", "left_elbow", (153, 255, 204)),
    ("right_shoulder", "right_elbow", (128, 229, 255)),
    ("left_elbow", "left_wrist", (153, 255, 153)),
    ("right_elbow", "right_wrist", (102, 255, 224)),
    # legs
    ("left_hip", "right_hip", (255, 102, 0)),
    ("left_hip", "left_knee", (255, 255, 77)),
    ("right_hip", "right_knee", (153, 255, 204)),
    ("left_knee", "left_ankle", (191, 255, 128)),
    ("right_knee", "right_ankle", (255, 195, 77)),
]

#: Pascal VOC's 20 classes, in the order of the devkit (and of detectron2's contiguous ids).
VOC_CLASS_NAMES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip

# Cityscapes' 19 evaluated classes: (label id, train id, name, isthing, colour) from
# cityscapesScripts' labels.py.
_CITYSCAPES_TABLE: tuple[tuple[int, int, str, int, tuple[int, int, int]], ...] = (
    (7, 0, "road", 0, (128, 64, 128)),
    (8, 1, "sidewalk", 0, (244, 35, 232)),
    (11, 2, "building", 0, (70, 70, 70)),
    (12, 3, "wall", 0, (102, 102, 156)),
    (13, 4, "fence", 0, (190, 153, 153)),
    (17, 5, "pole", 0, (153, 153, 153)),
    (19, 6, "traffic light", 0, (250, 170, 30)),
    (20, 7, "traffic sign", 0, (220, 220, 0)),
    (21, 8, "vegetation", 0, (107, 142, 35)),
    (22, 9, "terrain", 0, (152, 251, 152)),
    (23, 10, "sky", 0, (70, 130, 180)),
    (24, 11, "person", 1, (220, 20, 60)),
    (25, 12, "rider", 1, (255, 0, 0)),
    (26, 13, "car", 1, (0, 0, 142)),
    (27, 14, "truck", 1, (0, 0, 70)),
    (28, 15, "bus", 1, (0, 60, 100)),
    (31, 16, "train", 1, (0, 80, 100)),
    (32, 17, "motorcycle", 1, (0, 0, 230)),
    (33, 18, "bicycle", 1, (119, 11, 32)),
)

#: detectron2's ``CITYSCAPES_CATEGORIES``: ``{"color", "isthing", "id", "trainId", "name"}``.
CITYSCAPES_CATEGORIES: list[dict[str, Any]] = [
    {"color": color, "isthing": isthing, "id": lid, "trainId": train_id, "name": name}
    for lid, train_id, name, isthing, color in _CITYSCAPES_TABLE
]

#: ADE20K SceneParsing's 150 classes, as detectron2 names them (``prepare_ade20k_sem_seg``
#: labels: 0..149, 255 = ignore). The strings are detectron2's, trailing space of "window "
#: included, so metadata compares equal to a detectron2 model's.
ADE20K_SEM_SEG_CATEGORIES: list[str] = [
    "wall", "building", "sky", "floor", "tree", "ceiling", "road, route", "bed", "window ",
    "grass", "cabinet", "sidewalk, pavement", "person", "earth, ground", "door", "table",
    "mountain, mount", "plant", "curtain", "chair", "car", "water", "painting, picture", "sofa",
    "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock, stone", "wardrobe, closet, press", "lamp", "tub", "rail", "cushion",
    "base, pedestal, stand", "box", "column, pillar", "signboard, sign",
    "chest of drawers, chest, bureau, dresser", "counter", "sand", "sink", "skyscraper",
    "fireplace", "refrigerator, icebox", "grandstand, covered stand", "path", "stairs", "runway",
    "case, display case, showcase, vitrine", "pool table, billiard table, snooker table",
    "pillow", "screen door, screen", "stairway, staircase", "river", "bridge, span", "bookcase",
    "blind, screen", "coffee table", "toilet, can, commode, crapper, pot, potty, stool, throne",
    "flower", "book", "hill", "bench", "countertop", "stove", "palm, palm tree",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine",
    "hovel, hut, hutch, shack, shanty", "bus", "towel", "light", "truck", "tower", "chandelier",
    "awning, sunshade, sunblind", "street lamp", "booth", "tv", "plane", "dirt track", "clothes",
    "pole", "land, ground, soil", "bannister, banister, balustrade, balusters, handrail",
    "escalator, moving staircase, moving stairway", "ottoman, pouf, pouffe, puff, hassock",
    "bottle", "buffet, counter, sideboard", "poster, posting, placard, notice, bill, card",
    "stage", "van", "ship", "fountain",
    "conveyer belt, conveyor belt, conveyer, conveyor, transporter", "canopy",
    "washer, automatic washer, washing machine", "plaything, toy", "pool", "stool",
    "barrel, cask", "basket, handbasket", "falls", "tent", "bag", "minibike, motorbike", "cradle",
    "oven", "ball", "food, solid food", "step, stair", "tank, storage tank", "trade name",
    "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket, cover",
    "sculpture", "hood, exhaust hood", "sconce", "vase", "traffic light", "tray", "trash can",
    "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
    "glass, drinking glass", "clock", "flag",
]  # fmt: skip

# The colour detectron2 gives the extra "things" class of the separated panoptic setting.
_SEPARATED_THINGS_COLOR = [82, 18, 128]


def _coco_instances_meta() -> dict[str, Any]:
    things = [c for c in COCO_CATEGORIES if c["isthing"]]
    return {
        # contiguous id i = the i-th smallest COCO id (what load_coco_json computes from a json)
        "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(things)},
        "thing_classes": [c["name"] for c in things],
        "thing_colors": [list(c["color"]) for c in things],
    }


def _coco_panoptic_separated_meta() -> dict[str, Any]:
    """Panoptic FPN's setting: 80 thing classes as in COCO instances, and a semantic head over
    54 classes, 0 = "things" (every thing pixel) and 1..53 = the stuff categories."""
    stuff = [c for c in COCO_CATEGORIES if not c["isthing"]]
    stuff_map = {c["id"]: i + 1 for i, c in enumerate(stuff)}
    stuff_map[0] = 0  # the semantic PNGs label thing pixels 0
    meta = {
        "stuff_dataset_id_to_contiguous_id": stuff_map,
        # "wall-other-merged" -> "wall": the suffixes say how COCO-stuff was merged, not what it is
        "stuff_classes": ["things"] + [c["name"].replace("-other", "").replace("-merged", "") for c in stuff],
        "stuff_colors": [list(_SEPARATED_THINGS_COLOR)] + [list(c["color"]) for c in stuff],
    }
    meta.update(_coco_instances_meta())
    return meta


def _coco_panoptic_standard_meta() -> dict[str, Any]:
    """One contiguous id space over all 133 categories (thing and stuff alike, in COCO id
    order); ``thing_*`` and ``stuff_*`` both list all 133 names/colours, as detectron2 does so
    that its Visualizer can draw either kind from either list."""
    names = [c["name"] for c in COCO_CATEGORIES]
    colors = [list(c["color"]) for c in COCO_CATEGORIES]
    thing_map: dict[int, int] = {}
    stuff_map: dict[int, int] = {}
    for i, c in enumerate(COCO_CATEGORIES):
        (thing_map if c["isthing"] else stuff_map)[c["id"]] = i
    return {
        "thing_classes": list(names),
        "thing_colors": [list(c) for c in colors],
        "stuff_classes": list(names),
        "stuff_colors": colors,
        "thing_dataset_id_to_contiguous_id": thing_map,
        "stuff_dataset_id_to_contiguous_id": stuff_map,
    }


def _coco_person_meta() -> dict[str, Any]:
    return {
        "thing_classes": ["person"],
        "keypoint_names": COCO_PERSON_KEYPOINT_NAMES,
        "keypoint_flip_map": COCO_PERSON_KEYPOINT_FLIP_MAP,
        "keypoint_connection_rules": list(KEYPOINT_CONNECTION_RULES),
    }


def _cityscapes_meta() -> dict[str, Any]:
    # The semantic task predicts all 19 train ids (things included); the instance task the 8 things.
    return {
        "thing_classes": [c["name"] for c in CITYSCAPES_CATEGORIES if c["isthing"]],
        "stuff_classes": [c["name"] for c in CITYSCAPES_CATEGORIES],
    }


def _pascal_voc_meta() -> dict[str, Any]:
    return {"thing_classes": list(VOC_CLASS_NAMES)}


def _ade20k_sem_seg_meta() -> dict[str, Any]:
    return {"stuff_classes": list(ADE20K_SEM_SEG_CATEGORIES)}


_BUILDERS = {
    "coco": _coco_instances_meta,
    "coco_person": _coco_person_meta,
    "coco_panoptic_separated": _coco_panoptic_separated_meta,
    "coco_panoptic_standard": _coco_panoptic_standard_meta,
    "cityscapes": _cityscapes_meta,
    "pascal_voc": _pascal_voc_meta,
    "ade20k_sem_seg": _ade20k_sem_seg_meta,
}


def get_builtin_metadata(dataset_name: str) -> dict[str, Any]:
    """A fresh metadata dict for one of detectron2's builtin dataset families: ``"coco"``,
    ``"coco_person"``, ``"coco_panoptic_separated"``, ``"coco_panoptic_standard"``,
    ``"cityscapes"``, and det's additions ``"pascal_voc"`` and ``"ade20k_sem_seg"``.
    Callers may modify the result."""
    try:
        builder = _BUILDERS[dataset_name]
    except KeyError:
        raise KeyError(
            f"No built-in metadata for dataset {dataset_name!r}; known: {', '.join(_BUILDERS)}"
        ) from None
    return builder()


# detectron2's name, which code ported from it imports.
_get_builtin_metadata = get_builtin_metadata
