#!/usr/bin/env python3
"""Check det's code against its dependency map (import-map.toml) and write the tables made from it.

    python3 dev.py run python tools/import_map.py               # list every problem; exit 1 if any
    python3 dev.py run python tools/import_map.py --write-docs  # regenerate the generated tables

What is checked (tests/test_import_map.py runs the same):

- every distribution folder (a ``pyproject.toml`` under ``packages/``) has its ``[parts.<name>]``
  table in the map and the other way round;
- every import of every module under a part's ``src/`` (``ast``: module level, inside functions,
  under ``TYPE_CHECKING``; plus lazy-export tables, ``"module:attribute"`` declarations and
  ``import_module("...")``-style calls) of another det distribution is in the part's ``allow``,
  never in its ``forbid``, never of another distribution's private (``_``) module, and obeys the
  ``[[module-rules]]``;
- every pyproject declares exactly what its code imports: an unguarded import in
  ``dependencies``; one guarded by ``except ImportError`` there, in an optional extra, or in the
  part's ``if-installed``; nothing declared that no module imports unless the part's
  ``convenience`` gives the reason; det requirements are version ranges;
- the generated tables of README.md and docs/architecture.md are up to date.

Only the standard library: it runs before anything is installed.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAP_FILE = "import-map.toml"
WRITE_DOCS = "python3 dev.py run python tools/import_map.py --write-docs"

# calls whose string-literal argument (at that position) is a module they import
IMPORTING_CALLS = {"import_module": 0, "import_on_own_thread": 0, "alias_package": 1}
_DET_TARGET = re.compile(r"^(det(?:\.[A-Za-z_]\w*)+):[A-Za-z_][\w.]*$")  # plugin declarations
_DET_MODULE = re.compile(r"^det(?:\.[A-Za-z_]\w*)+$")  # a string naming a module (lazy-export tables)
_DET_PREFIX = re.compile(r"^(det(?:\.[A-Za-z_]\w*)+)\.$")  # the start of f"det.pkg.{name}"
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalize(name: str) -> str:
    """Distribution names compare like pip's (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


# --------------------------------------------------------------------------------------------
# reading the code
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    """One import found in a module: ``module`` is absolute (relative imports resolved)."""

    module: str
    path: Path
    line: int
    guarded: bool  # inside ``try:`` whose handler catches ImportError / ModuleNotFoundError
    in_function: bool
    how: str  # "import", "call" (import_module("...")), "string" ("module:attribute"), "name" (a module's name)
    typing_only: bool = False  # under `if TYPE_CHECKING:`: layering rules apply, nothing is needed at run time

    def where(self, root: Path = ROOT) -> str:
        return f"{self.path.relative_to(root)}:{self.line}"


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    for node in types:
        name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
        if name in {"ImportError", "ModuleNotFoundError"}:
            return True
    return False


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _ImportVisitor(ast.NodeVisitor):
    def __init__(self, path: Path, module: str, is_package: bool) -> None:
        self.path = path
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: list[Import] = []
        self._guarded = 0
        self._functions = 0
        self._typing = 0
        self._consumed: set[int] = set()

    def _add(self, module: str, node: ast.AST, how: str) -> None:
        self.found.append(Import(module, self.path, getattr(node, "lineno", 0), self._guarded > 0,
                                 self._functions > 0, how, self._typing > 0))

    def visit_If(self, node: ast.If) -> None:
        typing = _is_type_checking(node.test)
        self._typing += typing
        for child in node.body:
            self.visit(child)
        self._typing -= typing
        self.visit(node.test)
        for child in node.orelse:
            self.visit(child)

    def visit_Try(self, node: ast.Try) -> None:
        guards = any(_catches_import_error(h) for h in node.handlers)
        self._guarded += guards
        for child in node.body:
            self.visit(child)
        self._guarded -= guards
        for child in [*node.handlers, *node.orelse, *node.finalbody]:
            self.visit(child)

    visit_TryStar = visit_Try  # type: ignore[assignment]

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self._functions += 1
        self.generic_visit(node)
        self._functions -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _visit_function  # type: ignore[assignment]

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node, "import")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            module = ".".join([*base, *([node.module] if node.module else [])])
        else:
            module = node.module or ""
        if module == "__future__":
            return
        for alias in node.names:
            # `from det import model_zoo` imports the module det.model_zoo
            self._add(f"{module}.{alias.name}" if alias.name != "*" else module, node, "import")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        position = IMPORTING_CALLS.get(name or "")
        if position is not None and len(node.args) > position:
            arg = node.args[position]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                self._add(arg.value, node, "call")
                self._consumed.add(id(arg))  # not a second time as a module's name
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and id(node) not in self._consumed:
            match = _DET_TARGET.match(node.value)
            if match:  # ("KIND", "Name", "det.pkg.module:attribute") declarations
                self._add(match.group(1), node, "string")
            elif _DET_MODULE.match(node.value):  # lazy tables, alias tables: kept if it names a module
                self._add(node.value, node, "name")

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        first = node.values[0] if node.values else None
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            match = _DET_PREFIX.match(first.value)
            if match:  # f"det.structures.{name}"
                self._add(match.group(1), node, "name")
        self.generic_visit(node)


