"""Uploading a trained checkpoint to the Hugging Face Hub, model card included.

- [`files_to_upload`] lists what is uploaded: [`UPLOAD_ALLOW_PATTERNS`] minus [`UPLOAD_IGNORE_PATTERNS`] (the
  safetensors weights, configs, card, plots and ``mlic_run.json``; never trainer checkpoints, optimizer/scheduler
  states or pickles);
- [`push_to_hub`] writes the card ([`~mlic_hf.hub.card.write_model_card`]), creates the repository and uploads those
  files in one commit; in offline mode it fails before any network call.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .card import PLOTS_DIR, RUN_FILE, _validate_repo_id, check_checkpoint_dir, write_model_card


logger = logging.getLogger(__name__)

__all__ = ["UPLOAD_ALLOW_PATTERNS", "UPLOAD_IGNORE_PATTERNS", "files_to_upload", "push_to_hub"]

UPLOAD_ALLOW_PATTERNS: list[str] = [
    "config.json",
    "preprocessor_config.json",
    "model.safetensors",
    "model-*.safetensors",
    "model.safetensors.index.json",
    "adapter_config.json",
    "adapter_model.safetensors",
    "README.md",
    f"{PLOTS_DIR}/*.png",
    RUN_FILE,
]
"""What [`push_to_hub`] uploads: safetensors weights (also sharded / PEFT adapters), configs, card, plots, run file."""

UPLOAD_IGNORE_PATTERNS: list[str] = [
    "checkpoint-*",
    "*.pt",
    "*.pth",
    "*.bin",
    "optimizer*",
    "scheduler*",
    "rng_state*",
    "trainer_state.json",
    "training_args.bin",
    # Files of a run in progress: the training lock, and temporary files of atomic writes, which may carry an allowed
    # suffix (`plots/.per_class_ap.png.XXXX`, `plots/tmpXXXX.png`). `*` also matches `/`, so `*/.*` is any dotfile
    # below the top level.
    ".mlic_train.lock",
    "*.lock",
    ".*",
    "*/.*",
    "*.tmp",
    "*.tmp.*",
    "*.part",
    "*.partial",
    "*~",
    "tmp*",
    "*/tmp*",
]
"""Never uploaded, even if an allow pattern matches (trainer checkpoints, optimizer states, pickles; the training lock
``.mlic_train.lock``, dotfiles and temporary files)."""


def files_to_upload(checkpoint_dir: str | os.PathLike) -> list[str]:
    """The files of ``checkpoint_dir`` that [`push_to_hub`] uploads, as sorted POSIX paths relative to it.

    Selected by [`UPLOAD_ALLOW_PATTERNS`] minus [`UPLOAD_IGNORE_PATTERNS`] with the same matching as
    ``HfApi.upload_folder``: the safetensors weights, ``config.json``, ``preprocessor_config.json``, ``README.md``,
    ``plots/*.png`` and ``mlic_run.json``; never ``checkpoint-*/``, optimizer / scheduler / RNG states, the trainer
    state, pickled weights, the training lock, dotfiles or temporary files (``*.tmp``, ``tmp*``).

    Raises:
        `FileNotFoundError`: if the checkpoint is incomplete.
    """
    from huggingface_hub.utils import filter_repo_objects

    checkpoint_dir = check_checkpoint_dir(checkpoint_dir)
    relative = sorted(
        path.relative_to(checkpoint_dir).as_posix() for path in checkpoint_dir.rglob("*") if path.is_file()
    )
    return list(
        filter_repo_objects(relative, allow_patterns=UPLOAD_ALLOW_PATTERNS, ignore_patterns=UPLOAD_IGNORE_PATTERNS)
    )


def _hub_offline() -> bool:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return True
    # The constant is read once at import time; honour a later `HF_HUB_OFFLINE=1` too.
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _offline_error(checkpoint_dir: Path, files: list[str]) -> RuntimeError:
    return RuntimeError(
        "cannot push to the Hub: offline mode (HF_HUB_OFFLINE=1) is enabled. Unset HF_HUB_OFFLINE and retry with "
        f"network access; the files that would be uploaded are in {checkpoint_dir}: {', '.join(files)}"
    )


def push_to_hub(
    checkpoint_dir: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload mlic_hf model",
    create_card: bool = True,
) -> str:
    """Uploads a checkpoint directory to the Hugging Face Hub (model card included).

    Writes the model card first (``create_card=True``, see [`write_model_card`]), then creates the repository if
    needed and uploads [`files_to_upload`] in one commit. In offline mode it fails fast, before any network call.

    Args:
        checkpoint_dir (`str` or `os.PathLike`): the checkpoint directory.
        repo_id (`str`): ``"user_or_org/model_name"``.
        token (`str`, *optional*): Hub token (default: the logged-in user's).
        private (`bool`, defaults to `False`): create the repository as private (existing repos are left as they are).
        commit_message (`str`, defaults to `"Upload mlic_hf model"`): the commit message.
        create_card (`bool`, defaults to `True`): (re)write ``README.md`` and the plots before uploading.

    Returns:
        `str`: the URL of the model repository.

    Raises:
        `FileNotFoundError`: if the checkpoint is incomplete.
        `ValueError`: if ``repo_id`` is malformed.
        `RuntimeError`: if the Hub is in offline mode (``HF_HUB_OFFLINE=1``).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import OfflineModeIsEnabled

    checkpoint_dir = check_checkpoint_dir(checkpoint_dir)
    _validate_repo_id(repo_id)
    if create_card:
        write_model_card(checkpoint_dir, repo_id=repo_id)
    files = files_to_upload(checkpoint_dir)
    if _hub_offline():
        raise _offline_error(checkpoint_dir, files)

    api = HfApi(token=token)
    try:
        repo_url = api.create_repo(repo_id, exist_ok=True, private=private, repo_type="model")
        logger.info("Uploading %d files from %s to %s: %s", len(files), checkpoint_dir, repo_id, files)
        api.upload_folder(
            folder_path=str(checkpoint_dir),
            repo_id=repo_id,
            repo_type="model",
            commit_message=commit_message,
            allow_patterns=UPLOAD_ALLOW_PATTERNS,
            ignore_patterns=UPLOAD_IGNORE_PATTERNS,
        )
    except OfflineModeIsEnabled as err:
        raise _offline_error(checkpoint_dir, files) from err
    url = getattr(repo_url, "url", None) or str(repo_url)
    logger.info("Pushed %s to %s", checkpoint_dir, url)
    return str(url)
