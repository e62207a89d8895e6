"""``scripts/convert_official.py``: official checkpoints of Query2Label, ML-Decoder and CSRA, written here in the
official key names (each method's ``convert_<method>.py`` tables them), become mlic_hf checkpoints whose logits are
the official model's; broken input is one error line."""

import importlib.util
import json
from pathlib import Path

import pytest
import timm
import torch

from mlic_hf import AutoModelForMultiLabelImageClassification, CSRAConfig, MLDecoderConfig
from mlic_hf.models.csra import CSRAForMultiLabelImageClassification
from mlic_hf.models.ml_decoder import MLDecoderForMultiLabelImageClassification

from .models.query2label.test_modeling_query2label import _OfficialHead

REPO = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("_convert_official", REPO / "scripts" / "convert_official.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _convert(tmp_path, *argv) -> tuple[int, object]:
    out = tmp_path / "converted"
    code = _script().main([*map(str, argv), "--output_dir", str(out)])
    return code, (AutoModelForMultiLabelImageClassification.from_pretrained(out).eval() if code == 0 else None)


def _resnet18_state() -> dict:
    torch.manual_seed(1)
    body = timm.create_model("resnet18")
    with torch.no_grad():  # non-trivial batch-norm statistics, so that their places are checked
        for module in body.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return body.state_dict()  # torchvision's key names, fc included


def test_query2label_official_checkpoint_converts_to_the_official_logits(tmp_path):
    official = _OfficialHead(512, 5, 32, 4, 64, 1, 2, False, False, True, grid=2).eval()
    body = _resnet18_state()
    state = {f"module.{k}": v for k, v in official.state_dict().items() if k != "pos.pe"}
    state.update({f"module.backbone.0.body.{k}": v for k, v in body.items() if not k.startswith("fc.")})
    torch.save({"state_dict": state, "epoch": 80}, tmp_path / "checkpoint.pkl")
    (tmp_path / "config.json").write_text(json.dumps(
        {"backbone": "resnet18", "img_size": 64, "hidden_dim": 32, "dim_feedforward": 64, "enc_layers": 1,
         "dec_layers": 2, "nheads": 4, "keep_input_proj": True, "num_class": 5}))
    (tmp_path / "labels.txt").write_text("a\nb\nc\nd\ne\n")
    code, model = _convert(tmp_path, "--method", "query2label", "--checkpoint", tmp_path / "checkpoint.pkl",
                           "--official_config", tmp_path / "config.json", "--labels", tmp_path / "labels.txt")
    assert code == 0 and list(model.config.id2label.values()) == list("abcde")
    x = torch.randn(2, 3, 64, 64)
    reference = timm.create_model("resnet18", features_only=True, out_indices=(-1,))
    reference.load_state_dict({k: v for k, v in body.items() if not k.startswith("fc.")}, strict=False)
    reference = timm.layers.freeze_batch_norm_2d(reference).eval()  # the official FrozenBatchNorm2d backbone
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, official(reference(x)[-1]), rtol=1e-5, atol=1e-5)


def test_csra_official_checkpoint_converts_with_its_lambda(tmp_path):
    body = _resnet18_state()
    torch.manual_seed(2)
    heads = [torch.randn(4, 512, 1, 1) for _ in range(2)]
    state = {**body, **{f"classifier.multi_head.{i}.head.weight": w for i, w in enumerate(heads)}}
    torch.save(state, tmp_path / "csra.pth")
    code, _ = _convert(tmp_path, "--method", "csra", "--checkpoint", tmp_path / "csra.pth")
    assert code == 2  # no lambda: the checkpoint does not record it
    code, model = _convert(tmp_path, "--method", "csra", "--checkpoint", tmp_path / "csra.pth", "--option", "lam=0.3",
                           "--option", "image_size=64")
    assert code == 0
    assert (model.config.backbone, model.config.num_heads, model.config.lam) == ("resnet18", 2, 0.3)
    assert (model.config.image_mean, model.config.image_std) == ([0.0] * 3, [1.0] * 3)  # the official [0, 1] input
    direct = CSRAForMultiLabelImageClassification(CSRAConfig(
        backbone="resnet18", image_size=64, num_heads=2, lam=0.3, id2label={i: str(i) for i in range(4)})).eval()
    direct.backbone.body.load_state_dict({k: v for k, v in body.items() if not k.startswith("fc.")})
    with torch.no_grad():
        for head, weight in zip(direct.heads, heads):
            head.classifier.weight.copy_(weight)
        x = torch.randn(2, 3, 64, 64)
        torch.testing.assert_close(model(x).logits, direct(x).logits, rtol=1e-5, atol=1e-5)