def scan_module(path: Path, module: str) -> list[Import]:
    """Every import of one module file."""
    found = _scan_text(path.read_text(encoding="utf-8"), module, path.name == "__init__.py")
    return [Import(name, path, *rest) for name, *rest in found]


@functools.lru_cache(maxsize=4096)
def _scan_text(text: str, module: str, is_package: bool) -> tuple[tuple[str, int, bool, bool, str, bool], ...]:
    # cached on the text: checking a copy of the tree (the tests do) parses only what changed
    visitor = _ImportVisitor(Path(module), module, is_package)
    visitor.visit(ast.parse(text))
    return tuple((i.module, i.line, i.guarded, i.in_function, i.how, i.typing_only) for i in visitor.found)


# --------------------------------------------------------------------------------------------
# the map and the distributions
# --------------------------------------------------------------------------------------------


@dataclass
class Part:
    """One distribution as the map describes it, with what its pyproject declares."""

    name: str
    folder: str
    modules: list[str]
    holds: str = ""
    allow: dict[str, str] = field(default_factory=dict)
    forbid: dict[str, str] = field(default_factory=dict)
    convenience: dict[str, str] = field(default_factory=dict)
    if_installed: dict[str, str] = field(default_factory=dict)
    # from the pyproject: normalized name -> requirement text; extra -> (normalized name -> text)
    requires: dict[str, str] = field(default_factory=dict)
    extras: dict[str, dict[str, str]] = field(default_factory=dict)

    def declared_in_extras(self, dist: str) -> list[str]:
        return sorted(extra for extra, reqs in self.extras.items() if dist in reqs)

    def forbidden(self, target: str) -> str | None:
        for pattern, reason in self.forbid.items():
            if fnmatch.fnmatchcase(target, pattern):
                return reason
        return None


@dataclass
class ModuleRule:
    modules: list[str]
    forbid: list[str]
    scope: str
    reason: str

    def applies_to(self, module: str) -> bool:
        return any(_module_glob(module, pattern) for pattern in self.modules)


def _module_glob(module: str, pattern: str) -> bool:
    """``*`` is one dotted component, ``**`` any number of them."""
    regex = re.escape(pattern).replace(r"\*\*", ".+").replace(r"\*", r"[^.]+")
    return re.fullmatch(regex, module) is not None


@dataclass
class ImportMap:
    root: Path
    parts: dict[str, Part]
    import_names: dict[str, str]
    private_reason: str
    rules: list[ModuleRule]

    def part_of_module(self, module: str) -> Part | None:
        best: tuple[int, Part] | None = None
        for part in self.parts.values():
            for prefix in part.modules:
                if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), part)
        return best[1] if best else None

    def part_by_folder(self, folder: str) -> Part | None:
        return next((p for p in self.parts.values() if p.folder == folder), None)

    def source_files(self, part: Part) -> Iterator[tuple[Path, str]]:
        src = self.root / part.folder / "src"
        for path in sorted(src.rglob("*.py")):
            yield path, module_name(path, src)


