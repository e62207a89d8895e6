"""A tampered or stale checkpoint (config.json, preprocessor_config.json, weights) fails at load with one error naming
the field or file, before allocating anything of a tampered size; and every interface reads labels by index."""

import importlib.util
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoConfig, AutoImageProcessor, pipeline

import mlic_hf
from mlic_hf import AutoModelForMultiLabelImageClassification
from mlic_hf.calibration import MAX_THRESHOLD, check_thresholds
from mlic_hf.configuration_utils import MAX_IMAGE_SIZE, MAX_NUM_LABELS
from mlic_hf.image_processing import MLICImageProcessor, load_image
from mlic_hf.inference import load_checkpoint, predict_files

from .models.tiny_configs import TINY_LABELS, tiny_model

REPO = Path(__file__).resolve().parents[1]
#: Nothing listens on the discard port of the loopback: the connection is refused at once, as offline.
DEAD_URL = "http://127.0.0.1:9/cat.png"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "ckpt"
    tiny_model("mlic-resnet-probabilistic").save_pretrained(path)
    return path


def _copy(checkpoint: Path, tmp_path: Path, **config_changes) -> Path:
    """The checkpoint in a new folder (weights linked) with ``config_changes`` written into its config.json."""
    out = tmp_path / "copy"
    out.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(checkpoint / name, out / name)
    (out / "model.safetensors").symlink_to(checkpoint / "model.safetensors")
    _edit(out / "config.json", **config_changes)
    return out


def _edit(file: Path, **changes) -> None:
    data = json.loads(file.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    file.write_text(json.dumps(data))


def _photo(path: Path) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 256, size=(40, 50, 3), dtype=np.uint8)).save(path)
    return path


