"""The seams between rooms, checked by reading the source: import cycles, the error family, who refreshes.

These read the package's own files with ``ast`` (nothing is imported), so a cycle through an import inside a
function counts as much as one at the top of a module: both break the day someone moves the import up.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Where each installed package's files live (pyproject.toml's package-dir).
PACKAGES = {"datasette_scisearch": REPO / "datasette_scisearch", "scisearch_taggers": REPO / "plugins",
            "scisearch_loaders": REPO / "loaders"}  # fmt: skip

# The cycle left of the two there were when the package was split into rooms (issue 17); the indexes issue takes
# it apart.  A cycle among these modules, or among fewer of them, is allowed; any other is not.  (The web one
# went with the pages issue: every view imports web/base.py, which imports none of them.)
ALLOWED_CYCLES = [
    {"datasette_scisearch.search.engine", "datasette_scisearch.search.hits", "datasette_scisearch.search.detail"},
]


def modules() -> dict[str, tuple[Path, list[str]]]:
    """Every module of the packages: dotted name → (file, the package it sits in, as parts)."""
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if any(part.startswith(".") or "-" in part for part in parts):  # plugins/example-tagger is its own
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
                found[".".join(parts)] = (path, parts)
            else:
                found[".".join(parts)] = (path, parts[:-1])
    return found


def import_graph(found: dict[str, tuple[Path, list[str]]]) -> dict[str, set[str]]:
    """module → the modules of the packages it imports, anywhere in its file."""
    graph = {}
    for name, (path, package) in found.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                source = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:  # `from pkg import module` imports the module, not just pkg
                    target = f"{source}.{alias.name}"
                    imported.add(target if target in found else source)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
        graph[name] = {target for target in imported if target in found and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, without recursion)."""
    index, low, on_stack, stack, components, counter = {}, {}, set(), [], [], 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(component)
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def test_the_cycle_finder_finds_a_cycle_of_three_and_ignores_a_chain():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [{"a", "b", "c"}]


def test_the_import_graph_sees_imports_inside_functions_and_relative_ones():
    graph = import_graph(modules())
    assert "datasette_scisearch.search.index" in graph["datasette_scisearch.refreshing"]  # inside refresh()
    assert "datasette_scisearch.errors" in graph["datasette_scisearch.catalog"]


def test_no_import_cycle_beyond_the_two_known_ones():
    new = [sorted(c) for c in cycles(import_graph(modules())) if not any(c <= allowed for allowed in ALLOWED_CYCLES)]
    assert new == [], f"new import cycles: {new}"


def _exception_classes():
    """(module, class, base names) for every class in the packages whose bases name an exception."""
    for name, (path, _) in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(base) for base in node.bases]
                yield name, node.name, bases


def test_every_exception_class_of_the_packages_belongs_to_the_scisearch_error_family():
    import importlib

    from datasette_scisearch.errors import ScisearchError

    outside = []
    for module_name, class_name, _ in _exception_classes():
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # a tagger whose model libraries are not installed: checked where they are
            continue
        cls = getattr(module, class_name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException) and not issubclass(cls, ScisearchError):
            outside.append(f"{module_name}.{class_name}")
    assert outside == []


def test_search_documents_are_refreshed_only_by_the_change_functions():
    callers = set()
    for name, (path, _) in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("refresh_search_items"):
                callers.add(name)
    assert callers == {"datasette_scisearch.refreshing"}  # the refresh changes.py re-exports


def _defines_a_plugin(path: Path) -> bool:
    """Whether a module defines a reader or tagger class, or a hook implementation that registers one."""
    for node in ast.walk(ast.parse(path.read_text())):
        bases = [ast.unparse(base) for base in node.bases] if isinstance(node, ast.ClassDef) else []
        if any(base.endswith(("Loader", "Tagger")) for base in bases):
            return True
        if isinstance(node, ast.FunctionDef) and any(ast.unparse(d).endswith("hookimpl") for d in node.decorator_list):
            return True
    return False


def test_the_built_in_loaders_and_taggers_folders_hold_only_readers_and_taggers_with_helpers_beneath():
    strays = [
        str(path.relative_to(REPO))
        for folder in (REPO / "loaders", REPO / "plugins")
        for path in folder.glob("*.py")
        if path.name != "__init__.py" and not _defines_a_plugin(path)
    ]
    assert strays == [], f"move these into helpers/: {strays}"
