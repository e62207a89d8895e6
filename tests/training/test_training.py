"""Trainer runs: every registered method trains, resume is exact, 2-process data parallel matches 1 process,
and the predict/evaluate scripts work on a saved checkpoint."""

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import mlic_hf
from mlic_hf.training import parse_args, run_training

from ..models.method_facts import registered_methods
from ..models.tiny_configs import TINY_CONFIGS

REPO = Path(__file__).resolve().parents[2]
TINY_DATA = {"num_train": 32, "num_validation": 16, "num_test": 16, "seed": 0}
METHOD_IDS = [config_class.model_type for config_class, _ in registered_methods()]


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("mosaic-cache")
    from mlic_hf.data import load_fashion_mosaic

    load_fashion_mosaic(**TINY_DATA, cache_dir=cache)
    return cache


def _argv(output_dir, data_cache, method="mlic-resnet-probabilistic", **extra):
    tiny = dict(TINY_CONFIGS[method])
    overrides = {k: v for k, v in tiny.items() if k not in ("backbone", "image_size")}
    argv = [
        "--method", method,
        "--backbone", tiny["backbone"],
        "--image_size", "32",
        "--dataset_kwargs", json.dumps({**TINY_DATA, "cache_dir": str(data_cache)}),
        "--output_dir", str(output_dir),
        "--per_device_train_batch_size", "8",
        "--per_device_eval_batch_size", "16",
        "--learning_rate", "1e-3",
        "--logging_steps", "1",
        "--ema_decay", "0.9",
        "--use_cpu", "true",
        "--dataloader_num_workers", "0",
        "--disable_tqdm", "true",
    ]
    if overrides:
        argv += ["--config_overrides", json.dumps(overrides)]
    for key, value in extra.items():
        argv += [f"--{key}", str(value)]
    return argv


def _losses(trainer):
    return {entry["step"]: entry["loss"] for entry in trainer.state.log_history if "loss" in entry}


@pytest.mark.parametrize("method", [m for m, _ in registered_methods()], ids=METHOD_IDS)
def test_two_step_training_run_per_method(method, tmp_path, data_cache):
    out = tmp_path / "run"
    args = parse_args(_argv(out, data_cache, method.model_type, max_steps=2, eval_strategy="steps", eval_steps=2,
                            save_strategy="steps", save_steps=2))
    result = run_training(*args)
    metrics = result["metrics"]
    assert 0.0 <= metrics["mAP"] <= 1.0 and np.isfinite(metrics["OF1"])
    assert len(metrics["per_class_AP"]) == 10
    assert len(_losses(result["trainer"])) == 2
    for name in ("model.safetensors", "config.json", "preprocessor_config.json", "README.md", "mlic_run.json",
                 "test_predictions.npz", "plots/label_maps.png"):
        assert (out / name).is_file(), name
    assert (out / "checkpoint-2" / "ema.safetensors").is_file()
    run = json.loads((out / "mlic_run.json").read_text())
    assert run["test_metrics"]["mAP"] == pytest.approx(metrics["mAP"])
    assert str(data_cache) not in (out / "mlic_run.json").read_text()  # no local paths in uploaded files
    assert run["training_args"]["adam_beta2"] == 0.999 and run["data_args"]["cutout"] == 0.5
    # per-class thresholds calibrated on the eval split (best F1) are saved with the model and reported on test
    saved = json.loads((out / "config.json").read_text())
    assert len(saved["thresholds"]) == 10 and saved["thresholds_objective"] == "f1"
    assert 0.0 <= run["test_metrics"]["CF1_calibrated"] <= 1.0
    assert "![Label maps of a test image](plots/label_maps.png)" in (out / "README.md").read_text()
    loaded = mlic_hf.AutoModelForMultiLabelImageClassification.from_pretrained(out)
    assert loaded.config.id2label[0] == "T-shirt/top"


