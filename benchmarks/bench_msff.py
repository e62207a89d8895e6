#!/usr/bin/env python
"""Cost of the M4 multi-scale three-branch model (paper defaults: ResNet-101, 448 px, 80 labels, d = 512, 2 encoder
and 3 decoder layers, weights shared across branches) against its bare backbone (timm ResNet-101 features_only,
layer3 + layer4), on this CPU:

* training step (forward + backward, loss) and inference (eval, no_grad forward) of the whole model and of the
  backbone alone, and their ratio;
* the cost of each stage — backbone, stem convolutions, hierarchical scale attention, position + encoder (3 branches),
  decoder (3 branches), head (concat + per-class linear + ASL) — forward and forward + backward, with its parameters;
* the scale attention with each interpolation mode (Table 6; the paper finds bicubic 4-5× slower).

    python benchmarks/bench_msff.py [--batch 2] [--repeats 3] [--quick]

Times are the best of ``--repeats`` runs after one warm-up run (``--quick``: best of 1).
"""

from __future__ import annotations

import argparse
import time

import torch


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats + 1):  # the first call warms up
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def backward_of(outputs) -> None:
    tensors = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    sum(t.float().mean() for t in tensors).backward()


def leaf(tensors):
    return [t.detach().clone().requires_grad_(True) for t in tensors]


def count(module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image_size", type=int, default=448)
    parser.add_argument("--quick", action="store_true", help="best of 1 run (after the warm-up)")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats

    import mlic_hf
    from mlic_hf.models.multiscale_three_branch.multiscale import INTERPOLATION_MODES, HierarchicalScaleAttention

    torch.manual_seed(0)
    config = mlic_hf.MultiScaleThreeBranchConfig(image_size=args.image_size)
    model = mlic_hf.MultiScaleThreeBranchForMultiLabelImageClassification(config)
    x = torch.randn(args.batch, 3, args.image_size, args.image_size)
    labels = (torch.rand(args.batch, config.num_labels) > 0.9).float()
    print(f"M4 defaults: {config.backbone}, {args.image_size} px, batch {args.batch}, d {config.hidden_size}, "
          f"{config.num_encoder_layers} encoder / {config.num_decoder_layers} decoder layers, "
          f"{torch.get_num_threads()} threads, best of {repeats}")

    # --- whole model against the bare backbone --------------------------------------------------------------------
    backbone = model.backbone

    def model_train():
        model.zero_grad(set_to_none=True)
        model(x, labels=labels).loss.backward()

    def backbone_train():
        backbone.zero_grad(set_to_none=True)
        backward_of(backbone(x))

    model.train()
    t_model_train = best_time(model_train, repeats)
    t_backbone_train = best_time(backbone_train, repeats)
    model.eval()
    with torch.no_grad():
        t_model_infer = best_time(lambda: model(x), repeats)
        t_backbone_infer = best_time(lambda: backbone(x), repeats)
    total, bare = count(model), count(backbone)
    print(f"\n{'':22s} {'train step':>11s} {'inference':>10s} {'params':>9s}")
    print(f"{'bare backbone':22s} {t_backbone_train:10.2f}s {t_backbone_infer:9.2f}s {bare:8.2f}M")
    print(f"{'M4 (whole model)':22s} {t_model_train:10.2f}s {t_model_infer:9.2f}s {total:8.2f}M")
    print(f"{'ratio M4 / backbone':22s} {t_model_train / t_backbone_train:10.2f}x "
          f"{t_model_infer / t_backbone_infer:9.2f}x {total / bare:8.2f}x")

    # --- stage by stage -------------------------------------------------------------------------------------------
    model.train()
    with torch.no_grad():
        maps = backbone(x)
        scales = model.stem(maps)
        fused = model.scale_attention(scales)

    def positioned(branch, t):
        _, _, h, w = t.shape
        return (t + model.position[branch](h, w)).flatten(2).transpose(1, 2), h, w

    def encoder_stage(inputs):
        outs = []
        for branch, t in enumerate(inputs):
            tokens, h, w = positioned(branch, t)
            outs.append(model.branch_transformer(branch).encode(tokens, h, w))
        return outs

    with torch.no_grad():
        encoded = encoder_stage(fused)

    def decoder_stage(inputs):
        return [model.branch_transformer(b).decode(t)[0] for b, t in enumerate(inputs)]

    with torch.no_grad():
        label_features = torch.cat(decoder_stage(encoded), dim=-1)

    def head_stage(inputs):
        return model.compute_loss(model.classifier(inputs[0]), labels)

    stages = [
        ("backbone", lambda inp: backbone(inp[0]), [x], backbone),
        ("stem convs (eq. 1)", model.stem, maps, model.stem),
        ("scale attention", model.scale_attention, scales, model.scale_attention),
        ("position + encoder", encoder_stage, fused, [model.position] + [t.encoder for t in model.branch_transformers]),
        ("decoder", decoder_stage, encoded, [(t.label_embeddings, t.decoder) for t in model.branch_transformers]),
        ("head + loss", head_stage, [label_features], model.classifier),
    ]
    print(f"\n{'stage':22s} {'fwd':>9s} {'fwd+bwd':>9s} {'share':>6s} {'params':>9s}")
    rows, total_train = [], 0.0
    for name, fn, inputs, modules in stages:
        if name == "backbone":  # measured above
            t_fwd, t_train = t_backbone_infer, t_backbone_train
        else:
            with torch.no_grad():
                t_fwd = best_time(lambda: fn(inputs), repeats)
            grad_inputs = leaf(inputs)

            def train_step():
                model.zero_grad(set_to_none=True)
                backward_of(fn(grad_inputs))

            t_train = best_time(train_step, repeats)
        params = sum(count(m) for m in _flatten(modules))
        rows.append((name, t_fwd, t_train, params))
        total_train += t_train
    for name, t_fwd, t_train, params in rows:
        print(f"{name:22s} {1e3 * t_fwd:8.1f}ms {1e3 * t_train:8.1f}ms {100 * t_train / total_train:5.1f}% "
              f"{params:8.2f}M")
    print(f"{'sum of stages':22s} {'':9s} {1e3 * total_train:8.1f}ms")

    # --- interpolation modes of the scale attention ---------------------------------------------------------------
    print(f"\n{'scale attention':22s} {'fwd':>9s} {'fwd+bwd':>9s} {'vs bilinear':>12s}")
    timings = {}
    for mode in INTERPOLATION_MODES:
        hsa = HierarchicalScaleAttention(mode)
        with torch.no_grad():
            t_fwd = best_time(lambda: hsa(scales), repeats)
        grad_scales = leaf(scales)
        t_train = best_time(lambda: backward_of(hsa(grad_scales)), repeats)
        timings[mode] = (t_fwd, t_train)
    for mode, (t_fwd, t_train) in timings.items():
        print(f"{mode:22s} {1e3 * t_fwd:8.1f}ms {1e3 * t_train:8.1f}ms {t_train / timings['bilinear'][1]:11.2f}x")


def _flatten(modules):
    if isinstance(modules, torch.nn.Module):
        return [modules]
    if modules is None:
        return []
    out = []
    for m in modules:
        out.extend(_flatten(m))
    return out


if __name__ == "__main__":
    main()
