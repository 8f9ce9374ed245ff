"""The ``det`` subcommands of det-engine: ``train``, ``eval``, ``predict`` and ``demo``, and
detectron2's other tools: ``analyze``, ``visualize-data``, ``visualize-json`` and ``benchmark``.

Each module has ``register(parser) -> run`` (the ``det_cli_commands`` interface of det-core)
and a ``main`` that does the work and can be called from Python.
"""
