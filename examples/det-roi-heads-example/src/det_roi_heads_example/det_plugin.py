"""The plugin module named by the ``det`` entry point: declarations only, no torch import."""

from det.core.hookspecs import hookimpl

DET_PLUGIN_API_VERSION = 1


@hookimpl
def det_components():
    # (kind, name used in configs, "module:attribute" imported only when built)
    return [
        ("ROI_HEADS", "ExampleROIHeads", "det_roi_heads_example.heads:ExampleROIHeads"),
        ("ROI_BOX_HEAD", "GatedMLPBoxHead", "det_roi_heads_example.heads:GatedMLPBoxHead"),
    ]


@hookimpl
def det_extend_config(cfg):
    # Only add keys (before the user's YAML is merged), never change standard ones.
    node = type(cfg)()
    node.HIDDEN_DIM = 64
    cfg.MODEL.EXAMPLE_ROI_HEADS = node
