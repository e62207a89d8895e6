"""Behaviour every registered mlic_hf method must have, parametrised over ``mlic_hf.REGISTERED_METHODS`` (through the
methods' test facts, ``tests/models/method_facts.py``) with tiny configs."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification, pipeline

import mlic_hf
from mlic_hf import AutoModelForMultiLabelImageClassification, MLICImageProcessor

from .method_facts import facts_for, method_ids, registered_methods
from .tiny_configs import TINY_CONFIGS, TINY_IMAGE_SIZE, TINY_LABELS, tiny_config

METHOD_IDS = method_ids()
LOSSES = ["bce", "focal", "asl", "apl"]


@pytest.fixture(params=registered_methods(), ids=METHOD_IDS)
def method(request):
    return request.param


def _batch(batch_size=2, num_labels=len(TINY_LABELS), seed=0):
    generator = torch.Generator().manual_seed(seed)
    pixel_values = torch.randn(batch_size, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, generator=generator)
    labels = (torch.rand(batch_size, num_labels, generator=generator) > 0.5).float()
    labels[0, 0], labels[1, 0] = 1.0, 0.0  # both classes present for label 0
    return pixel_values, labels


def test_every_method_is_registered_and_has_a_tiny_config(method):
    config_class, model_class = method
    assert config_class.model_type.startswith("mlic-")
    assert config_class.model_type in TINY_CONFIGS, "add a tiny config to the new method's test facts"
    assert facts_for(config_class.model_type).model_type == config_class.model_type
    assert mlic_hf.REGISTERED_METHODS[config_class.model_type] == (config_class, model_class)
    assert model_class.__name__.endswith(("ForMultiLabelImageClassification", "ForImageClassification"))
    assert AutoConfig.for_model(config_class.model_type).__class__ is config_class


def test_config_defaults_and_round_trip(method, tmp_path):
    config_class, _ = method
    default = config_class()
    assert default.problem_type == "multi_label_classification"
    assert default.num_labels == 80
    config = tiny_config(config_class, loss="asl", asl_gamma_neg=3.0)
    config.save_pretrained(tmp_path)
    reloaded = AutoConfig.from_pretrained(tmp_path)
    assert type(reloaded) is config_class
    assert reloaded.to_diff_dict() == config.to_diff_dict()
    assert reloaded.id2label == TINY_LABELS and reloaded.asl_gamma_neg == 3.0
    on_disk = json.loads((tmp_path / "config.json").read_text())
    assert on_disk["problem_type"] == "multi_label_classification"


def test_config_rejects_bad_fields(method):
    config_class, _ = method
    with pytest.raises(ValueError, match="loss='nope'"):
        tiny_config(config_class, loss="nope")
    with pytest.raises(ValueError, match="duplicate label names"):
        tiny_config(config_class, id2label={0: "a", 1: "a"})


@pytest.mark.parametrize("loss", LOSSES)
def test_forward_shapes_and_finite_loss(method, loss):
    config_class, model_class = method
    model = model_class(tiny_config(config_class, loss=loss))
    pixel_values, labels = _batch()
    out = model(pixel_values, labels=labels)
    assert out.logits.shape == (2, len(TINY_LABELS))
    assert out.logits.dtype == torch.float32
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert out.loss.item() > 0
    # soft (float) labels also work
    soft = model(pixel_values, labels=labels * 0.8 + 0.1)
    assert torch.isfinite(soft.loss)
    # tuple output: loss first, then logits
    as_tuple = model(pixel_values, labels=labels, return_dict=False)
    assert torch.equal(as_tuple[0], out.loss) or torch.allclose(as_tuple[0], out.loss)
    assert as_tuple[1].shape == out.logits.shape


def test_loss_matches_the_configured_loss_function(method):
    from mlic_hf.losses import asymmetric_loss

    config_class, model_class = method
    model = model_class(tiny_config(config_class, loss="asl", loss_reduction="sum")).eval()
    pixel_values, labels = _batch()
    out = model(pixel_values, labels=labels)
    c = model.config  # a method's ASL settings (Query2Label's are γ- 2, no clip, eps 1e-5)
    expected = sum(asymmetric_loss(logits, labels, gamma_neg=c.asl_gamma_neg, gamma_pos=c.asl_gamma_pos,
                                   clip=c.asl_clip, eps=c.asl_eps, reduction="sum")
                   for logits in model.loss_logits(out))  # one head: [out.logits]
    torch.testing.assert_close(out.loss, expected)


def test_ignored_labels_do_not_contribute(method):
    config_class, model_class = method
    model = model_class(tiny_config(config_class, loss="bce", loss_reduction="batch_mean")).eval()
    pixel_values, labels = _batch()
    masked = labels.clone()
    masked[0, 1] = -1  # "difficult"/unknown: ignored
    out = model(pixel_values, labels=masked)
    with torch.no_grad():
        heads = model.loss_logits(model(pixel_values))
    expected = 0
    for logits in heads:
        per_element = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")
        per_element[0, 1] = 0
        expected = expected + per_element.sum() / 2  # batch_mean: sum over labels, mean over batch
    torch.testing.assert_close(out.loss, expected)


def test_labels_of_the_wrong_shape_raise(method):
    config_class, model_class = method
    model = model_class(tiny_config(config_class))
    pixel_values, _ = _batch()
    with pytest.raises(ValueError, match="multi-hot"):
        model(pixel_values, labels=torch.ones(2, len(TINY_LABELS) + 1))


def test_gradient_reaches_every_trainable_parameter(method):
    config_class, model_class = method
    model = model_class(tiny_config(config_class)).train()
    pixel_values, labels = _batch(batch_size=3)
    model(pixel_values, labels=labels).loss.backward()
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    assert trainable
    missing = [name for name, p in trainable.items() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no gradient reaches: {missing}"
    # timm zero-initialises the last norm of each residual branch, so some backbone gradients are exactly zero at
    # init; the method's own layers must all get a non-zero gradient.
    pretrained = facts_for(config_class.model_type).pretrained_prefixes
    own = [name for name in trainable if not name.startswith(pretrained)]
    assert own
    zero = [name for name in own if not torch.any(trainable[name].grad != 0)]
    assert not zero, f"zero gradient on: {zero}"


def test_save_and_load_through_both_auto_classes(method, tmp_path):
    config_class, model_class = method
    model = model_class(tiny_config(config_class)).eval()
    model.save_pretrained(tmp_path)
    files = set(os.listdir(tmp_path))
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= files
    assert not any(f.endswith((".bin", ".pt", ".pth")) for f in files)
    pixel_values, _ = _batch()
    with torch.no_grad():
        expected = model(pixel_values).logits
    for auto_class in (AutoModelForMultiLabelImageClassification, AutoModelForImageClassification):
        loaded = auto_class.from_pretrained(tmp_path).eval()
        assert type(loaded) is model_class
        with torch.no_grad():
            torch.testing.assert_close(loaded(pixel_values).logits, expected, rtol=0, atol=0)
    from_config = AutoModelForMultiLabelImageClassification.from_config(model.config)
    assert type(from_config) is model_class
    processor = AutoImageProcessor.from_pretrained(tmp_path)
    assert isinstance(processor, MLICImageProcessor)
    assert processor.size["height"] == TINY_IMAGE_SIZE
    assert list(processor.image_mean) == list(model.config.image_mean)


def test_loaded_model_trains_the_same_parameters(method, tmp_path):
    """transformers re-creates loaded parameters as trainable: a method's frozen parts (e.g. a frozen ViT) must stay
    frozen in a loaded checkpoint, or fine-tuning it would silently train them."""
    config_class, model_class = method
    model = model_class(tiny_config(config_class))
    model.save_pretrained(tmp_path)
    loaded = AutoModelForMultiLabelImageClassification.from_pretrained(tmp_path)
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert {name for name, parameter in loaded.named_parameters() if parameter.requires_grad} == trainable
    frozen = facts_for(config_class.model_type).frozen_prefixes  # () for a method that freezes nothing
    assert not any(name.startswith(frozen) for name in trainable)


def test_from_pretrained_with_another_label_set(method, tmp_path):
    config_class, model_class = method
    model_class(tiny_config(config_class)).save_pretrained(tmp_path)
    other = {0: "person", 1: "dog", 2: "horse", 3: "car"}
    with pytest.raises(ValueError, match="ignore_mismatched_sizes"):
        AutoModelForMultiLabelImageClassification.from_pretrained(tmp_path, id2label=other)
    with pytest.raises(ValueError, match="4 labels"):
        AutoModelForMultiLabelImageClassification.from_pretrained(tmp_path, num_labels=6)
    adapted = AutoModelForMultiLabelImageClassification.from_pretrained(
        tmp_path, num_labels=6, ignore_mismatched_sizes=True
    )
    assert adapted(_batch(num_labels=6)[0]).logits.shape == (2, 6)


def test_pickle_checkpoints_are_not_loaded(method, tmp_path):
    config_class, model_class = method
    model = model_class(tiny_config(config_class))
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(OSError):
        AutoModelForMultiLabelImageClassification.from_pretrained(tmp_path)


def _image(seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(50, 70, 3), dtype=np.uint8))


def test_pipeline_scores_are_sigmoid_of_logits(method, tmp_path):
    config_class, model_class = method
    model = model_class(tiny_config(config_class)).eval()
    model.save_pretrained(tmp_path)
    image = _image()
    processor = MLICImageProcessor.from_pretrained(tmp_path)
    with torch.no_grad():
        probs = torch.sigmoid(model(**processor(images=image, return_tensors="pt")).logits)[0]
    expected = {model.config.id2label[i]: probs[i].item() for i in range(model.config.num_labels)}

    classifier = pipeline("image-classification", model=str(tmp_path))
    result = classifier(image, top_k=model.config.num_labels)
    assert len(result) == model.config.num_labels
    for entry in result:
        assert 0.0 <= entry["score"] <= 1.0
        assert entry["score"] == pytest.approx(expected[entry["label"]], abs=1e-6)
    # the multi-label task returns every label by default and supports a threshold
    multi = mlic_hf.multilabel_pipeline(str(tmp_path))
    everything = multi(image)
    assert {e["label"] for e in everything} == set(expected)
    cut = float(np.median(list(expected.values())))
    assert {e["label"] for e in multi(image, threshold=cut)} == {k for k, v in expected.items() if v >= cut}


def _own_parameters(model):
    """The method's own parameters (the backbone is timm's and initialised by timm or loaded)."""
    pretrained = facts_for(model.config.model_type).pretrained_prefixes
    return {name: p for name, p in model.named_parameters() if not name.startswith(pretrained)}


def test_init_weights_initialises_every_own_parameter(method):
    # transformers 5 builds models on the meta device and initialises them only through `_init_weights`: every
    # parameter the method owns must be reached by it, or from_pretrained leaves it as uninitialised memory.
    config_class, model_class = method
    model = model_class(tiny_config(config_class))
    own = _own_parameters(model)
    with torch.no_grad():
        for param in own.values():
            param.fill_(float("nan"))
    for module in model.modules():
        module._is_hf_initialized = False
    for param in own.values():
        param._is_hf_initialized = False
    model.initialize_weights()
    left = [name for name, p in own.items() if not torch.isfinite(p).all()]
    assert not left, f"_init_weights does not initialise: {left}"


def test_resized_heads_are_freshly_initialised(method, tmp_path):
    config_class, model_class = method
    model_class(tiny_config(config_class)).save_pretrained(tmp_path)
    new_labels = {i: f"label{i}" for i in range(7)}
    adapted = AutoModelForMultiLabelImageClassification.from_pretrained(
        tmp_path, num_labels=7, id2label=new_labels, label2id={v: k for k, v in new_labels.items()},
        ignore_mismatched_sizes=True,
    )
    assert adapted.config.id2label == new_labels
    for name, param in adapted.named_parameters():
        assert torch.isfinite(param).all(), f"{name} is not finite"
        assert param.abs().max() < 10, f"{name} holds uninitialised values (max |w| {param.abs().max():.3g})"
    fresh = model_class(tiny_config(config_class, id2label=new_labels))
    for name, param in _own_parameters(adapted).items():
        if param.ndim and param.shape[0] == 7 and param.numel() > 7:  # a resized per-label weight
            expected = _own_parameters(fresh)[name]
            assert param.std().item() == pytest.approx(expected.std().item(), rel=0.5), name
    logits = adapted(_batch(num_labels=7)[0]).logits
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
