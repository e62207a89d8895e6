"""The tiny configuration of ``mlic-query2label`` used by the shared tests: part of its test facts (``facts.py`` here),
which ``tests/models/tiny_configs.py`` reads. ResNet-18 gives 512 channels, so the tiny width needs the input
projection."""

MODEL_TYPE = "mlic-query2label"

TINY_CONFIG = {
    "backbone": "resnet18",
    "image_size": 64,
    "hidden_size": 32,
    "input_projection": True,
    "intermediate_size": 64,
    "num_attention_heads": 4,
    "num_encoder_layers": 1,
    "num_decoder_layers": 2,
    "frozen_batch_norm": False,  # frozen batch norms hold a random backbone's activations unnormalised (tested by variants)
    "dropout": 0.0,  # compiled and eager training steps draw different dropout masks
}
