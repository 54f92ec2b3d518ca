"""The layout's rules (ARCHITECTURE.md), held by an AST pass over the project's own code.

1. No import cycles among the project's modules, counting imports inside functions.
2. No old names: every import names the module that defines the name; no `__all__` lists, no
   `x as x` re-export idiom, no `_old = new` aliases of imported project names.
3. Layers: indexer/ never imports search/, cli, typer or rich; the store imports no domain
   module; search/ outside search/cli/ and search/web/ imports neither; only search/cli/ and
   cli.py import typer; SQL statements only in indexer/store/.
4. No test seams: a test never replaces a module constant, and never patches a name the module
   does not define (such a patch silently changes nothing).
5. One noun per module: each says what it is in its docstring.
"""

from __future__ import annotations

import ast
import builtins
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("indexer", "search")
SQL = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE FROM|CREATE|DROP|ALTER TABLE|PRAGMA|BEGIN|COMMIT|WITH)\b"
)


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    found = {"cli": ROOT / "cli.py"}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            found[_name(path)] = path
    return found


@cache
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def imports(path: Path) -> list[tuple[str, str | None, ast.stmt, ast.alias]]:
    """(module, imported name or None, node, alias) for every import, inside functions too."""
    out = []
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node, a) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                if sub in modules():
                    out.append((sub, None, node, a))
                else:
                    out.append((node.module, a.name, node, a))
    return out


def project_module(target: str) -> str | None:
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in modules():
            return ".".join(parts[:i])
    return None


def defined(path: Path) -> set[str]:
    """Names a module binds at its top level other than by importing a project name."""
    names: set[str] = set()

    def visit(body):
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
            elif isinstance(node, ast.Import | ast.ImportFrom):
                module = getattr(node, "module", None) or ""
                if module.split(".")[0] not in (*PACKAGES, "cli"):
                    names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.If | ast.Try):
                for part in ("body", "orelse", "finalbody"):
                    visit(getattr(node, part, []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree(path).body)
    return names


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in modules()}
    for mod, path in modules().items():
        for target, _, _, _ in imports(path):
            dep = project_module(target)
            if dep and dep != mod and not mod.startswith(dep + "."):  # a package's __init__
                edges[mod].add(dep)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def importers() -> list[Path]:
    """Everything that imports project code: the modules, tests and benchmarks."""
    extra = sorted((ROOT / "tests").glob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py"))
    return list(modules().values()) + extra


def test_the_checks_see_the_project():
    assert {"cli", "indexer.store.database", "search.query"} <= set(modules())
    assert len(modules()) > 90
    assert "indexer.store.database" in graph()["indexer.run.pipeline"]


def test_cycles_are_found_by_the_check():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_names_offered_only_by_import_are_not_defined_there(tmp_path):
    module = tmp_path / "offer.py"
    module.write_text(
        "import os\nfrom indexer.config import Settings\nfrom indexer import errors\n"
        "LIMIT = 3\ndef f(): pass\nif os.name:\n    class C: pass\n"
    )
    assert defined(module) == {"os", "LIMIT", "f", "C"}  # not Settings, not errors


def test_patches_are_seen_with_the_module_they_patch(tmp_path):
    test = tmp_path / "test_x.py"
    test.write_text(
        "from search import query\nimport indexer.media.decode as decode\n"
        "def test(monkeypatch):\n"
        "    monkeypatch.setattr(query, 'MIN_CANDIDATES', 1)\n"
        "    monkeypatch.setattr(decode, 'decode_image', None)\n"
    )
    assert sorted(_patches(test)) == [
        ("indexer.media.decode", "decode_image", 5),
        ("search.query", "MIN_CANDIDATES", 4),
    ]


# --------------------------------------------------------------------------------- rule 1
def test_no_import_cycles():
    assert cycles(graph()) == []


# --------------------------------------------------------------------------------- rule 2
def test_every_import_names_the_module_that_defines_the_name():
    wrong = []
    for path in importers():
        for target, name, node, _ in imports(path):
            if target.split(".")[0] in PACKAGES and target not in modules():
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: no module {target}")
            if name is None or target not in modules():
                continue
            if name not in defined(modules()[target]):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name} from {target}")
    assert wrong == []


def test_no_reexport_lists_idioms_or_aliases():
    wrong = []
    for mod, path in modules().items():
        imported = set()
        for node in ast.walk(tree(path)):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for a in node.names:
                    if a.asname and a.asname.lstrip("_") == a.name.split(".")[-1]:
                        wrong.append(f"{mod}:{node.lineno}: `{a.name} as {a.asname}`")
                if isinstance(node, ast.ImportFrom) and project_module(node.module or ""):
                    imported.update(a.asname or a.name for a in node.names)
        for node in tree(path).body:
            if isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if "__all__" in names:
                    wrong.append(f"{mod}:{node.lineno}: __all__")
                if isinstance(node.value, ast.Name) and node.value.id in imported:
                    wrong.append(f"{mod}:{node.lineno}: alias {names} = {node.value.id}")
    assert wrong == []


