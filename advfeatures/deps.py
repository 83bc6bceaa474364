"""Library files a workflow script depends on, derived from its import graph.

Snakemake does not track imported modules, so each rule lists, as inputs, the source files its
script loads: the script's module-level imports of ``advfeatures`` (``ast``, not executed),
followed transitively, each with the ``__init__.py`` of every package above it. Editing one of
those files reruns the rule's jobs; editing any other reruns nothing.

Imports inside functions are lazy: they load only when that code runs, so they are not
followed. Each one of ``advfeatures`` must either stay inside the importing module's closure or
be listed in :data:`LAZY` with the rule-side input that covers it (tests/test_deps.py checks
this, so a new lazy import cannot drift silently).
"""

from __future__ import annotations

import ast
import functools
import os
from pathlib import Path

PACKAGE = "advfeatures"
ROOT = Path(__file__).resolve().parents[1]

#: (importing module, imported module) -> which rule inputs cover the lazy import
LAZY: dict[tuple[str, str], str] = {
    ("advfeatures.attacks.nrf", "advfeatures.bottleneck"):
        "rules attack / attack_sweep add lib_files('advfeatures.bottleneck') for attacks of type nrf",
    ("advfeatures.stages.attack", "advfeatures.bottleneck"):
        "rules attack / attack_sweep add lib_files('advfeatures.bottleneck') for attacks of type nrf",
}


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The source file of module ``name`` (a package: its ``__init__.py``); None if not ours."""
    base = root.joinpath(*name.split("."))
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def _module_level(tree: ast.AST):
    """Import nodes executed when the module loads (not inside functions)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        else:
            yield from _module_level(node)


def _lazy(tree: ast.AST):
    """Import nodes inside functions."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import | ast.ImportFrom):
                    yield sub


def _targets(node, root: Path) -> set[str]:
    """Modules of ``advfeatures`` that an import node loads (``from m import sub`` loads m.sub)."""
    if isinstance(node, ast.Import):
        names = {a.name for a in node.names}
    elif node.level or not node.module:
        raise ValueError(f"{PACKAGE}: relative imports are not supported by the dependency graph")
    else:
        names = {node.module} | {f"{node.module}.{a.name}" for a in node.names
                                  if module_file(f"{node.module}.{a.name}", root)}
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def imports_of(path: Path, root: Path = ROOT, *, lazy: bool = False) -> set[str]:
    """Modules of ``advfeatures`` that the file at ``path`` imports (module level, or lazily)."""
    st = os.stat(path)  # the key: an edited file (new mtime or size) is parsed again
    return set(_imports_of(str(path), st.st_mtime_ns, st.st_size, Path(root), lazy))


@functools.cache
def _imports_of(path: str, _mtime_ns: int, _size: int, root: Path, lazy: bool) -> frozenset[str]:
    # a Snakemake parse asks for the same modules many times (every rule's script_input)
    tree = ast.parse(Path(path).read_text(), filename=path)
    nodes = _lazy(tree) if lazy else _module_level(tree)
    return frozenset(m for node in nodes for t in _targets(node, root) for m in _with_parents(t))


@functools.cache
def _closure(start: tuple[str, ...], root: Path) -> frozenset[str]:
    seen: set[str] = set()
    todo = [m for s in start for m in _with_parents(s)]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        f = module_file(m, root)
        if f is None:
            raise ValueError(f"{PACKAGE}: import of unknown module {m}")
        todo += sorted(imports_of(f, root) - seen)
    return frozenset(seen)


def module_closure(*modules: str, root: Path = ROOT) -> set[str]:
    """``modules`` and every module they load at import time."""
    return set(_closure(tuple(sorted(modules)), Path(root)))


def data_files(source: Path) -> list[Path]:
    """Data files a module reads beside its source: a package's ``*.yaml`` files (e.g. the
    published numbers) and ``mod.yaml`` next to ``mod.py`` (e.g. the claims registry)."""
    if source.name == "__init__.py":
        return sorted(source.parent.glob("*.yaml"))
    own = source.with_suffix(".yaml")
    return [own] if own.exists() else []


def module_files(*modules: str, root: Path = ROOT) -> list[Path]:
    """Source and data files of ``modules`` and of everything they load at import time, sorted:
    editing a published number or the claims registry reruns the jobs that read it."""
    sources = [module_file(m, root) for m in module_closure(*modules, root=root)]
    return sorted({f for s in sources for f in (s, *data_files(s))})


def script_files(script: str | Path, root: Path = ROOT) -> list[Path]:
    """Library source files a workflow script loads (its own file not included)."""
    imported = imports_of(Path(script), root)
    return module_files(*imported, root=root) if imported else []
