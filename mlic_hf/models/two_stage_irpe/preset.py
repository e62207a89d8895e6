"""The paper's training recipe for the M2 method as a ``scripts/train.py --preset m2`` (defaults of the model,
data and training arguments; any flag given on the command line wins)."""

PRESETS: dict[str, dict] = {
    # M2: two-stage Transformer with iRPE, APL (γ+=0, γ−=2); Cutout + RandAugment; AdamW (wd 5e-3, betas 0.9/0.9999),
    # one-cycle with max lr 5e-5, 80 epochs, 448 px (section IV-B of the paper).
    "m2": {
        "method": "mlic-two-stage-irpe",
        "backbone": "resnet101",
        "image_size": 448,
        "loss": "apl",
        "rand_augment": "rand-m9-mstd0.5",
        "cutout": 0.5,
        "num_train_epochs": 80,
        "per_device_train_batch_size": 32,
        "learning_rate": 5e-5,
        "weight_decay": 5e-3,
        "adam_beta1": 0.9,
        "adam_beta2": 0.9999,
        "ema_decay": 0.9997,
        "early_stopping_patience": 3,
        "output_dir": "outputs/m2",
    },
}
