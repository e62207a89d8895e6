#!/usr/bin/env python
"""Forward+backward time of one Transformer encoder layer with iRPE on q, k and v against the same layer with plain
attention (PyTorch scaled-dot-product), at 14×14 and 18×18 tokens and d_model 512 / 2048. Goal: iRPE ≤ 1.5×.

    python benchmarks/bench_irpe.py [--batch 2] [--repeats 5] [--heads 8]

Then the whole M2 model's training step (paper defaults: ResNet-101, 448 px, hidden_size 2048) against the bare
backbone's (ResNet-101 + global pooling + linear), batch 2 (``--skip_model`` to leave it out).
"""

import argparse
import time

import torch

from mlic_hf.models.two_stage_irpe.irpe import IRPEEncoderLayer


def step_time(layer, x, height, width, repeats):
    best = float("inf")
    for _ in range(repeats + 1):  # first call warms up
        start = time.perf_counter()
        layer(x, height, width).sum().backward()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip_model", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"batch {args.batch}, {args.heads} heads, FFN 2048, best of {args.repeats}; times in ms")
    print(f"{'tokens':>8} {'d_model':>7} {'plain':>8} {'iRPE qkv':>9} {'ratio':>6}  goal <= 1.5x")
    for side in (14, 18):
        for d_model in (512, 2048):
            plain = IRPEEncoderLayer(d_model, args.heads, dim_feedforward=2048, dropout=0.0, rpe_on=())
            irpe = IRPEEncoderLayer(d_model, args.heads, dim_feedforward=2048, dropout=0.0, rpe_on=("q", "k", "v"))
            x = torch.randn(args.batch, side * side, d_model, requires_grad=True)
            t_plain = step_time(plain, x, side, side, args.repeats)
            t_irpe = step_time(irpe, x, side, side, args.repeats)
            ratio = t_irpe / t_plain
            print(f"{side}x{side:<5} {d_model:>7} {1e3 * t_plain:8.1f} {1e3 * t_irpe:9.1f} {ratio:6.2f}  "
                  f"{'PASS' if ratio <= 1.5 else 'FAIL'}")
    if not args.skip_model:
        whole_model(args)


def whole_model(args) -> None:
    import mlic_hf

    x = torch.randn(args.batch, 3, 448, 448)
    labels = (torch.rand(args.batch, 80) > 0.9).float()
    models = {
        "bare backbone (M1)": mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(
            mlic_hf.ResNetProbabilisticConfig()),
        "M2 (iRPE on q,k,v)": mlic_hf.TwoStageIRPEForMultiLabelImageClassification(mlic_hf.TwoStageIRPEConfig()),
    }
    times = {}
    for name, model in models.items():
        model.train()
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            model(x, labels=labels).loss.backward()
            best = min(best, time.perf_counter() - start)
        times[name] = best
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"{name:20s} training step {best:6.2f} s, {params:6.1f} M parameters")
    print(f"ratio M2 / bare backbone: {times['M2 (iRPE on q,k,v)'] / times['bare backbone (M1)']:.2f}x")


if __name__ == "__main__":
    main()
