"""The house's rules, read from the source: imports run one way, and only tasks know task types."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "src" / "torchclf"
TASK_CLASSES = {"Task", "BinaryTask", "MulticlassTask", "MultilabelTask"}
TASK_NAMES = {"binary", "multiclass", "multilabel"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text()) for p in PACKAGE.rglob("*.py")}


def _imports(tree: ast.Module, modules: set[str]) -> set[str]:
    """Every torchclf module a module imports: at the top, inside functions (lazy imports) and
    for type checkers alike, since each is a dependency of its code."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in modules}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every circle a depth-first walk of ``graph`` (module -> modules it imports) meets."""
    state: dict[str, str] = {}
    circles = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for dependency in sorted(graph[name]):
            if state.get(dependency) == "open":
                circles.append([*path[path.index(dependency) :], dependency])
            elif dependency not in state:
                visit(dependency, [*path, dependency])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return circles


def test_no_module_imports_itself_back_in_a_circle():
    modules = _modules()
    graph = {name: _imports(tree, set(modules)) - {name} for name, tree in modules.items()}
    for name, dependencies in graph.items():
        # a package importing its own submodules to re-export them is not a circle
        graph[name] = {d for d in dependencies if not d.startswith(name + ".")}
    assert _circles(graph) == []


def _task_type_tests(tree: ast.Module) -> list[str]:
    """isinstance(..., <a task class>) and comparisons of something with a task's name."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
            kinds = node.args[1] if len(node.args) == 2 else None
            names = {n.id for n in ast.walk(kinds) if isinstance(n, ast.Name)} if kinds else set()
            if names & TASK_CLASSES:
                found.append(ast.unparse(node))
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            literals = {s.value for s in sides if isinstance(s, ast.Constant)}
            if literals & TASK_NAMES and isinstance(node.ops[0], ast.Eq | ast.NotEq | ast.In):
                found.append(ast.unparse(node))
    return found


def test_only_the_tasks_package_tests_a_tasks_type():
    offenders = {
        name: found
        for name, tree in _modules().items()
        if not name.startswith("torchclf.tasks") and (found := _task_type_tests(tree))
    }
    assert offenders == {}


def test_the_checks_find_what_they_look_for():
    tree = ast.parse(
        "if isinstance(task, MulticlassTask): pass\nif classifier.task.name == 'binary': pass"
    )
    assert len(_task_type_tests(tree)) == 2
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    imports = ast.parse("from torchclf.engine import loops\ndef f():\n    import torchclf.tasks\n")
    known = {"torchclf.engine", "torchclf.engine.loops", "torchclf.tasks"}
    assert _imports(imports, known) == {"torchclf.engine.loops", "torchclf.tasks"}


def _floors() -> dict[str, int]:
    """Module -> floor, from the table in docs/architecture.md."""
    page = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text()
    floors = {}
    for line in page.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            for name in cells[2].replace("\\", "").split(","):
                module = name.strip()
                floors["torchclf" if module == "torchclf" else f"torchclf.{module}"] = int(cells[0])
    return floors


def test_every_module_has_a_floor_and_imports_only_from_its_floor_or_below():
    modules = _modules()
    floors = _floors()
    assert sorted(set(modules) - set(floors)) == []  # a new module needs its row in the table
    assert sorted(set(floors) - set(modules)) == []  # and a moved one leaves no stale name
    upward = [
        f"{name} (floor {floors[name]}) imports {dependency} (floor {floors[dependency]})"
        for name, tree in modules.items()
        for dependency in sorted(_imports(tree, set(modules)))
        if floors[dependency] > floors[name]
    ]
    assert upward == []


def test_the_command_line_imports_only_the_public_api_and_its_own_modules():
    import torchclf

    public = {"torchclf"} | {f"torchclf.{name}" for name in torchclf._SUBMODULES}
    modules = _modules()
    reaching_in = {
        name: sorted(d for d in _imports(tree, set(modules)) if d not in public)
        for name, tree in modules.items()
        if name.startswith("torchclf.cli")
    }
    assert {
        name: [d for d in deps if not d.startswith("torchclf.cli")]
        for name, deps in reaching_in.items()
        if any(not d.startswith("torchclf.cli") for d in deps)
    } == {}
