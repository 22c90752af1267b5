"""The API reference of the ``detloss`` package: HTML by pdoc, checked before it is written.

    python tools/api_docs.py                 # -> build/api/index.html, detloss.html, detloss/<module>.html
    python tools/api_docs.py --out site/api

Why pdoc (not mkdocstrings): one package with no site configuration (no mkdocs.yml, theme or per-module
Markdown stubs), and it reads the docstrings as they are written here: Google ``Args:`` sections and reST roles
(``:class:`detloss.YoloLoss```), which it turns into links. What it does not do is complain about a reference it
cannot resolve (it leaves it as plain code), so this script checks before writing anything and exits 1 when:

* a name of ``detloss.__all__`` is missing from the ``detloss`` page, or a class or function of it has no
  docstring;
* a reST role in a rendered docstring (``:class:``, ``:func:``, ``:meth:``, ``:mod:``, ``:data:``, ``:attr:``,
  ``:obj:``, ``:exc:``, ``:const:``) names nothing that exists, looked up in the class of the docstring (for a
  module's docstring: in the classes defined there), in its module, in ``detloss``, or as a full dotted path;
* pdoc warns (a module that does not import, a docstring it cannot parse).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ROLE = re.compile(r"(?::py)?:(mod|func|data|const|class|meth|attr|exc|obj):`([^`]+)`")


def _lookup(obj: Any, dotted: str) -> bool:
    for part in dotted.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            return False
    return True


def _absolute(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        return _lookup(module, ".".join(parts[i:])) if i < len(parts) else True
    return False


def resolves(target: str, module: types.ModuleType, cls: type | None) -> bool:
    """Whether a role's target names an existing object (Sphinx's search order, roughly)."""
    name = target.strip().lstrip("~.").removesuffix("()")
    if "<" in name:  # `text <target>` form
        name = name.split("<", 1)[1].rstrip(">").strip()
    if cls is not None:
        scopes: list[Any] = [cls]
    else:  # a module's docstring may name a method of the class the module is about
        scopes = [v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__]
    scopes += [module, importlib.import_module("detloss")]
    return any(_lookup(scope, name) for scope in scopes) or _absolute(name)


def _rendered(doc: Any) -> Iterator[tuple[Any, type | None]]:
    """The doc objects pdoc renders under ``doc`` (public, defined here or listed in ``__all__``), with their class."""
    import pdoc.doc

    yield doc, None
    if isinstance(doc, pdoc.doc.Module):
        exported = getattr(doc.obj, "__all__", None)
        for name, member in doc.members.items():
            if name.startswith("_"):
                continue
            if exported is not None and name not in exported:
                continue
            if exported is None and member.taken_from[0] != doc.modulename:
                continue
            if isinstance(member, pdoc.doc.Class):
                yield from _class_members(member)
            else:
                yield member, None
    elif isinstance(doc, pdoc.doc.Class):
        yield from _class_members(doc)


def _class_members(cls_doc: Any) -> Iterator[tuple[Any, type | None]]:
    yield cls_doc, cls_doc.obj
    for member in cls_doc.own_members:  # inherited members carry torch's docstrings, not ours
        if not member.name.startswith("_") or member.name == "__init__":
            yield member, cls_doc.obj


def module_names() -> list[str]:
    """``detloss`` and every submodule: the docstrings link to them (pdoc alone follows ``__all__``, no submodule)."""
    import detloss

    return ["detloss"] + sorted(f"detloss.{m.name}" for m in pkgutil.iter_modules(detloss.__path__))


def check_exports(top: Any, names: list[str]) -> list[str]:
    """Names of ``__all__`` missing from the package page, and its classes and functions without a docstring."""
    problems = []
    for name in names:
        member = top.members.get(name)
        if member is None:
            problems.append(f"{top.modulename}.__all__ name {name!r} is not on the {top.modulename} page")
        elif isinstance(member.obj, (type, types.FunctionType)) and not member.docstring.strip():
            problems.append(f"{top.modulename}.{name} has no docstring")
    return problems


def check_roles(modules: dict[str, Any]) -> list[str]:
    """Roles in rendered docstrings whose target names nothing (see :func:`resolves`)."""
    problems, seen = [], set()
    for mod_doc in modules.values():
        for doc, cls in _rendered(mod_doc):
            key = (doc.fullname, id(doc.obj))
            if key in seen:
                continue
            seen.add(key)
            if isinstance(doc.obj, types.FunctionType) and not doc.obj.__doc__:
                continue  # no docstring of its own: pdoc shows the overridden method's (torch's) text
            for role, target in ROLE.findall(doc.docstring):
                if not resolves(target, sys.modules[doc.modulename], cls):
                    problems.append(f"{doc.fullname}: :{role}:`{target}` names nothing")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "api", help="output folder (default build/api)")
    opt = ap.parse_args(argv)
    try:
        import pdoc
        import pdoc.doc
        import pdoc.extract
        import pdoc.render
    except ImportError:
        print('pdoc is not installed: pip install -e ".[docs]"', file=sys.stderr)
        return 2
    pdoc.render.configure(docformat="google", show_source=False, footer_text="detloss API reference")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        modules = {name: pdoc.doc.Module.from_name(name) for name in module_names()}
        import detloss

        problems = check_exports(modules["detloss"], list(detloss.__all__)) + check_roles(modules)
        pages = {name: pdoc.render.html_module(mod, modules) for name, mod in modules.items()}
        index, search = pdoc.render.html_index(modules), pdoc.render.search_index(modules)
    problems += [f"pdoc warned: {w.message}" for w in caught if "pdoc" in str(w.filename)]
    if problems:
        print(f"API reference: {len(problems)} problem(s), nothing written:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    for name, html in pages.items():
        path = opt.out / f"{name.replace('.', '/')}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
    if index:
        (opt.out / "index.html").write_text(index, encoding="utf-8")
    if search:
        (opt.out / "search.js").write_text(search, encoding="utf-8")
    print(f"API reference: {len(modules)} modules, {len(pages)} pages -> {opt.out}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
