"""The tiny configuration of ``mlic-resnet-probabilistic`` used by the shared tests: part of its test facts (``facts.py``
here), which ``tests/models/tiny_configs.py`` reads."""

MODEL_TYPE = "mlic-resnet-probabilistic"

TINY_CONFIG = {
    "backbone": "resnet18",
    "image_size": 64,
}
