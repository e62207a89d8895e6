"""What the benchmark smoke tests share: loading a script of ``benchmarks/`` as a module, and the checks of the
records every script writes (a ``compare`` result, the provenance) and of a one-line flag error."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as the module ``mlic_<name>``, registered in ``sys.modules`` (its dataclasses and
    pickling need it there); loaded once, the same module after."""
    module_name = f"mlic_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def check_comparison(c: dict) -> None:
    """A ``compare`` result: each side's min/median/max are its raw times', the ratio and its bounds are recomputed
    from the summaries, and the verdict follows the ratio range."""
    for side in ("a", "b"):
        s = c[side]
        assert 0 < s["min"] <= s["median"] <= s["max"] and s["repeats"] == len(c["times"][side])
        assert s["min"] == min(c["times"][side]) and s["max"] == max(c["times"][side])
    assert c["ratio"] == pytest.approx(c["a"]["median"] / c["b"]["median"])
    assert c["ratio_low"] == pytest.approx(c["a"]["min"] / c["b"]["max"])
    assert c["ratio_high"] == pytest.approx(c["a"]["max"] / c["b"]["min"])
    assert c["ratio_low"] <= c["ratio"] <= c["ratio_high"]
    expected = "B faster" if c["ratio_low"] > 1 else "A faster" if c["ratio_high"] < 1 else "within noise"
    assert c["verdict"] == expected


def check_provenance(prov: dict, libraries: Iterable[str] = (), command: str | None = None) -> None:
    """A results file's provenance: date, machine, libraries (``libraries`` among them), git (a 40-hex commit) and
    command (starting with ``command`` if given)."""
    assert {"date", "machine", "libraries", "git", "command"} <= set(prov)
    assert re.fullmatch(r"[0-9a-f]{40}", prov["git"]["commit"])
    for library in libraries:
        assert library in prov["libraries"]
    if command is not None:
        assert prov["command"].startswith(command)


def check_one_error_line(capsys: pytest.CaptureFixture, message: str) -> None:
    """What a script's ``main`` printed on stderr is one ``error: ...`` line holding ``message``."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
