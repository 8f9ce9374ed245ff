"""The ``det`` command: ``det plugins`` plus every subcommand that plugins declare.

Subcommands come from the ``det_cli_commands`` hook as (name, help, "module:attribute"); the
module is imported only when that command runs or shows its help, so ``det --help`` and
``det plugins`` stay fast and never import torch.

    det plugins            # distributions, components per kind, ops, converters, commands, errors
    det plugins --json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, cast

from det.core import plugins, registry
from det.core.hookspecs import PLUGIN_API_VERSION
from det.core.version import __version__

BUILTIN_COMMANDS = ("plugins",)


def _plugin_commands() -> tuple[dict[str, list[plugins.CommandDeclaration]], list[plugins.CommandDeclaration]]:
    """Declared commands by name, and problems (names clashing with built-ins)."""
    commands: dict[str, list[plugins.CommandDeclaration]] = {}
    problems: list[plugins.CommandDeclaration] = []
    for decl in plugins.command_declarations():
        if decl.name in BUILTIN_COMMANDS:
            problems.append(decl)
            continue
        commands.setdefault(decl.name, []).append(decl)
    return commands, problems


def _first_positional(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


# ---------------------------------------------------------------------------------------------
# det plugins
# ---------------------------------------------------------------------------------------------


def plugins_report() -> dict[str, Any]:
    """Everything ``det plugins`` shows, as plain data (what ``--json`` prints)."""
    components: dict[str, list[dict[str, str]]] = {}
    providers: dict[tuple[str, str], list[str]] = {}
    for info in registry.list_components():
        components.setdefault(info.kind, []).append(
            {"name": info.name, "target": info.target, "distribution": info.distribution})
        providers.setdefault((info.kind, info.name), []).append(info.distribution)
    conflicts = [{"kind": k, "name": n, "distributions": d} for (k, n), d in providers.items() if len(d) > 1]
    ops: dict[str, list[dict[str, str]]] = {}
    for op, device, target, dist in plugins.op_declarations():
        ops.setdefault(device, []).append({"op": op, "target": target, "distribution": dist})
    commands, command_problems = _plugin_commands()
    errors = [{"distribution": e.distribution, "plugin": e.plugin, "message": e.message}
              for e in plugins.plugin_errors()]
    for decl in command_problems:
        errors.append({"distribution": decl.distribution, "plugin": decl.plugin,
                       "message": f"declares the command {decl.name!r}, which is built into det; ignored"})
    for name, decls in commands.items():
        if len(decls) > 1:
            dists = ", ".join(d.distribution for d in decls)
            errors.append({"distribution": dists, "plugin": "",
                           "message": f"command {name!r} is declared by several distributions: {dists}"})
    return {
        "det_core_version": __version__,
        "plugin_api_version": PLUGIN_API_VERSION,
        "distributions": [
            {"name": p.distribution, "version": p.version, "entry_point": f"{p.name} = {p.value}",
             "status": p.status, **({"error": p.error} if p.error else {})}
            for p in plugins.list_plugins()
        ],
        "components": components,
        "conflicts": conflicts,
        "ops": ops,
        "converters": [{"name": c.name, "target": c.target, "distribution": c.distribution}
                       for c in plugins.converter_declarations()],
        "commands": [{"name": d.name, "help": d.help, "target": d.target, "distribution": d.distribution}
                     for decls in commands.values() for d in decls],
        "disabled": sorted(plugins.disabled_names()),
        "errors": errors,
    }


def _format_report(report: dict[str, Any]) -> str:
    lines = [f"det-core {report['det_core_version']} (plugin API {report['plugin_api_version']})", ""]
    lines.append("Distributions:")
    for d in report["distributions"] or [{"name": "(none)", "version": "", "entry_point": "", "status": ""}]:
        status = "" if d["status"] in ("loaded", "") else f"  [{d['status'].upper()}]"
        lines.append(f"  {d['name']:<24} {d['version']:<10} {d['entry_point']}{status}")
    lines += ["", "Components:"]
    if not report["components"]:
        lines.append("  (none)")
    for kind, items in report["components"].items():
        lines.append(f"  {kind}")
        width = max(len(i["name"]) for i in items)
        for i in items:
            lines.append(f"    {i['name']:<{width}}  {i['target']}  [{i['distribution']}]")
    if report["conflicts"]:
        lines += ["", "Conflicts (choose with DET_PREFER=KIND:Name=distribution or det.core.registry.prefer):"]
        for c in report["conflicts"]:
            lines.append(f"  {c['kind']}:{c['name']} provided by {', '.join(c['distributions'])}")
    lines += ["", "Ops:"]
    if not report["ops"]:
        lines.append("  (no plugin ops; det-core's reference implementations are used)")
    for device, items in report["ops"].items():
        lines.append(f"  {device}: " + ", ".join(f"{i['op']} [{i['distribution']}]" for i in items))
    lines += ["", "Checkpoint converters:"]
    lines += [f"  {c['name']}  {c['target']}  [{c['distribution']}]" for c in report["converters"]] or ["  (none)"]
    lines += ["", "Commands:"]
    lines.append("  plugins  list installed plugins [det-core]")
    lines += [f"  {c['name']}  {c['help']}  [{c['distribution']}]" for c in report["commands"]]
    if report["disabled"]:
        lines += ["", f"Disabled: {', '.join(report['disabled'])}"]
    if report["errors"]:
        lines += ["", "Errors:"]
        lines += [f"  {e['distribution']}: {e['message']}" for e in report["errors"]]
    return "\n".join(lines)


def _register_plugins_command(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--json", action="store_true", help="print the listing as JSON")

    def run(args: argparse.Namespace) -> int:
        report = plugins_report()
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print(_format_report(report))
        return 0

    return run


# ---------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------


class _CommandError(Exception):
    pass


def _attach(decls: list[plugins.CommandDeclaration], subparser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], Any]:
    """Import a plugin command's register function and let it fill its subparser."""
    if len(decls) > 1:
        dists = ", ".join(f"{d.distribution} ({d.target})" for d in decls)
        raise _CommandError(f"the command {decls[0].name!r} is declared by several distributions: {dists}; "
                            f"uninstall or disable (DET_DISABLE_PLUGINS) all but one")
    decl = decls[0]
    try:
        register = plugins.load_target(decl.target, decl.distribution, what=f"det command {decl.name!r}")
    except ImportError as e:
        raise _CommandError(str(e)) from e
    try:
        run = register(subparser)
    except Exception as e:
        raise _CommandError(f"setting up 'det {decl.name}' ({decl.target}, from {decl.distribution}) failed: "
                            f"{type(e).__name__}: {e}") from e
    if not callable(run):
        raise _CommandError(f"{decl.target} (from {decl.distribution}) must return the function that runs "
                            f"'det {decl.name}', got {run!r}")
    return cast("Callable[[argparse.Namespace], Any]", run)


