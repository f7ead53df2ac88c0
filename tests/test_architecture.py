"""The shape of the package: who imports whom, and how large modules grow.

fastconv reads as three parts (README, "Layout of the code"): the compute
core, the Keras-like API above it, and the tools on top. Data flows down:
the core imports nothing above it, the API nothing from the tools, and no
module imports another that (directly or not) imports it back at load time.

The import graph is read from the source with :mod:`ast`. Every ``import``
and ``from ... import`` is listed with where it sits: *top-level* (runs when
the module loads: module level, class bodies, ``if``/``try`` blocks,
``if TYPE_CHECKING:`` included, since a type checker follows those and they
state the same dependency) or *function-level* (inside a ``def`` or
``lambda``, runs on the first call). Only top-level imports can form a load
circle; function-level ones still count for the direction of the layering.
Importing ``a.b.c`` first runs ``a/__init__`` and ``a/b/__init__``, so those
packages are edges too (except the importer's own packages, which are
already loading).
"""
from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Set

import pytest

import fastconv

PACKAGE = "fastconv"
PACKAGE_DIR = Path(fastconv.__file__).resolve().parent
README = Path(__file__).resolve().parents[1] / "README.md"

# The three parts below the package root (which is the front door to all
# of them). Whatever is in neither set is the Keras-like API.
COMPUTE_CORE = {"fastconv.ops", "fastconv.prepared", "fastconv.shapes", "fastconv.reference",
                "fastconv._kernels",
                "fastconv._memory", "fastconv.config"}
TOOLS = {"fastconv.demo", "fastconv.bench", "fastconv.bench_distributed", "fastconv.bench_input",
         "fastconv.bench_models", "fastconv.bench_peers", "fastconv.bench_runtimes",
         "fastconv.bench_scaling",
         "fastconv.bench_timing", "fastconv.bench_worker",
         "fastconv.__main__"}

# Inside the Keras-like API: (importer, imported, why not), prefixes of names.
UPWARD_IN_THE_API = [
    ("fastconv.layers", "fastconv.models", "a model is made of layers, not the reverse"),
    ("fastconv.summary", "fastconv.models", "the summary reads a model through its "
                                             "SummarizedModel protocol"),
]

MAX_API_MODULE_LINES = 900


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    line: int
    top_level: bool


def find_modules(package_dir: Path, package: str) -> Dict[str, Path]:
    """``{dotted name: file}`` for the sources and compiled modules of a package."""
    modules: Dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*")):
        # .pyx: the compiled module's source, in a tree where it is not built.
        if "__pycache__" in path.parts or path.suffix not in (".py", ".pyx", ".so", ".pyd"):
            continue
        parts = list(path.relative_to(package_dir).parent.parts)
        stem = path.name.split(".")[0]  # _kernels.cpython-311-x86_64-linux-gnu.so
        if stem != "__init__":
            parts.append(stem)
        name = ".".join([package, *parts])
        if path.suffix == ".py" or name not in modules:
            modules[name] = path
    return modules


def _import_statements(tree: ast.AST) -> Iterator[tuple]:
    """``(statement, top_level)`` for every import in a module."""
    def visit(node: ast.AST, in_function: bool) -> Iterator[tuple]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, not in_function
            else:
                yield from visit(child, in_function or isinstance(
                    child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))
    yield from visit(tree, False)


