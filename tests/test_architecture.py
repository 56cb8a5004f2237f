"""The rules of docs/ARCHITECTURE.md that code can break: short functions, no hidden kernel state in
augpipe, one-way imports, and design references that point inside the repository."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ("augpipe", "loaders", "ssl_train", "experiments")
SHARED = "_augpipe_shared"  # the one private package the four share
TOP_LEVEL = {*PUBLIC, SHARED}
PACKAGES = (*PUBLIC, SHARED, "scripts")
# what each package may import of ours (docs/ARCHITECTURE.md, "Who may import whom")
ALLOWED = {"loaders": {SHARED}, "augpipe": {SHARED}, "ssl_train": {SHARED, "loaders", "augpipe"},
           "experiments": {SHARED, "loaders", "augpipe", "ssl_train"}, SHARED: set()}


def sources(*packages):
    for package in packages:
        yield from sorted((ROOT / package).rglob("*.py"))


def parse(path):
    """`ast.parse` of `path`, again when CPython 3.11 fails it spuriously: its AST constructor
    keeps a recursion depth in per-interpreter state (see cpython gh-106905), so Python code that
    runs in the middle of a parse (a garbage-collected finalizer, another thread left by an
    earlier test) can leave `SystemError: AST constructor recursion depth mismatch`. The file is
    fine; a second parse succeeds (seen twice in our full-suite runs)."""
    for attempt in range(3):
        try:
            return ast.parse(path.read_text())
        except SystemError:
            if attempt == 2:
                raise


def functions(path):
    for node in ast.walk(parse(path)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def code_lines(f) -> int:
    """A function's lines without its docstring (an `Args:` section is documentation, not code)."""
    lines = f.end_lineno - f.lineno + 1
    first = f.body[0] if f.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines -= first.end_lineno - first.lineno + 1
    return lines


def test_no_function_is_longer_than_50_lines():
    long = [f"{p.relative_to(ROOT)}:{f.lineno} {f.name} ({code_lines(f)} lines)"
            for p in sources(*PACKAGES) for f in functions(p) if code_lines(f) > 50]
    assert not long, long


def test_no_global_or_contextvar_decides_what_augpipe_runs():
    found = []
    for path in sources("augpipe"):
        tree = parse(path)
        found += [f"{path.name}:{n.lineno} global" for n in ast.walk(tree) if isinstance(n, ast.Global)]
        found += [f"{path.name}:{n.lineno} ContextVar" for n in ast.walk(tree)
                  if isinstance(n, (ast.Name, ast.Attribute)) and getattr(n, "id", getattr(n, "attr", "")) == "ContextVar"]
    assert not found, found


def imported_packages(path):
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def test_the_distribution_installs_exactly_the_four_packages_and_the_shared_one():
    """setup.cfg's package list, read as setuptools reads it (the wheel's own list of top-level
    names is checked by tests/test_packaging.py); and no other Python package lies at the root."""
    import configparser

    from setuptools import find_packages
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    include = cfg["options.packages.find"]["include"].split()
    found = {name.split(".")[0] for name in find_packages(ROOT, include=include)}
    assert found == TOP_LEVEL
    at_root = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert at_root == TOP_LEVEL | {"tests"}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_one_way(package):
    ours = set(ALLOWED)
    wrong = sorted({f"{p.relative_to(ROOT)} imports {name}" for p in sources(package)
                    for name in imported_packages(p) if name in ours and name != package
                    and name not in ALLOWED[package]})
    assert not wrong, wrong


def test_the_code_cites_the_architecture_document_in_the_repository():
    assert (ROOT / "docs" / "ARCHITECTURE.md").is_file()
    stale = [str(p.relative_to(ROOT)) for p in sources(*PACKAGES, "tests")
             if "DESIGN.md" in p.read_text() and p.name != "test_architecture.py"]
    assert not stale, stale
    cited = [p for p in sources(*PACKAGES) if "docs/ARCHITECTURE.md" in p.read_text()]
    assert len(cited) >= 5