# --------------------------------------------------------------------------------- rule 3
def _imports_of(prefix: str) -> list[tuple[str, str, int]]:
    return [
        (mod, target, node.lineno)
        for mod, path in modules().items()
        if mod == prefix or mod.startswith(prefix + ".")
        for target, _, node, _ in imports(path)
    ]


def _under(target: str, *roots: str) -> bool:
    return any(target == r or target.startswith(r + ".") for r in roots)


def test_indexer_never_imports_search_cli_typer_or_rich():
    bad = [i for i in _imports_of("indexer") if _under(i[1], "search", "cli", "typer", "rich")]
    assert bad == []


# Inside indexer/, a package imports only packages ranked below it (the store knows no domain
# module; training reuses the caption run, nothing in the index run knows training).
INDEXER_LAYERS = ("store", "media", "models", "metadata", "run", "train")


def _layer(module: str) -> int:
    parts = module.split(".")
    return INDEXER_LAYERS.index(parts[1]) + 1 if len(parts) > 2 else 0  # config, errors: 0


def test_indexer_packages_import_only_the_layers_below():
    bad = [
        (mod, target, line)
        for mod, target, line in _imports_of("indexer")
        if (dep := project_module(target))
        and dep.startswith("indexer.")
        and _layer(dep) > _layer(mod)
    ]
    assert bad == []


def test_the_store_imports_no_domain_module():
    allowed = ("indexer.store", "indexer.errors", "indexer.config")
    bad = [
        i
        for i in _imports_of("indexer.store")
        if _under(i[1], "indexer") and not _under(i[1], *allowed)
    ]
    assert bad == []


def test_search_core_never_imports_its_cli_or_web():
    bad = [
        i
        for i in _imports_of("search")
        if not _under(i[0], "search.cli", "search.web")
        and _under(i[1], "search.cli", "search.web", "cli", "typer")
    ]
    assert bad == []


def test_the_vector_cache_imports_only_itself_and_the_indexer():
    bad = [
        i
        for i in _imports_of("search.vectors")
        if _under(i[1], "search", "cli") and not _under(i[1], "search.vectors")
    ]
    assert bad == []


def test_only_the_cli_imports_typer():
    bad = [
        (mod, target, line)
        for mod, path in modules().items()
        if mod != "cli" and not _under(mod, "search.cli")
        for target, _, node, _ in imports(path)
        for line in [node.lineno]
        if _under(target, "typer", "click")
    ]
    assert bad == []


def test_sql_only_in_the_store():
    found = []
    for mod, path in modules().items():
        if _under(mod, "indexer.store"):
            continue
        docstrings = {
            id(n.body[0].value)
            for n in ast.walk(tree(path))
            if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and n.body
            and isinstance(n.body[0], ast.Expr)
        }
        for node in ast.walk(tree(path)):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
                and SQL.match(node.value)
            ):
                found.append(f"{mod}:{node.lineno}: {node.value[:40]!r}")
    assert found == []


def test_the_sql_check_sees_sql():
    assert SQL.match("SELECT id FROM files") and SQL.match("\n  INSERT INTO x VALUES (?)")
    assert not SQL.match("Select a model") and not SQL.match("selected photos")


# --------------------------------------------------------------------------------- rule 4
def _patches(path: Path):
    """(bound module, attribute, line) for monkeypatch.setattr(module, "attr", ...) calls."""
    bound = {}
    for target, name, node, a in imports(path):
        if name is None and target in modules() and (isinstance(node, ast.ImportFrom) or a.asname):
            bound[a.asname or a.name] = target
    for node in ast.walk(tree(path)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "setattr"
            and len(node.args) >= 2
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id in bound
            and isinstance(node.args[1], ast.Constant)
        ):
            yield bound[node.args[0].id], node.args[1].value, node.lineno


@pytest.mark.parametrize("path", sorted((ROOT / "tests").glob("test_*.py")), ids=lambda p: p.name)
def test_no_test_replaces_a_module_constant_or_a_name_the_module_does_not_define(path):
    wrong = []
    for mod, attr, line in _patches(path):
        if attr not in defined(modules()[mod]) and not hasattr(builtins, attr):
            wrong.append(f"{path.name}:{line}: {mod}.{attr} is not defined there")
        elif attr.lstrip("_").isupper():
            wrong.append(f"{path.name}:{line}: {mod}.{attr} is a constant: pass a parameter")
    assert wrong == []


# --------------------------------------------------------------------------------- rule 5
def test_every_module_says_what_it_is():
    missing = [m for m, p in modules().items() if not ast.get_docstring(tree(p))]
    assert missing == []
