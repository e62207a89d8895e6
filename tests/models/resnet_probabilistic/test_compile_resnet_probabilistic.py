"""The recompilation guard of ``tests/models/test_compile.py``, shown on M1 (the cheapest model to compile)."""

import pytest
import torch

from ..tiny_configs import TINY_IMAGE_SIZE, tiny_batch, tiny_model


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_a_recompile_is_reported():
    """The guard behind ``test_compile.py``'s no-recompilation check works: a new shape does recompile (and would
    fail under the stance)."""
    compiled = torch.compile(tiny_model("mlic-resnet-probabilistic").eval(), backend="eager")
    with torch.no_grad():
        compiled(tiny_batch(2, seed=3)[0])
        with torch.compiler.set_stance("fail_on_recompile"), pytest.raises(Exception, match="recompil"):
            compiled(torch.randn(3, 3, TINY_IMAGE_SIZE + 32, TINY_IMAGE_SIZE + 32))
