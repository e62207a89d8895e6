"""The one entry of every command-line script: a user's mistake (a flag, a file, a config field, a split) becomes one
``error: ...`` line on stderr and exit status 2, never a traceback.

Library code raises (``ValueError`` for a wrong value, ``OSError`` for a file, or an error class of its own);
scripts decorate their ``main`` with :func:`script_entry`::

    @script_entry()
    def main(argv=None) -> int:
        args = build_parser().parse_args(argv)
        ...
        return 0

    if __name__ == "__main__":
        sys.exit(main())

An error class may set ``exit_status`` (e.g. 1 for "the export ran but its check failed"); anything else that is not
a user's mistake (a bug, a torch failure) keeps its traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["USER_ERRORS", "one_line", "parse_json_object", "script_entry"]

#: what library code raises for a user's mistake; ``FileNotFoundError`` and the Hub's HTTP errors are ``OSError``s
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)


def one_line(err: BaseException) -> str:
    """The error's message on one line (some messages, e.g. HfArgumentParser's or the Hub's offline error, span
    several), or its class name when it has none."""
    return " ".join(str(err).split()) or type(err).__name__


def script_entry(*errors: type[BaseException]) -> Callable[[Callable[..., int | None]], Callable[..., int]]:
    """Decorate a script's ``main(argv=None)``: it returns its exit status (``None`` counts as 0), and a user's
    mistake (:data:`USER_ERRORS`, or one of ``errors``: a script's own, e.g. ``ImportError`` for a missing optional
    dependency) prints one ``error:`` line on stderr and returns the error's ``exit_status`` (2 unless its class
    sets another). Tests call ``main([...])`` and read the status; ``sys.exit(main())`` runs the script."""
    caught = USER_ERRORS + tuple(errors)

    def decorate(main: Callable[..., int | None]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(argv: Sequence[str] | None = None) -> int:
            try:
                status = main(argv)
            except caught as err:
                print(f"error: {one_line(err)}", file=sys.stderr)
                return int(getattr(err, "exit_status", 2))
            return 0 if status is None else int(status)

        return run

    return decorate


def parse_json_object(value: str | None, name: str) -> dict[str, Any]:
    """The JSON object given as flag ``--name`` (``{}`` when unset); a ``ValueError`` naming the flag otherwise."""
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise ValueError(f"--{name} must be a JSON object, got {value!r} ({err})") from err
    if not isinstance(parsed, dict):
        raise ValueError(f"--{name} must be a JSON object, got {value!r}")
    return parsed