def build_parser(selected: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], Any]]]:
    """The ``det`` parser; only the ``selected`` plugin command is imported and given its
    arguments. Returns the parser and the run functions of the attached commands."""
    parser = argparse.ArgumentParser(
        prog="det", description="det: detectron2's models as small installable distributions.")
    parser.add_argument("--version", action="version", version=f"det-core {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    runners: dict[str, Callable[[argparse.Namespace], Any]] = {}
    p = sub.add_parser("plugins", help="list installed plugins and what they provide",
                       description="List det distributions, their components, ops, converters, commands and errors.")
    runners["plugins"] = _register_plugins_command(p)
    commands, _ = _plugin_commands()
    for name, decls in sorted(commands.items()):
        subparser = sub.add_parser(name, help=decls[0].help, description=decls[0].help)
        if name == selected:
            runners[name] = _attach(decls, subparser)
    return parser, runners


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``det ARGS``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = _first_positional(argv)
    try:
        parser, runners = build_parser(selected)
    except _CommandError as e:
        print(f"det: error: {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command != "plugins":
        # the commands train, evaluate and predict in this process: see det.core.allocator. This
        # reads the machine's choices first, so a bad DET_CPU_CHOICES stops here with one line.
        from det.core.allocator import retain_freed_memory_where_chosen

        try:
            retain_freed_memory_where_chosen()
        except ValueError as e:
            print(f"det: error: {e}", file=sys.stderr)
            return 2
    result = runners[args.command](args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
