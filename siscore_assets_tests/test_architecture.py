"""The house rules, checked on every run: no import cycles (function-level imports count), no
private name imported across modules, core never imports Dagster, rooms import downward only,
wiring domains never import each other, no Python file in the package over 600 lines, and no
Dagster asset / multi_asset / asset_check body in ``defs/`` over 60 lines (the computation
belongs in core)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "siscore_assets"
MAX_LINES = 600
#: An asset's body reads, makes a core call or two, writes and reports: no more lines than this.
MAX_ASSET_BODY_LINES = 60
#: Decorators that make a function a Dagster asset or check (``@dg.asset`` counts too).
ASSET_DECORATORS = {
    "asset",
    "multi_asset",
    "graph_asset",
    "graph_multi_asset",
    "asset_check",
    "multi_asset_check",
}
#: Top-level core modules every room may import (the countries file and its model settings).
SHARED_CORE_MODULES = {"siscore_assets.core.countries", "siscore_assets.core.model_settings"}
#: What each room of core may import (besides itself).  Everything may use the countries file.
ROOM_DEPENDENCIES = {
    "storage": set(),
    "compute": set(),
    "imagery": {"storage", "compute"},
    "models": {"imagery", "storage", "compute", "ranking", "analysis"},
    "ranking": {"imagery", "storage"},
    "analysis": {"imagery", "storage"},
    "maps": {"imagery", "storage", "analysis", "compute"},
}
DOMAINS = {"ingest", "clusters", "ranking", "scoring", "outputs", "orchestration"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every import anywhere in the module."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    package = name if _is_package(name) else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:  # `from pkg import module`
                    out.append((sub, None, node.lineno))
                else:
                    out.append((target, alias.name, node.lineno))
    return out


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for m in MODULES:
        for target, _, _ in _imports(m):
            if target in MODULES and target != m:
                graph[m].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_sees_the_whole_package():
    assert {
        "siscore_assets.core.ranking",
        "siscore_assets.defs.common.data",
        "siscore_assets.definitions",
    } <= set(MODULES)
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_no_private_names_imported_across_modules():
    bad = [
        f"{MODULES[m].relative_to(PACKAGE.parent)}:{line}: from {target} import {name}"
        for m in MODULES
        for target, name, line in _imports(m)
        if name and name.startswith("_") and not name.startswith("__") and target != m
    ]
    assert bad == []


def test_core_never_imports_dagster():
    bad = [
        f"{m}:{line}: {target}"
        for m in MODULES
        if m.startswith("siscore_assets.core")
        for target, _, line in _imports(m)
        if target.split(".")[0].startswith("dagster")
    ]
    assert bad == []


@pytest.mark.parametrize("room", sorted(ROOM_DEPENDENCIES))
def test_rooms_import_downward_only(room):
    prefix = f"siscore_assets.core.{room}"
    allowed = {f"siscore_assets.core.{r}" for r in ROOM_DEPENDENCIES[room] | {room}}
    allowed |= SHARED_CORE_MODULES
    bad = []
    for m in MODULES:
        if m != prefix and not m.startswith(prefix + "."):
            continue
        for target, _, line in _imports(m):
            if target.startswith("siscore_assets.") and not any(
                target == a or target.startswith(a + ".") for a in allowed
            ):
                bad.append(f"{m}:{line}: {target}")
    assert bad == []


def test_wiring_domains_import_core_and_common_only():
    bad = []
    for m in MODULES:
        parts = m.split(".")
        if len(parts) < 3 or parts[1] != "defs" or parts[2] not in DOMAINS:
            continue
        own = ".".join(parts[:3])
        for target, _, line in _imports(m):
            if not target.startswith("siscore_assets."):
                continue
            ok = (
                target.startswith("siscore_assets.core")
                or target.startswith("siscore_assets.defs.common")
                or target == own
                or target.startswith(own + ".")
            )
            if not ok:
                bad.append(f"{m}:{line}: {target}")
    assert bad == []


def test_no_python_file_over_the_limit():
    long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def _decorator_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _body_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first statement after the docstring to the last (nested functions count)."""
    body = fn.body
    first = body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        body = body[1:]
    if not body:
        return 0
    return body[-1].end_lineno - body[0].lineno + 1


def long_asset_bodies(source: str, limit: int = MAX_ASSET_BODY_LINES) -> dict[str, int]:
    """{function name: body lines} of every asset / multi_asset / asset_check function in
    ``source`` (nested in a ``build`` factory or not) whose body is over ``limit`` lines."""
    return {
        node.name: n
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and any(_decorator_name(d) in ASSET_DECORATORS for d in node.decorator_list)
        and (n := _body_lines(node)) > limit
    }


def test_the_asset_body_checker_catches_a_long_asset():
    filler = "".join(f"    x{i} = {i}\n" for i in range(61))
    source = (
        "import dagster as dg\n"
        "from dagster import asset, asset_check, multi_asset\n\n"
        "def build():\n"
        "    @asset(group_name='g')\n"
        "    def long_one():\n"
        '        """A docstring does not count."""\n'
        + "".join("    " + line + "\n" for line in filler.splitlines())
        + "    @dg.multi_asset(specs=[])\n"
        "    def long_multi():\n"
        "        def helper():\n"
        + "".join("        " + line + "\n" for line in filler.splitlines())
        + "        return helper\n"
        "    @asset_check(asset='a')\n"
        "    def short_check():\n"
        '        """Doc."""\n'
        + "".join("    " + line + "\n" for line in filler.splitlines()[:60])
        + "    return [long_one, long_multi, short_check]\n\n"
        "def not_an_asset():\n" + filler
    )
    assert long_asset_bodies(source) == {"long_one": 61, "long_multi": 63}
    assert long_asset_bodies(source, limit=63) == {}


def test_no_asset_body_over_the_limit():
    long = {
        f"{p.relative_to(PACKAGE.parent)}::{name}": n
        for p in sorted((PACKAGE / "defs").rglob("*.py"))
        for name, n in long_asset_bodies(p.read_text(encoding="utf-8")).items()
    }
    assert long == {}, f"asset bodies over {MAX_ASSET_BODY_LINES} lines: move computation to core"
