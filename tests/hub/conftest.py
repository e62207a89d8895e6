"""Fixtures of the hub tests: a tiny saved model (once per session) and, per test, a checkpoint made from it."""

import pytest

from .fixtures import make_checkpoint, save_tiny_model


@pytest.fixture(scope="session")
def saved_model(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("saved_model"))


@pytest.fixture
def checkpoint(saved_model, tmp_path):
    return make_checkpoint(saved_model, tmp_path / "ckpt")
