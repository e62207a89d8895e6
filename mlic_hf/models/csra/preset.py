"""The training recipes of CSRA as ``scripts/train.py --preset NAME`` (defaults of the model, data and training
arguments; any flag given on the command line wins).

Both follow the official code (github.com/Kevinz-code/CSRA, ``main.py`` and ``pipeline/dataset.py``): ResNet-101 at
448 px; SGD with momentum 0.9 and weight decay 1e-4; the heads ("classifier" parameters) at 10 times the backbone's
learning rate (0.1 and 0.01); a linear warm-up over the first 2 of 30 epochs, then the rate times 0.1 every 5
epochs on COCO (``csra``) or 4 on VOC 2007 (``csra-voc``); batch 16; random horizontal flips and a random resized
crop of 70-100 % of the image's area, no RandAugment or Cutout; BCE averaged over batch and labels; no EMA and no
gradient clipping; images scaled to [0, 1] without ImageNet normalisation ("In this paper, we normalize the image
data to [0, 1]"). transformers' optimiser leaves biases and normalisation weights out of the weight decay, where the
official SGD decays every parameter.
"""

from __future__ import annotations

import json

#: the official code's input scaling: ``Normalize(mean=[0, 0, 0], std=[1, 1, 1])`` after ``ToTensor``
_UNIT_RANGE = {"image_mean": [0.0, 0.0, 0.0], "image_std": [1.0, 1.0, 1.0]}


def _recipe(name: str, num_heads: int, lam: float, step_epochs: int) -> dict:
    return {
        "method": "mlic-csra",
        "backbone": "resnet101",
        "image_size": 448,
        "loss": "bce",
        "config_overrides": json.dumps({"num_heads": num_heads, "lam": lam, **_UNIT_RANGE}),
        "rand_augment": "",
        "cutout": 0.0,
        "hflip": 0.5,
        "crop_scale": [0.7, 1.0],
        "num_train_epochs": 30,
        "per_device_train_batch_size": 16,
        "optim": "sgd",
        "optim_args": "momentum=0.9",
        "learning_rate": 0.1,  # the heads' rate: 10 x the backbone's (main.py's two parameter groups)
        "backbone_learning_rate": 0.01,
        "weight_decay": 1e-4,
        "one_cycle": False,
        "warmup_steps": 2 / 30,  # 2 epochs of 30 (transformers: a value below 1 is a fraction of the steps)
        "step_lr_epochs": step_epochs,
        "step_lr_gamma": 0.1,
        "max_grad_norm": 0.0,
        "ema_decay": 0.0,
        "output_dir": f"outputs/{name}",
    }


PRESETS: dict[str, dict] = {
    # COCO 2014: ResNet-101, 4 heads (T = 1, 2, 4, max), lambda 0.5: 83.3 mAP in the official README
    "csra": _recipe("csra", num_heads=4, lam=0.5, step_epochs=5),
    # VOC 2007: ResNet-101, 1 head (T = 1), lambda 0.1: 94.7 mAP in the official README
    "csra-voc": _recipe("csra-voc", num_heads=1, lam=0.1, step_epochs=4),
}
