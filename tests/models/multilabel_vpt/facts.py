"""Test facts of ``mlic-ml-vpt`` for the shared tests (see ``tests/models/method_facts.py``): prompts and gates on a
frozen timm ViT (``vit.``), and label groups that belong to a label set."""

from ..method_facts import MethodTestFacts
from .tiny_config import MODEL_TYPE, TINY_CONFIG

_VPT, _LINEAR_PROBE, _FULL_FINETUNE = {"variant": "vpt"}, {"variant": "linear-probe"}, {"variant": "full-finetune"}


def _label_groups_recomputed(config: dict, messages: list[str], num_train_images: int, num_labels: int) -> None:
    """Fine-tuned on another label set, the label groups (which belong to the old labels) are recomputed from the new
    training split."""
    assert any("label groups recomputed for the new label set" in m for m in messages), messages
    assert config["label_groups_source"] == f"co-occurrence of {num_train_images} training images"
    assert len(config["co_groups"]) == len(config["dc_groups"]) == num_labels


FACTS = MethodTestFacts(
    model_type=MODEL_TYPE,
    tiny_config=TINY_CONFIG,
    compile_variants=(_VPT, _LINEAR_PROBE, _FULL_FINETUNE),
    mixed_precision_variants=(_VPT, _FULL_FINETUNE),
    activation_checkpointing=True,
    checkpointing_variants=(_VPT, _FULL_FINETUNE),
    fsdp_units=("Block",),
    fsdp_overrides={"num_groups": 2},
    label_maps="attention",  # the last ViT block's attention from the label tokens
    pretrained_prefixes=("vit.",),
    frozen_prefixes=("vit.",),
    check_finetuned_on_new_labels=_label_groups_recomputed,
)
