#!/usr/bin/env python
"""Speed and accuracy of :func:`mlic_hf.metrics.multilabel_metrics` on a COCO-sized evaluation (40504 images, 80
classes, 3.6% positives; random scores correlated with random labels).

Two A/B comparisons through ``_common.compare`` (warm-up, interleaved repetitions, min/median/spread):

* sklearn vs ours: (A) a Python loop over classes of ``sklearn.metrics.average_precision_score`` (mAP only) against
  (B) ``multilabel_metrics`` (mAP + CP/CR/CF1/OP/OR/OF1 + top-3 variants). Goal: A / B >= 5.
* ours vs a sort: (A) ``multilabel_metrics`` against (B) a bare ``np.argsort(scores, axis=0)`` (the cost of sorting
  the scores once). Goal: A / B <= 2.

and the largest |AP difference| with scikit-learn (goal <= 1e-6). A goal is "met" only when the whole ratio range
(``ratio_low`` .. ``ratio_high``) satisfies it, "missed" when none of it does, else "within noise".

    python benchmarks/bench_metrics.py [--n 40504] [--c 80] [--density 0.036] [--repeats 7] [--seed 0]
    python benchmarks/bench_metrics.py --smoke --output_dir /tmp/results   # seconds: a test of the script

Writes ``<output_dir>/metrics.json`` (provenance, the timings' summaries, ratios, verdicts) and ``metrics.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common.py beside this script, also when a test loads it
from _common import RESULTS, compare, comparison_row, describe, judge_goal, provenance, publish  # noqa: E402

from mlic_hf.cli import script_entry  # noqa: E402
from mlic_hf.metrics import multilabel_metrics, sigmoid  # noqa: E402

NAME = "metrics"
SMOKE = {"n": 2000, "c": 10, "repeats": 3, "warmup": 1}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40504, help="number of images (COCO val2014: 40504)")
    parser.add_argument("--c", type=int, default=80, help="number of classes (COCO: 80)")
    parser.add_argument("--density", type=float, default=0.036, help="fraction of positive labels (COCO: ~2.9/80)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved timed rounds of each comparison")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls of each side first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help=f"a tiny run for tests: {SMOKE}")
    parser.add_argument("--output_dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    if args.n < 2 or args.c < 1 or not 0 < args.density < 1:
        raise ValueError(f"--n must be at least 2, --c at least 1 and --density in (0, 1), got {args.n}, {args.c} "
                         f"and {args.density}")
    if args.repeats < 1 or args.warmup < 0:
        raise ValueError(f"--repeats must be at least 1 and --warmup at least 0, got {args.repeats}, {args.warmup}")
    return args


def make_data(n: int, c: int, density: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random float32 probabilities correlated with random labels (so that AP is neither 0.5-ish nor 1)."""
    rng = np.random.default_rng(seed)
    targets = rng.random((n, c)) < density
    targets[0] = True  # every class has a positive: AP is defined for all of them
    # Class-dependent separability: logits ~ N(0, 1) for negatives, N(mu_c, 1) for positives, mu_c in [1, 3];
    # a negative offset keeps most probabilities low, as for a real multi-label model.
    mu = rng.uniform(1.0, 3.0, size=c).astype(np.float32)
    logits = rng.standard_normal((n, c), dtype=np.float32) + targets * mu - 2.0
    return sigmoid(logits), targets


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Both comparisons and the AP agreement with scikit-learn."""
    from sklearn.metrics import average_precision_score

    scores, targets = make_data(args.n, args.c, args.density, args.seed)

    def ours() -> dict:
        return multilabel_metrics(scores, targets, threshold=0.5, top_k=3)

    def sklearn_ap() -> np.ndarray:
        return np.array([average_precision_score(targets[:, j], scores[:, j]) for j in range(args.c)])

    versus_sklearn = compare(sklearn_ap, ours, repeats=args.repeats, warmup=args.warmup)
    versus_sklearn["goal"], versus_sklearn["goal_met"] = "A / B >= 5", judge_goal(versus_sklearn, at_least=5.0)
    versus_argsort = compare(ours, lambda: np.argsort(scores, axis=0), repeats=args.repeats, warmup=args.warmup)
    versus_argsort["goal"], versus_argsort["goal_met"] = "A / B <= 2", judge_goal(versus_argsort, at_most=2.0)
    ap_ours, ap_sklearn = ours()["per_class_AP"], sklearn_ap()
    ap_diff = float(np.nanmax(np.abs(ap_ours - ap_sklearn)))
    return {"data": {"n": args.n, "c": args.c, "density": float(targets.mean()), "seed": args.seed},
            "comparisons": {"sklearn loop (A) vs multilabel_metrics (B)": versus_sklearn,
                            "multilabel_metrics (A) vs np.argsort (B)": versus_argsort},
            "mAP": {"ours": float(np.nanmean(ap_ours)), "sklearn": float(np.nanmean(ap_sklearn))},
            "max_ap_difference": ap_diff, "ap_goal": "<= 1e-6", "ap_goal_met": "met" if ap_diff <= 1e-6 else "missed"}


def markdown(results: dict[str, Any]) -> str:
    data = results["data"]
    lines = [f"# multilabel_metrics speed ({describe(results['provenance'])})", "",
             f"{data['n']} images × {data['c']} classes, {data['density']:.4f} positives, seed {data['seed']}; "
             "median ms (min–max) of interleaved repetitions; ratio = A / B with its range from the spread.", "",
             "| comparison | A ms | B ms | ratio (range) | verdict | goal | goal met |",
             "|---|---:|---:|---:|---|---|---|"]
    lines += [comparison_row(name, c, extra=[c["goal"], c["goal_met"]]) for name, c in results["comparisons"].items()]
    lines += ["", f"mAP: ours {100 * results['mAP']['ours']:.2f}%, sklearn {100 * results['mAP']['sklearn']:.2f}%; "
              f"max |AP − sklearn AP| = {results['max_ap_difference']:.2e} (goal {results['ap_goal']}: "
              f"{results['ap_goal_met']})."]
    return "\n".join(lines) + "\n"


@script_entry()
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = {"provenance": provenance(argv, __file__), "settings": {"repeats": args.repeats,
                                                                      "warmup": args.warmup, "smoke": args.smoke}}
    results.update(measure(args))
    publish(NAME, results, markdown(results), folder=args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
