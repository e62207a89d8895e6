"""The methods' test facts (``tests/models/method_facts.py``): every registered method has them, a method without them
is a clear error at collection, and a fifth method registered from anywhere is covered by every shared suite once it
has facts: a scratch method, written here as a package of its own and registered by a pytest plugin, is collected
by each of them (and passes the fast ones)."""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mlic_hf
from mlic_hf.models import METHOD_PACKAGES

from . import method_facts
from .method_facts import MethodTestFacts, MissingMethodFacts, facts_for, facts_module_names, registered_facts

REPO = Path(__file__).resolve().parents[2]
#: every shared suite that parametrises over the registered methods
SHARED_SUITES = [
    "tests/models/test_modeling_common.py",
    "tests/models/test_compile.py",
    "tests/models/test_mixed_precision.py",
    "tests/models/test_gradient_checkpointing.py",
    "tests/models/test_label_maps.py",
    "tests/models/test_memory_format.py",
    "tests/training/test_fsdp.py",
    "tests/test_journeys.py",
]
#: the suites fast enough to run for the scratch method here (compile, FSDP and the journeys are minutes)
FAST_SUITES = [
    "tests/models/test_modeling_common.py",
    "tests/models/test_gradient_checkpointing.py",
    "tests/models/test_label_maps.py",
    "tests/models/test_memory_format.py",
]
SCRATCH_TYPE = "mlic-scratch-probe"


def test_every_registered_method_has_facts_for_its_own_model_type():
    facts = registered_facts()
    assert list(facts) == list(mlic_hf.REGISTERED_METHODS)
    for model_type, method in facts.items():
        assert method.model_type == model_type and method.tiny_config


def test_every_method_package_has_its_facts_beside_its_tests():
    for package in METHOD_PACKAGES:
        assert (Path(__file__).parent / package / "facts.py").is_file(), f"tests/models/{package}/facts.py"


def test_no_facts_for_a_method_that_is_not_registered():
    registered = set(mlic_hf.REGISTERED_METHODS)
    for path in sorted(Path(__file__).parent.glob("*/facts.py")):
        module = __import__(f"tests.models.{path.parent.name}.facts", fromlist=["FACTS"])
        assert module.FACTS.model_type in registered, f"{path}: {module.FACTS.model_type} is not registered"


def test_where_facts_are_looked_for():
    _, model_class = next(iter(mlic_hf.REGISTERED_METHODS.values()))
    package = model_class.__module__.split(".")[2]
    assert facts_module_names(model_class) == [f"tests.models.{package}.facts"]

    class Elsewhere:
        pass

    Elsewhere.__module__ = "some_package.modeling_some"
    assert facts_module_names(Elsewhere) == ["some_package.facts"]


class _UnknownForMultiLabelImageClassification:
    """A model class with no facts module beside it (this test module's package holds no ``facts``)."""


def test_a_registered_method_without_facts_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(mlic_hf.REGISTERED_METHODS, "mlic-no-facts", (object, _UnknownForMultiLabelImageClassification))
    with pytest.raises(MissingMethodFacts, match=r"registered method 'mlic-no-facts' \(.*\) has no test facts.*"
                                                 r"tests/models/facts\.py.*register_facts"):
        registered_facts()
    with pytest.raises(MissingMethodFacts, match="has no test facts"):
        facts_for("mlic-no-facts")
    # the hook: facts given directly
    monkeypatch.setattr(method_facts, "_REGISTERED", {})
    method_facts.register_facts(MethodTestFacts(model_type="mlic-no-facts", tiny_config={"image_size": 64}))
    assert registered_facts()["mlic-no-facts"].tiny_config == {"image_size": 64}


def test_facts_are_checked():
    with pytest.raises(ValueError, match="label_maps must be one of"):
        MethodTestFacts(model_type="mlic-x", tiny_config={}, label_maps="saliency")
    with pytest.raises(ValueError, match="checkpointing_variants need activation_checkpointing=True"):
        MethodTestFacts(model_type="mlic-x", tiny_config={}, checkpointing_variants=({"a": 1},))
    with pytest.raises(ValueError, match="model_type must be"):
        MethodTestFacts(model_type="x", tiny_config={})
    simple = MethodTestFacts(model_type="mlic-x", tiny_config={"image_size": 64})
    assert simple.cases() == [("mlic-x", {})]
    assert not simple.activation_checkpointing and simple.fsdp_units == () and simple.label_maps == "cam"


# --- a scratch fifth method, outside mlic_hf, registered by a pytest plugin -------------------------------------------

_SCRATCH_CONFIG = '''
from huggingface_hub.dataclasses import strict

from mlic_hf import MLICConfig


@strict
class ScratchProbeConfig(MLICConfig):
    """A CNN backbone, global average pooling and a linear head: the smallest method there is."""

    model_type = "{model_type}"
    backbone: str = "resnet18"
    out_indices: list[int] | tuple[int, ...] = (-1,)
    image_size: int = 64
'''

