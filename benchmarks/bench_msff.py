#!/usr/bin/env python
"""Cost of the M4 multi-scale three-branch model (paper defaults: ResNet-101, 448 px, 80 labels, d = 512, 2 encoder
and 3 decoder layers, weights shared across branches) against its bare backbone (timm ResNet-101 features_only,
layer3 + layer4), on this CPU:

* whole model (A) against the backbone alone (B): a training step (forward + loss + backward + AdamW.step() +
  zero_grad over the module's parameters) and inference (eval, no_grad forward), each through ``_common.compare``
  (warm-up, interleaved A/B repetitions, min/median/spread; ratio = A / B, a difference only outside the spread);
* each stage — backbone, stem convolutions, hierarchical scale attention, position + encoder (3 branches), decoder
  (3 branches), head (concat + per-class linear + ASL) — forward, and forward + backward + its parameters' AdamW
  step + zero_grad, each ``_common.summarise``-d, with its parameters and share of the sum of stages;
* the scale attention with each interpolation mode (A) against bilinear (B), forward + backward (Table 6; the paper
  finds bicubic 4-5× slower), through ``compare``.

    python benchmarks/bench_msff.py [--batch 2] [--repeats 5] [--image_size 448] [--threads 2]
    python benchmarks/bench_msff.py --smoke --output_dir /tmp/results   # a tiny M4: a test of the script

Writes ``<output_dir>/msff.json`` (provenance, summaries, ratios, verdicts) and ``msff.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common.py beside this script, also when a test loads it
from _common import (RESULTS, check_minimum, compare, comparison_row, describe, provenance, publish,  # noqa: E402
                     spread, summarise, torch_threads)

from mlic_hf.cli import script_entry  # noqa: E402

NAME = "msff"
#: a tiny M4 through the same code paths
SMOKE = {"image_size": 64, "batch": 2, "repeats": 3, "warmup": 1, "threads": 1,
         "model": {"backbone": "resnet18", "num_labels": 4, "hidden_size": 16, "num_attention_heads": 2,
                   "intermediate_size": 32}}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (interleaved rounds in comparisons)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of each first")
    parser.add_argument("--image_size", type=int, default=448)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--smoke", action="store_true", help="a tiny M4 and few repetitions, for tests")
    parser.add_argument("--output_dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.model = {}
    if args.smoke:
        vars(args).update(SMOKE)
    check_minimum(args, ("threads", "batch", "repeats"), 1)  # threads None: torch's choice
    check_minimum(args, ("warmup",), 0)
    if args.image_size < 32 or args.image_size % 32:
        raise ValueError(f"--image_size must be a positive multiple of 32 (the backbone's stride), "
                         f"got {args.image_size}")
    return args


def timed(fn: Callable[[], Any], repeats: int, warmup: int) -> dict[str, float]:
    """``summarise`` of ``repeats`` calls after ``warmup`` untimed ones (a single timing, nothing to interleave)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return summarise(times)


def scalar(outputs: Any) -> torch.Tensor:
    """A loss standing in for a stage's: the mean of its outputs (so every output gets a gradient)."""
    tensors = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return sum(t.float().mean() for t in tensors)


def training_step(modules: Sequence[nn.Module], loss: Callable[[], torch.Tensor]) -> Callable[[], None]:
    """Forward (``loss()``) + backward + AdamW.step() + zero_grad over the modules' parameters (none: no step)."""
    params = list({id(p): p for m in modules for p in m.parameters() if p.requires_grad}.values())
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-4) if params else None

    def step() -> None:
        loss().backward()
        if optimizer is not None:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    return step


def parameters(modules: Sequence[nn.Module]) -> int:
    """Parameters of the modules, each shared one counted once (the three branches share their transformer)."""
    return sum({id(p): p.numel() for m in modules for p in m.parameters()}.values())


def whole_model(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, args: argparse.Namespace) -> dict:
    """M4 (A) against its backbone (B): a training step, and an inference forward."""
    timing = {"repeats": args.repeats, "warmup": args.warmup}
    model.train()
    train = compare(training_step([model], lambda: model(x, labels=labels).loss),
                    training_step([model.backbone], lambda: scalar(model.backbone(x))), **timing)
    model.eval()
    with torch.no_grad():
        infer = compare(lambda: model(x), lambda: model.backbone(x), **timing)
    model.train()
    return {"training step": train, "inference": infer}


