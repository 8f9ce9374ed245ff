"""det plugin declarations of det-core: cheap to import (no torch), names components lazily.

Core's reference ops are not declared here: det.core.layers.ops keeps them as its fallback table,
so plugins' op declarations only ever add faster implementations on top.
"""

from det.core.hookspecs import ComponentDecl, hookimpl

DET_PLUGIN_API_VERSION = 1


@hookimpl
def det_components() -> list[ComponentDecl]:
    return [
        ("META_ARCH", "GeneralizedRCNN", "det.core.modeling.meta_arch:GeneralizedRCNN"),
        ("META_ARCH", "ProposalNetwork", "det.core.modeling.meta_arch:ProposalNetwork"),
        ("ANCHOR_GENERATOR", "DefaultAnchorGenerator", "det.core.modeling.anchor_generator:DefaultAnchorGenerator"),
        ("ANCHOR_GENERATOR", "RotatedAnchorGenerator", "det.core.modeling.anchor_generator:RotatedAnchorGenerator"),
    ]
