"""The training recipes of the M3 (ML-VPT) method as ``scripts/train.py --preset NAME`` (defaults of the model, data and
training arguments; any flag given on the command line wins).

``m3`` is the paper's recipe (section 5.1) and the default. ``m3-authors`` and its per-backbone variants reproduce
the authors' public code (github.com/yu-gi-oh-leilei/ML-VPT, commit 4fd40e48; the configs are
``config/vpt-group-moe-g5e3/<backbone>/<dataset>.yaml``, the code under ``code/MLIC-MoE/``), each of its differences
from the paper a documented config switch (see :class:`~.MultiLabelVPTConfig` and ``docs/ml_vpt_authors.md``).

The config switches travel in the preset's ``config_overrides``. A ``--config_overrides`` given on the command line
is merged into the preset's (``parse_args``): its keys win, the preset's other switches stay.
"""

from __future__ import annotations

import json

#: The authors' switches shared by every backbone (the defaults are the paper's; see MultiLabelVPTConfig).
AUTHORS_SWITCHES: dict = {
    "prompt_mask": "self",  # prompts attend to no other prompt (the authors' mask)
    "expert_activation": "gelu",  # Adapt_Experts(act_layer=nn.GELU), models/builder_network.py:307
    "head_fusion": "logit",  # (co_logit + cl_logit) * 0.5, models/builder_network.py:454
    "gate_bias": False,  # allocated, never added: models/builder_network.py:200-202, 231-232
    "gate_logit_loss": True,  # four ASL terms of weight 1: losses/builder_criterion.py:19 (weights at 13-17), Coef 1.0
    # ASL as every config's LOSS.ASL (gamma_neg 2, gamma_pos 0, loss_clip 0, eps 1e-5, dtgfl) with
    # AsymmetricLossOptimized's clamps and mean x 1000 (losses/aslloss.py:150-151, 173-174)
    "asl_gamma_neg": 2.0,
    "asl_gamma_pos": 0.0,
    "asl_clip": 0.0,
    "asl_eps": 1e-5,
    "asl_focal_no_grad": True,
    "asl_clamp_probabilities": True,
    "loss_reduction": "mean",
    "loss_scale": 1000.0,
    # ImageNet mean/std for every backbone of theirs (dataset/get_data.py:75-76); another backbone keeps its own
    "image_normalization": "authors",
    # the published groups where the labels are COCO's or NUS-WIDE's (data/aux_data/*/..._5_0.json); otherwise
    # computed, keeping the best of 4 seeded runs by Calinski-Harabasz score as CPSD's partition code
    "label_groups_preset": "auto",
    "grouping_runs": 4,
}

#: EMA decay of the authors' code for COCO at a batch of 64: not the configs' TRAIN.ema_decay (0.9997), which
#: main_worker.py:42 replaces by utils/util.py:261-282 get_ema_co, 0.82 ** (1 / (641 * TRAIN.ratio)) with ratio 2
#: (the old EMA keeps 82 % weight per epoch of ~1282 steps). Other datasets: NUS-WIDE 0.82 ** (1 / 1960) = 0.999899,
#: VOC 2007 0.82 ** (1 / 78) = 0.997459, VG256 (which falls into the CUB branch, line 275) 0.82 ** (1 / 94) =
#: 0.997891; for a dataset of S steps per epoch the rule is 0.82 ** (1 / S).
AUTHORS_COCO_EMA_DECAY = 0.999845


