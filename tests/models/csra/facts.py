"""Test facts of ``mlic-csra`` for the shared tests (see ``tests/models/method_facts.py``): a CNN and a head without
Transformer layers (no activation checkpointing, one FSDP root unit); its label maps are attention over positions."""

from ..method_facts import MethodTestFacts
from .tiny_config import MODEL_TYPE, TINY_CONFIG

FACTS = MethodTestFacts(
    model_type=MODEL_TYPE,
    tiny_config=TINY_CONFIG,
    compile_variants=({"num_heads": 1, "lam": 0.1},),
    label_maps="attention",  # each label's class-specific attention over the positions, averaged over the heads
)
