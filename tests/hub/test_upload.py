"""Hub uploads, offline: the files that would be uploaded, offline errors, the push script."""

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest
from huggingface_hub.utils import filter_repo_objects

import mlic_hf.hub as hub
from mlic_hf.hub import files_to_upload, push_to_hub, write_model_card

from .fixtures import EXPECTED_UPLOAD, REPO_ID, REPO_ROOT, subprocess_env


def test_files_to_upload_exclude_trainer_files(checkpoint):
    write_model_card(checkpoint, repo_id=REPO_ID)
    (checkpoint / "test_predictions.npz").touch()
    assert files_to_upload(checkpoint) == EXPECTED_UPLOAD


def test_push_fails_fast_offline(checkpoint, monkeypatch):
    from huggingface_hub import HfApi, constants

    def no_network(*args, **kwargs):
        raise AssertionError("push_to_hub must not call the Hub in offline mode")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(HfApi, "create_repo", no_network)
    monkeypatch.setattr(HfApi, "upload_folder", no_network)
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"cannot push to the Hub: offline mode \(HF_HUB_OFFLINE=1\)") as info:
        push_to_hub(checkpoint, REPO_ID)
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert f"the files that would be uploaded are in {checkpoint}" in message and "model.safetensors" in message
    assert (checkpoint / "README.md").is_file()  # the card was written before failing


def test_push_turns_hub_offline_errors_into_a_clear_error(checkpoint, monkeypatch):
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    def offline(*args, **kwargs):
        raise OfflineModeIsEnabled("offline")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(HfApi, "create_repo", offline)
    with pytest.raises(RuntimeError, match="offline mode") as info:
        push_to_hub(checkpoint, REPO_ID, create_card=False)
    assert isinstance(info.value.__cause__, OfflineModeIsEnabled)


def test_push_uploads_only_the_listed_files(checkpoint, monkeypatch):
    from huggingface_hub import HfApi, constants

    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = (repo_id, kwargs)
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kwargs):
        calls["upload_folder"] = kwargs

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    url = push_to_hub(checkpoint, REPO_ID, private=True, commit_message="test commit")
    assert url == f"https://huggingface.co/{REPO_ID}"
    repo_id, kwargs = calls["create_repo"]
    assert repo_id == REPO_ID and kwargs["private"] is True and kwargs["exist_ok"] is True
    upload = calls["upload_folder"]
    assert upload["repo_id"] == REPO_ID and Path(upload["folder_path"]) == checkpoint
    assert upload["commit_message"] == "test commit"
    assert set(hub.UPLOAD_IGNORE_PATTERNS) >= {"checkpoint-*", "*.pt", "*.pth", "*.bin", "optimizer*"}
    # what huggingface_hub would select with these patterns is exactly files_to_upload
    every_file = sorted(p.relative_to(checkpoint).as_posix() for p in checkpoint.rglob("*") if p.is_file())
    selected = list(filter_repo_objects(every_file, allow_patterns=upload["allow_patterns"],
                                        ignore_patterns=upload["ignore_patterns"]))
    assert selected == files_to_upload(checkpoint) == EXPECTED_UPLOAD


def test_push_script_dry_run(checkpoint):
    script = str(REPO_ROOT / "scripts" / "push_to_hub.py")
    args = [sys.executable, script, "--checkpoint", str(checkpoint), "--repo_id", REPO_ID, "--dry_run"]
    result = subprocess.run(args, capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    listed = [line.strip() for line in result.stdout.splitlines() if line.startswith("  ")]
    assert listed == EXPECTED_UPLOAD
    assert f"wrote {checkpoint / 'README.md'}" in result.stdout and (checkpoint / "README.md").is_file()


def _script_main():
    spec = importlib.util.spec_from_file_location("push_to_hub_script", REPO_ROOT / "scripts" / "push_to_hub.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_push_script_errors_exit_non_zero(checkpoint, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    main = _script_main()
    assert main(["--checkpoint", str(checkpoint), "--repo_id", REPO_ID, "--no_card"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: cannot push to the Hub: offline mode") and str(checkpoint) in error
    (checkpoint / "model.safetensors").unlink()
    assert main(["--checkpoint", str(checkpoint), "--repo_id", REPO_ID, "--dry_run"]) == 2
    assert "model.safetensors is missing" in capsys.readouterr().err



@pytest.mark.parametrize("name", [
    ".mlic_train.lock", "plots/.mlic_train.lock", ".README.md", "plots/.per_class_ap.png", "plots/.tmp123.png",
    "plots/tmpa1b2c3.png", "plots/per_class_ap.png.tmp", "README.md.tmp", "model.safetensors.tmp",
    "model-00001-of-00002.safetensors.tmp", "config.json.tmp.1234", "mlic_run.json~", "tmp_config.json",
    ".git/config", ".cache/huggingface/upload/README.md.metadata",
])
def test_lock_dot_and_temp_files_are_never_uploaded(checkpoint, name):
    write_model_card(checkpoint, repo_id=REPO_ID)
    (checkpoint / name).parent.mkdir(parents=True, exist_ok=True)
    (checkpoint / name).write_bytes(b"partial")
    assert files_to_upload(checkpoint) == EXPECTED_UPLOAD
    # push_to_hub hands the same patterns to HfApi.upload_folder
    assert not list(filter_repo_objects([name], allow_patterns=hub.UPLOAD_ALLOW_PATTERNS,
                                        ignore_patterns=hub.UPLOAD_IGNORE_PATTERNS))
