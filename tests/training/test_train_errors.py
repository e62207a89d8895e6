"""A user's mistake in ``scripts/train.py`` or ``scripts/evaluate.py`` is one ``error: ...`` line naming the value,
exit status 2, no traceback and no weights written; a Hub push that fails after training says where the model is
and how to push it later."""

from __future__ import annotations

import json

import pytest

from .test_training import TINY_DATA, _argv, _load_script, data_cache, saved_checkpoint  # noqa: F401  (fixtures)


def _error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, captured.err[-3000:]
    return errors[0]


def _without(argv: list[str], flag: str) -> list[str]:
    if f"--{flag}" not in argv:
        return argv
    cut = argv.index(f"--{flag}")
    return argv[:cut] + argv[cut + 2:]


# (flags replacing the tiny run's, text the error line must contain)
CASES = {
    "negative learning rate": ({"learning_rate": "-0.001"}, "--learning_rate must be a positive number, got -0.001"),
    "unknown preset": ({"preset": "nope"}, "'nope'"),
    "unknown method": ({"method": "m9"}, "'m9'"),
    "unknown dataset": ({"dataset": "cocoo"}, "'cocoo'"),
    "unknown loss": ({"loss": "nope"}, "'nope'"),
    "unknown backbone": ({"backbone": "resnet9999"}, "'resnet9999' is not a timm model name"),
    "batch size 0": ({"per_device_train_batch_size": "0"}, "--per_device_train_batch_size must be at least 1, got 0"),
    "ema_decay 1.5": ({"ema_decay": "1.5"}, "--ema_decay must be in [0, 1)"),
    "image_size -5": ({"image_size": "-5"}, "--image_size must be a positive number of pixels, got -5"),
    "invalid JSON overrides": ({"config_overrides": "{nope"}, "--config_overrides must be a JSON object"),
    "resume without checkpoint": ({"resume_from_checkpoint": "last"}, "--resume_from_checkpoint last: no complete"),
    "threshold 2": ({"threshold": "2"}, "--threshold must be a probability strictly between 0 and 1, got 2.0"),
    "threshold 0": ({"threshold": "0"}, "--threshold must be a probability strictly between 0 and 1, got 0.0"),
    "top_k 0": ({"top_k": "0"}, "--top_k must be at least 1, got 0"),
    "max_train_samples 0": ({"max_train_samples": "0"}, "--max_train_samples must be at least 1 when given"),
    "ap_mode": ({"ap_mode": "12point"}, "--ap_mode must be one of"),
    "save_steps 0": ({"save_strategy": "steps", "save_steps": "0"}, "--save_steps must be positive"),
    "push offline": ({"push_to_hub": "true", "hub_model_id": "me/model"}, "offline mode (HF_HUB_OFFLINE=1)"),
    "fp16 on CPU": ({"fp16": "true"}, "--fp16 needs a GPU"),
    "checkpointing M1": ({"activation_checkpointing": "true"}, "mlic-resnet-probabilistic has no Transformer layers"),
    "streaming a built-in dataset": ({"streaming": "true"}, "--streaming reads the shards of a 🤗 Datasets dataset"),
    "crop_scale of one value": ({"crop_scale": "0.9"}, "--crop_scale takes two area fractions LOW HIGH"),
    "step schedule with one-cycle": ({"step_lr_epochs": "5"}, "pass --one_cycle false with it"),
    "persistent workers": ({"dataloader_persistent_workers": "true", "dataloader_num_workers": "1"},
                           "--dataloader_persistent_workers would repeat the first epoch's augmentations"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_train_user_error_is_one_line_and_exit_2(case, tmp_path, data_cache, capsys):
    flags, expected = CASES[case]
    argv = _argv(tmp_path / "out", data_cache, max_steps=1, eval_strategy="no", save_strategy="no",
                 metric_for_best_model="loss", greater_is_better="false")
    for key, value in flags.items():
        argv = _without(argv, key) + [f"--{key}", value]
    assert _load_script("train").main(argv) == 2
    assert expected in _error_line(capsys)
    assert not list((tmp_path / "out").rglob("*.safetensors"))


def test_argparse_errors_still_exit_2(tmp_path, data_cache, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _load_script("train").main(_argv(tmp_path / "out", data_cache, learning_rate="abc"))
    assert exit_info.value.code == 2
    assert "--learning_rate" in capsys.readouterr().err


@pytest.fixture
def empty_split(monkeypatch):
    """Make the named split of every loaded dataset empty (as a loader may return one: a folder whose images were
    all skipped, a list file with no entries)."""
    import mlic_hf.data.selection

    load = mlic_hf.data.selection.load_mlic_dataset  # where the dataset selection calls it

    def empty(split):
        def load_with_empty_split(*args, **kwargs):
            dataset = load(*args, **kwargs)
            dataset[split] = dataset[split].select([])
            return dataset

        monkeypatch.setattr(mlic_hf.data.selection, "load_mlic_dataset", load_with_empty_split)

    return empty


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_empty_split_names_the_split_and_dataset(split, empty_split, tmp_path, data_cache, capsys):
    empty_split(split)
    assert _load_script("train").main(_argv(tmp_path / "out", data_cache, max_steps=1)) == 2
    assert f"split {split!r} of dataset 'fashion_mosaic' is empty" in _error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_evaluate_on_an_empty_split_names_it(empty_split, saved_checkpoint, data_cache, capsys):  # noqa: F811
    empty_split("test")
    code = _load_script("evaluate").main(["--checkpoint", str(saved_checkpoint), "--dataset_kwargs",
                                          json.dumps({**TINY_DATA, "cache_dir": str(data_cache)})])
    assert code == 2
    assert "split 'test' of dataset 'fashion_mosaic' is empty" in _error_line(capsys)


@pytest.mark.parametrize("flags,expected", [
    (["--threshold", "2"], "--threshold must be a probability strictly between 0 and 1, got 2.0"),
    (["--top_k", "0"], "--top_k must be at least 1, got 0"),
    (["--max_samples", "0"], "--max_samples must be at least 1, got 0"),
    (["--batch_size", "0"], "--batch_size must be at least 1, got 0"),
])
def test_evaluate_rejects_out_of_range_settings(flags, expected, saved_checkpoint, capsys):  # noqa: F811
    assert _load_script("evaluate").main(["--checkpoint", str(saved_checkpoint), *flags]) == 2
    assert expected in _error_line(capsys)


def test_failed_push_after_training_says_the_model_is_saved(tmp_path, data_cache, monkeypatch, capsys):
    import requests
    from huggingface_hub import constants

    import mlic_hf.hub

    def no_network(*args, **kwargs):
        raise requests.ConnectionError("Failed to resolve 'huggingface.co'")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(mlic_hf.hub, "push_to_hub", no_network)
    out = tmp_path / "out"
    argv = _argv(out, data_cache, max_steps=1, eval_strategy="no", save_strategy="no", metric_for_best_model="loss",
                 greater_is_better="false", push_to_hub="true", hub_model_id="someone/tiny")
    assert _load_script("train").main(argv) == 2
    line = _error_line(capsys)
    assert f"the model is saved in {out}" in line and "Failed to resolve 'huggingface.co'" in line
    assert f"python scripts/push_to_hub.py --checkpoint {out} --repo_id someone/tiny" in line
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()


def test_malformed_hub_id_fails_before_training(tmp_path, data_cache, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    argv = _argv(tmp_path / "out", data_cache, max_steps=1, push_to_hub="true", hub_model_id="no-slash")
    assert _load_script("train").main(argv) == 2
    line = _error_line(capsys)
    assert line.startswith("error: --hub_model_id") and "'no-slash'" in line
    assert not (tmp_path / "out" / "model.safetensors").exists()