def leaves(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """A stage's inputs as leaves that take a gradient, as its input does inside the whole model."""
    return [t.detach().clone().requires_grad_(True) for t in tensors]


def stage_table(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> list[tuple[str, Callable, list, list]]:
    """``(name, function of the inputs, inputs, modules)`` of every stage, inputs computed by the stages before."""

    def encoder(inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        outs = []
        for branch, t in enumerate(inputs):
            _, _, h, w = t.shape
            tokens = (t + model.position[branch](h, w)).flatten(2).transpose(1, 2)
            outs.append(model.branch_transformer(branch).encode(tokens, h, w))
        return outs

    def decoder(inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [model.branch_transformer(b).decode(t)[0] for b, t in enumerate(inputs)]

    def head(inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        return model.compute_loss(model.classifier(inputs[0]), labels)

    with torch.no_grad():
        maps = model.backbone(x)
        scales = model.stem(maps)
        fused = model.scale_attention(scales)
        encoded = encoder(fused)
        label_features = [torch.cat(decoder(encoded), dim=-1)]
    transformers = list(model.branch_transformers)
    return [("backbone", lambda inp: model.backbone(inp[0]), [x], [model.backbone]),
            ("stem convs (eq. 1)", model.stem, list(maps), [model.stem]),
            ("scale attention", model.scale_attention, list(scales), [model.scale_attention]),
            ("position + encoder", encoder, list(fused), [model.position] + [t.encoder for t in transformers]),
            ("decoder", decoder, encoded, [m for t in transformers for m in (t.label_embeddings, t.decoder)]),
            ("head + loss", head, label_features, [model.classifier])]


def stages(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, args: argparse.Namespace) -> dict:
    """Each stage's forward and training step (forward + backward + its parameters' AdamW step + zero_grad)."""
    rows = {}
    for name, fn, inputs, modules in stage_table(model, x, labels):
        with torch.no_grad():
            forward = timed(lambda: fn(inputs), args.repeats, args.warmup)
        grad_inputs = inputs if name == "backbone" else leaves(inputs)  # pixels take no gradient
        step = timed(training_step(modules, lambda: scalar(fn(grad_inputs))), args.repeats, args.warmup)
        rows[name] = {"forward": forward, "training_step": step, "parameters": parameters(modules)}
    total = sum(row["training_step"]["median"] for row in rows.values())
    for row in rows.values():
        row["share"] = row["training_step"]["median"] / total
    return rows


def interpolation_modes(model: nn.Module, x: torch.Tensor, args: argparse.Namespace) -> dict:
    """Forward + backward of the scale attention with each interpolation mode (A) against bilinear (B)."""
    from mlic_hf.models.multiscale_three_branch.multiscale import INTERPOLATION_MODES, HierarchicalScaleAttention

    with torch.no_grad():
        scales = leaves(model.stem(model.backbone(x)))
    bilinear = HierarchicalScaleAttention("bilinear")
    rows = {}
    for mode in INTERPOLATION_MODES:
        if mode != "bilinear":
            attention = HierarchicalScaleAttention(mode)
            rows[f"{mode} (A) vs bilinear (B)"] = compare(
                training_step([attention], lambda a=attention: scalar(a(scales))),
                training_step([bilinear], lambda: scalar(bilinear(scales))), repeats=args.repeats,
                warmup=args.warmup)
    return rows


def markdown(results: dict[str, Any]) -> str:
    m = results["model"]
    lines = [f"# M4 multi-scale three-branch cost ({describe(results['provenance'])})", "",
             f"{m['backbone']}, {m['image_size']} px, batch {m['batch']}, d {m['hidden_size']}, "
             f"{m['parameters'] / 1e6:.2f} M parameters ({m['backbone_parameters'] / 1e6:.2f} M backbone). Training "
             "step = forward + loss + backward + AdamW step + zero_grad. Median ms (min–max); ratio = A / B with "
             "its range from the spread.", "",
             "| M4 (A) vs backbone (B) | A ms | B ms | ratio (range) | verdict |", "|---|---:|---:|---:|---|"]
    lines += [comparison_row(name, c, digits=1) for name, c in results["whole_model"].items()]
    lines += ["", "| stage | forward ms | training step ms | share | parameters (M) |", "|---|---:|---:|---:|---:|"]
    for name, row in results["stages"].items():
        lines.append(f"| {name} | {spread(row['forward'], 1)} | {spread(row['training_step'], 1)} | "
                     f"{100 * row['share']:.1f}% | {row['parameters'] / 1e6:.2f} |")
    lines += ["", "| scale attention, forward + backward | A ms | B ms | ratio (range) | verdict |",
              "|---|---:|---:|---:|---|"]
    lines += [comparison_row(name, c, digits=1) for name, c in results["interpolation"].items()]
    return "\n".join(lines) + "\n"


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Build M4 and run the three measurements."""
    import mlic_hf

    torch.manual_seed(0)
    config = mlic_hf.MultiScaleThreeBranchConfig(image_size=args.image_size, **args.model)
    model = mlic_hf.MultiScaleThreeBranchForMultiLabelImageClassification(config)
    x = torch.randn(args.batch, 3, args.image_size, args.image_size)
    labels = (torch.rand(args.batch, config.num_labels) > 0.9).float()
    return {"settings": {k: getattr(args, k) for k in ("batch", "repeats", "warmup", "smoke")},
            "model": {"backbone": config.backbone, "image_size": args.image_size, "batch": args.batch,
                      "hidden_size": config.hidden_size, "threads": torch.get_num_threads(),
                      "parameters": parameters([model]), "backbone_parameters": parameters([model.backbone])},
            "whole_model": whole_model(model, x, labels, args), "stages": stages(model, x, labels, args),
            "interpolation": interpolation_modes(model, x, args)}


@script_entry()
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = {"provenance": provenance(argv, __file__)}
    with torch_threads(args.threads):
        results.update(measure(args))
    publish(NAME, results, markdown(results), folder=args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