def test_resume_from_checkpoint_continues_exactly(tmp_path, data_cache):
    common = dict(max_steps=6, save_strategy="steps", save_steps=2, eval_strategy="no", rand_augment="rand-m9-mstd0.5",
                  cutout=0.5, save_total_limit=5, metric_for_best_model="loss", greater_is_better="false")
    full = run_training(*parse_args(_argv(tmp_path / "full", data_cache, **common)))["trainer"]
    # a second run that is "interrupted" after step 2: resume from a copy of the first run's checkpoint-2
    shutil.copytree(tmp_path / "full" / "checkpoint-2", tmp_path / "resumed" / "checkpoint-2")
    resumed = run_training(*parse_args(_argv(tmp_path / "resumed", data_cache, **common,
                                             resume_from_checkpoint=tmp_path / "resumed" / "checkpoint-2")))
    full_losses, resumed_losses = _losses(full), _losses(resumed["trainer"])
    assert sorted(full_losses) == [1, 2, 3, 4, 5, 6]
    for step in (3, 4, 5, 6):  # the steps the resumed run really trained (batches span epochs: 32 / 8 = 4 steps)
        assert resumed_losses[step] == pytest.approx(full_losses[step], rel=1e-5, abs=1e-7), step
    for name, value in full.ema.shadow.items():
        torch.testing.assert_close(resumed["trainer"].ema.shadow[name], value, rtol=1e-5, atol=1e-6)
    assert resumed["trainer"].ema.num_updates == full.ema.num_updates == 6


def _run_script(launcher, argv, cwd):
    import subprocess

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(launcher + [str(REPO / "scripts" / "train.py"), *argv], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def _logged_losses(output_dir, step):
    state = json.loads((Path(output_dir) / f"checkpoint-{step}" / "trainer_state.json").read_text())
    return {entry["step"]: entry["loss"] for entry in state["log_history"] if "loss" in entry}


def test_torchrun_two_processes_match_one_process(tmp_path, data_cache):
    """Data-parallel training with 2 CPU processes (gloo, launched by torchrun) stays close to one process with the
    same global batch: not equal, since BatchNorm normalises over each process's half of the batch (docs/scale.md
    quotes these tolerances)."""
    common = {"max_steps": 4, "eval_strategy": "no", "save_strategy": "steps", "save_steps": 4, "rand_augment": "",
              "cutout": 0.0, "hflip": 0.0, "ema_decay": 0.0, "metric_for_best_model": "loss",
              "greater_is_better": "false"}
    single, double = tmp_path / "single", tmp_path / "double"
    _run_script([sys.executable], _argv(single, data_cache, **common, per_device_train_batch_size=8), tmp_path)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533"]
    _run_script(torchrun, _argv(double, data_cache, **common, per_device_train_batch_size=4), tmp_path)
    one, two = _logged_losses(single, 4), _logged_losses(double, 4)
    assert sorted(one) == sorted(two) == [1, 2, 3, 4]
    # same global batches of 8 images; only BatchNorm sees 4 instead of 8 images per process
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=0.05), step
    run1 = json.loads((single / "mlic_run.json").read_text())
    run2 = json.loads((double / "mlic_run.json").read_text())
    assert run1["world_size"] == 1 and run2["world_size"] == 2
    assert abs(run1["test_metrics"]["mAP"] - run2["test_metrics"]["mAP"]) < 0.1