# Each package by layer (docs/ARCHITECTURE.md, "augpipe: the layers", "loaders: the layers"): a
# module imports its own layer and those below, never above, and another layer only through its
# package (`augpipe.ops`), never its private modules (`augpipe.ops._base`); the command lines are
# imported by nobody. augpipe's `cpu` and `diagnostics` are tools of the lowest layer: they
# import nothing of augpipe, and any layer may use them.
LAYERS = {
    "augpipe": {"cpu": 0, "diagnostics": 0, "functional": 0, "sampling": 1, "ops": 2, "policy": 3, "spec": 4,
                "interop": 5, "__init__": 6, "bench": 7},
    "loaders": {"sources": 0, "backends": 1, "build": 2, "__init__": 3, "prepare": 4, "bench": 4},
}


def module_name(package: str, path: Path) -> str:
    rel = path.relative_to(ROOT / package).with_suffix("")
    return ".".join((package, *rel.parts)).removesuffix(".__init__")


def package_imports(package: str, path: Path, modules: set[str]):
    """The `package.*` modules `path` imports, at the top or inside a function; `from package
    import name` counts as `package.name` where that is a module (`from augpipe import sampling`)."""
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == package:
            subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
            yield from subs or [node.module]
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] == package)


def layer(package: str, module: str) -> tuple[int, str]:
    parts = module.split(".")
    name = "__init__" if len(parts) == 1 else parts[1]
    return LAYERS[package][name], name


def import_graph(package: str) -> dict[str, set[str]]:
    paths = list(sources(package))
    modules = {module_name(package, p) for p in paths}
    return {module_name(package, p): set(package_imports(package, p, modules)) for p in paths}


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_every_module_has_a_layer(package):
    assert set(LAYERS[package]) == {layer_name for m in import_graph(package)
                                    for layer_name in [m.split(".")[1] if "." in m else "__init__"]}


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_layers_import_downwards_only_and_other_layers_through_their_package(package):
    wrong = []
    for module, targets in import_graph(package).items():
        for target in targets - {package}:
            (mine, my_name), (theirs, their_name) = layer(package, module), layer(package, target)
            if theirs > mine:
                wrong.append(f"{module} imports {target} (layer {their_name} is above {my_name})")
            elif their_name != my_name and any(part.startswith("_") for part in target.split(".")[2:]):
                wrong.append(f"{module} imports {target}, a private module of layer {their_name}")
    assert not sorted(wrong), sorted(wrong)


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_modules_import_each_other_without_circles(package):
    graph, cycles, done = import_graph(package), [], set()

    def visit(module, trail):
        for target in sorted(graph.get(module, ())):
            if target in trail:
                cycles.append(" -> ".join([*trail[trail.index(target):], target]))
            elif target in graph and target not in done:
                visit(target, [*trail, target])
        done.add(module)
    for module in sorted(graph):
        visit(module, [module])
    assert not cycles, cycles


def test_the_augpipe_layers_are_folders_and_the_tools_modules():
    """`ls augpipe` shows the layers: one folder each, besides the package, its command line and
    the two tools (no module left at the top from the old flat layout)."""
    top = {p.name for p in (ROOT / "augpipe").iterdir() if p.name != "__pycache__"}
    assert top == {"__init__.py", "py.typed", "bench.py", "cpu.py", "diagnostics.py",
                   "functional", "sampling", "ops", "policy", "spec", "interop"}


def test_translated_engines_and_the_converter_keep_no_table_of_ops():
    """Each op declares its counterparts (`Op.counterparts`); interop modules do not name ops."""
    from augpipe import OPS
    names = {cls.__name__ for cls in OPS.values()}
    for path in sources("augpipe/interop"):
        tree = parse(path)
        named = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in names}
                       | {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in OPS})
        allowed = {"Identity", "Normalize", "OneOf", "InRandomOrder"} if path.name == "_torchvision.py" else set()
        assert set(named) <= allowed, f"{path.relative_to(ROOT)} names ops {named}"