def _official_ml_decoder_names(model) -> dict:
    """Our ML-Decoder head's tensors under the official module's names (``head.decoder.*``)."""
    names = {"input_proj.": "head.decoder.embed_standart.", "queries.weight": "head.decoder.query_embed.weight",
             "classifier.weight": "head.decoder.duplicate_pooling",
             "classifier.bias": "head.decoder.duplicate_pooling_bias"}
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith("backbone."):
            continue
        new = next((key.replace(a, b, 1) for a, b in names.items() if key.startswith(a)), None)
        if new is None:  # layers.N.*
            new = "head.decoder." + key.replace(".cross_attn.", ".multihead_attn.")
        out[new] = value
    return out


def test_ml_decoder_official_checkpoint_converts_with_its_label_names(tmp_path):
    torch.manual_seed(3)
    source = MLDecoderForMultiLabelImageClassification(MLDecoderConfig(
        backbone="resnet18", image_size=64, hidden_size=64, intermediate_size=128, num_groups=3,
        id2label={i: str(i) for i in range(7)})).eval()
    body = _resnet18_state()
    source.backbone.body.load_state_dict({k: v for k, v in body.items() if not k.startswith("fc.")})
    state = {**body, **_official_ml_decoder_names(source)}
    names = {i: f"class{i}" for i in range(7)}
    torch.save({"model": state, "idx_to_class": names}, tmp_path / "mld.pth")
    code, model = _convert(tmp_path, "--method", "ml-decoder", "--checkpoint", tmp_path / "mld.pth",
                           "--option", "backbone=resnet18", "--option", "image_size=64")
    assert code == 0 and list(model.config.id2label.values()) == list(names.values())
    assert (model.config.num_queries, model.config.labels_per_query) == (3, 3)
    assert not model.queries.weight.requires_grad  # frozen, as the official queries
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, source(x).logits, rtol=1e-5, atol=1e-5)


def test_asl_tresnet_checkpoint_converts_to_m1_with_timms_logits(tmp_path):
    torch.manual_seed(4)
    # ASL's network: TResNet, GAP, one linear layer (its blur filters are not in the checkpoint: recomputed on loading)
    official = timm.create_model("tresnet_m", num_classes=6).eval()
    names = {i: f"tag{i}" for i in range(6)}
    torch.save({"model": official.state_dict(), "num_classes": 6, "idx_to_class": names}, tmp_path / "asl.pth")
    code, model = _convert(tmp_path, "--method", "resnet-probabilistic", "--checkpoint", tmp_path / "asl.pth",
                           "--option", "image_size=64")
    assert code == 0 and model.config.backbone == "tresnet_m"  # read from the classifier's width, 2048
    assert list(model.config.id2label.values()) == list(names.values()) and model.config.loss == "asl"
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, official(x), rtol=1e-5, atol=1e-5)


def test_broken_official_checkpoints_are_one_error_line(tmp_path, capsys):
    script = _script()
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    torch.save({"classifier.multi_head.0.head.weight": torch.randn(3, 512, 1, 1)}, tmp_path / "whole.pth")
    (tmp_path / "truncated.pth").write_bytes((tmp_path / "whole.pth").read_bytes()[:200])
    body = _resnet18_state()
    del body["layer2.0.conv1.weight"]
    torch.save({**body, "classifier.multi_head.0.head.weight": torch.randn(3, 512, 1, 1)}, tmp_path / "cut.pth")
    cases = [
        (["--method", "csra", "--checkpoint", str(tmp_path / "missing.pth")], "no such file"),
        (["--method", "csra", "--checkpoint", str(tmp_path / "junk.pth")], "cannot be read as a PyTorch checkpoint"),
        (["--method", "csra", "--checkpoint", str(tmp_path / "truncated.pth")],
         "cannot be read as a PyTorch checkpoint"),
        (["--method", "csra", "--checkpoint", str(tmp_path / "cut.pth"), "--option", "lam=0.1"],
         "missing layer2.0.conv1.weight"),
        (["--method", "query2label", "--checkpoint", str(tmp_path / "cut.pth")], "not an official Query2Label"),
        (["--method", "two-stage-irpe", "--checkpoint", str(tmp_path / "cut.pth")],
         "no converter of official checkpoints"),
        (["--method", "resnet-probabilistic", "--checkpoint", str(tmp_path / "cut.pth")], "not an official ASL"),
        (["--method", "csra", "--checkpoint", str(tmp_path / "cut.pth"), "--option", "lam"], "expected KEY=VALUE"),
    ]
    for argv, message in cases:
        assert script.main([*argv, "--output_dir", str(tmp_path / "out")]) == 2, argv
        error = capsys.readouterr().err.strip()
        assert message in error and "\n" not in error, (argv, error)
    assert not (tmp_path / "out").exists()
