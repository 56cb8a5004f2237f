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


def test_no_function_is_longer_than_50_lines():
    long = [f"{p.relative_to(ROOT)}:{f.lineno} {f.name} ({f.end_lineno - f.lineno + 1} lines)"
            for p in sources(*PACKAGES) for f in functions(p) if f.end_lineno - f.lineno + 1 > 50]
    assert not long, long


def test_policy_module_keeps_the_contract_only():
    assert len((ROOT / "augpipe" / "policy.py").read_text().splitlines()) <= 250


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


# loaders by layer (docs/ARCHITECTURE.md, "loaders: the layers"): a module may import its own
# layer and those below, never above; the command lines are imported by nobody
LOADERS_LAYERS = {"sources": 0, "backends": 1, "build": 2, "__init__": 3, "prepare": 4, "bench": 4}


def loaders_module(path: Path) -> str:
    rel = path.relative_to(ROOT / "loaders").with_suffix("")
    return ".".join(("loaders", *rel.parts)).removesuffix(".__init__")


def loaders_imports(path: Path):
    """The `loaders.*` modules `path` imports, at the top or inside a function."""
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("loaders"):
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("loaders"))


def layer_of(module: str) -> int:
    parts = module.split(".")
    return LOADERS_LAYERS["__init__" if len(parts) == 1 else parts[1]]


def test_loaders_layers_import_downwards_only_and_without_circles():
    graph = {loaders_module(p): set(loaders_imports(p)) for p in sources("loaders")}
    assert set(LOADERS_LAYERS) == {m.split(".")[1] if "." in m else "__init__" for m in graph}  # every module has a layer
    upward = sorted(f"{m} imports {t}" for m, targets in graph.items() for t in targets
                    if t != "loaders" and layer_of(t) > layer_of(m))
    assert not upward, upward
    cycles = []

    def visit(module, trail):
        for target in sorted(graph.get(module, ())):
            if target in trail:
                cycles.append(" -> ".join([*trail[trail.index(target):], target]))
            elif target in graph and target not in done:
                visit(target, [*trail, target])
        done.add(module)
    done: set[str] = set()
    for module in sorted(graph):
        visit(module, [module])
    assert not cycles, cycles
