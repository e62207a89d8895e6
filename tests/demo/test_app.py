"""The Gradio demo for real: started on 127.0.0.1, driven through gradio_client, and screenshotted with headless
Chromium (checked by demo/check_screenshot.py)."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mlic_hf
from mlic_hf.image_processing import MLICImageProcessor

from ..models.tiny_configs import tiny_config

REPO = Path(__file__).resolve().parents[2]
THRESHOLDS = [0.0, 1.0, 1.0, 0.0]  # labels 0 and 3 always predicted, 1 and 2 never


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    from skimage import data

    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(data.astronaut()).resize((160, 120)).save(path)
    return path


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The demo on a free local port, serving a tiny checkpoint with calibrated thresholds."""
    torch.manual_seed(0)
    checkpoint = tmp_path_factory.mktemp("ckpt")
    config = tiny_config(mlic_hf.ResNetProbabilisticConfig, thresholds=THRESHOLDS, thresholds_objective="f1")
    mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(config).save_pretrained(checkpoint)
    MLICImageProcessor.from_model_config(config).save_pretrained(checkpoint)
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    log = open(tmp_path_factory.mktemp("log") / "app.log", "w")
    process = subprocess.Popen([sys.executable, str(REPO / "demo" / "app.py"), "--checkpoint", str(checkpoint),
                                "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                log.close()
                pytest.fail(f"the demo did not start: {Path(log.name).read_text()[-2000:]}")
            time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(timeout=30)
    log.close()


def test_client_gets_scores_thresholded_labels_and_maps(app, photo):
    from gradio_client import Client, handle_file

    client = Client(app, verbose=False)
    scores, text, gallery = client.predict(handle_file(str(photo)), api_name="/predict")
    names = list(tiny_config(mlic_hf.ResNetProbabilisticConfig).id2label.values())
    assert {c["label"] for c in scores["confidences"]} == set(names)
    assert all(0 <= c["confidence"] <= 1 for c in scores["confidences"])
    assert text.count("≥") == 2 and names[0] in text and names[3] in text  # the calibrated thresholds decide
    assert names[1] not in text and names[2] not in text
    assert len(gallery) == 2  # one map per predicted label
    overlay = Image.open(gallery[0]["image"])
    assert overlay.size == (160, 120)  # drawn on the photo at its own size


def test_chromium_screenshot_shows_the_app(app, tmp_path):
    shot = tmp_path / "demo.png"
    result = subprocess.run([sys.executable, str(REPO / "demo" / "check_screenshot.py"), "--url", app, "--output",
                             str(shot), "--width", "1200", "--height", "900"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert Image.open(shot).size == (1200, 900)
    assert np.asarray(Image.open(shot).convert("L")).std() > 5
