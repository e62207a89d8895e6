"""Calibrated thresholds end to end: train.py saves them, evaluate.py reports at them, calibrate_thresholds.py
recomputes them on any checkpoint, and predict.py / the pipeline use them by default."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

import mlic_hf
from mlic_hf.calibration import calibrate_thresholds, metrics_at_thresholds
from mlic_hf.data.selection import DatasetArguments
from mlic_hf.evaluation import score_checkpoint_split
from mlic_hf.training import parse_args, run_training

from .test_training import TINY_DATA, _argv, _load_script, data_cache  # noqa: F401


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_cache):  # noqa: F811
    out = tmp_path_factory.mktemp("calibrated") / "run"
    run_training(*parse_args(_argv(out, data_cache, max_steps=4)))
    return out


def _tiny_mosaic(data_cache) -> DatasetArguments:  # noqa: F811
    return DatasetArguments(dataset="fashion_mosaic", dataset_kwargs=json.dumps({**TINY_DATA,
                                                                                "cache_dir": str(data_cache)}))


def _dataset_flags(data_cache):  # noqa: F811
    return ["--dataset", "fashion_mosaic", "--dataset_kwargs", json.dumps({**TINY_DATA, "cache_dir": str(data_cache)})]


def test_training_saves_the_eval_split_f1_thresholds(trained, data_cache):  # noqa: F811
    config = json.loads((trained / "config.json").read_text())
    split = score_checkpoint_split(str(trained), _tiny_mosaic(data_cache), role="eval", progress=False)
    assert split.split == "validation"
    # the same thresholds from the saved model's validation scores (train.py used the chosen raw/EMA weights)
    expected = calibrate_thresholds(split.scores, split.labels)
    np.testing.assert_allclose(config["thresholds"], expected, atol=1e-5)
    run = json.loads((trained / "mlic_run.json").read_text())
    test = score_checkpoint_split(str(trained), _tiny_mosaic(data_cache), progress=False)
    again = metrics_at_thresholds(test.scores, test.labels, config["thresholds"])
    assert run["test_metrics"]["CF1_calibrated"] == pytest.approx(again["CF1_calibrated"], abs=1e-6)


def test_evaluate_reports_metrics_at_0_5_and_at_the_thresholds(trained, data_cache, tmp_path):  # noqa: F811
    output = tmp_path / "metrics.json"
    assert _load_script("evaluate").main(["--checkpoint", str(trained), *_dataset_flags(data_cache),
                                          "--output", str(output)]) == 0
    result = json.loads(output.read_text())
    assert result["thresholds_objective"] == "f1"
    for key in ("CP", "CR", "CF1", "OP", "OR", "OF1"):
        assert key in result["metrics"] and f"{key}_calibrated" in result["metrics"]


def test_calibrate_script_with_a_precision_target(trained, data_cache, tmp_path, capsys):  # noqa: F811
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    report_file = tmp_path / "report.json"
    script = _load_script("calibrate_thresholds")
    assert script.main(["--checkpoint", str(copy), *_dataset_flags(data_cache), "--objective", "precision",
                        "--target_precision", "0.75", "--output", str(report_file)]) == 0
    printed = capsys.readouterr().out
    assert "precision>=0.75" in printed and "CF1" in printed
    report = json.loads(report_file.read_text())
    saved = json.loads((copy / "config.json").read_text())
    assert saved["thresholds_objective"] == "precision>=0.75"
    assert list(report["thresholds"].values()) == pytest.approx(saved["thresholds"])
    split = score_checkpoint_split(str(copy), _tiny_mosaic(data_cache), role="eval", progress=False)
    pred = split.scores >= np.asarray(saved["thresholds"])
    for c in range(pred.shape[1]):  # every class that predicts anything does so at >= 75% precision
        if pred[:, c].any():
            assert split.labels[pred[:, c], c].mean() >= 0.75
    # the weights are untouched: only config.json was rewritten
    assert (copy / "model.safetensors").read_bytes() == (trained / "model.safetensors").read_bytes()


@pytest.mark.parametrize(
    "flags, message",
    [(["--objective", "precision"], "needs --target_precision"),
     (["--target_precision", "0.9"], "only with --objective precision"),
     (["--split", "nope"], "split 'nope' not in dataset")],
)
def test_calibrate_script_bad_flags_are_one_line(trained, data_cache, capsys, flags, message):  # noqa: F811
    code = _load_script("calibrate_thresholds").main(["--checkpoint", str(trained), *_dataset_flags(data_cache),
                                                      *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]


def test_a_hub_checkpoint_needs_an_output_dir(capsys):
    assert _load_script("calibrate_thresholds").main(["--checkpoint", "someone/model"]) == 2
    assert "--output_dir" in capsys.readouterr().err


def _with_thresholds(trained, tmp_path, thresholds):
    copy = tmp_path / "thresholds"
    shutil.copytree(trained, copy)
    config = json.loads((copy / "config.json").read_text())
    config["thresholds"], config["thresholds_objective"] = thresholds, "f1"
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def test_predict_and_pipeline_use_the_thresholds_by_default(trained, tmp_path):
    from mlic_hf.inference import load_model, predict_files
    from mlic_hf.pipelines import multilabel_pipeline

    image = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(image)
    names = mlic_hf.data.FASHION_MNIST_CLASSES
    # 0 for the first three classes (always predicted), 1 for the rest (never: sigmoid scores stay below 1)
    checkpoint = _with_thresholds(trained, tmp_path, [0.0] * 3 + [1.0] * 7)
    model = load_model(str(checkpoint))
    rows, _ = predict_files(model, [image], progress=False)
    assert sorted(rows[0]["labels"]) == sorted(names[:3])
    rows, _ = predict_files(model, [image], threshold=0.0, progress=False)  # an explicit threshold wins
    assert len(rows[0]["labels"]) == 10
    pipe = multilabel_pipeline(str(checkpoint))
    assert sorted(r["label"] for r in pipe(str(image))) == sorted(names[:3])
    assert len(pipe(str(image), threshold=0.0)) == 10
    script = _load_script("predict")
    out = tmp_path / "predictions.jsonl"
    assert script.main([str(image), "--checkpoint", str(checkpoint), "--output", str(out)]) == 0
    assert sorted(json.loads(out.read_text())["labels"]) == sorted(names[:3])
