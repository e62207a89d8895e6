"""The training recipe of ML-Decoder as ``scripts/train.py --preset ml-decoder`` (defaults of the model, data and
training arguments; any flag given on the command line wins).

The official ``train.py`` (github.com/Alibaba-MIIL/ML_Decoder) for COCO: TResNet-L at 448 px, 40 epochs, batch 56,
Adam with learning rate 1e-4 in a one-cycle schedule (20 % warm-up), weight decay 1e-4 on every weight but biases and
normalisation (its ``add_weight_decay``; the official code adds it to the gradient as Adam's ``weight_decay``, where
transformers' AdamW decays the weights directly), an EMA of decay 0.9997, ASL (γ- 4, γ+ 0, clip 0.05, summed),
RandAugment and Cutout (half the side) after a square resize, no flips, no gradient clipping; images scaled to
[0, 1] without normalisation (``ToTensor`` only: timm's TResNet configuration says the same). Its TResNet-L starts from ImageNet-21K weights the Hub
holds (``use_pretrained_backbone``; not reachable offline here).
"""

PRESETS: dict[str, dict] = {
    "ml-decoder": {
        "method": "mlic-ml-decoder",
        "backbone": "tresnet_l",
        "image_size": 448,
        "loss": "asl",
        "rand_augment": "rand-m9-mstd0.5",
        "cutout": 0.5,
        "hflip": 0.0,  # the official transforms: Resize, CutoutPIL, RandAugment, ToTensor (no flip)
        "num_train_epochs": 40,
        "per_device_train_batch_size": 56,
        "learning_rate": 1e-4,
        "weight_decay": 1e-4,
        "one_cycle": True,
        "one_cycle_pct_start": 0.2,
        "ema_decay": 0.9997,
        "max_grad_norm": 0.0,  # no gradient clipping in the official loop
        "output_dir": "outputs/ml-decoder",
    },
}
