"""A user's bad input (image file, checkpoint, pipeline argument, script flag) gets one error naming it."""

import importlib.util
import json
import logging
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from transformers import ViTImageProcessor, pipeline

import mlic_hf
from mlic_hf import AutoModelForMultiLabelImageClassification
from mlic_hf.image_processing import load_image
from mlic_hf.inference import load_model, predict_files
from mlic_hf.modeling_utils import check_checkpoint_path

from .models.tiny_configs import tiny_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "ckpt"
    mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(
        tiny_config(mlic_hf.ResNetProbabilisticConfig)).save_pretrained(path)
    return path


def _copy(checkpoint, tmp_path, weights: bytes | None = None) -> Path:
    """The checkpoint's config files in a new folder, with the same weights (a link) or the given bytes."""
    out = tmp_path / "copy"
    out.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(checkpoint / name, out / name)
    if weights is None:
        (out / "model.safetensors").symlink_to(checkpoint / "model.safetensors")
    else:
        (out / "model.safetensors").write_bytes(weights)
    return out


def _predict_script():
    spec = importlib.util.spec_from_file_location("_bad_inputs_predict", REPO / "scripts" / "predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_predict(capsys, *argv) -> tuple[int, list[str], str]:
    """Exit code, the ``error:`` lines on stderr, and stdout of ``scripts/predict.py``."""
    code = _predict_script().main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, [line for line in err.splitlines() if line.startswith("error:")], out


def _bomb_png(path: Path, side: int = 20000) -> Path:
    """A real decompression bomb: a 1-bit PNG of side × side pixels, ~50 KB on disk (written without decoding)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (side + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def _photo(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)).save(path)
    return path


# 1. decompression bombs


def test_a_decompression_bomb_is_a_clear_error_naming_the_file(tmp_path):
    bomb = _bomb_png(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 200_000
    with pytest.raises(ValueError, match=r"bomb\.png' has 400000000 pixels, more than PIL's decompression-bomb "
                                         rf"limit {Image.MAX_IMAGE_PIXELS}"):
        load_image(bomb)


def test_an_image_between_the_limit_and_twice_it_is_refused_too(tmp_path, monkeypatch):
    # PIL only warns there, and would decode the whole image
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    _photo(tmp_path / "big.png")  # 2000 pixels
    with pytest.raises(ValueError, match="has 2000 pixels, more than PIL's decompression-bomb limit 1000"):
        load_image(tmp_path / "big.png")


def test_predict_skips_a_bomb_with_skip_bad_and_reports_it_in_one_line_without(checkpoint, tmp_path, capsys):
    bomb, good = _bomb_png(tmp_path / "bomb.png"), _photo(tmp_path / "good.png")
    code, errors, out = _run_predict(capsys, "--checkpoint", checkpoint, good, bomb, "--skip_bad")
    assert code == 0 and "good.png" in out and "bomb.png" not in out
    code, errors, _ = _run_predict(capsys, "--checkpoint", checkpoint, good, bomb)
    assert code == 2 and len(errors) == 1 and "bomb.png' has 400000000 pixels" in errors[0]


# 2. broken checkpoints


def _header_only(checkpoint) -> bytes:
    data = (checkpoint / "model.safetensors").read_bytes()
    return data[:8 + struct.unpack("<Q", data[:8])[0]]


@pytest.mark.parametrize("damage", ["empty", "truncated", "header_only"])
def test_a_broken_weights_file_is_named(checkpoint, tmp_path, capsys, damage):
    weights = {"empty": lambda: b"", "truncated": lambda: (checkpoint / "model.safetensors").read_bytes()[:100_000],
               "header_only": lambda: _header_only(checkpoint)}[damage]()
    broken = _copy(checkpoint, tmp_path, weights)
    with pytest.raises(OSError, match=rf"{broken / 'model.safetensors'}: not a valid safetensors file \(.+\); "
                                      "re-save or re-download the checkpoint"):
        AutoModelForMultiLabelImageClassification.from_pretrained(broken)
    code, errors, _ = _run_predict(capsys, "--checkpoint", broken, _photo(tmp_path / "a.png"))
    assert code == 2 and len(errors) == 1 and "model.safetensors: not a valid safetensors file" in errors[0]


def _relabel(folder: Path, num_labels: int) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {str(i): f"label{i}" for i in range(num_labels)}
    config["label2id"] = {f"label{i}": i for i in range(num_labels)}
    (folder / "config.json").write_text(json.dumps(config))


def test_a_config_that_does_not_fit_the_weights_names_the_parameter_and_both_shapes(checkpoint, tmp_path, capsys):
    edited = _copy(checkpoint, tmp_path)
    _relabel(edited, 6)  # the weights have 4 labels
    # found in the weights' header before the model is built (check_weights_fit_labels)
    pattern = r"the weights do not fit the config \(num_labels=6\): .*classifier\.bias has shape \(4,\) in the " \
              r"weights file.*ignore_mismatched_sizes=True"
    with pytest.raises(ValueError, match=pattern):
        AutoModelForMultiLabelImageClassification.from_pretrained(edited)
    code, errors, _ = _run_predict(capsys, "--checkpoint", edited, _photo(tmp_path / "a.png"))
    assert code == 2 and len(errors) == 1 and str(edited) in errors[0] and "classifier.bias" in errors[0]
    # asked for on purpose, the label layers are re-initialised
    model = AutoModelForMultiLabelImageClassification.from_pretrained(edited, ignore_mismatched_sizes=True)
    assert model.classifier.weight.shape[0] == 6


def test_a_load_report_other_than_a_mismatch_is_still_logged(checkpoint, tmp_path):
    from safetensors.torch import load_file, save_file
    from transformers.utils import logging as transformers_logging

    weights = load_file(checkpoint / "model.safetensors")
    del weights["classifier.bias"]
    partial = _copy(checkpoint, tmp_path, b"")
    save_file(weights, partial / "model.safetensors", metadata={"format": "pt"})
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("transformers").addHandler(handler)
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_warning()  # the suite runs at "error"
    try:
        model, info = AutoModelForMultiLabelImageClassification.from_pretrained(partial, output_loading_info=True)
    finally:
        transformers_logging.set_verbosity(verbosity)
        logging.getLogger("transformers").removeHandler(handler)
    assert "classifier.bias" in info["missing_keys"] and not info["mismatched_keys"]
    assert any("LOAD REPORT" in r.getMessage() and "classifier.bias" in r.getMessage() for r in records)


def test_a_missing_local_checkpoint_fails_at_once_naming_it(tmp_path, monkeypatch, capsys):
    (tmp_path / "outputs").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint folder 'outputs/nope'"):
        load_model("outputs/nope")
    code, errors, _ = _run_predict(capsys, "--checkpoint", "outputs/nope", _photo(tmp_path / "a.png"))
    assert errors == ["error: no checkpoint folder 'outputs/nope'"] and code == 2


def test_only_local_looking_paths_are_checked_when_online(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    (tmp_path / "outputs").mkdir()
    monkeypatch.chdir(tmp_path)
    for local in ("outputs/nope", "./nope", str(tmp_path / "nope"), "~/no-such-mlic-checkpoint"):
        with pytest.raises(FileNotFoundError, match="no checkpoint folder"):
            check_checkpoint_path(local)
    check_checkpoint_path("user/model")  # a Hub id: left to the Hub
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError, match="no checkpoint folder 'user/model', and no cached Hub model"):
        check_checkpoint_path("user/model")


# 3. and 4. pipelines


def _sixteen_bit_png(path: Path) -> Path:
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(256, 65536, size=(40, 50), dtype=np.uint16)).save(path)
    assert Image.open(path).mode == "I;16"
    return path


def _transparent_png(path: Path) -> Path:
    rgba = np.random.default_rng(2).integers(0, 256, size=(40, 50, 4), dtype=np.uint8)
    rgba[:20, :, 3] = 0  # the top half transparent: composited on white, not its hidden colours
    Image.fromarray(rgba, "RGBA").save(path)
    return path


@pytest.mark.parametrize("make", [_sixteen_bit_png, _transparent_png])
def test_the_standard_pipeline_reads_16_bit_and_alpha_like_the_multilabel_one(checkpoint, tmp_path, make):
    path = make(tmp_path / "image.png")
    classifier = pipeline("image-classification", model=str(checkpoint))
    multi = mlic_hf.multilabel_pipeline(str(checkpoint))
    expected = {r["label"]: r["score"] for r in multi(str(path))}
    for given in (str(path), path, Image.open(path)):
        scores = {r["label"]: r["score"] for r in classifier(given, top_k=4)}
        assert scores == pytest.approx(expected, abs=1e-6)
    rows, _ = predict_files(load_model(str(checkpoint)), [path], progress=False)
    assert rows[0]["scores"] == pytest.approx(expected, abs=1e-5)
    # the input really differs from PIL's convert("RGB"), which clips 16-bit data and drops alpha
    clipped = classifier.image_processor(images=Image.open(path).convert("RGB"), return_tensors="pt")
    assert not np.allclose(classifier.preprocess(str(path))["pixel_values"], clipped["pixel_values"])


def test_other_image_processors_keep_transformers_reader(checkpoint, tmp_path):
    path = _sixteen_bit_png(tmp_path / "image.png")
    other = ViTImageProcessor(size={"height": 32, "width": 32})
    classifier = pipeline("image-classification", model=str(checkpoint), image_processor=other)
    expected = other(images=Image.open(path).convert("RGB"), return_tensors="pt")["pixel_values"]
    assert np.allclose(classifier.preprocess(str(path))["pixel_values"], expected)


@pytest.mark.parametrize("task", ["image-classification", "multi-label"])
def test_pipelines_name_a_folder_or_missing_path(checkpoint, tmp_path, task):
    classifier = (pipeline("image-classification", model=str(checkpoint)) if task == "image-classification"
                  else mlic_hf.multilabel_pipeline(str(checkpoint)))
    with pytest.raises(ValueError, match=rf"'{tmp_path}' is a folder; pass image files"):
        classifier(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"no such image file: '.*missing\.png'"):
        classifier(str(tmp_path / "missing.png"))


def test_pipelines_name_a_decompression_bomb(checkpoint, tmp_path):
    bomb = _bomb_png(tmp_path / "bomb.png")
    for classifier in (pipeline("image-classification", model=str(checkpoint)),
                       mlic_hf.multilabel_pipeline(str(checkpoint))):
        with pytest.raises(ValueError, match="bomb.png' has 400000000 pixels"):
            classifier(str(bomb))


# 5. flags of scripts/predict.py


@pytest.mark.parametrize("flags, message", [
    (["--threshold", "2"], "threshold must be in [0, 1], got 2.0"),
    (["--threshold", "-0.1"], "threshold must be in [0, 1], got -0.1"),
    (["--top_k", "0"], "top_k must be at least 1"),
    (["--batch_size", "0"], "batch_size must be at least 1, got 0"),
])
def test_predict_rejects_bad_flags_in_one_line(checkpoint, tmp_path, capsys, flags, message):
    code, errors, out = _run_predict(capsys, "--checkpoint", checkpoint, _photo(tmp_path / "a.png"), *flags)
    assert code == 2 and len(errors) == 1 and message in errors[0] and not out


def test_predict_files_rejects_top_k_and_batch_size_below_one(checkpoint, tmp_path):
    model = load_model(str(checkpoint))
    photo = _photo(tmp_path / "a.png")
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        predict_files(model, [photo], top_k=0, progress=False)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        predict_files(model, [photo], batch_size=0, progress=False)
