"""File writes shared by ``models``, ``data`` and ``tools``: atomic writes and link-or-copy placement.

Standard library only (no torch, numpy or project package), so any layer may import it: ``tools.evaluation``
writes its JSON and figures through it without loading torch. ``detloss`` (the installed library) does not
use it.
"""

from .atomic import atomic_write, atomic_write_with, temp_sibling
from .place import link_or_copy

__all__ = ["atomic_write", "atomic_write_with", "link_or_copy", "temp_sibling"]
