"""The tiny configuration of ``mlic-two-stage-irpe`` used by the shared tests: part of its test facts (``facts.py``
here), which ``tests/models/tiny_configs.py`` reads."""

MODEL_TYPE = "mlic-two-stage-irpe"

TINY_CONFIG = {
    "backbone": "resnet18",
    "image_size": 64,
    "hidden_size": 32,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "dropout": 0.0,
}
