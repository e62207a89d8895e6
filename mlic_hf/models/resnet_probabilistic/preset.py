"""The paper's training recipe for the M1 baseline method as a ``scripts/train.py --preset m1`` (defaults of the model,
data and training arguments; any flag given on the command line wins)."""

PRESETS: dict[str, dict] = {
    # M1: ResNet-101 + GAP + sigmoid, BCE, 448 px (Singh et al.); optimiser/schedule as ASL's training code.
    "m1": {
        "method": "mlic-resnet-probabilistic",
        "backbone": "resnet101",
        "image_size": 448,
        "loss": "bce",
        "rand_augment": "rand-m9-mstd0.5",
        "cutout": 0.5,
        "num_train_epochs": 40,
        "per_device_train_batch_size": 32,
        "learning_rate": 1e-4,
        "weight_decay": 1e-4,
        "ema_decay": 0.9997,
        "early_stopping_patience": 3,
        "output_dir": "outputs/m1",
    },
}
