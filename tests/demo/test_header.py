"""The demo's header, built without Gradio: it names a local checkpoint by its folder only and escapes what it shows."""

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def app():
    spec = importlib.util.spec_from_file_location("demo_app_for_tests", REPO / "demo" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_header_shows_the_folder_name_not_the_local_path(app, tmp_path):
    checkpoint = tmp_path / "secret_dir" / "my-model"
    checkpoint.mkdir(parents=True)
    header = app.header_markdown(str(checkpoint), "mlic-resnet-probabilistic", 4, calibrated=True)
    assert str(tmp_path) not in header and "secret" not in header
    assert "Checkpoint <code>my-model</code> (mlic-resnet-probabilistic, 4 labels)" in header
    assert "calibrated per-class thresholds" in header
    assert app.checkpoint_display_name(str(checkpoint) + "/") == "my-model"
    assert app.checkpoint_display_name("outputs/../outputs/demo") == "demo"  # a relative path that is not a Hub id


def test_header_shows_a_hub_id_and_escapes_names(app, tmp_path):
    assert app.checkpoint_display_name("user/model-1") == "user/model-1"
    header = app.header_markdown("user/model-1", "mlic-x", 2, calibrated=False)
    assert "<code>user/model-1</code>" in header and "threshold 0.5 (not calibrated)" in header
    hostile = tmp_path / "x`<img src=a onerror=alert(1)>[l](javascript:y)"
    hostile.mkdir()
    header = app.header_markdown(str(hostile), "<script>alert(2)</script>", 2, calibrated=False)
    for raw in ("<img", "<script", "](", "javascript:", "`"):
        assert raw not in header
    assert header.count("<code>") == 1 and header.count("\n") == 1  # the title line and one line of text