def _load_script(name):
    """Import scripts/<name>.py under a private module name (``evaluate`` would clash with the HF package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_mlic_script_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory, data_cache):
    out = tmp_path_factory.mktemp("ckpt")
    config = mlic_hf.ResNetProbabilisticConfig(
        backbone="resnet18", image_size=32,
        id2label=dict(enumerate(mlic_hf.data.FASHION_MNIST_CLASSES)),
    )
    mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(config).save_pretrained(out)
    return out


def test_evaluate_script(saved_checkpoint, data_cache, tmp_path, capsys):
    evaluate_script = _load_script("evaluate")

    from mlic_hf.data import load_fashion_mosaic
    from mlic_hf.inference import load_model, predict_probabilities
    from mlic_hf.metrics import multilabel_metrics

    output = tmp_path / "metrics.json"
    code = evaluate_script.main([
        "--checkpoint", str(saved_checkpoint), "--dataset", "fashion_mosaic",
        "--dataset_kwargs", json.dumps({**TINY_DATA, "cache_dir": str(data_cache)}),
        "--split", "test", "--output", str(output), "--batch_size", "5",
    ])
    assert code == 0
    result = json.loads(output.read_text())
    assert result["num_samples"] == 16 and result["split"] == "test"
    test = load_fashion_mosaic(**TINY_DATA, cache_dir=data_cache)["test"]
    probs = predict_probabilities(load_model(str(saved_checkpoint)), test["image"], progress=False)
    expected = multilabel_metrics(probs, np.asarray(test["labels"]), label_names=mlic_hf.data.FASHION_MNIST_CLASSES)
    assert result["metrics"]["mAP"] == pytest.approx(expected["mAP"], abs=1e-6)
    assert result["per_class_AP"]["Bag"] == pytest.approx(expected["per_class_AP"]["Bag"], abs=1e-6)
    assert evaluate_script.main(["--checkpoint", str(saved_checkpoint), "--dataset", "voc2007"]) == 2
    assert "--data_dir" in capsys.readouterr().err


def test_predict_script(saved_checkpoint, tmp_path, capsys):
    from PIL import Image

    predict_script = _load_script("predict")

    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.png", "sub/b.jpg"):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / name)
    (folder / "broken.png").write_bytes(b"nope")
    output = tmp_path / "pred.jsonl"
    assert predict_script.main(["--checkpoint", str(saved_checkpoint), str(folder), "--output", str(output)]) == 2
    assert "broken.png" in capsys.readouterr().err
    code = predict_script.main(["--checkpoint", str(saved_checkpoint), str(folder), "--output", str(output),
                                "--skip_bad", "--threshold", "0.0", "--top_k", "2"])
    assert code == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [Path(r["file"]).name for r in rows] == ["a.png", "b.jpg"]
    for row in rows:
        assert len(row["scores"]) == 10 and all(0 <= v <= 1 for v in row["scores"].values())
        assert len(row["labels"]) == 2
        best = sorted(row["scores"], key=row["scores"].get, reverse=True)[:2]
        assert row["labels"] == best
    assert "broken.png" in capsys.readouterr().err


def test_push_to_hub_flag_fails_fast_offline(tmp_path, data_cache):
    args = parse_args(_argv(tmp_path / "x", data_cache, max_steps=1, push_to_hub="true", hub_model_id="me/model"))
    with pytest.raises(RuntimeError, match="offline"):
        run_training(*args)
    assert not (tmp_path / "x" / "model.safetensors").exists()


def test_presets_and_bad_arguments():
    model_args, data_args, training_args = parse_args(["--preset", "demo"])
    assert model_args.backbone == "tf_efficientnet_lite0" and data_args.dataset == "fashion_mosaic"
    assert training_args.metric_for_best_model == "best_mAP" and training_args.channels_last
    overridden = parse_args(["--preset", "demo", "--num_train_epochs", "1"])[2]
    assert overridden.num_train_epochs == 1
    with pytest.raises(ValueError, match="unknown preset"):
        parse_args(["--preset", "nope"])
    from mlic_hf.training import resolve_method

    assert resolve_method("resnet_probabilistic")[0] is mlic_hf.ResNetProbabilisticConfig
    with pytest.raises(ValueError, match="unknown method"):
        resolve_method("m9")
    # every name is read from the registry: the model type, it without "mlic-" (either separator), the folder name
    for model_type, (config_class, model_class) in mlic_hf.REGISTERED_METHODS.items():
        folder = model_class.__module__.split(".")[-2]
        short = model_type.removeprefix("mlic-")
        for name in (model_type, short, short.replace("-", "_"), folder):
            assert resolve_method(name)[0] is config_class, name
    with pytest.raises(ValueError, match="did you mean 'ml-vpt'"):
        resolve_method("ml-vtp")


def test_accelerate_launch(tmp_path, data_cache):
    """The training script runs under `accelerate launch` (CPU, one process, no accelerate config file)."""
    out = tmp_path / "acc"
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    _run_script(launcher, _argv(out, data_cache, max_steps=2, eval_strategy="no", save_strategy="no",
                                metric_for_best_model="loss", greater_is_better="false"), tmp_path)
    run = json.loads((out / "mlic_run.json").read_text())
    assert run["world_size"] == 1 and 0.0 <= run["test_metrics"]["mAP"] <= 1.0
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()


def test_early_stopping_on_map(tmp_path, data_cache):
    """An mAP that stops improving ends training after `early_stopping_patience` evaluations (raw and EMA
    weights score the same constant here), and without EMA `best_mAP` is the raw mAP."""
    from mlic_hf.data.transforms import collate_fn
    from mlic_hf.training import attach_transforms, build_model, load_splits
    from mlic_hf.training.trainer import MLICTrainer

    for ema_decay in (0.9, 0.0):
        model_args, data_args, training_args = parse_args(_argv(
            tmp_path / f"es{ema_decay}", data_cache, max_steps=10, eval_strategy="steps", eval_steps=1,
            save_strategy="steps", save_steps=1, early_stopping_patience=1, load_best_model_at_end="true",
            ema_decay=ema_decay))
        train, evaluation, test, names = load_splits(data_args)
        model = build_model(model_args, names)
        train, evaluation, test, _ = attach_transforms(model, data_args, train, evaluation, test, 0)
        trainer = MLICTrainer(model=model, args=training_args, train_dataset=train, eval_dataset=evaluation,
                              data_collator=collate_fn, compute_metrics=lambda prediction: {"mAP": 0.5})
        trainer.train()
        assert trainer.state.global_step == 2, ema_decay  # eval 1 sets the best, eval 2 does not improve: stop
        evals = [e for e in trainer.state.log_history if "eval_best_mAP" in e]
        assert [e["eval_best_mAP"] for e in evals] == [0.5, 0.5]
        assert ("eval_ema_mAP" in evals[0]) == (ema_decay > 0)


def test_default_split_names_are_recorded(tmp_path):
    """COCO and VOC2012 have no "test" split: the run file (and so the model card) names the split really used."""
    from mlic_hf.training import DataArguments, split_names, write_run_files

    assert split_names(DataArguments(dataset="coco2014")) == {"train": "train", "eval": "val", "test": "val"}
    assert split_names(DataArguments(dataset="voc2007")) == {"train": "trainval", "eval": "test", "test": "test"}
    assert split_names(DataArguments(dataset="coco2014", test_split="train"))["test"] == "train"
    model_args, data_args, training_args = parse_args(["--dataset", "coco2014", "--output_dir", str(tmp_path)])
    metrics = {"mAP": 0.5, "per_class_AP": {"a": 0.5}}
    write_run_files(tmp_path, model_args, data_args, training_args, metrics, False, np.zeros((1, 1)), np.zeros((1, 1)))
    assert json.loads((tmp_path / "mlic_run.json").read_text())["splits"] == {"train": "train", "eval": "val",
                                                                                "test": "val"}


def test_unknown_config_override_is_one_clear_error(tmp_path, data_cache, capsys):
    train_script = _load_script("train")
    argv = _argv(tmp_path / "x", data_cache, max_steps=1)
    cut = argv.index("--config_overrides") if "--config_overrides" in argv else len(argv)
    argv = argv[:cut] + ["--config_overrides", json.dumps({"hidden_size": 256, "intermediate_size": 1024})]
    assert train_script.main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --config_overrides: unknown field") and "\n" not in error
    assert "'hidden_size'" in error and "mlic-resnet-probabilistic" in error
    assert not (tmp_path / "x" / "model.safetensors").exists()


@pytest.mark.parametrize("method", METHOD_IDS)
def test_backbone_learning_rate_splits_the_groups(method, tmp_path, data_cache):
    """``--backbone_learning_rate`` puts exactly the backbone's trainable parameters in groups of that peak rate,
    and OneCycleLR keeps the ratio of the two rates at every step."""
    from mlic_hf.data.transforms import collate_fn
    from mlic_hf.training import attach_transforms, build_model, load_splits
    from mlic_hf.training.trainer import MLICTrainer

    model_args, data_args, training_args = parse_args(_argv(
        tmp_path / "run", data_cache, method=method, max_steps=10, learning_rate=1e-3, backbone_learning_rate=1e-2))
    train, evaluation, test, names = load_splits(data_args)
    model = build_model(model_args, names, train)
    train, evaluation, _, _ = attach_transforms(model, data_args, train, evaluation, test, 0)
    trainer = MLICTrainer(model=model, args=training_args, train_dataset=train, eval_dataset=evaluation,
                          data_collator=collate_fn)
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    groups = trainer.optimizer.param_groups
    by_rate = {rate: {id(p) for g in groups if g["peak_lr"] == rate for p in g["params"]} for rate in (1e-2, 1e-3)}
    backbone = {id(p) for p in model.get_backbone().parameters() if p.requires_grad}
    assert by_rate[1e-2] == backbone  # empty for ML-VPT, whose ViT is frozen
    assert by_rate[1e-3] == {id(p) for p in model.parameters() if p.requires_grad} - backbone
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)
    for _ in range(4):
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
        rates = {g["peak_lr"]: g["lr"] for g in groups}
        if backbone:
            assert rates[1e-2] == pytest.approx(10 * rates[1e-3])
    with pytest.raises(ValueError, match="--backbone_learning_rate must be a positive number"):
        parse_args(_argv(tmp_path / "bad", data_cache, backbone_learning_rate=0))


@pytest.mark.parametrize("method", METHOD_IDS)
def test_finetuning_on_another_label_set_of_the_same_size_reinitialises_the_label_layers(method, tmp_path):
    """A checkpoint fine-tuned on other labels gets fresh label layers (``label_layers``) even where their shapes fit,
    as the log says; every other weight is the checkpoint's."""
    from mlic_hf.training import build_model
    from mlic_hf.training.arguments import ModelArguments

    from ..models.tiny_configs import tiny_model

    saved = tiny_model(method)
    label_params = {id(p) for module in saved.label_layers() for p in module.parameters()}
    assert label_params, "a method names its label layers"
    with torch.no_grad():  # trained-looking values no init draws (zero biases included)
        for p in saved.parameters():
            if id(p) in label_params:
                p.add_(7.0)
    saved.save_pretrained(tmp_path / "ckpt")
    label_names = {name for name, p in saved.named_parameters() if id(p) in label_params}
    model = build_model(ModelArguments(model_name_or_path=str(tmp_path / "ckpt")), ["w", "x", "y", "z"])
    assert list(model.config.id2label.values()) == ["w", "x", "y", "z"]
    before, after = saved.state_dict(), model.state_dict()
    for name, value in before.items():
        if name in label_names:
            assert not torch.equal(after[name], value), f"{name}: the old labels' weights were kept"
        else:
            assert torch.equal(after[name], value), f"{name}: not a label layer, but changed"
    with pytest.raises(ValueError, match="reset_label_layers=True is for another label set"):
        type(saved).from_pretrained(tmp_path / "ckpt", reset_label_layers=True)
