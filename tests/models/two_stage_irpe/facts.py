"""Test facts of ``mlic-two-stage-irpe`` (M2) for the shared tests (see ``tests/models/method_facts.py``)."""

from ..method_facts import MethodTestFacts
from .tiny_config import MODEL_TYPE, TINY_CONFIG

#: the standard encoder and full decoder self-attention instead of the iRPE encoder (bucketed relative position
#: tables) and the default decoder: other layers, another forward path
_STANDARD_LAYERS = {"encoder": "standard", "decoder_self_attention": "all"}

FACTS = MethodTestFacts(
    model_type=MODEL_TYPE,
    tiny_config=TINY_CONFIG,
    compile_variants=(_STANDARD_LAYERS,),
    mixed_precision_variants=(_STANDARD_LAYERS,),
    activation_checkpointing=True,
    checkpointing_variants=(_STANDARD_LAYERS,),
    fsdp_units=("IRPEEncoderLayer", "LabelDecoderLayer"),
    label_maps="attention",  # the last decoder layer's cross-attention
)
