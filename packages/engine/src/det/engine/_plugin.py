"""det plugin declarations of det.engine: cheap to import, names components lazily."""

from det.core.hookspecs import CommandDecl, hookimpl

DET_PLUGIN_API_VERSION = 1


@hookimpl
def det_cli_commands() -> list[CommandDecl]:
    return [
        ("train", "train a model from a config file (detectron2's train_net.py)", "det.engine.commands.train:register"),
        ("eval", "evaluate weights on the config's test datasets", "det.engine.commands.eval:register"),
        ("predict", "draw and save a model's predictions on image files", "det.engine.commands.predict:register"),
        ("demo", "train, evaluate and visualize a small Mask R-CNN on synthetic shapes (CPU, minutes)",
         "det.engine.commands.demo:register"),
        ("analyze", "parameters, structure, FLOPs and activations of a config's model (analyze_model.py)",
         "det.engine.commands.analyze:register"),
        ("visualize-data", "draw a dataset's annotations or training batches to PNGs (visualize_data.py)",
         "det.engine.commands.visualize_data:register"),
        ("visualize-json", "draw COCO-format results json beside the ground truth (visualize_json_results.py)",
         "det.engine.commands.visualize_json:register"),
        ("benchmark", "time training, inference or data loading of a config (benchmark.py)",
         "det.engine.commands.benchmark:register"),
    ]
