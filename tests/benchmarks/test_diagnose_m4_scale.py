"""benchmarks/diagnose_m4_scale.py: on a tiny M4 checkpoint and tiny fashion_clutter data, the recorded RMS values,
ratio, largest |m| and fraction are those recomputed here from the scale attention's own inputs and output (a forward
hook), and the table holds them; other methods and M4 without the scale attention are refused in one line."""

import json

import pytest
import torch
from torch.nn import functional as F

from mlic_hf import MLICImageProcessor
from mlic_hf.data import load_mlic_dataset
from mlic_hf.inference import load_checkpoint

from ..models.tiny_configs import tiny_model
from .bench_checks import check_one_error_line, check_provenance, load_benchmark

bench = load_benchmark("diagnose_m4_scale")
M4 = "mlic-multiscale-three-branch"
DATA = {"num_train": 48, "num_validation": 16, "num_test": 16}  # the size other smoke tests build (cached)
DATA_FLAGS = ["--dataset", "fashion_clutter", "--dataset_kwargs", json.dumps(DATA)]
#: the stem's convolutions scaled up, so that |m| and |x1| are of one order (random init leaves m ≪ x1)
STEM_GAIN = 20.0


def _checkpoint(path, model_type=M4, gain=1.0, **overrides):
    model = tiny_model(model_type, **overrides)
    if gain != 1.0:
        with torch.no_grad():
            for conv in model.stem.convs:
                conv.weight.mul_(gain)
    model.save_pretrained(path)
    MLICImageProcessor.from_model_config(model.config).save_pretrained(path)  # as training saves it
    return path


@pytest.fixture(scope="module")
def m4_checkpoint(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("m4") / "ckpt", gain=STEM_GAIN)


def _hooked_terms(checkpoint, num_images):
    """x1, x2′, x3′ and m of the first images, from the scale attention module's inputs (a forward hook) and
    recomputed independently of the script; and the module's first output (x1 + m)."""
    model, processor = load_checkpoint(str(checkpoint))
    captured = []
    model.scale_attention.register_forward_hook(lambda module, inputs, output: captured.append((inputs[0], output)))
    images = [im.convert("RGB") for im in load_mlic_dataset("fashion_clutter", **DATA)["test"]["image"][:num_images]]
    with torch.no_grad():
        model(pixel_values=processor(images=images, return_tensors="pt")["pixel_values"])
    ((scales, output),) = captured
    x1 = scales[0]
    aligned = [F.interpolate(x, size=x1.shape[-2:], mode="bilinear", align_corners=False) for x in scales[1:]]
    m = x1 * aligned[0] * aligned[1]
    return {"x1": x1, "x2'": aligned[0], "x3'": aligned[1], "m": m}, output[0]


def test_statistics_match_the_hooked_tensors_and_the_table(m4_checkpoint, tmp_path):
    assert bench.main(["--checkpoint", str(m4_checkpoint), *DATA_FLAGS, "--num_images", "3", "--batch_size", "2",
                       "--output_dir", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "m4_scale.json").read_text())
    check_provenance(results["provenance"], ["torch", "transformers"],
                     command="python benchmarks/diagnose_m4_scale.py --checkpoint")
    s, r = results["settings"], results["statistics"]
    assert s["model_type"] == M4 and s["num_images"] == 3 and s["split"] == "test" and s["interpolation"] == "bilinear"
    assert s["checkpoint"] == "ckpt"  # outside the repository: the folder's name only

    terms, fused_x1 = _hooked_terms(m4_checkpoint, 3)  # one batch of 3: the script's batches of 2 must agree
    torch.testing.assert_close(fused_x1, terms["x1"] + terms["m"], rtol=1e-5, atol=1e-5 * float(terms["m"].abs().max()))
    for key, value in terms.items():
        assert r["rms"][key] == pytest.approx(float(value.double().pow(2).mean().sqrt()), rel=1e-4), key
    m, x1 = terms["m"], terms["x1"]
    assert r["max_abs_m"] == pytest.approx(float(m.abs().max()), rel=1e-5)
    assert r["fraction_m_exceeds_x1"] == pytest.approx(float((m.abs() > x1.abs()).double().mean()), abs=1e-3)
    assert r["elements"] == x1.numel() and r["grids"][0] == list(x1.shape[-2:])
    # the derived numbers follow from the recorded ones
    assert r["m_rms_over_x1_rms"] == pytest.approx(r["rms"]["m"] / r["rms"]["x1"])
    assert 0 < r["fraction_m_exceeds_x1"] < 1  # the gain makes both cases occur
    assert r["max_abs_m"] >= r["rms"]["m"] > 0 and r["consistency"] < 1e-4
    table = (tmp_path / "m4_scale.md").read_text()
    assert bench.describe(results["provenance"]) in table
    for key in ("x1", "x2'", "x3'", "m"):
        assert f"| {key} | {r['rms'][key]:.4g} |" in table
    assert f"| RMS(m) / RMS(x1) | {r['m_rms_over_x1_rms']:.4g} |" in table
    assert f"| {r['max_abs_m']:.4g} |" in table and f"| {r['fraction_m_exceeds_x1']:.4g} |" in table


def test_other_methods_and_m4_without_scale_attention_are_refused(tmp_path, capsys):
    m2 = _checkpoint(tmp_path / "m2", "mlic-two-stage-irpe")
    assert bench.main(["--checkpoint", str(m2), "--output_dir", str(tmp_path / "out")]) == 2
    check_one_error_line(capsys, "is a 'mlic-two-stage-irpe' checkpoint")
    plain = _checkpoint(tmp_path / "plain", scale_attention=False)
    assert bench.main(["--checkpoint", str(plain), "--output_dir", str(tmp_path / "out")]) == 2
    check_one_error_line(capsys, "scale_attention=False")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, message", [([], "--checkpoint"),
                                           (["--checkpoint", "x", "--num_images", "0"],
                                            "--num_images must be at least 1"),
                                           (["--checkpoint", "x", "--dataset_kwargs", "[1]"],
                                            "--dataset_kwargs must be a JSON object"),
                                           (["--checkpoint", "/no/such/checkpoint"], "/no/such/checkpoint")])
def test_bad_input_is_one_error_line(argv, message, tmp_path, capsys):
    assert bench.main([*argv, "--output_dir", str(tmp_path)]) == 2
    check_one_error_line(capsys, message)
