"""det plugin declarations of det.core: cheap to import, names components lazily."""

from det.core.hookspecs import hookimpl

DET_PLUGIN_API_VERSION = 1


@hookimpl
def det_components():
    return []
