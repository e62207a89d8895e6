"""The tiny configuration of ``mlic-ml-decoder`` used by the shared tests: part of its test facts (``facts.py`` here),
which ``tests/models/tiny_configs.py`` reads. Two queries for the tiny tests' four labels, so that each query scores a
group of two labels (group fully-connected pooling with k = 2)."""

MODEL_TYPE = "mlic-ml-decoder"

TINY_CONFIG = {
    "backbone": "resnet18",
    "image_size": 64,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_attention_heads": 4,
    "num_groups": 2,
    "dropout": 0.0,  # compiled and eager training steps draw different dropout masks
    # the official "sum" scales the loss and its gradient with the batch: the shared tests compare one process with two
    # (each summing half the batch) and train at learning rates set for per-image losses
    "loss_reduction": "batch_mean",
}
