"""The paper's training recipe for the M3 (ML-VPT) method as a ``scripts/train.py --preset m3`` (defaults of the model,
data and training arguments; any flag given on the command line wins)."""

PRESETS: dict[str, dict] = {
    # M3: ML-VPT on a frozen ViT-B/16, 224 px, ASL on both heads; AdamW with one-cycle (max lr 5e-4), batch 64, 40
    # epochs with early stopping, RandAugment + Cutout, EMA 0.9997 (section 5.1 of the paper). The label groups are
    # computed from the training split (5 CO + 5 DC groups, tau 2). Weight decay: not given (ASL/Query2Label's 1e-4).
    # Use --use_pretrained_backbone (Hub) or --backbone_weights FILE: prompt tuning a random ViT is meaningless.
    "m3": {
        "method": "mlic-ml-vpt",
        "backbone": "vit_base_patch16_224",
        "image_size": 224,
        "loss": "asl",
        "rand_augment": "rand-m9-mstd0.5",
        "cutout": 0.5,
        "num_train_epochs": 40,
        "per_device_train_batch_size": 64,
        "learning_rate": 5e-4,
        "weight_decay": 1e-4,
        "ema_decay": 0.9997,
        "early_stopping_patience": 3,
        "output_dir": "outputs/m3",
    },
}
