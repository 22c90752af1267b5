"""Shared test setup: the repo root on sys.path (models/, data/, tools/ are used from the checkout), and the shared
helpers at the top of tests/ importable from every folder both as ``from builders import ...`` and as
``from tests.builders import ...``.

Layout: ``tests/<package>/`` holds the tests of ``<package>`` (``tests/detloss/``, ``tests/tools/training/``, ...);
every folder is a Python package, so pytest's default "prepend" import mode names a test module
``tests.<folder>.test_x`` (two files with one basename in two folders do not collide) and puts the repo root, not
the test folder, on sys.path.
"""

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# Last on sys.path, never first: tests/data, tests/models, ... are packages too, and before the root they would
# shadow the real data/, models/, ... (why this is not pytest's `pythonpath = ["tests"]`, which prepends).
if str(TESTS) not in sys.path:
    sys.path.append(str(TESTS))

CUDA = torch.cuda.is_available()
DEVICES = ["cpu"] + (["cuda"] if CUDA else [])


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords and not CUDA:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same RNG state and leaves the global state as it found it."""
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    yield
    torch.random.set_rng_state(state)


@pytest.fixture(scope="module")
def one_thread():
    """Small tensors: one intra-op thread is as fast and does not stall when the cores are shared.

    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A data YAML over 16 train and 8 val demo images (txt lists), with the demo's names (trainer tests)."""
    import yaml

    from data.demo import ensure_demo

    demo = ensure_demo(tmp_path_factory.mktemp("demo"))
    root = demo.parent
    out = tmp_path_factory.mktemp("tiny")
    train_imgs = sorted((root / "images" / "train").iterdir())[:16]
    val_imgs = sorted((root / "images" / "val").iterdir())[:8]
    (out / "train.txt").write_text("\n".join(str(p) for p in train_imgs))
    (out / "val.txt").write_text("\n".join(str(p) for p in val_imgs))
    names = yaml.safe_load(demo.read_text())["names"]
    data = {"path": str(out), "train": "train.txt", "val": "val.txt", "names": names}
    (out / "tiny.yaml").write_text(yaml.safe_dump(data))
    return out / "tiny.yaml"
