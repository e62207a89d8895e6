"""Test facts of ``mlic-query2label`` for the shared tests (see ``tests/models/method_facts.py``): its encoder and
decoder layers are checkpointed and sharded; the backbone's stem and first stage are frozen (the official code trains
``layer2``-``layer4`` only); its label maps are the label queries' cross-attention."""

from ..method_facts import MethodTestFacts
from .tiny_config import MODEL_TYPE, TINY_CONFIG

#: decoder self-attention in every layer, no encoder and no position embedding: the other paths of the model
_OTHER_PATHS = {"decoder_self_attention": "all", "num_encoder_layers": 0, "position_embedding": "none"}

FACTS = MethodTestFacts(
    model_type=MODEL_TYPE,
    tiny_config=TINY_CONFIG,
    compile_variants=(_OTHER_PATHS,),
    mixed_precision_variants=(_OTHER_PATHS, {"pre_norm": True}),
    activation_checkpointing=True,
    checkpointing_variants=({"decoder_self_attention": "all"},
                            {"pre_norm": True, "decoder_self_attention": "first_only"}),
    fsdp_units=("LabelDecoderLayer", "TransformerEncoderLayer"),
    label_maps="attention",  # the last decoder layer's cross-attention of each label query
    frozen_prefixes=("backbone.body.conv1.", "backbone.body.layer1."),
)