def _run_predict(capsys, *argv) -> tuple[int, list[str]]:
    spec = importlib.util.spec_from_file_location("_reliability_predict", REPO / "scripts" / "predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main([str(a) for a in argv])
    _, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, [line for line in err.splitlines() if line.startswith("error:")]


# 1. thresholds outside [0, 1]


def test_thresholds_outside_0_1_in_config_json_are_rejected_at_load(checkpoint, tmp_path, capsys):
    tampered = _copy(checkpoint, tmp_path, thresholds=[5.0, -1.0, 0.5, 0.5])
    with pytest.raises(ValueError, match=r"thresholds must be probabilities in \[0, 1\], got label 0: 5, label 1: -1"):
        AutoConfig.from_pretrained(tampered)
    code, errors = _run_predict(capsys, "--checkpoint", tampered, _photo(tmp_path / "a.png"))
    assert code == 2 and len(errors) == 1 and "thresholds must be probabilities" in errors[0]


def test_calibrations_never_threshold_just_above_one_is_accepted():
    # calibrate_thresholds' "never" for a class whose top score is exactly 1.0
    assert check_thresholds([0.0, 1.0, MAX_THRESHOLD], 3)[2] > 1.0
    with pytest.raises(ValueError, match="label 0: 1.00001"):
        check_thresholds([1.00001], 1)


# 2. label2id that is not id2label's inverse; 3. id2label with missing indices


def _permuted_label2id() -> dict:
    names = list(TINY_LABELS.values())
    return {name: (index + 1) % len(names) for index, name in enumerate(names)}


@pytest.mark.parametrize("label2id", [_permuted_label2id(), {"a": 0, "b": 1, "c": 2, "d": 3}],
                         ids=["permuted", "stale"])
def test_a_label2id_that_is_not_the_inverse_of_id2label_is_an_error_at_load(checkpoint, tmp_path, capsys, label2id):
    tampered = _copy(checkpoint, tmp_path, label2id=label2id)
    with pytest.raises(ValueError, match=r"label2id does not match id2label \(\d label\(s\) differ: '.*': label2id .*id2label is "
                                         r"the truth"):
        AutoConfig.from_pretrained(tampered)
    with pytest.raises(ValueError, match="label2id does not match id2label"):
        mlic_hf.multilabel_pipeline(str(tampered))
    code, errors = _run_predict(capsys, "--checkpoint", tampered, _photo(tmp_path / "a.png"))
    assert code == 2 and len(errors) == 1 and "label2id does not match id2label" in errors[0]


def test_a_config_without_label2id_gets_the_inverse_and_saving_writes_it(checkpoint, tmp_path):
    AutoConfig.from_pretrained(_copy(checkpoint, tmp_path, label2id=None))
    config = mlic_hf.ResNetProbabilisticConfig(id2label={0: "x", 1: "y"})
    config.id2label = {0: "y", 1: "x"}  # assigned alone, label2id is stale in memory
    config.save_pretrained(tmp_path / "saved")
    assert mlic_hf.ResNetProbabilisticConfig.from_pretrained(tmp_path / "saved").label2id == {"y": 0, "x": 1}


def test_the_pipeline_reads_labels_by_index_not_through_label2id(checkpoint, tmp_path):
    model, processor = load_checkpoint(str(checkpoint))
    model.config.thresholds = [0.0, 1.0, 1.0, 0.0]  # only labels 0 and 3: person and car
    model.config.label2id = _permuted_label2id()  # a stale map in memory must not change the answer
    classifier = mlic_hf.multilabel_pipeline(model, image_processor=processor)
    photo = _photo(tmp_path / "a.png")
    rows, _ = predict_files(model, [photo], progress=False, processor=processor)
    assert sorted(r["label"] for r in classifier(str(photo))) == sorted(rows[0]["labels"]) == ["car", "person"]


def test_id2label_with_missing_indices_is_an_error_at_load(checkpoint, tmp_path):
    names = list(TINY_LABELS.values())
    id2label = {"0": names[0], "1": names[1], "3": names[2], "4": names[3]}
    tampered = _copy(checkpoint, tmp_path, id2label=id2label, label2id=None)
    with pytest.raises(ValueError, match=r"id2label must number its 4 labels 0\.\.3 .*indices \[2\] are missing and "
                                         r"\[4\] are extra"):
        AutoConfig.from_pretrained(tampered)
    with pytest.raises(ValueError, match=r"indices \[2\] are missing"):
        predict_files(*load_checkpoint(str(tampered))[:1], [_photo(tmp_path / "a.png")], progress=False)


# 4. sizes checked before allocating


@pytest.mark.parametrize("with_id2label", [True, False])
def test_a_huge_num_labels_in_config_json_is_refused_before_allocating(checkpoint, tmp_path, with_id2label):
    changes = {"num_labels": 1e9} if with_id2label else {"num_labels": 1e9, "id2label": None, "label2id": None}
    tampered = _copy(checkpoint, tmp_path, **changes)
    with pytest.raises(ValueError, match=rf"num_labels=1000000000 is outside \[1, {MAX_NUM_LABELS}\]"):
        AutoModelForMultiLabelImageClassification.from_pretrained(tampered)


def test_a_huge_num_labels_override_is_refused():
    # what build_config does with --config_overrides '{"num_labels": 100000000}'
    with pytest.raises(ValueError, match=r"num_labels=100000000 is outside"):
        mlic_hf.ResNetProbabilisticConfig(id2label=dict(TINY_LABELS), num_labels=100_000_000)
    config = mlic_hf.ResNetProbabilisticConfig(id2label=dict(TINY_LABELS))
    with pytest.raises(ValueError, match=r"num_labels=100000000 is outside"):
        config.num_labels = 100_000_000
    assert config.num_labels == 4


def test_a_num_labels_the_weights_do_not_have_is_refused_from_the_header(checkpoint, tmp_path, monkeypatch):
    labels = {str(i): f"label{i}" for i in range(50_000)}
    tampered = _copy(checkpoint, tmp_path, id2label=labels, label2id=None)
    model_class = mlic_hf.ResNetProbabilisticForMultiLabelImageClassification

    def never(*args, **kwargs):
        raise AssertionError("the model was built before the label count was checked")

    monkeypatch.setattr(model_class, "__init__", never)
    with pytest.raises(ValueError, match=r"the weights do not fit the config \(num_labels=50000\): no tensor of .*"
                                         r"model\.safetensors has a dimension of 50000 \(classifier\.bias has shape "
                                         r"\(4,\) in the weights file\)"):
        AutoModelForMultiLabelImageClassification.from_pretrained(tampered)


def test_a_huge_image_size_is_refused_in_the_config_and_the_image_processor(checkpoint, tmp_path):
    with pytest.raises(ValueError, match=rf"image_size=60000 is outside \[1, {MAX_IMAGE_SIZE}\] pixels"):
        AutoConfig.from_pretrained(_copy(checkpoint, tmp_path, image_size=60000))
    _edit(tmp_path / "copy" / "config.json", image_size=64)
    _edit(tmp_path / "copy" / "preprocessor_config.json", size={"height": 60000, "width": 60000})
    with pytest.raises(ValueError, match=r"preprocessor size\['height'\]=60000 is outside"):
        AutoImageProcessor.from_pretrained(tmp_path / "copy")
    with pytest.raises(ValueError, match=r"preprocessor size\['height'\]=60000 is outside"):
        load_checkpoint(str(tmp_path / "copy"))
    processor = MLICImageProcessor(size={"height": 64, "width": 64})
    with pytest.raises(ValueError, match=r"image processor size\['height'\]=60000 is outside"):
        processor(images=np.zeros((8, 8, 3), np.uint8), size={"height": 60000, "width": 60000})


# 5. pipelines on broken checkpoints; 6. pickle-only weights


def _pickle_only(checkpoint: Path, tmp_path: Path) -> Path:
    out = tmp_path / "pickled"
    out.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(checkpoint / name, out / name)
    torch.save(load_file(checkpoint / "model.safetensors"), out / "pytorch_model.bin")
    return out


def test_pickle_only_weights_are_refused_naming_the_file(checkpoint, tmp_path, capsys):
    pickled = _pickle_only(checkpoint, tmp_path)
    message = rf"{pickled / 'pytorch_model.bin'}: mlic_hf loads only safetensors weights"
    with pytest.raises(OSError, match=message):
        AutoModelForMultiLabelImageClassification.from_pretrained(pickled)  # what train.py's build_model calls
    code, errors = _run_predict(capsys, "--checkpoint", pickled, _photo(tmp_path / "a.png"))
    assert code == 2 and len(errors) == 1 and "mlic_hf loads only safetensors weights" in errors[0]


@pytest.mark.parametrize("loader", ["multilabel_pipeline", "pipeline"])
@pytest.mark.parametrize("damage", ["empty", "truncated", "pickle_only", "wrong_labels", "wrong_model_type"])
def test_pipelines_give_mlic_hf_s_one_error_for_a_broken_checkpoint(checkpoint, tmp_path, damage, loader):
    if damage == "pickle_only":
        broken, expected = _pickle_only(checkpoint, tmp_path), (OSError, "mlic_hf loads only safetensors")
    else:
        broken = _copy(checkpoint, tmp_path)
        weights = broken / "model.safetensors"
        if damage in ("empty", "truncated"):
            data = weights.read_bytes()[:100_000] if damage == "truncated" else b""
            weights.unlink()
            weights.write_bytes(data)
            expected = (OSError, "not a valid safetensors file")
        elif damage == "wrong_labels":
            _edit(broken / "config.json", id2label={str(i): f"l{i}" for i in range(6)}, label2id=None)
            expected = (ValueError, "the weights do not fit the config")
        else:
            _edit(broken / "config.json", model_type="mlic-two-stage-irpe")
            expected = (ValueError, "the weights do not fit the config")
    if loader == "pipeline":  # transformers' pipeline() would wrap an OSError or ValueError in its own
        with pytest.raises(mlic_hf.CheckpointLoadError) as raised:
            pipeline("image-classification", model=str(broken))
        assert isinstance(raised.value.__cause__, expected[0])
    else:
        with pytest.raises(expected[0]) as raised:
            mlic_hf.multilabel_pipeline(str(broken))
    text = str(raised.value)
    assert expected[1] in text and "Could not load model" not in text and "Traceback" not in text


def test_the_standard_pipeline_raises_a_config_error_unwrapped(checkpoint, tmp_path):
    # config errors come before transformers' model-loading wrapper
    tampered = _copy(checkpoint, tmp_path, thresholds=[5.0, -1.0, 0.5, 0.5])
    with pytest.raises(ValueError, match=r"^thresholds must be probabilities"):
        pipeline("image-classification", model=str(tampered))


def test_config_field_errors_name_the_config_file(checkpoint, tmp_path, capsys):
    tampered = _copy(checkpoint, tmp_path, thresholds=[5.0, -1.0, 0.5, 0.5])
    config_json = re.escape(str(tampered / "config.json"))
    with pytest.raises(ValueError, match=rf"^{config_json}: thresholds must be probabilities"):
        load_checkpoint(str(tampered))  # the Auto route of predict, evaluate, export and multilabel_pipeline
    model_class = type(load_checkpoint(str(checkpoint))[0])
    with pytest.raises(ValueError, match=rf"^{config_json}: thresholds must be probabilities"):
        model_class.from_pretrained(tampered)  # a method's own class
    with pytest.raises(ValueError, match=rf"^{config_json} \(with the overrides num_labels\): num_labels=1000000000 is outside"):
        model_class.config_class.from_pretrained(tampered, num_labels=10**9)
    code, errors = _run_predict(capsys, "--checkpoint", tampered, _photo(tmp_path / "a.png"))
    assert code == 2 and len(errors) == 1 and str(tampered / "config.json") in errors[0]


# 7. an image URL that cannot be fetched


def test_an_unreachable_image_url_is_named(checkpoint, tmp_path, capsys):
    message = rf"could not download image '{DEAD_URL}'"
    with pytest.raises(OSError, match=message):
        load_image(DEAD_URL)
    for classifier in (pipeline("image-classification", model=str(checkpoint)),
                       mlic_hf.multilabel_pipeline(str(checkpoint))):
        with pytest.raises(OSError, match=message):
            classifier(DEAD_URL)
    code, errors = _run_predict(capsys, "--checkpoint", checkpoint, DEAD_URL)
    assert code == 2 and len(errors) == 1 and f"could not download image '{DEAD_URL}'" in errors[0]


# train.py: a pickle-only checkpoint to fine-tune, a huge num_labels override


def _train_error(argv: list[str], capsys) -> str:
    from .training.test_training import _load_script

    assert _load_script("train").main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, captured.err[-3000:]
    return errors[0]


def test_train_refuses_pickle_only_weights_and_a_huge_num_labels_in_one_line(checkpoint, tmp_path, capsys):
    from .training.test_training import TINY_DATA, _argv

    from mlic_hf.data import load_fashion_mosaic

    cache = tmp_path / "mosaic-cache"
    load_fashion_mosaic(**TINY_DATA, cache_dir=cache)
    common = dict(max_steps=1, eval_strategy="no", save_strategy="no", metric_for_best_model="loss",
                  greater_is_better="false")
    pickled = _pickle_only(checkpoint, tmp_path)
    argv = _argv(tmp_path / "out", cache, model_name_or_path=pickled, **common)
    assert f"{pickled / 'pytorch_model.bin'}: mlic_hf loads only safetensors weights" in _train_error(argv, capsys)
    argv = _argv(tmp_path / "out", cache, **common)
    assert "--config_overrides" not in argv  # the tiny M1 run has none to merge with
    argv += ["--config_overrides", json.dumps({"num_labels": 100_000_000})]
    assert "num_labels=100000000 is outside" in _train_error(argv, capsys)
    assert not list((tmp_path / "out").rglob("*.safetensors"))
