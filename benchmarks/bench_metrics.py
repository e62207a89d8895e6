"""Benchmark of `mlic_hf.metrics.multilabel_metrics` on a COCO-sized evaluation.

Compares (best of `--repeats`, `time.perf_counter`):

(a) `multilabel_metrics` (mAP + CP/CR/CF1/OP/OR/OF1 + top-3 variants),
(b) a Python loop over classes of `sklearn.metrics.average_precision_score` (mAP only),
(c) a bare `np.argsort(scores, axis=0)` of the same matrix (the cost of sorting the scores once),

and prints the ratios (goals: sklearn / ours >= 5, ours / argsort <= 2) and the largest |AP difference| with
scikit-learn (goal <= 1e-6), with PASS/FAIL per goal. It is a report: the exit code is always 0.

Usage::

    python benchmarks/bench_metrics.py --n 40504 --c 80 --density 0.036 --repeats 3 --seed 0
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


try:
    from mlic_hf.metrics import multilabel_metrics, sigmoid
except ImportError:  # running from a source checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from mlic_hf.metrics import multilabel_metrics, sigmoid


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Best wall-clock time (seconds) over `repeats` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def make_data(n: int, c: int, density: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random float32 probabilities correlated with random labels (so that AP is neither 0.5-ish nor 1)."""
    rng = np.random.default_rng(seed)
    targets = rng.random((n, c)) < density
    # Class-dependent separability: logits ~ N(0, 1) for negatives, N(mu_c, 1) for positives, mu_c in [1, 3];
    # a negative offset keeps most probabilities low, as for a real multi-label model.
    mu = rng.uniform(1.0, 3.0, size=c).astype(np.float32)
    logits = rng.standard_normal((n, c), dtype=np.float32) + targets * mu - 2.0
    return sigmoid(logits), targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40504, help="number of images (COCO val2014: 40504)")
    parser.add_argument("--c", type=int, default=80, help="number of classes (COCO: 80)")
    parser.add_argument("--density", type=float, default=0.036, help="fraction of positive labels (COCO: ~2.9/80)")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (best is reported)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from sklearn.metrics import average_precision_score

    scores, targets = make_data(args.n, args.c, args.density, args.seed)
    print(
        f"data: scores {scores.shape} {scores.dtype}, {int(targets.sum())} positives "
        f"({targets.mean():.4f} density, {targets.sum(1).mean():.2f} labels/image), seed {args.seed}"
    )
    print(f"numpy {np.__version__}, python {platform.python_version()}, {platform.machine()}")

    t_ours, ours = best_time(lambda: multilabel_metrics(scores, targets, threshold=0.5, top_k=3), args.repeats)

    def sklearn_map() -> np.ndarray:
        return np.array([average_precision_score(targets[:, j], scores[:, j]) for j in range(args.c)])

    t_sklearn, sk_ap = best_time(sklearn_map, args.repeats)
    t_argsort, _ = best_time(lambda: np.argsort(scores, axis=0), args.repeats)

    ap_diff = float(np.nanmax(np.abs(ours["per_class_AP"] - sk_ap)))
    speedup = t_sklearn / t_ours
    vs_argsort = t_ours / t_argsort

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    print()
    print(f"(a) multilabel_metrics (mAP + P/R/F1 + top-3): {t_ours * 1e3:9.1f} ms   (mAP = {100 * ours['mAP']:.2f}%)")
    sk_map = 100 * sk_ap.mean()
    print(f"(b) sklearn average_precision_score loop:       {t_sklearn * 1e3:9.1f} ms   (mAP = {sk_map:.2f}%)")
    print(f"(c) np.argsort(scores, axis=0):                 {t_argsort * 1e3:9.1f} ms")
    print()
    print(f"sklearn / ours  = {speedup:6.2f}x   (goal >= 5x)    {verdict(speedup >= 5.0)}")
    print(f"ours / argsort  = {vs_argsort:6.2f}x   (goal <= 2x)    {verdict(vs_argsort <= 2.0)}")
    print(f"max |AP - sklearn AP| = {ap_diff:.2e}   (goal <= 1e-6)  {verdict(ap_diff <= 1e-6)}")
    return 0


if __name__ == "__main__":
    main()
    sys.exit(0)
