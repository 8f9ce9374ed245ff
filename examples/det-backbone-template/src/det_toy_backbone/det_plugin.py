"""The plugin module named by the ``det`` entry point: declarations only, no torch import."""

from det.core.hookspecs import hookimpl

DET_PLUGIN_API_VERSION = 1


@hookimpl
def det_components():
    # (kind, name used in configs, "module:attribute" imported only when built)
    return [("BACKBONE", "ToyBackbone", "det_toy_backbone.toy:ToyBackbone")]


@hookimpl
def det_extend_config(cfg):
    # Only add keys (before the user's YAML is merged), never change standard ones.
    node = type(cfg)()
    node.CHANNELS = 16
    node.OUT_FEATURES = ["toy2", "toy3", "toy4", "toy5"]
    cfg.MODEL.TOY_BACKBONE = node
