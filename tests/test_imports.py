"""No module of lossnet needs, through any chain of imports, a module that needs it back, and each imports
only its own layer and the ones below (docs/ARCHITECTURE.md, "Layers").

Every `import` and `from ... import` statement counts, wherever it is in the file: one inside a function is
run later, but the function cannot work without that module, so it is a dependency all the same. The edges
are read from the source with `ast`, so a module is checked without being imported. A module's own package
is not counted as one of its dependencies: Python runs `lossnet/__init__.py` before any `lossnet.X`, but the
package re-exports its modules, so it depends on them, not they on it. The registry's plug-in table
(`registry._kind_modules`, the modules with a `KIND` line, imported by name) is not an import statement and
not an edge: the registry lists the kinds, it does not depend on any of them.
"""
from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

Graph = dict[str, dict[str, int]]  # module -> {module it imports: line of the first such statement}


def module_graph(package_dir: Path) -> Graph:
    """The import graph of the package in `package_dir` (modules by dotted name: `lossnet.viz.common`),
    restricted to its own modules; `from lossnet.viz import x` is an edge to `lossnet.viz.x` when that is a
    module, else to the package `lossnet.viz` (its `__init__.py`)."""
    files = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path

    def owner(name: str) -> str | None:
        """The module of the package that `name` (a module, or a name inside one) lives in."""
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: Graph = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: one level is the module's own package, each further one goes up
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(base + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base
                         for alias in node.names]
            else:
                continue
            for name in names:
                target = owner(name)
                if target is not None and target != module:
                    edges.setdefault(target, node.lineno)
        graph[module] = edges
    return graph


def find_cycle(graph: Graph) -> list[str] | None:
    """One cycle of `graph` as [a, b, ..., a], or None (depth-first search, in sorted order)."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once every path from it is explored
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for target in sorted(graph.get(module, {})):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def describe(cycle: list[str], graph: Graph, package_dir: Path) -> str:
    """`a -> b (a.py:12) -> ...`: each step with the file and line of the import that makes it."""
    root = package_dir.parent
    steps = [cycle[0]]
    for here, there in zip(cycle, cycle[1:]):
        file = (root / here.replace(".", "/")).with_suffix(".py")
        file = file if file.exists() else root / here.replace(".", "/") / "__init__.py"
        steps.append(f"{there} ({file.relative_to(root)}:{graph[here][there]})")
    return " -> ".join(steps)


def test_lossnet_has_no_import_cycle():
    package_dir = REPO / "lossnet"
    graph = module_graph(package_dir)
    # the walker sees lossnet's imports of every form (a check that the graph is not empty by mistake):
    assert "lossnet.registry" in graph["lossnet.fast"]  # `from . import registry`
    assert "lossnet.viz.figures" in graph["lossnet.commands.viz"]  # `from ..viz.figures import ...` in a function
    assert "lossnet.style" in graph["lossnet.viz"]  # `from ..style import invert` in a package's __init__
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle: {describe(cycle, graph, package_dir)}"


# The layers of docs/ARCHITECTURE.md, lowest first, by module name under lossnet/ (a package stands for its
# modules; "" is lossnet/__init__.py). A module imports only modules of its own layer or of lower ones. A module
# not named here (a new method) is a method.
LAYERS = {
    "base": ["errors", "io", "video", "export", "weights", "precision", "progress", "estimate", "distributed",
             "tiling", "color", "data", "procedural", "nets", "features", "objectives", "metrics", "classifier"],
    "loops": ["optimize", "train"],
    "registry": ["registry"],
    "methods": ["style", "temporal", "fast", "superres", "pix2pix", "demo", "viz"],
    "package": [""],
    "front ends": ["cli", "commands", "studio", "__main__"],
}


def layer_of(module: str) -> int:
    """The index in LAYERS of a module of lossnet (`lossnet.viz.common`: methods)."""
    name = module.partition(".")[2]
    for index, members in enumerate(LAYERS.values()):
        if any(name == m or (m and name.startswith(m + ".")) for m in members):
            return index
    return list(LAYERS).index("methods")


def upward_imports(graph: Graph) -> list[str]:
    """Every import of a module of a higher layer, as `a (layer) -> b (layer), line N`."""
    names = list(LAYERS)
    return [f"{module} ({names[layer_of(module)]}) -> {target} ({names[layer_of(target)]}), line {line}"
            for module, edges in sorted(graph.items()) for target, line in sorted(edges.items())
            if layer_of(target) > layer_of(module)]


def test_each_module_imports_only_its_own_layer_and_the_ones_below():
    assert upward_imports(module_graph(REPO / "lossnet")) == []
    assert upward_imports({"lossnet.video": {"lossnet.temporal": 3, "lossnet.io": 2},
                           "lossnet.newmethod": {"lossnet.registry": 1, "lossnet.cli": 9}}) == [
        "lossnet.newmethod (methods) -> lossnet.cli (front ends), line 9",
        "lossnet.video (base) -> lossnet.temporal (methods), line 3"]


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / "pkg"


def test_a_cycle_through_a_function_level_import_in_a_subpackage_is_found(tmp_path):
    package_dir = _package(tmp_path, {
        "pkg/__init__.py": "from .a import x\n",
        "pkg/a.py": "import os\nfrom . import b\nx = 1\n",
        "pkg/b.py": "def f():\n    from .sub.c import g\n    return g\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "import pkg.sub\n\n\ndef g():\n    from ..a import x\n    return x\n",
    })
    graph = module_graph(package_dir)
    assert graph == {"pkg": {"pkg.a": 1}, "pkg.a": {"pkg.b": 2}, "pkg.b": {"pkg.sub.c": 2}, "pkg.sub": {},
                     "pkg.sub.c": {"pkg.sub": 1, "pkg.a": 5}}
    cycle = find_cycle(graph)
    assert cycle == ["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]
    assert describe(cycle, graph, package_dir) == ("pkg.a -> pkg.b (pkg/a.py:2) -> pkg.sub.c (pkg/b.py:2) -> "
                                                   "pkg.a (pkg/sub/c.py:5)")


def test_a_package_that_imports_its_modules_is_no_cycle(tmp_path):
    graph = module_graph(_package(tmp_path, {
        "pkg/__init__.py": "from .a import x\nfrom . import b\n",
        "pkg/a.py": "from . import b\nx = b.y\n",
        "pkg/b.py": "import pkg.sub.c as c\ny = c.z\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "z = 1\n",
    }))
    assert graph["pkg"] == {"pkg.a": 1, "pkg.b": 2} and graph["pkg.b"] == {"pkg.sub.c": 1}
    assert find_cycle(graph) is None
