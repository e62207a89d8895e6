"""What the benchmark scripts share: where a result came from, one timing method, and one way to write results.

- :func:`provenance`: the record every results file carries (UTC date, machine, library versions, the git commit
  with a dirty flag, the exact command), so a number in the README can be traced to a run.
- :func:`compare`: the one timing method for A/B comparisons: warm-up, then interleaved A/B repetitions (A and B
  alternate, so a slow spell of the machine hits both), min and median of each and their spread, and a ratio
  called a win only when it lies outside the spread.
- :func:`write_results`: ``benchmarks/results/<name>.json`` (and ``.md``) written atomically, paths made
  repo-relative (a results file must not hold the absolute paths of the machine that ran it); :func:`publish` also
  prints the table.
- :func:`comparison_row`, :func:`spread` and :func:`ratio_range`: one markdown format of ``compare`` results;
  :func:`judge_goal`: a goal "met" only when the whole ratio range satisfies it.
- :func:`torch_threads`: a torch thread count for a block, restored after; :func:`check_minimum`: flag checks;
  :func:`saved_activation_mb`: what a training forward keeps for its backward pass.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
#: tracked files a benchmark writes (``git status`` paths): a changed one does not make a run's code dirty
RESULTS_PREFIX = "benchmarks/results/"

#: Packages whose versions a results file records (those installed).
LIBRARIES = ("torch", "torchvision", "timm", "transformers", "datasets", "accelerate", "peft", "numpy",
             "safetensors", "onnxruntime", "onnx")


def cpu_model(default: str = "CPU") -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``, else ``default``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or default


def machine() -> dict[str, Any]:
    """CPU model, the cores this process may use, the accelerator (``none`` or the CUDA device), OS and Python."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count()
    accelerator = "none"
    try:
        import torch

        if torch.cuda.is_available():
            accelerator = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {"cpu": cpu_model("unknown CPU"), "cores": cores, "accelerator": accelerator,
            "platform": platform.platform(), "python": platform.python_version()}


def git_commit(repo: Path = REPO) -> dict[str, Any]:
    """``{"commit": sha, "dirty": bool, "dirty_files": [...]}`` of ``repo`` (``commit`` None outside a git
    checkout). ``dirty_files`` lists every tracked file that differs from the commit. Dirty means one of them is not
    a results file: the numbers may come from code that was never committed (a changed model can change a
    measurement). Results files under ``benchmarks/results/`` do not count: they are what the benchmarks write, so
    one benchmark run after another in the same checkout would otherwise make every later run "dirty"."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                             check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None, "dirty_files": None}
    files = sorted(line[3:] for line in status.splitlines() if line.strip())
    code = [name for name in files if not name.startswith(RESULTS_PREFIX)]
    return {"commit": sha, "dirty": bool(code), "dirty_files": files}


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def command(argv: Sequence[str] | None = None, script: str | None = None) -> str:
    """The command that ran, as a user would type it from the repository root (``python benchmarks/x.py ...``)."""
    script = script or sys.argv[0]
    argv = sys.argv[1:] if argv is None else list(argv)
    return shlex.join(["python", repo_relative(script), *map(str, argv)])


def provenance(argv: Sequence[str] | None = None, script: str | None = None) -> dict[str, Any]:
    """Where a result came from: ``date`` (UTC), ``machine``, ``libraries``, ``git`` and ``command``."""
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), "libraries": library_versions(), "git": git_commit(),
            "command": command(argv, script)}


def describe(record: dict[str, Any]) -> str:
    """One line for a results page: ``2026-12-07, AMD EPYC (2 cores, no accelerator), commit abc1234``."""
    machine_ = record["machine"]
    git = record["git"]
    commit = (git["commit"] or "no git")[:7] + (" (dirty)" if git.get("dirty") else "")
    accelerator = "no accelerator" if machine_["accelerator"] == "none" else machine_["accelerator"]
    return f"{record['date'][:10]}, {machine_['cpu']} ({machine_['cores']} cores, {accelerator}), commit {commit}"


def repo_relative(value: Any) -> Any:
    """``value`` with every absolute path inside the repository made relative to it (in strings, lists and dicts,
    recursively); other absolute paths keep only their last component."""
    if isinstance(value, dict):
        return {key: repo_relative(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [repo_relative(item) for item in value]
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str) and os.path.isabs(value) and len(value) > 1:
        path = Path(value)
        try:
            return str(path.resolve().relative_to(REPO))
        except ValueError:
            return path.name
    return value


def write_results(name: str, data: dict[str, Any], markdown: str | None = None,
                  folder: Path = RESULTS) -> Path:
    """Write ``<folder>/<name>.json`` (``data``, paths made repo-relative) and ``<name>.md`` if given, each
    replaced atomically. Returns the JSON path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    replace_text(path, json.dumps(repo_relative(data), indent=2, default=str) + "\n")
    if markdown is not None:
        replace_text(folder / f"{name}.md", markdown)
    return path


