"""Test facts of ``mlic-ml-decoder`` for the shared tests (see ``tests/models/method_facts.py``): its decoder layers
are checkpointed and sharded; the group queries are fixed (not trained) by default; its label maps are the
queries' cross-attention."""

from ..method_facts import MethodTestFacts
from .tiny_config import MODEL_TYPE, TINY_CONFIG

#: one query per label (4 tiny labels) and learnable queries: the other path of the head
_ONE_QUERY_PER_LABEL = {"num_groups": -1, "learnable_queries": True}

FACTS = MethodTestFacts(
    model_type=MODEL_TYPE,
    tiny_config=TINY_CONFIG,
    compile_variants=(_ONE_QUERY_PER_LABEL,),
    mixed_precision_variants=(_ONE_QUERY_PER_LABEL,),
    activation_checkpointing=True,
    checkpointing_variants=(_ONE_QUERY_PER_LABEL,),
    fsdp_units=("MLDecoderLayer",),
    label_maps="attention",  # the last layer's cross-attention of the query scoring each label
    frozen_prefixes=("queries.",),
)
