"""Test facts of ``mlic-multiscale-three-branch`` (M4) for the shared tests (see ``tests/models/method_facts.py``)."""

from ..method_facts import MethodTestFacts
from .tiny_config import MODEL_TYPE, TINY_CONFIG

FACTS = MethodTestFacts(
    model_type=MODEL_TYPE,
    tiny_config=TINY_CONFIG,
    # without scale attention and global feature enhancement the branches are fused another way
    compile_variants=({"scale_attention": False, "global_feature_enhancement": False},),
    activation_checkpointing=True,
    fsdp_units=("LabelDecoderLayer", "TransformerEncoderLayer"),
    label_maps="attention",  # the branches' label attention, averaged on one grid
)