def publish(name: str, data: dict[str, Any], markdown: str, folder: Path = RESULTS) -> Path:
    """:func:`write_results`, then print the table and where it went: the end of every benchmark's ``main``."""
    path = write_results(name, data, markdown, folder=folder)
    print(markdown + f"\nwrote {path}")
    return path


def replace_text(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` atomically (a temporary file beside it, renamed)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def summarise(times: Sequence[float]) -> dict[str, float]:
    """``min``, ``median``, ``max`` and ``spread`` (max − min over the median, a fraction) of repeated timings."""
    ordered = sorted(times)
    median = statistics.median(ordered)
    return {"min": ordered[0], "median": median, "max": ordered[-1], "repeats": len(ordered),
            "spread": (ordered[-1] - ordered[0]) / median if median > 0 else 0.0}


def compare(a: Callable[[], Any], b: Callable[[], Any], repeats: int = 7, warmup: int = 2,
            timer: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Time ``a`` and ``b`` the one way every benchmark does: ``warmup`` untimed calls of each, then ``repeats``
    interleaved rounds (A then B in even rounds, B then A in odd ones, so neither always runs second). Returns
    each one's :func:`summarise` (seconds), ``ratio`` = median(A) / median(B) (above 1: B is faster), its bounds
    from the spread (``ratio_low`` = min(A)/max(B), ``ratio_high`` = max(A)/min(B)), and ``verdict``: ``"B faster"``
    or ``"A faster"`` only when the whole range is on one side of 1, else ``"within noise"``."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be at least 1 and warmup at least 0, got {repeats} and {warmup}")
    for _ in range(warmup):
        a()
        b()
    times: dict[str, list[float]] = {"a": [], "b": []}
    for round_ in range(repeats):
        for key in ("a", "b") if round_ % 2 == 0 else ("b", "a"):
            function = a if key == "a" else b
            start = timer()
            function()
            times[key].append(timer() - start)
    stats_a, stats_b = summarise(times["a"]), summarise(times["b"])
    low, high = stats_a["min"] / stats_b["max"], stats_a["max"] / stats_b["min"]
    verdict = "B faster" if low > 1 else "A faster" if high < 1 else "within noise"
    return {"a": stats_a, "b": stats_b, "ratio": stats_a["median"] / stats_b["median"], "ratio_low": low,
            "ratio_high": high, "verdict": verdict, "warmup": warmup, "times": times}


def judge_goal(comparison: dict[str, Any], at_least: float | None = None, at_most: float | None = None) -> str:
    """A goal on a :func:`compare` ratio (exactly one of ``at_least`` and ``at_most``): ``met`` when the whole ratio
    range satisfies it, ``missed`` when none of it does, else ``within noise`` (a goal is not called met on a median
    that the spread could move across it)."""
    if (at_least is None) == (at_most is None):
        raise ValueError("give exactly one of at_least and at_most")
    low, high = comparison["ratio_low"], comparison["ratio_high"]
    if at_least is not None:
        return "met" if low >= at_least else "missed" if high < at_least else "within noise"
    return "met" if high <= at_most else "missed" if low > at_most else "within noise"


def spread(summary: dict[str, float], digits: int = 2, unit_scale: float = 1e3) -> str:
    """``median (min–max)`` of a :func:`summarise` result, each times ``unit_scale`` (1e3: seconds to ms)."""
    median, low, high = (unit_scale * summary[key] for key in ("median", "min", "max"))
    return f"{median:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"


#: How a benchmark's tables name :func:`compare`'s verdicts, by results name (A and B as that benchmark times them):
#: its own ``.md`` and ``render_results.py`` read the same words.
VERDICT_NAMES: dict[str, dict[str, str]] = {
    "onnx": {"A faster": "PyTorch faster", "B faster": "onnxruntime faster", "within noise": "within noise"},
    "streaming": {"A faster": "on disk faster", "B faster": "streamed faster", "within noise": "within noise"},
    "throughput": {"A faster": "slower", "B faster": "faster", "within noise": "within noise"},  # A: fp32
    "label_scale": {"A faster": "head faster", "B faster": "linear faster", "within noise": "within noise"},
}


def ratio_range(comparison: dict[str, Any], digits: int = 2) -> str:
    """``ratio (ratio_low–ratio_high)`` of a :func:`compare` result."""
    return (f"{comparison['ratio']:.{digits}f} ({comparison['ratio_low']:.{digits}f}–"
            f"{comparison['ratio_high']:.{digits}f})")


def comparison_row(name: str | Sequence[Any], comparison: dict[str, Any], digits: int = 2,
                   unit_scale: float = 1e3, extra: Sequence[Any] = (),
                   verdicts: dict[str, str] | None = None) -> str:
    """One markdown row of a :func:`compare` result: ``| name | A median (min–max) | B median (min–max) | ratio
    (low–high) | verdict |``. ``name`` is the first cell or a sequence of leading cells; the timings are times
    ``unit_scale`` (default: ms) with ``digits`` decimals; ``extra`` cells (a goal, say) follow the verdict, which
    ``verdicts`` may rename (``{"B faster": "onnxruntime faster", ...}``)."""
    leading = [name] if isinstance(name, str) else list(name)
    verdict = comparison["verdict"] if verdicts is None else verdicts[comparison["verdict"]]
    cells = [*leading, spread(comparison["a"], digits, unit_scale), spread(comparison["b"], digits, unit_scale),
             ratio_range(comparison), verdict, *extra]
    return "| " + " | ".join(map(str, cells)) + " |"


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """``threads`` torch threads (None: unchanged) inside, yielding the number in use, and the previous number after:
    a test calling a benchmark's ``main`` must not leave its process on other settings. Imports torch only when
    called, so this module stays importable without it."""
    import torch

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def saved_activation_mb(model, step_inputs: dict, autocast) -> float:
    """MB of tensors one training forward keeps for its backward pass, parameters excluded (a checkpointed layer
    keeps only its input: torch's checkpoint packs the rest itself, out of sight of this hook)."""
    import torch

    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            kept[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), autocast():
        loss = model(**step_inputs).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(kept.values()) / 2**20


def check_minimum(args: Any, flags: Sequence[str], minimum: int) -> None:
    """``ValueError("--<flag> must be at least <minimum>, got <value>")`` for the first of ``flags`` (attributes of
    ``args``) below ``minimum``; a flag left at None is not checked."""
    for flag in flags:
        value = getattr(args, flag)
        if value is not None and value < minimum:
            raise ValueError(f"--{flag} must be at least {minimum}, got {value}")


def load_images(args) -> tuple[list, str]:
    """The first ``args.num_images`` images (RGB) of ``args.split`` (default: the dataset's test split) of the
    built-in dataset ``args.dataset`` (``args.data_dir``, ``args.dataset_kwargs``), and the split's name: the
    images a diagnosis of a trained checkpoint looks at."""
    from mlic_hf.data import default_splits, load_mlic_dataset

    splits = load_mlic_dataset(args.dataset, args.data_dir, **args.dataset_kwargs)
    split = args.split or default_splits(args.dataset)["test"]
    if split not in splits:
        raise ValueError(f"--split {split!r}: dataset {args.dataset!r} has splits {sorted(splits)}")
    data = splits[split]
    data = data.select(range(min(args.num_images, len(data))))
    return [image.convert("RGB") for image in data["image"]], split
