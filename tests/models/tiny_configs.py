"""Tiny configurations of every registered method, small enough for fast CPU tests.

Every method registered in ``mlic_hf.METHODS`` must have an entry here (a test enforces it)."""

TINY_IMAGE_SIZE = 64
TINY_LABELS = {0: "person", 1: "dog", 2: "cat", 3: "car"}

TINY_CONFIGS: dict[str, dict] = {
    "mlic-resnet-probabilistic": {"backbone": "resnet18", "image_size": TINY_IMAGE_SIZE},
    "mlic-two-stage-irpe": {
        "backbone": "resnet18",
        "image_size": TINY_IMAGE_SIZE,
        "hidden_size": 32,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "dropout": 0.0,
    },
    "mlic-multiscale-three-branch": {
        "backbone": "resnet18",
        "image_size": TINY_IMAGE_SIZE,
        "hidden_size": 16,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "dropout": 0.0,
    },
    # a 3-block ViT of width 32 (random init); no label groups: models fall back to default groups (with a warning)
    # and the training test computes them from the training split
    "mlic-ml-vpt": {
        "backbone": "vit_tiny_patch16_224",
        "image_size": TINY_IMAGE_SIZE,
        "backbone_kwargs": {"patch_size": 16, "embed_dim": 32, "num_heads": 2, "depth": 3},
        "num_groups": 2,
        "num_prompts_per_group": 2,
    },
}


def tiny_config(config_class, **overrides):
    kwargs = dict(TINY_CONFIGS[config_class.model_type])
    kwargs.setdefault("id2label", dict(TINY_LABELS))
    kwargs.update(overrides)
    return config_class(**kwargs)
