"""The tiny configuration of ``mlic-csra`` used by the shared tests: part of its test facts (``facts.py`` here), which
``tests/models/tiny_configs.py`` reads. Two heads: the official table gives them T = 1 (softmax) and T = 99 (max
pooling), so both kinds of head are in every shared test."""

MODEL_TYPE = "mlic-csra"

TINY_CONFIG = {
    "backbone": "resnet18",
    "image_size": 64,
    "num_heads": 2,
}
