"""Test facts of ``mlic-resnet-probabilistic`` (M1) for the shared tests (see ``tests/models/method_facts.py``): a CNN,
global average pooling and a linear head, so the defaults of a simple method (no Transformer layers: no activation
checkpointing and one FSDP root unit; class activation maps)."""

from ..method_facts import MethodTestFacts
from .tiny_config import MODEL_TYPE, TINY_CONFIG

FACTS = MethodTestFacts(
    model_type=MODEL_TYPE,
    tiny_config=TINY_CONFIG,
)