def _authors_recipe(name: str, backbone: str, learning_rate: float, prompt_features_norm: bool) -> dict:
    """The authors' recipe on one backbone (COCO at 224 px, the configs' ``coco14_224.yaml``)."""
    return {
        "method": "mlic-ml-vpt",
        "backbone": backbone,
        "image_size": 224,
        "loss": "asl",
        "config_overrides": json.dumps({**AUTHORS_SWITCHES, "prompt_features_norm": prompt_features_norm}),
        # data: Resize -> Cutout (side img/2, random fill, always) -> RandAugment -> ToTensor -> ImageNet
        # normalisation (dataset/get_data.py:52-77; DATA.TRANSFORM.crop is False: the flip is only in the crop branch)
        "rand_augment": "rand-m9-mstd0.5",
        "cutout": 0.5,
        "hflip": 0.0,
        # AdamW (betas 0.9/0.999, eps 1e-8, weight decay 1e-2), OneCycleLR with pct_start 0.2, 40 epochs, no
        # gradient clipping (OPTIMIZER.max_clip_grad_norm 0; optim/optimizer/builder_optimizer.py:12-18,
        # optim/lrscheduler/builder_scheduler.py:101-107, engine/train.py:68-70)
        "num_train_epochs": 40,
        "learning_rate": learning_rate,
        "weight_decay": 1e-2,
        "one_cycle": True,
        "one_cycle_pct_start": 0.2,
        "max_grad_norm": 0.0,
        # OPTIMIZER.batch_size 64 is global: each of N processes loads 64 // N (dataset/get_data.py:33-36). A preset
        # is static: with N processes pass --per_device_train_batch_size 64/N (e.g. 16 on 4 GPUs, as their script).
        "per_device_train_batch_size": 64,
        # EMA from the first step, without warm-up (ModelEma, utils/util.py:62; engine/train.py:82-83); early
        # stopping after 7 epochs without a better best-of-raw-and-EMA mAP (main_worker.py:208: epoch - best > 6)
        "ema_decay": AUTHORS_COCO_EMA_DECAY,
        "ema_warmup": False,
        "early_stopping_patience": 7,
        "output_dir": f"outputs/{name}",
    }


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
    # The authors' code, per backbone (config/vpt-group-moe-g5e3/<backbone>/coco14_224.yaml). Their learning rate is
    # 5e-4 at 224 px on COCO and NUS-WIDE for every backbone but DINOv2/B on COCO (1e-4; 5e-4 on NUS-WIDE), and 1e-4
    # for VG256 and at 448 px for every backbone (vg256_224.yaml, voc2007_448.yaml): pass --learning_rate 1e-4 there
    # (and --image_size 448). Weights: add --use_pretrained_backbone (timm, from the Hub) or --backbone_weights FILE.
    # ViT-B/16, ImageNet-21k then 1k (Google's original weights: models/timm_models/vision_transformer.py:60-62,
    # jx_vit_base_p16_224-80ecf9dd.pth = timm's orig_in21k_ft_in1k, not its default augreg2); features after the
    # final norm (models/builder_network.py:384-392)
    "m3-authors": _authors_recipe("m3-authors", "vit_base_patch16_224.orig_in21k_ft_in1k", 5e-4, True),
    # ViT-B/16 ImageNet-21k (B_16-i21k-300ep-...npz, vision_transformer.py:68-69 = timm's augreg_in21k); features
    # before the final norm (builder_network.py:394-398)
    "m3-authors-in21k": _authors_recipe("m3-authors-in21k", "vit_base_patch16_224.augreg_in21k", 5e-4, False),
    # MAE ViT-B/16 (models/vit_mae/vit_mae.py); features before the final norm (builder_network.py:358-362)
    "m3-authors-mae": _authors_recipe("m3-authors-mae", "vit_base_patch16_224.mae", 5e-4, False),
    # MoCo v3 ViT-B/16 (models/moco/vit_moco.py): give the MoCo v3 checkpoint with --backbone_weights; features
    # before the final norm (builder_network.py:374-378)
    "m3-authors-mocov3": _authors_recipe("m3-authors-mocov3", "vit_base_patch16_224", 5e-4, False),
    # DINOv2/B, the paper's 87.5 mAP headline: learning rate 1e-4 (vit_base_dinov2/coco14_224.yaml); features after
    # the norm (x_norm_auxtoken, builder_network.py:368-372)
    "m3-authors-dinov2": _authors_recipe("m3-authors-dinov2", "vit_base_patch14_dinov2.lvd142m", 1e-4, True),
    # DINOv2/S: learning rate 5e-4 (vit_small_dinov2/coco14_224.yaml)
    "m3-authors-dinov2-small": _authors_recipe("m3-authors-dinov2-small", "vit_small_patch14_dinov2.lvd142m", 5e-4,
                                               True),
}
