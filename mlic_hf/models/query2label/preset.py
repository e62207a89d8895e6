"""The training recipe of Query2Label as ``scripts/train.py --preset query2label`` (defaults of the model, data and
training arguments; any flag given on the command line wins).

The official README's COCO command (github.com/SlongLiu/query2labels): ResNet-101 at 448 px, batch 64, 80 epochs
(with early stopping), AdamW with weight decay 1e-2 (the official optimiser decays every parameter, transformers'
Trainer all but biases and normalisation weights) at learning rate 1e-4 in a one-cycle schedule (``OneCycleLR``, 20 %
warm-up), an EMA of decay 0.9997, ASL (γ- 2, γ+ 0, no clip), and RandAugment after a square resize with ImageNet
normalisation; no flips, no gradient clipping. The backbone's batch norms are frozen and its stem and first stage
not trained (the model's ``frozen_batch_norm`` and ``frozen_backbone_stride``).

One difference from the official script, on purpose: the command passes ``--cutout --n_holes 1 --cut_fact 0.5``, but
``main_mlc.py`` builds its ``SLCutoutPIL(n_holes, length)`` without ``cut_fact`` and with the default length of -1,
so its hole is a rectangle of at most 3×3 pixels (or an error, where Pillow refuses reversed corners). The preset
applies the Cutout the command asks for: one hole of half the image side (``--cutout 0.5``), as ASL and ML-Decoder.
"""

PRESETS: dict[str, dict] = {
    "query2label": {
        "method": "mlic-query2label",
        "backbone": "resnet101",
        "image_size": 448,
        "loss": "asl",
        "rand_augment": "rand-m9-mstd0.5",
        "cutout": 0.5,
        "hflip": 0.0,  # the official transforms: Resize, (Cutout), RandAugment, ToTensor, Normalize (no flip)
        "num_train_epochs": 80,
        "per_device_train_batch_size": 64,
        "learning_rate": 1e-4,
        "weight_decay": 1e-2,
        "one_cycle": True,
        "one_cycle_pct_start": 0.2,
        "ema_decay": 0.9997,
        "max_grad_norm": 0.0,  # no gradient clipping in the official loop
        "output_dir": "outputs/query2label",
    },
}
