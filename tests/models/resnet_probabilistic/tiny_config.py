"""The tiny configuration of ``mlic-resnet-probabilistic`` used by the shared tests (``tests/models/tiny_configs.py`` collects it)."""

MODEL_TYPE = "mlic-resnet-probabilistic"

TINY_CONFIG = {
    "backbone": "resnet18",
    "image_size": 64,
}