_SCRATCH_MODELING = '''
import torch
from torch import nn
from transformers.utils import can_return_tuple

from mlic_hf import MLICPreTrainedModel, MultiLabelImageClassifierOutput

from .configuration_scratch_probe import ScratchProbeConfig


class ScratchProbeForMultiLabelImageClassification(MLICPreTrainedModel):
    config_class = ScratchProbeConfig
    base_model_prefix = "scratch_probe"

    def __init__(self, config):
        super().__init__(config)
        self.backbone = self.build_backbone(config)
        self.classifier = nn.Linear(self.backbone.channels[-1], config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(self, pixel_values, labels=None, output_hidden_states=None, *, return_dict=None,
                output_class_maps=None, **kwargs):
        features = self.backbone(pixel_values)[-1]
        logits = self.classifier(features.mean((-2, -1)))
        label_maps = None
        if output_class_maps:  # class activation maps: each averages to its label's logit
            label_maps = torch.einsum("ck,bkhw->bchw", self.classifier.weight, features)
            label_maps = label_maps + self.classifier.bias[None, :, None, None]
        return MultiLabelImageClassifierOutput(loss=self.compute_loss(logits, labels), logits=logits,
                                               label_maps=label_maps)
'''

_SCRATCH_INIT = '''
from .configuration_scratch_probe import ScratchProbeConfig
from .modeling_scratch_probe import ScratchProbeForMultiLabelImageClassification

METHOD = (ScratchProbeConfig, ScratchProbeForMultiLabelImageClassification)
PRESETS: dict[str, dict] = {}
__all__ = ["METHOD", "PRESETS", "ScratchProbeConfig", "ScratchProbeForMultiLabelImageClassification"]
'''

#: a simple method needs only its model type and tiny config
_SCRATCH_FACTS = '''
from tests.models.method_facts import MethodTestFacts

FACTS = MethodTestFacts(model_type="{model_type}", tiny_config={"backbone": "resnet18", "image_size": 64})
'''

_PLUGIN = '''
"""pytest plugin (``-p scratch_probe_plugin``): registers the scratch method before the tests are collected."""

import mlic_hf
from scratch_probe import METHOD

mlic_hf.register_method(*METHOD)
'''


def _write_scratch_method(root: Path, model_type: str, with_facts: bool = True) -> None:
    package = root / "scratch_probe"
    package.mkdir(parents=True)
    files = {"__init__.py": _SCRATCH_INIT, "configuration_scratch_probe.py": _SCRATCH_CONFIG,
             "modeling_scratch_probe.py": _SCRATCH_MODELING}
    if with_facts:
        files["facts.py"] = _SCRATCH_FACTS
    for name, text in files.items():
        (package / name).write_text(textwrap.dedent(text).lstrip().replace("{model_type}", model_type))
    (root / "scratch_probe_plugin.py").write_text(textwrap.dedent(_PLUGIN).lstrip())


def _pytest(root: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(root), str(REPO)])}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "scratch_probe_plugin", "-p", "no:cacheprovider",
                           *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def _collected(output: str) -> dict[str, list[str]]:
    """Test ids collected (``--collect-only -q``), by file."""
    by_file: dict[str, list[str]] = {}
    for line in output.splitlines():
        if "::" in line:
            path, _, test = line.partition("::")
            by_file.setdefault(path, []).append(test)
    return by_file


def test_a_scratch_method_with_facts_is_collected_by_every_shared_suite(tmp_path):
    _write_scratch_method(tmp_path, SCRATCH_TYPE)
    result = _pytest(tmp_path, "--collect-only", "-q", *SHARED_SUITES)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    collected = _collected(result.stdout)
    for suite in SHARED_SUITES:
        ids = collected.get(suite, [])
        assert any(SCRATCH_TYPE in test for test in ids), f"{suite} does not collect the scratch method {SCRATCH_TYPE}"
        # and the registered methods are still there
        for model_type in mlic_hf.REGISTERED_METHODS:
            assert any(model_type in test for test in ids), f"{suite} lost {model_type}"
    # a method without Transformer layers goes to the checkpointing suite's "says so" tests, not its gradient checks
    checkpointing = collected["tests/models/test_gradient_checkpointing.py"]
    assert f"test_the_method_without_transformer_layers_says_so[{SCRATCH_TYPE}]" in checkpointing


def test_a_scratch_method_passes_the_fast_shared_suites(tmp_path):
    _write_scratch_method(tmp_path, SCRATCH_TYPE)
    result = _pytest(tmp_path, "-q", "-x", "-k", SCRATCH_TYPE, *FAST_SUITES)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert re.search(r"\b\d+ passed\b", result.stdout) and " failed" not in result.stdout, result.stdout[-2000:]


def test_a_scratch_method_without_facts_fails_the_collection_clearly(tmp_path):
    _write_scratch_method(tmp_path, "mlic-scratch-no-facts", with_facts=False)
    result = _pytest(tmp_path, "--collect-only", "-q", "tests/models/test_modeling_common.py")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "MissingMethodFacts" in output and "registered method 'mlic-scratch-no-facts'" in output, output[-4000:]
    assert "has no test facts" in output and "scratch_probe/facts.py" in output, output[-4000:]
