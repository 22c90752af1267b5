"""tools/api_docs.py: the API reference's checks (a broken docstring reference fails the build)."""

from __future__ import annotations

import sys
import types

import pytest

import detloss
from tools import api_docs

pdoc_doc = pytest.importorskip("pdoc.doc", reason='pdoc is not installed (pip install -e ".[docs]")')


def test_resolves_like_sphinx():
    loss_mod = sys.modules["detloss.loss"]
    assert api_docs.resolves("detloss.YoloLoss", loss_mod, None)
    assert api_docs.resolves("~detloss.yolov5_compat.read_yolov5_model", loss_mod, None)
    assert api_docs.resolves("LossConfig.from_yolov5_hyp", loss_mod, None)  # in the module
    assert api_docs.resolves("smooth_BCE", loss_mod, None)  # in detloss
    assert api_docs.resolves("from_yolov5_model", loss_mod, detloss.YoloLoss)  # in the class
    assert api_docs.resolves("torch.autograd.Function", loss_mod, None)  # a full path
    assert not api_docs.resolves("from_yolov5_model", sys.modules["detloss.config"], None)
    assert not api_docs.resolves("detloss.YoloLoss.no_such_method", loss_mod, None)
    assert not api_docs.resolves("detloss.no_such_module.thing", loss_mod, None)


def _module(name: str, source: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    exec(source, mod.__dict__)
    sys.modules[name] = mod
    return mod


def test_a_broken_reference_and_a_missing_docstring_are_reported():
    src = '''
"""A probe module; see :class:`Good`."""
__all__ = ["Good", "bad", "bare"]
class Good:
    """Fine: :meth:`run` and :func:`detloss.smooth_BCE`."""
    def run(self):
        """Calls :func:`no_such_function`."""
def bad():
    """Refers to :class:`detloss.NoSuchLoss`."""
def bare():
    pass
'''
    try:
        mod = _module("_api_docs_probe", src)
        doc = pdoc_doc.Module(mod)
        roles = api_docs.check_roles({"_api_docs_probe": doc})
        exports = api_docs.check_exports(doc, [*mod.__all__, "missing"])
    finally:
        del sys.modules["_api_docs_probe"]
    assert sorted(roles) == [
        "_api_docs_probe.Good.run: :func:`no_such_function` names nothing",
        "_api_docs_probe.bad: :class:`detloss.NoSuchLoss` names nothing",
    ]
    assert exports == [
        "_api_docs_probe.bare has no docstring",
        "_api_docs_probe.__all__ name 'missing' is not on the _api_docs_probe page",
    ]