def _table(data: dict, key: str) -> dict[str, str]:
    value = data.get(key, {})
    return {str(k): str(v) for k, v in value.items()}


def load_map(root: Path = ROOT) -> ImportMap:
    data = tomllib.loads((root / MAP_FILE).read_text(encoding="utf-8"))
    parts: dict[str, Part] = {}
    for name, entry in data.get("parts", {}).items():
        part = Part(name=name, folder=entry.get("folder", ""), modules=list(entry.get("modules", [])),
                    holds=entry.get("holds", ""), allow=_table(entry, "allow"), forbid=_table(entry, "forbid"),
                    convenience=_table(entry, "convenience"), if_installed={normalize(k): v for k, v in _table(entry, "if-installed").items()})
        pyproject = root / part.folder / "pyproject.toml"
        if pyproject.is_file():
            project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
            part.requires = _requirements(project.get("dependencies", []))
            part.extras = {extra: _requirements(reqs)
                           for extra, reqs in project.get("optional-dependencies", {}).items()}
        parts[name] = part
    rules = [ModuleRule(list(r["modules"]), list(r["forbid"]), r.get("scope", "any"), r["reason"])
             for r in data.get("module-rules", [])]
    return ImportMap(root, parts, dict(data.get("import-names", {})),
                     data.get("private-modules", {}).get("reason", ""), rules)


def _requirements(texts: Iterable[str]) -> dict[str, str]:
    found = {}
    for text in texts:
        match = _REQUIREMENT_NAME.match(text)
        if match:
            found[normalize(match.group(1))] = text
    return found


def distribution_folders(root: Path = ROOT) -> list[str]:
    """Every distribution folder under packages/ (any depth), as a posix path from the root."""
    return sorted(p.parent.relative_to(root).as_posix() for p in (root / "packages").rglob("pyproject.toml")
                  if not any(part in {"build", "dist", ".venv"} or part.startswith(".")
                             for part in p.relative_to(root).parts))


