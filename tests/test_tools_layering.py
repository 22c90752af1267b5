"""tools/ layered by responsibility: metrics without torch, no import cycle between packages, scripts import no script;
the product (detloss, data, models, tools) imports no experiment.

The import graph is read from the source (every ``import``, also inside functions: a lazy import is still a
dependency), so the checks hold for code paths no other test runs.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"
PACKAGES = sorted(p.name for p in TOOLS.iterdir() if (p / "__init__.py").is_file())
SCRIPTS = sorted(p.stem for p in TOOLS.glob("*.py") if p.name != "__init__.py")


def _imports(path: Path) -> set[str]:
    """Absolute dotted names a module imports (relative imports resolved against its package)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    package = parts[:-1]  # a module's package; for an __init__.py the package itself
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            mod = ".".join([*base, *([node.module] if node.module else [])])
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # `from tools import eval` imports tools.eval
    return out


def _owner(path: Path) -> str:
    """``pkg:<name>`` for a module of ``tools/<name>/``, ``script:<stem>`` for ``tools/<stem>.py``."""
    rel = path.relative_to(TOOLS).parts
    return f"pkg:{rel[0]}" if len(rel) > 1 else f"script:{path.stem}"


def _target(name: str) -> str | None:
    """What a dotted import name points at inside ``tools/`` (None: outside, or ``tools`` itself)."""
    parts = name.split(".")
    if parts[0] != "tools" or len(parts) < 2:
        return None
    if parts[1] in PACKAGES:
        return f"pkg:{parts[1]}"
    return f"script:{parts[1]}" if parts[1] in SCRIPTS else None


def _graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in TOOLS.rglob("*.py"):
        if path.name == "__init__.py" and path.parent == TOOLS:
            continue
        src = _owner(path)
        deps = {t for t in map(_target, _imports(path)) if t is not None and t != src}
        edges.setdefault(src, set()).update(deps)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_graph_reader_sees_lazy_relative_and_from_imports(tmp_path):
    mod = TOOLS / "evaluation" / "plots.py"  # imports matplotlib inside a function
    assert "matplotlib.figure.Figure" in _imports(mod)
    assert "tools.evaluation.cocojson" in _imports(TOOLS / "evaluation" / "matching.py")  # `from .cocojson import`
    assert _target("tools.eval") == "script:eval" and _target("tools.inference.loop") == "pkg:inference"
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_between_tools_packages():
    edges = _graph()
    packages = {n: {m for m in deps if m.startswith("pkg:")} for n, deps in edges.items() if n.startswith("pkg:")}
    assert _cycle(packages) is None, f"import cycle between tools packages: {' -> '.join(_cycle(packages) or [])}"


def test_scripts_import_no_script():
    bad = {
        n: sorted(m for m in deps if m.startswith("script:")) for n, deps in _graph().items() if n.startswith("script:")
    }
    bad = {n: deps for n, deps in bad.items() if deps}
    assert not bad, f"scripts importing scripts (move the shared helper into a package): {bad}"
    packages = {n: sorted(m for m in deps if m.startswith("script:")) for n, deps in _graph().items()}
    assert not {n: d for n, d in packages.items() if n.startswith("pkg:") and d}, "a package imports a script"


PRODUCT = ("detloss", "data", "models", "tools")


def _imports_experiments(path: Path) -> list[str]:
    """The names under ``experiments`` that a module imports."""
    return sorted(n for n in _imports(path) if n == "experiments" or n.startswith("experiments."))


def test_the_product_imports_no_experiment():
    """Experiments (experiments/) may import the product; nothing in detloss, data, models or tools imports them."""
    study = ROOT / "experiments" / "label_smoothing" / "study.py"
    assert "experiments.label_smoothing.keys" in _imports_experiments(study)  # the reader sees such an import
    assert _imports_experiments(ROOT / "experiments" / "label_smoothing" / "job.py")  # relative: `from .measure`
    bad = {
        str(p.relative_to(ROOT)): names
        for pkg in PRODUCT
        for p in sorted((ROOT / pkg).rglob("*.py"))
        if (names := _imports_experiments(p))
    }
    assert not bad, f"product modules importing experiments (move the shared code into the product): {bad}"


def test_evaluation_depends_on_no_other_tools_package():
    assert _graph()["pkg:evaluation"] == set(), "tools.evaluation must not import inference, detection, training"


