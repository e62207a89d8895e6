"""Train a tiny mlic_hf model for a few AdamW steps, sharded with FSDP2 (``fully_shard`` at the model's
``_no_split_modules``, then the root: what accelerate's TRANSFORMER_BASED_WRAP does) over the processes of a gloo
group, or unsharded in one process; save the full state dict with ``save_pretrained``, and the weight EMA the
Trainer keeps (built before sharding, as the Trainer does; gathered into ``ema.safetensors``, loaded back and saved
again into ``ema_reloaded.safetensors``; the eval logits with the EMA swapped in into ``fsdp_run.json``).

    torchrun --nproc_per_node 2 tests/training/fsdp_driver.py METHOD OUTPUT_DIR   # FSDP, 2 CPU processes
    python tests/training/fsdp_driver.py METHOD OUTPUT_DIR                        # the same steps, one process

accelerate enables FSDP only on accelerators (a CPU run falls back to DDP), so ``tests/training/test_fsdp.py``
drives torch's FSDP2 directly: the part that is mlic_hf's — every method's layers and parameters sharded, trained
and gathered back into a checkpoint ``from_pretrained`` loads — is the same either way. Every process sees the same
global batches and takes its slice; BatchNorm layers run in eval mode, so that per-process batch statistics do not
make the runs differ by more than float reduction order.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

STEPS, GLOBAL_BATCH, LEARNING_RATE = 3, 8, 1e-3


def build(method: str) -> nn.Module:
    from tests.models.method_facts import facts_for
    from tests.models.tiny_configs import tiny_model

    return tiny_model(method, **facts_for(method).fsdp_overrides)


def batches():
    generator = torch.Generator().manual_seed(1)
    for _ in range(STEPS):
        pixel_values = torch.randn(GLOBAL_BATCH, 3, 64, 64, generator=generator)
        labels = (torch.rand(GLOBAL_BATCH, 4, generator=generator) > 0.5).float()
        yield pixel_values, labels


def shard(model: nn.Module, world_size: int) -> list[str]:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (world_size,))
    units = [m for m in model.modules() if type(m).__name__ in model._no_split_modules]
    names = sorted({type(m).__name__ for m in units})  # before fully_shard renames the classes FSDP<name>
    for module in units:
        fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return names


def main(method: str, output_dir: str) -> None:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world_size > 1:
        dist.init_process_group("gloo")
    torch.set_num_threads(1)
    from mlic_hf.training.ema import ModelEMA

    model = build(method).train()
    ema = ModelEMA(model, decay=0.5, warmup=False)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
    units = shard(model, world_size) if world_size > 1 else []
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE)
    per_rank = GLOBAL_BATCH // world_size
    losses = []
    for pixel_values, labels in batches():
        part = slice(rank * per_rank, (rank + 1) * per_rank)
        loss = model(pixel_values[part], labels=labels[part]).loss  # the mean over the rank's images
        loss.backward()  # FSDP reduce-scatters the gradients as a mean over ranks: the global batch's mean
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.update(model)
        losses.append(loss.detach())
    # after a backward FSDP holds the parameters sharded (a forward without one leaves the root's gathered)
    sharded = sum(1 for p in model.parameters() if type(p).__name__ == "DTensor")
    model.eval()
    with torch.no_grad(), ema.swapped_into(model):
        ema_logits = model(next(iter(batches()))[0]).logits  # every process: the same images
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ema.save(str(out / "ema.safetensors"), write=rank == 0)  # a collective when sharded
    if world_size > 1:
        dist.barrier()
    ema.load(str(out / "ema.safetensors"))
    ema.save(str(out / "ema_reloaded.safetensors"), write=rank == 0)
    if world_size > 1:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        stacked = torch.stack(losses)
        dist.all_reduce(stacked)  # the global loss of each step, as one process computes it
        losses = list(stacked / world_size)
    else:
        state = model.state_dict()
    if rank == 0:
        model_to_save = build(method)
        model_to_save.load_state_dict(state)
        model_to_save.save_pretrained(output_dir)
        record = {"world_size": world_size, "units": units, "sharded_parameters": sharded,
                  "losses": [float(v) for v in losses], "ema_logits": ema_logits.tolist(),
                  "ema_sharded": sum(1 for v in ema.shadow.values() if type(v).__name__ == "DTensor")}
        (Path(output_dir) / "fsdp_run.json").write_text(json.dumps(record))
    if world_size > 1:
        dist.barrier()  # every file is written and closed
        # Leave without running the process group's destructors: gloo's sometimes aborted at exit ("terminate called
        # without an active exception", 2 of about 20 runs), after everything here had succeeded.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
