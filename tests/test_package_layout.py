"""labkit stays a package a newcomer can map: small functions, no import cycles, the core free of
the course's machinery, and every public name defined in one place and imported from there.

A module is as long as its one concern needs (there is no line cap); its functions stay short."""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "labkit"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "datasets" not in p.parts)
MAX_FUNCTION_LINES = 60
CORE = {"labkit.env", "labkit.models", "labkit.data", "labkit.train", "labkit.evaluate", "labkit.search",
        "labkit.cache", "labkit.plots", "labkit.preferences"}
# which layer may import which: the core knows no outer layer; onnx knows the core; course and cli know both
LAYERS = {"core": {"core"}, "onnx": {"core", "onnx"}, "course": {"core", "onnx", "course"},
          "cli": {"core", "onnx", "course", "cli"}}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "core"


def imports_of(path: Path) -> set[str]:
    """The labkit modules ``path`` imports, at the top or inside a function (both count for a cycle)."""
    names = {module_name(p) for p in MODULES}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("labkit"):
            found |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in names}
            if node.module in names:
                found.add(node.module)
    found.discard(module_name(path))
    return {m for m in found if m != "labkit" and not (PACKAGE / m.split(".", 1)[1].replace(".", "/")).is_dir()}


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, each as the list of modules around it (a depth-first search)."""
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_import_graph_has_no_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_each_layer_imports_only_the_layers_below_it():
    wrong = [f"{m} imports {i}" for m, deps in import_graph().items() for i in deps
             if layer(i) not in LAYERS[layer(m)]]
    assert not wrong, "the core must not import labkit.onnx, labkit.course or labkit.cli: " + "; ".join(wrong)


def test_the_core_is_the_seven_modules_and_plots():
    core = {m for m in import_graph() if layer(m) == "core" and m != "labkit"}
    assert core == CORE


def test_every_module_imports_labkit_absolutely():
    relative = [f"{module_name(p)} line {node.lineno}" for p in MODULES for node in ast.walk(ast.parse(p.read_text()))
                if isinstance(node, ast.ImportFrom) and node.level]
    assert not relative, f"relative imports (write `from labkit.x import y`): {relative}"


def public_definitions() -> dict[str, list[str]]:
    where = defaultdict(list)
    for path in MODULES:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                where[node.name].append(module_name(path))
    return where


def test_a_public_function_or_class_is_defined_in_one_module():
    twice = {name: mods for name, mods in public_definitions().items() if len(mods) > 1 and name != "main"}
    assert not twice, f"defined in more than one module (one name for one thing): {twice}"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_a_name_is_imported_from_the_module_that_defines_it(path):
    where = public_definitions()
    wrong = [f"{a.name} from {node.module} (defined in {where[a.name]})"
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("labkit")
             for a in node.names if a.name in where and node.module not in where[a.name]]
    assert not wrong, f"{path.name} imports re-exported names: {wrong}"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_functions_are_small(path):
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {long}"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_no_private_names_from_other_modules(path):
    private = [f"{alias.name} from {node.module} (line {node.lineno})"
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("labkit")
               and node.module != module_name(path)
               for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not private, f"{path.name} imports private names of other labkit modules: {private}"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_public_functions_have_docstrings(path):
    missing = [node.name for node in ast.parse(path.read_text()).body
               if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_")
               and ast.get_docstring(node) is None]
    assert not missing, f"{path.name}: public functions without a docstring: {missing}"
