"""det plugin declarations of det.export: the ``det export`` command, declared lazily."""

from det.core.hookspecs import CommandDecl, hookimpl

DET_PLUGIN_API_VERSION = 1


@hookimpl
def det_cli_commands() -> list[CommandDecl]:
    return [("export", "export a model to torch.export (.pt2) or ONNX (.onnx)", "det.export.cli:register")]
