"""The tiny configuration of ``mlic-multiscale-three-branch`` used by the shared tests: part of its test facts (``facts.py``
here), which ``tests/models/tiny_configs.py`` reads."""

MODEL_TYPE = "mlic-multiscale-three-branch"

TINY_CONFIG = {
    "backbone": "resnet18",
    "image_size": 64,
    "hidden_size": 16,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "dropout": 0.0,
}
