#!/usr/bin/env python
"""Cost of the weight EMA on ML-VPT (``--preset m3``: frozen ViT-B/16, 224 px, 80 labels, random init) on this CPU:
``ModelEMA`` (trainable parameters + floating buffers, one foreach lerp) against the previous scheme (every floating
``state_dict`` tensor, frozen ones too, one lerp per tensor; re-implemented here as the baseline).

    python benchmarks/bench_ema.py [--batch 8] [--repeats 3] [--threads 2]

Reports (a) the time of one EMA update, old and new, (b) one training step (forward + ASL loss + backward + AdamW
over the trainable parameters, batch ``--batch``), the EMA update's share of step + update and the step-time saving,
and (c) the memory of the float32 shadow copies and the time of ``swapped_into`` (the swap around each EMA
evaluation: back up, load the EMA, restore). Times are the best and the median of ``--repeats`` training steps
after one warm-up step and of 5x as many EMA operations (old and new alternate, so a load change hits both alike).
On a CPU shared with other processes, short multi-threaded ops wait for their second thread to be scheduled: the
best is then the better estimate of an operation's own cost, the median what it cost under that load.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
from torch import nn

from mlic_hf.training import ModelEMA


class OldEMA:
    """The previous ``ModelEMA``: a float32 copy of every floating ``state_dict`` tensor, updated one at a time."""

    def __init__(self, model: nn.Module) -> None:
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float) -> None:
        state = model.state_dict()
        for key, shadow in self.shadow.items():
            shadow.lerp_(state[key].detach().float(), 1.0 - decay)

    @contextlib.contextmanager
    def swapped_into(self, model: nn.Module):
        state = model.state_dict()
        backup = {k: state[k].detach().clone() for k in self.shadow}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for key, value in backup.items():
                    state[key].copy_(value)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        state = model.state_dict()
        for key, shadow in self.shadow.items():
            state[key].copy_(shadow.to(dtype=state[key].dtype, device=state[key].device))


def build_m3(num_labels: int, image_size: int) -> nn.Module:
    from mlic_hf import MultiLabelVPTConfig, MultiLabelVPTForMultiLabelImageClassification

    groups = {"co_groups": [i * 5 // num_labels for i in range(num_labels)],
              "dc_groups": [i % 5 for i in range(num_labels)]}
    config = MultiLabelVPTConfig(num_labels=num_labels, image_size=image_size, **groups)
    return MultiLabelVPTForMultiLabelImageClassification(config)


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def summary(times: list[float]) -> dict[str, float]:
    """Best and median of the timings. On a shared CPU the median of a short multi-threaded op is mostly waiting
    for the other OpenMP thread to be scheduled; the best is closer to its own cost."""
    return {"best": min(times), "median": statistics.median(times)}


def step_times(model: nn.Module, batch: int, image_size: int, num_labels: int, repeats: int) -> dict[str, float]:
    """Forward + loss + backward + AdamW step, timed after one warm-up step."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=1e-4)
    x = torch.randn(batch, 3, image_size, image_size)
    y = (torch.rand(batch, num_labels) > 0.9).float()

    def step() -> None:
        model(x, labels=y).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    model.train()
    return summary([seconds(step) for _ in range(repeats + 1)][1:])


def paired_times(old_fn, new_fn, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """Timings of two operations, alternated after one warm-up call of each."""
    old, new = [], []
    for i in range(repeats + 1):
        t_old, t_new = seconds(old_fn), seconds(new_fn)
        if i:
            old.append(t_old)
            new.append(t_new)
    return summary(old), summary(new)


def megabytes(tensors) -> float:
    return sum(t.numel() * t.element_size() for t in tensors) / 1e6


def swap_once(ema, model: nn.Module) -> None:
    """What an EMA evaluation costs beyond the evaluation itself."""
    with ema.swapped_into(model):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--labels", type=int, default=80)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = build_m3(args.labels, args.image_size)
    old, new = OldEMA(model), ModelEMA(model, decay=0.9997)

    # the baseline is the same average: one update of each from the same weights agrees on the averaged tensors
    old.update(model, new.current_decay())
    new.update(model)
    for key, value in new.shadow.items():
        torch.testing.assert_close(value, old.shadow[key], rtol=0, atol=1e-7)

    step = step_times(model, args.batch, args.image_size, args.labels, args.repeats)
    ema_repeats = 5 * args.repeats
    update = paired_times(lambda: old.update(model, 0.9997), lambda: new.update(model), ema_repeats)
    swap = paired_times(lambda: swap_once(old, model), lambda: swap_once(new, model), ema_repeats)
    report(args, model, old, new, step, update, swap)


def report(args, model, old: OldEMA, new: ModelEMA, step: dict, update: tuple, swap: tuple) -> None:
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    mem_old, mem_new = megabytes(old.shadow.values()), megabytes(new.shadow.values())
    print(f"ML-VPT on {model.config.backbone}, {args.image_size} px, {args.labels} labels: {params / 1e6:.2f} M "
          f"parameters, {trainable / 1e6:.3f} M trainable; batch {args.batch}, {args.threads} threads; "
          f"{args.repeats} training steps and {5 * args.repeats} EMA operations each")
    print(f"{'old = all floating state_dict tensors, new = ModelEMA':<44} {'old':>9} {'new':>9} {'new/old':>9}")
    print(f"{'EMA tensors':<44} {len(old.shadow):9d} {len(new.shadow):9d} {len(new.shadow) / len(old.shadow):8.4f}x")
    print(f"{'shadow memory (MB)':<44} {mem_old:9.1f} {mem_new:9.1f} {mem_new / mem_old:8.4f}x")
    for label, (a, b) in (("(a) EMA update", update), ("(c) swapped_into", swap)):
        for stat in ("best", "median"):
            print(f"{f'{label} (ms, {stat})':<44} {a[stat] * 1e3:9.2f} {b[stat] * 1e3:9.2f} "
                  f"{b[stat] / a[stat]:8.4f}x")
    for stat in ("best", "median"):
        s, u_old, u_new = step[stat], update[0][stat], update[1][stat]
        print(f"(b) {stat}: training step (forward+backward+AdamW) {s:.3f} s; EMA update share of step + update: "
              f"old {100 * u_old / (s + u_old):.2f} %, new {100 * u_new / (s + u_new):.3f} %; step + update "
              f"{s + u_old:.3f} s -> {s + u_new:.3f} s, {100 * (u_old - u_new) / (s + u_old):.2f} % faster")


if __name__ == "__main__":
    main()