_NO_TORCH = """
import json, pkgutil, sys, traceback
for blocked in ("torch", "torchvision", "models", "data"):
    sys.modules[blocked] = None  # importing any of them now raises ImportError
import tools.evaluation as ev
failed = {}
for m in pkgutil.iter_modules(ev.__path__):
    try:
        __import__(f"tools.evaluation.{m.name}")
    except Exception:
        failed[m.name] = traceback.format_exc(limit=3)
gt = {"images": [{"id": 1, "width": 100, "height": 100}], "categories": [{"id": 1, "name": "a"}],
      "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400}]}
dt = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9}]
res = ev.evaluate_results(gt, dt, ev.EvalConfig(backend="pycocotools"))
print(json.dumps({"failed": failed, "modules": sorted(m.name for m in pkgutil.iter_modules(ev.__path__)),
                  "map50": res.map50, "metrics": res.metrics()}))
"""


def test_evaluation_imports_and_computes_without_torch():
    out = subprocess.run([sys.executable, "-c", _NO_TORCH], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert not got["failed"], "modules of tools.evaluation that need torch, models or data:\n" + "\n".join(
        f"{k}:\n{v}" for k, v in got["failed"].items()
    )
    assert {"evaluate", "matching", "calibration", "coco", "config", "metric_names"} <= set(got["modules"])
    assert got["map50"] == pytest.approx(1.0)  # COCO dicts in, numbers out
    assert got["metrics"]["metrics/mAP_0.5"] == pytest.approx(1.0)


def _reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for m in edges.get(todo.pop(), ()):
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen


def test_reachable_follows_edges():
    assert _reachable({"a": {"b"}, "b": {"c"}, "d": {"a"}}, "a") == {"b", "c"}


@pytest.mark.parametrize("script", ["eval", "detect"])
def test_eval_and_detect_never_import_training(script):
    """Running a model (eval, detect) needs nothing of the trainer, directly or through another package."""
    assert "pkg:training" not in _reachable(_graph(), f"script:{script}")


_NO_TORCH_LOADED = """
import json, pkgutil, sys, tempfile
from pathlib import Path
import fileio
assert not {"torch", "numpy"} & set(sys.modules), "fileio must be standard library only"
import tools.evaluation as ev
for m in pkgutil.iter_modules(ev.__path__):
    __import__(f"tools.evaluation.{m.name}")
gt = {"images": [{"id": 1, "width": 100, "height": 100}], "categories": [{"id": 1, "name": "a"}],
      "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400}]}
dt = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9}]
res = ev.evaluate_results(gt, dt, ev.EvalConfig(backend="pycocotools"))
out = Path(tempfile.mkdtemp())
ev.atomic_write_json(out / "dt.json", dt)
res.write_json(out / "metrics.json")
print(json.dumps({"torch": "torch" in sys.modules, "written": sorted(p.name for p in out.iterdir())}))
"""


def test_evaluation_never_loads_torch_even_when_writing_files():
    """Unlike the test above (torch blocked), torch is importable here: nothing in evaluation may load it."""
    out = subprocess.run(
        [sys.executable, "-c", _NO_TORCH_LOADED], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"torch": False, "written": ["dt.json", "metrics.json"]}


@pytest.mark.parametrize(
    "package,forbidden",
    [
        ("detloss", {"fileio", "models", "data", "tools"}),  # the installed library: torch and the standard library
        ("fileio", {"detloss", "models", "data", "tools", "torch", "numpy"}),  # standard library only
        ("data", {"models", "tools"}),
        ("models", {"data", "tools"}),
    ],
)
def test_packages_import_one_way(package, forbidden):
    bad = {
        str(path.relative_to(ROOT)): sorted(n for n in _imports(path) if n.split(".")[0] in forbidden)
        for path in (ROOT / package).rglob("*.py")
    }
    assert not {k: v for k, v in bad.items() if v}, f"{package} imports what it must not: {bad}"


def test_every_script_puts_the_checkout_on_sys_path_before_importing_it():
    """``python tools/<script>.py`` from any folder: the ``sys.path.insert`` of the checkout comes before the first
    module-level import of a checkout package (else ``ModuleNotFoundError: tools`` outside pytest, whose rootdir
    hides it)."""
    local = {"tools", "data", "models", "fileio", "experiments"}
    late = []
    for path in sorted(TOOLS.glob("*.py")):
        insert_line = None
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if insert_line is None and "sys.path.insert" in ast.unparse(node):
                insert_line = node.lineno
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            if any(n.split(".")[0] in local for n in names) and insert_line is None:
                late.append(f"{path.name}:{node.lineno}")
    assert not late, f"checkout imports before the sys.path line: {late}"