def _project_name(root: Path, folder: str) -> str:
    return tomllib.loads((root / folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]


# --------------------------------------------------------------------------------------------
# third-party names
# --------------------------------------------------------------------------------------------

_STDLIB = set(sys.stdlib_module_names) | {"__future__"}


@functools.cache
def _installed_packages() -> dict[str, list[str]]:
    from importlib import metadata

    return metadata.packages_distributions()


def third_party_distribution(import_name: str, import_names: dict[str, str]) -> str:
    """The distribution that provides the top-level module ``import_name``."""
    if import_name in import_names:
        return normalize(import_names[import_name])
    candidates = _installed_packages().get(import_name, [])
    if len(set(map(normalize, candidates))) == 1:
        return normalize(candidates[0])
    return normalize(import_name)


# --------------------------------------------------------------------------------------------
# the checks
# --------------------------------------------------------------------------------------------


@dataclass
class Scan:
    """What one part's code imports, resolved to distributions."""

    part: Part
    # det distribution -> imports of it (other parts only)
    det: dict[str, list[Import]] = field(default_factory=dict)
    # third-party distribution -> imports of it
    third_party: dict[str, list[Import]] = field(default_factory=dict)


def _template(root: Path, folder: str, name: str, scans: dict[str, set[str]]) -> str:
    """A [parts.<name>] table for a distribution the map does not have yet."""
    src = root / folder / "src"
    # the top-most regular packages (det and det.heads are namespace packages: no __init__.py)
    packages = sorted({module_name(p, src) for p in src.rglob("__init__.py")} if src.is_dir() else set())
    modules = [m for m in packages if not any(m.startswith(o + ".") for o in packages)]
    lines = [f'[parts.{name}]', f'folder = "{folder}"', f"modules = {modules!r}".replace("'", '"'),
             'holds = "<one line for the README table>"', "", f"[parts.{name}.allow]"]
    lines += [f'{dist} = "<why {name} imports it>"' for dist in sorted(scans.get(name, set()))]
    return "\n".join(lines)


def _scan_part(imap: ImportMap, part: Part, problems: list[str]) -> Scan:
    scan = Scan(part)
    for path, module in imap.source_files(part):
        owner = imap.part_of_module(module)
        if owner is not part:
            problems.append(f"{path.relative_to(imap.root)} is module {module}, which is not under "
                            f"{part.name}'s modules {part.modules} in {MAP_FILE}: add its package to `modules`")
            continue
        for imp in scan_module(path, module):
            top = imp.module.split(".")[0]
            if top in _STDLIB:
                continue
            _check_rules(imap, module, imp, problems)
            target = imap.part_of_module(imp.module)
            if imp.how == "name" and (target is None or _imported_module(imap, target, imp.module) != imp.module):
                continue  # a string that merely looks like a module path
            if target is part:
                continue
            if target is not None:
                _check_private(imap, part, target, imp, problems)
                scan.det.setdefault(target.name, []).append(imp)
            elif top == "det":
                problems.append(f"{imp.where(imap.root)} imports {imp.module}, which no distribution in "
                                f"{MAP_FILE} provides (no part lists it under `modules`)")
            else:
                dist = third_party_distribution(top, imap.import_names)
                scan.third_party.setdefault(dist, []).append(imp)
    return scan


def _check_rules(imap: ImportMap, module: str, imp: Import, problems: list[str]) -> None:
    top = imp.module.split(".")[0]
    for rule in imap.rules:
        if not rule.applies_to(module) or (rule.scope == "module" and imp.in_function):
            continue
        for banned in rule.forbid:
            hit = (top != "det" and imap.part_of_module(imp.module) is None) if banned == "third-party" else (
                imp.module == banned or imp.module.startswith(banned + "."))
            if hit:
                scope = "at module level " if rule.scope == "module" else ""
                problems.append(f"{imp.where(imap.root)} imports {imp.module} {scope}in {module}, which "
                                f"{MAP_FILE}'s module rule for {rule.modules} forbids: {rule.reason}")


def _imported_module(imap: ImportMap, target: Part, dotted: str) -> str:
    """The longest prefix of ``dotted`` that is a module file of ``target`` (``from m import name``
    is recorded as ``m.name``, and ``name`` may be a function)."""
    src = imap.root / target.folder / "src"
    names = dotted.split(".")
    for end in range(len(names), 0, -1):
        path = src.joinpath(*names[:end])
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            return ".".join(names[:end])
    return dotted


def _check_private(imap: ImportMap, part: Part, target: Part, imp: Import, problems: list[str]) -> None:
    module = _imported_module(imap, target, imp.module)
    if any(name.startswith("_") and not name.startswith("__") for name in module.split(".")):
        problems.append(f"{imp.where(imap.root)} imports {imp.module}, a private module of {target.name}: "
                        f"{imap.private_reason}. Make it public in {target.name} (a module named without _) "
                        f"and import that")


def check_map_shape(imap: ImportMap) -> list[str]:
    """The map covers exactly the distributions of the tree, and its entries are consistent."""
    problems: list[str] = []
    folders = distribution_folders(imap.root)
    imports_by_new: dict[str, set[str]] = {}
    for folder in folders:
        name = _project_name(imap.root, folder)
        part = imap.part_by_folder(folder)
        if part is None:
            imports_by_new[name] = _det_imports_of_folder(imap, folder)
            problems.append(
                f"{folder}/pyproject.toml ({name}) has no entry in {MAP_FILE}. Add this table there "
                f"(and a `reason` for each det distribution it imports; `forbid` what it must never "
                f"import), then run `{WRITE_DOCS}`:\n\n{_template(imap.root, folder, name, imports_by_new)}\n")
        elif part.name != name:
            problems.append(f"{MAP_FILE}: [parts.{part.name}] has folder {folder}, whose pyproject names the "
                            f"distribution {name!r}: rename the table to [parts.{name}]")
    for part in imap.parts.values():
        where = f"{MAP_FILE} [parts.{part.name}]"
        if part.folder not in folders:
            problems.append(f"{where}: folder {part.folder!r} has no pyproject.toml; remove the entry or fix the folder")
        if not part.modules:
            problems.append(f"{where}: `modules` is empty; list the import packages it provides (e.g. det.heads.roi)")
        for dist in part.allow:
            if dist not in imap.parts:
                problems.append(f"{where}.allow: {dist!r} is not a distribution of the map (`allow` names det "
                                f"distributions; third-party packages are declared in the pyproject only)")
        for dist in part.allow:
            reason = part.forbidden(dist)
            if reason is not None:
                problems.append(f"{where}: {dist} is both allowed and forbidden ({reason!r}); decide")
        for table in ("allow", "forbid", "convenience", "if-installed"):
            for key, reason in getattr(part, table.replace("-", "_")).items():
                if not reason.strip():
                    problems.append(f"{where}.{table}: {key} needs its reason")
    return problems


def _det_imports_of_folder(imap: ImportMap, folder: str) -> set[str]:
    src = imap.root / folder / "src"
    found: set[str] = set()
    for path in sorted(src.rglob("*.py")) if src.is_dir() else []:
        for imp in scan_module(path, module_name(path, src)):
            target = imap.part_of_module(imp.module) if imp.module.startswith("det.") else None
            if target is not None and target.folder != folder:
                found.add(target.name)
    return found


def check_imports(imap: ImportMap) -> list[str]:
    """Every part's imports against the map and against its pyproject."""
    problems = check_map_shape(imap)
    for part in imap.parts.values():
        if not (imap.root / part.folder / "pyproject.toml").is_file():
            continue
        scan = _scan_part(imap, part, problems)
        _check_allowed(imap, scan, problems)
        _check_declared(imap, scan, problems)
    return problems


def _check_allowed(imap: ImportMap, scan: Scan, problems: list[str]) -> None:
    part = scan.part
    for dist, imports in sorted(scan.det.items()):
        first = imports[0]
        reason = part.forbidden(dist)
        if reason is not None:
            problems.append(f"{first.where(imap.root)} imports {first.module}: {part.name} must not import {dist} "
                            f"({MAP_FILE} [parts.{part.name}.forbid]: {reason})")
        elif dist not in part.allow:
            problems.append(
                f"{first.where(imap.root)} imports {first.module} (distribution {dist}), which {MAP_FILE} does "
                f"not allow for {part.name}. If the dependency is intended, add to [parts.{part.name}.allow]:\n"
                f'    {dist} = "<why {part.name} needs it>"\nand declare it in {part.folder}/pyproject.toml')
    for dist in sorted(set(part.allow) - set(scan.det)):
        problems.append(f"{MAP_FILE} [parts.{part.name}.allow] lists {dist}, but no module of {part.name} "
                        f"imports it: remove the line")


def _check_declared(imap: ImportMap, scan: Scan, problems: list[str]) -> None:
    part = scan.part
    pyproject = f"{part.folder}/pyproject.toml"
    everything: dict[str, list[Import]] = {**scan.det, **scan.third_party}
    # what runs: an import only under `if TYPE_CHECKING:` needs nothing installed (nor forbids declaring it)
    used = {dist: [i for i in imports if not i.typing_only] for dist, imports in everything.items()}
    used = {dist: imports for dist, imports in used.items() if imports}
    for dist, imports in sorted(used.items()):
        guarded = [i for i in imports if i.guarded]
        # at module level and unguarded: importing the module needs the distribution (a string
        # reference, a lazy table's or a declaration's, is imported on first use by code that
        # reports a missing distribution itself)
        by_name = [i for i in imports if i.how in ("string", "name")]
        eager = [i for i in imports if not i.guarded and not i.in_function and i not in by_name]
        first = (eager or guarded or imports)[0]
        spec = f'"{dist}>=0.1,<0.2"' if dist in imap.parts else f'"{dist}"'
        extras = part.declared_in_extras(dist)
        if dist in part.requires:
            if len(guarded) == len(imports) and dist not in part.convenience:
                problems.append(
                    f"{first.where(imap.root)} imports {first.module} (distribution {dist}) only as an option "
                    f"(under `except ImportError`), but {pyproject} requires it: move it to an extra in "
                    f"[project.optional-dependencies], or if everyone should get it, add to {MAP_FILE} "
                    f'[parts.{part.name}.convenience]:\n    {dist} = "<why users want it installed>"')
        elif extras:
            # an extra's package is imported where it is used (inside functions), and at least one
            # import says which extra to install when it is missing
            if eager or not (guarded or by_name):
                problems.append(
                    f"{first.where(imap.root)} imports {first.module} (distribution {dist}, only in the extra "
                    f"{extras} of {pyproject}) {'at module level' if eager else 'without'} "
                    f"{'' if eager else 'an import guarded by '}`except ImportError` naming the extra: guard "
                    f"the import inside the function that needs it, or add {spec} to [project] dependencies")
        elif dist in part.if_installed:
            if len(guarded) != len(imports):
                unguarded = next(i for i in imports if not i.guarded)
                problems.append(f"{MAP_FILE} [parts.{part.name}.if-installed] names {dist}, but "
                                f"{unguarded.where(imap.root)} imports it unguarded: declare it in {pyproject}")
        elif len(guarded) == len(imports):
            problems.append(
                f"{first.where(imap.root)} imports {first.module} (distribution {dist}) under `except "
                f"ImportError`, but {pyproject} declares it nowhere: add {spec} to an extra in "
                f"[project.optional-dependencies] (or to dependencies), or, if it is used only when present, "
                f'add to {MAP_FILE} [parts.{part.name}.if-installed]:\n    {dist} = "<what it is used for>"')
        else:
            problems.append(f"{first.where(imap.root)} imports {first.module} (distribution {dist}), which "
                            f"{pyproject} does not declare: add {spec} to [project] dependencies")
    declared = {dist: None for dist in part.requires}
    for extra, reqs in part.extras.items():
        for dist in reqs:
            declared.setdefault(dist, extra)
    for dist, extra in sorted(declared.items()):
        if dist == normalize(part.name):
            continue
        where = f"[project.optional-dependencies] {extra}" if extra else "[project] dependencies"
        if dist not in everything and dist not in part.convenience:
            problems.append(
                f"{pyproject} declares {dist} in {where}, but no module of {part.name} imports it: remove it, "
                f"or if it is a deliberate convenience dependency, add to {MAP_FILE} "
                f'[parts.{part.name}.convenience]:\n    {dist} = "<why users want it installed>"')
        if dist in imap.parts:
            text = part.requires.get(dist) or part.extras[extra or ""][dist]
            if not ("<" in text and ">=" in text):
                problems.append(f"{pyproject}: {text!r} must be a version range (e.g. {dist}>=0.1,<0.2): det's "
                                f"distributions are versioned separately")
    for dist in sorted(part.convenience):
        if dist not in declared:
            problems.append(f"{MAP_FILE} [parts.{part.name}.convenience] names {dist}, which {pyproject} does "
                            f"not declare: remove the line")
        elif dist in used and not all(i.guarded for i in used[dist]):
            # a required dependency imported only under `except ImportError` is the one case that
            # needs a reason here (everyone gets it, the code also runs without it)
            where = f"[parts.{part.name}.allow]" if dist in imap.parts else "nowhere in the map (remove the line)"
            problems.append(f"{MAP_FILE} [parts.{part.name}.convenience] names {dist}, but {part.name} imports "
                            f"it unguarded: it belongs {where}")
    for dist in sorted(part.if_installed):
        if dist not in used:
            problems.append(f"{MAP_FILE} [parts.{part.name}.if-installed] names {dist}, which no module of "
                            f"{part.name} imports: remove the line")


# --------------------------------------------------------------------------------------------
# generated documentation
# --------------------------------------------------------------------------------------------

BEGIN = "<!-- generated from import-map.toml by tools/import_map.py: {} -->"
END = "<!-- end of generated {} -->"


def _requirement_list(part: Part, imap: ImportMap) -> str:
    det = [d for d in part.requires if d in imap.parts]
    rest = [d for d in part.requires if d not in imap.parts]
    text = ", ".join([*det, *rest])
    for extra, reqs in part.extras.items():
        text += f"; `[{extra}]` adds {', '.join(reqs)}"
    return text


def render(imap: ImportMap) -> dict[str, str]:
    """Name of each generated block -> its text (without the markers)."""
    parts = list(imap.parts.values())
    rows = ["| folder | distribution | import | depends on (pyproject) | may import (det) |", "|---|---|---|---|---|"]
    for part in parts:
        modules = ", ".join(f"`{m}`" for m in part.modules)
        allowed = ", ".join(part.allow) or "nothing of det"
        rows.append(f"| {part.folder} | {part.name} | {modules} | {_requirement_list(part, imap)} | {allowed} |")
    forbid = ["| distribution | must not import | why |", "|---|---|---|"]
    for part in parts:
        for target, reason in part.forbid.items():
            forbid.append(f"| {part.name} | {target} | {reason} |")
    for rule in imap.rules:
        forbid.append(f"| modules {', '.join(rule.modules)} | {', '.join(rule.forbid)}"
                      f"{' at module level' if rule.scope == 'module' else ''} | {rule.reason} |")
    readme = ["| distribution | import | what it holds |", "|---|---|---|"]
    for part in parts:
        readme.append(f"| {part.name} | {', '.join(f'`{m}`' for m in part.modules)} | {part.holds} |")
    return {"dependencies": "\n".join(rows), "forbidden imports": "\n".join(forbid),
            "distributions": "\n".join(readme)}


GENERATED_IN = {"docs/architecture.md": ["dependencies", "forbidden imports"], "README.md": ["distributions"]}


def _replace_block(text: str, name: str, body: str) -> str | None:
    begin, end = BEGIN.format(name), END.format(name)
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        return None
    return text[: start + len(begin)] + "\n" + body + "\n" + text[stop:]


def check_docs(imap: ImportMap) -> list[str]:
    problems = []
    blocks = render(imap)
    for doc, names in GENERATED_IN.items():
        text = (imap.root / doc).read_text(encoding="utf-8")
        for name in names:
            updated = _replace_block(text, name, blocks[name])
            if updated is None:
                problems.append(f"{doc} lacks the generated block {name!r} (markers {BEGIN.format(name)!r} ... "
                                f"{END.format(name)!r})")
            elif updated != text:
                problems.append(f"{doc}: the generated {name!r} table is out of date: run `{WRITE_DOCS}`")
    return problems + _guide_problems(imap)


GUIDE = "docs/guide.md"  # its "Install what you need" table names every distribution (written by hand)


def _guide_problems(imap: ImportMap) -> list[str]:
    text = (imap.root / GUIDE).read_text(encoding="utf-8")
    start = text.find("## Install what you need")
    section = text[start: text.find("\n## ", start + 1)] if start >= 0 else ""
    missing = [name for name in imap.parts if not re.search(rf"`[^`]*\b{re.escape(name)}\b[^`]*`", section)]
    return [f"{GUIDE}: the table of \"Install what you need\" does not name {', '.join(missing)}: add a row "
            f"saying what each is for"] if missing else []


def write_docs(imap: ImportMap) -> list[str]:
    written = []
    blocks = render(imap)
    for doc, names in GENERATED_IN.items():
        path = imap.root / doc
        text = original = path.read_text(encoding="utf-8")
        for name in names:
            updated = _replace_block(text, name, blocks[name])
            if updated is None:
                raise SystemExit(f"{doc} lacks the markers of the generated block {name!r}: add the lines\n"
                                 f"{BEGIN.format(name)}\n{END.format(name)}\nwhere the table belongs")
            text = updated
        if text != original:
            path.write_text(text, encoding="utf-8")
            written.append(doc)
    return written


def main(argv: list[str]) -> int:
    imap = load_map(ROOT)
    if argv == ["--write-docs"]:
        written = write_docs(imap)
        print("updated: " + ", ".join(written) if written else "the generated tables were up to date")
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    problems = check_imports(imap) + check_docs(imap)
    for problem in problems:
        print(problem, end="\n\n")
    print(f"{len(problems)} problem(s)" if problems else "import map: all distributions conform", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
