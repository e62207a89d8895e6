#!/usr/bin/env python
"""Training-step time and peak training memory of ML-VPT against VPT, LoRA, linear probing and full fine-tuning on
the same ViT (default ``vit_base_patch16_224``, 224 px, random init, 80 labels) on this CPU.

    python benchmarks/bench_vpt.py [--batch 8] [--steps 3] [--backbone vit_base_patch16_224]

Every method runs in its own subprocess so that its peak resident memory can be measured: peak training memory is
the process's peak RSS minus its RSS before the model was built (interpreter and libraries excluded; glibc is told to
mmap tensors above 64 KiB so that freed memory leaves the RSS). One step is
forward + ASL loss + backward + AdamW step over the trainable parameters; the time is the median of ``--steps``
steps after one warm-up step. ML-VPT, VPT (30 deep prompts), linear probing and full fine-tuning are variants of
``mlic-ml-vpt``; LoRA is PEFT's ``LoraConfig(r=8, target_modules=["qkv"])`` + a trained head on the same timm ViT.

Goals (issue 6): ML-VPT step time <= 1.15x VPT's; ML-VPT peak training memory <= 0.6x full fine-tuning's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

# Tensors above 64 KiB get their own mmap and are returned to the OS when freed, so peak RSS tracks the peak of live
# tensors instead of glibc's arena high-water mark.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}
METHODS = ("ml-vpt", "vpt", "lora", "linear-probe", "full-finetune")


def current_rss_kb() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def build(method: str, backbone: str, num_labels: int):
    import torch

    from mlic_hf.models.multilabel_vpt import MultiLabelVPTConfig, MultiLabelVPTForMultiLabelImageClassification

    if method == "lora":
        import timm
        from peft import LoraConfig, get_peft_model

        vit = timm.create_model(backbone, num_classes=num_labels)
        model = get_peft_model(vit, LoraConfig(r=8, lora_alpha=16, target_modules=["qkv"], modules_to_save=["head"]))
        return model, lambda x: model(x)
    groups = {"co_groups": [i * 5 // num_labels for i in range(num_labels)],
              "dc_groups": [i % 5 for i in range(num_labels)]}
    config = MultiLabelVPTConfig(backbone=backbone, variant=method, num_labels=num_labels, **groups)
    model = MultiLabelVPTForMultiLabelImageClassification(config)
    torch.manual_seed(0)
    return model, None


def child(args) -> None:
    import torch

    from mlic_hf.losses import asymmetric_loss

    import timm  # noqa: F401  (imports first: the baseline RSS excludes libraries)
    import peft  # noqa: F401

    import mlic_hf.models.multilabel_vpt  # noqa: F401

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    before = current_rss_kb()
    model, call = build(args.child, args.backbone, args.labels)
    model.train()
    params = sum(p.numel() for p in model.parameters())
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=1e-4)
    x = torch.randn(args.batch, 3, args.image_size, args.image_size)
    y = (torch.rand(args.batch, args.labels) > 0.9).float()
    times = []
    for step in range(args.steps + 1):
        start = time.perf_counter()
        if call is not None:
            loss = asymmetric_loss(call(x), y)
        else:
            loss = model(x, labels=y).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step:  # the first step warms up
            times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"method": args.child, "step_s": statistics.median(times), "peak_mib": (peak - before) / 1024,
                      "params": params, "trainable": sum(p.numel() for p in trainable)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="vit_base_patch16_224")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--labels", type=int, default=80)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    results = {}
    for method in args.methods:
        command = [sys.executable, __file__, "--child", method] + [
            f"--{k}={getattr(args, k)}" for k in ("backbone", "image_size", "labels", "batch", "steps", "threads")]
        proc = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", **MALLOC_ENV})
        if proc.returncode:
            raise SystemExit(f"{method} failed:\n{proc.stderr[-3000:]}")
        results[method] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{args.backbone} at {args.image_size} px, batch {args.batch}, {args.labels} labels, {args.threads} threads; "
          f"median of {args.steps} steps")
    print(f"{'method':<14} {'total M':>8} {'learn M':>8} {'step s':>7} {'peak MiB':>9} {'time/VPT':>9} {'mem/full':>9}")
    vpt, full = results.get("vpt"), results.get("full-finetune")
    for method, r in results.items():
        t_ratio = f"{r['step_s'] / vpt['step_s']:.2f}x" if vpt else "-"
        m_ratio = f"{r['peak_mib'] / full['peak_mib']:.2f}x" if full else "-"
        print(f"{method:<14} {r['params'] / 1e6:8.2f} {r['trainable'] / 1e6:8.3f} {r['step_s']:7.2f} "
              f"{r['peak_mib']:9.0f} {t_ratio:>9} {m_ratio:>9}")
    ml = results.get("ml-vpt")
    if ml and vpt:
        ratio = ml["step_s"] / vpt["step_s"]
        print(f"goal ML-VPT step time <= 1.15x VPT: {ratio:.2f}x {'PASS' if ratio <= 1.15 else 'FAIL'}")
    if ml and full:
        ratio = ml["peak_mib"] / full["peak_mib"]
        print(f"goal ML-VPT peak training memory <= 0.6x full fine-tuning: {ratio:.2f}x "
              f"{'PASS' if ratio <= 0.6 else 'FAIL'}")


if __name__ == "__main__":
    main()
