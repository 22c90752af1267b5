"""How the scripts under ``tools/`` report a bad input: one line ``<script>: error: <what>`` on stderr and exit
status 2, argparse's own form, instead of a traceback. A missing file (weights, data, source) is a bad input too."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["USER_ERRORS", "InputError", "as_input_error", "run_script"]

# Errors that mean "the input is wrong" (the message names what and where), not "the program is wrong".
USER_ERRORS: tuple[type[Exception], ...] = (ValueError, FileNotFoundError)


class InputError(ValueError):
    """A bad input found before the work started (a missing or malformed weights, data or hyp file)."""


@contextmanager
def as_input_error() -> Iterator[None]:
    """Inside the block a :data:`USER_ERRORS` exception is an :class:`InputError`: the set-up steps of a script
    whose later errors (mid-training) should keep their traceback."""
    try:
        yield
    except InputError:
        raise
    except USER_ERRORS as e:
        raise InputError(str(e)) from e


def run_script(prog: str, main: Callable[[], Any], also: tuple[type[Exception], ...] = ()) -> None:
    """Call ``main()``; a :data:`USER_ERRORS` (or ``also``) exception becomes ``prog: error: ...`` and exit 2."""
    try:
        main()
    except (*USER_ERRORS, *also) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(2)
