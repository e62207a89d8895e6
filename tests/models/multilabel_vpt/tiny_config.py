"""The tiny configuration of ``mlic-ml-vpt`` used by the shared tests: part of its test facts (``facts.py``
here), which ``tests/models/tiny_configs.py`` reads."""

MODEL_TYPE = "mlic-ml-vpt"

# a 3-block ViT of width 32 (random init); no label groups: models fall back to default groups (with a warning)
# and the training tests compute them from the training split
TINY_CONFIG = {
    "backbone": "vit_tiny_patch16_224",
    "image_size": 64,
    "backbone_kwargs": {"patch_size": 16, "embed_dim": 32, "num_heads": 2, "depth": 3},
    "num_groups": 2,
    "num_prompts_per_group": 2,
}