def _ancestors(name: str) -> List[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph(package_dir: Path, package: str = PACKAGE) -> List[Import]:
    """Every import of a module of ``package`` by a module of ``package``."""
    modules = find_modules(package_dir, package)
    edges: List[Import] = []
    for importer, path in modules.items():
        if path.suffix != ".py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        own_package = importer if path.name == "__init__.py" else importer.rsplit(".", 1)[0]
        for statement, top_level in _import_statements(tree):
            if isinstance(statement, ast.Import):
                targets = [alias.name for alias in statement.names]
            else:
                if statement.level:
                    base = own_package.split(".")
                    base = base[:len(base) - (statement.level - 1)]
                    base_name = ".".join(base + ([statement.module] if statement.module else []))
                else:
                    base_name = statement.module or ""
                # `from pkg import name`: the submodule pkg.name if there is one,
                # else an attribute of pkg.
                targets = [f"{base_name}.{alias.name}" if f"{base_name}.{alias.name}" in modules
                           else base_name for alias in statement.names]
            for target in targets:
                if target != package and not target.startswith(package + "."):
                    continue
                loading = set(_ancestors(importer)) | {importer}
                for reached in [*_ancestors(target), target]:
                    explicit = reached == target
                    if reached == importer or (reached in loading and not explicit):
                        continue
                    edges.append(Import(importer, reached, statement.lineno, top_level))
    return edges


def find_cycles(edges: List[Import]) -> List[List[Import]]:
    """One circle of top-level imports per strongly connected group of modules."""
    graph: Dict[str, Dict[str, Import]] = {}
    for edge in edges:
        if edge.top_level:
            graph.setdefault(edge.importer, {}).setdefault(edge.target, edge)
    # Tarjan's strongly connected components (iterative).
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    on_stack: Set[str] = set()
    stack: List[str] = []
    groups: List[Set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, {}))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(group)
    cycles = []
    for group in groups:
        start = min(group)
        # Breadth-first inside the group, back to the start.
        paths: Dict[str, List[Import]] = {start: []}
        frontier = [start]
        found = None
        while frontier and found is None:
            following = []
            for node in frontier:
                for target, edge in sorted(graph.get(node, {}).items()):
                    if target == start:
                        found = paths[node] + [edge]
                        break
                    if target in group and target not in paths:
                        paths[target] = paths[node] + [edge]
                        following.append(target)
                if found:
                    break
            frontier = following
        cycles.append(found)
    return cycles


def describe(cycle: List[Import]) -> str:
    steps = " -> ".join(f"{edge.importer} (line {edge.line})" for edge in cycle)
    return f"{steps} -> {cycle[0].importer}"


def part_of(module: str) -> str:
    if module == PACKAGE:
        return "root"
    if module in COMPUTE_CORE:
        return "compute core"
    if module in TOOLS:
        return "tools"
    return "Keras-like API"


# ----------------------------------------------------------------------
# fastconv itself

def test_no_module_imports_itself_back_at_load_time():
    cycles = find_cycles(import_graph(PACKAGE_DIR))
    assert not cycles, "circles of top-level imports:\n" + "\n".join(map(describe, cycles))


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_the_layers_of_the_code_only_import_downwards():
    """Compute core <- Keras-like API <- tools, counting function-level
    imports too; the API reaches the C kernels only through ``ops`` (and the
    core's allocator), never ``_kernels`` itself; and inside the API the
    layers never reach up to the models."""
    allowed = {"compute core": {"compute core"},
               "Keras-like API": {"compute core", "Keras-like API"},
               "tools": {"compute core", "Keras-like API", "tools", "root"},
               "root": {"compute core", "Keras-like API", "tools", "root"}}
    wrong = []
    for edge in import_graph(PACKAGE_DIR):
        source, target = part_of(edge.importer), part_of(edge.target)
        if target == "root" and source == "compute core" and not edge.top_level:
            continue  # config reads __version__ when called
        if target not in allowed[source] or (
                source == "Keras-like API" and edge.target == "fastconv._kernels"):
            wrong.append(f"{edge.importer} ({source}) imports {edge.target} ({target}) on "
                         f"line {edge.line}")
        for importer, imported, why in UPWARD_IN_THE_API:
            if _within(edge.importer, importer) and _within(edge.target, imported):
                wrong.append(f"{edge.importer} imports {edge.target} on line {edge.line}: {why}")
    assert not wrong, "\n".join(wrong)


def test_the_parts_name_modules_that_exist():
    modules = find_modules(PACKAGE_DIR, PACKAGE)
    assert COMPUTE_CORE | TOOLS <= set(modules), sorted((COMPUTE_CORE | TOOLS) - set(modules))


def test_no_module_of_the_keras_like_api_is_too_long():
    modules = find_modules(PACKAGE_DIR, PACKAGE)
    too_long = {}
    for name, path in modules.items():
        if path.suffix == ".py" and part_of(name) in ("Keras-like API", "root"):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_API_MODULE_LINES:
                too_long[name] = lines
    assert not too_long, (f"modules of the Keras-like API above {MAX_API_MODULE_LINES} lines "
                          f"(split them by concept): {too_long}")


