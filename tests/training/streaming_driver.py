"""Run by ``torchrun`` from ``test_streaming_training.py``: build the run of ``scripts/train.py ARGV`` (a streamed
training split), then read two epochs through the Trainer's own training DataLoader and write, per process, the
image ids of every batch and each image's pixel sum (its augmentation) to ``OUT/rank<R>.json``.

Usage: ``torchrun --nproc_per_node 2 streaming_driver.py OUT ARGV...``"""

import json
import os
import sys

import torch.distributed as dist

from mlic_hf.data.transforms import collate_fn
from mlic_hf.training import attach_transforms, build_model, load_splits, make_trainer, parse_args


def main(out: str, argv: list[str]) -> None:
    model_args, data_args, training_args = parse_args(argv)
    train, evaluation, test, names = load_splits(data_args, training_args.seed)
    model = build_model(model_args, names, train)
    train, evaluation, test, train_transform = attach_transforms(model, data_args, train, evaluation, test,
                                                                 training_args.seed)
    trainer = make_trainer(model, data_args, training_args, train, evaluation, train_transform)
    # the run's collate function, keeping the image ids the test checks
    trainer.data_collator = lambda rows: {**collate_fn(rows), "image_id": [row["image_id"] for row in rows]}
    record = {"world_size": training_args.world_size, "epochs": []}
    for epoch in (0, 1):
        loader = trainer.get_train_dataloader()
        loader.set_epoch(epoch)  # what Trainer.train does at every epoch
        ids, sums, batches = [], {}, 0
        for batch in loader:
            batches += 1
            ids += batch["image_id"]
            for image_id, pixels in zip(batch["image_id"], batch["pixel_values"]):
                sums[image_id] = float(pixels.double().sum())
        record["epochs"].append({"ids": ids, "sums": sums, "batches": batches, "len": len(loader)})
    rank = training_args.process_index
    with open(os.path.join(out, f"rank{rank}.json"), "w") as handle:
        json.dump(record, handle)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
