"""The paper's training recipe for the M4 method as a ``scripts/train.py --preset m4`` (defaults of the model,
data and training arguments; any flag given on the command line wins)."""

PRESETS: dict[str, dict] = {
    # M4: multi-scale three-branch Transformer, ASL (α+=0, α−=4); RandAugment + Cutout; AdamW lr 1e-4, weight decay
    # 1e-2, 80 epochs, 448 px (section 4.3 of the paper). Batch size, schedule (one-cycle), EMA and early stopping are
    # not given in the paper: as the m2 preset.
    "m4": {
        "method": "mlic-multiscale-three-branch",
        "backbone": "resnet101",
        "image_size": 448,
        "loss": "asl",
        "rand_augment": "rand-m9-mstd0.5",
        "cutout": 0.5,
        "num_train_epochs": 80,
        "per_device_train_batch_size": 32,
        "learning_rate": 1e-4,
        "weight_decay": 1e-2,
        "ema_decay": 0.9997,
        "early_stopping_patience": 3,
        "output_dir": "outputs/m4",
    },
}