def test_readme_layout_names_every_part_of_the_package():
    """The README's "Layout of the code" section names every module and
    subpackage of the package root."""
    if not README.is_file():
        pytest.skip("no README.md next to tests/ (a wheel check)")
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^#+ Layout of the code\n(.*?)(?=^#+ \S|\Z)", text, re.M | re.S)
    assert match, "README.md has no 'Layout of the code' section"
    section = match.group(1)
    top = {name.split(".")[1] for name in find_modules(PACKAGE_DIR, PACKAGE) if "." in name}
    missing = sorted(name for name in top if not re.search(rf"\b{re.escape(name)}\b", section))
    assert not missing, f"README's layout section does not mention {missing}"


def test_every_kernel_status_in_the_binding_is_checked():
    """Each function of _kernels.pyx that keeps a C status passes it to
    _check (which raises, and marks the call's end for the scaling record):
    a status dropped on the floor hid FC_ERR_NOMEM from one of them."""
    source = README.parent / "src" / "fastconv" / "_kernels.pyx"
    if not source.is_file():
        pytest.skip("no src/fastconv/_kernels.pyx next to tests/ (a wheel check)")
    blocks = re.split(r"\n(?=def |cdef |cpdef )", source.read_text(encoding="utf-8"))
    checks = ("_check(", "_done_unless_declined(")   # the latter calls _check
    unchecked = [b.split("(")[0] for b in blocks
                 if "status = fc_" in b and not any(c in b for c in checks)]
    assert not unchecked, f"statuses never checked in: {unchecked}"


# ----------------------------------------------------------------------
# The checks themselves, on small packages with known answers

def _write_package(root: Path, files: Dict[str, str]) -> Path:
    for relative, source in files.items():
        path = root / "pkg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return root / "pkg"


def test_function_level_imports_are_listed_but_form_no_circle(tmp_path):
    package = _write_package(tmp_path, {
        "__init__.py": "",
        "a.py": "from .b import helper\n",
        "b.py": "def helper():\n    from . import a\n    return a\n",
    })
    edges = import_graph(package, "pkg")
    assert Import("pkg.a", "pkg.b", 1, True) in edges
    assert Import("pkg.b", "pkg.a", 2, False) in edges
    assert find_cycles(edges) == []


def test_a_circle_through_a_type_checking_import_is_named(tmp_path):
    package = _write_package(tmp_path, {
        "__init__.py": "",
        "a.py": "from .b import helper\n",
        "b.py": """\
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from .a import Thing
            """,
    })
    cycles = find_cycles(import_graph(package, "pkg"))
    assert [describe(c) for c in cycles] == ["pkg.a (line 1) -> pkg.b (line 3) -> pkg.a"]


def test_a_circle_through_a_package_init_is_found(tmp_path):
    """``pkg.a`` imports ``pkg.sub.mod``, which runs ``pkg/sub/__init__``,
    which imports ``pkg.a`` (two dots up)."""
    package = _write_package(tmp_path, {
        "__init__.py": "",
        "a.py": "import pkg.sub.mod\n",
        "sub/__init__.py": "from ..a import value\n",
        "sub/mod.py": "from . import other\n",
        "sub/other.py": "",
    })
    edges = import_graph(package, "pkg")
    assert Import("pkg.sub.mod", "pkg.sub.other", 1, True) in edges
    assert not any(e.importer == "pkg.sub.mod" and e.target == "pkg.sub" for e in edges)
    cycles = find_cycles(edges)
    assert [describe(c) for c in cycles] == ["pkg.a (line 1) -> pkg.sub (line 1) -> pkg.a"]


def test_importing_a_name_from_a_partly_loaded_package_is_a_circle(tmp_path):
    package = _write_package(tmp_path, {
        "__init__.py": "from .core import Thing\nfrom .extra import More\n",
        "core.py": "class Thing: pass\n",
        "extra.py": "from . import Thing\n",
    })
    cycles = find_cycles(import_graph(package, "pkg"))
    assert [describe(c) for c in cycles] == ["pkg (line 2) -> pkg.extra (line 1) -> pkg"]
