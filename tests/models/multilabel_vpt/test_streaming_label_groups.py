"""ML-VPT's label groups from a streamed training split (the shared ``--streaming`` tests are in
``tests/training/test_streaming_training.py``, whose tiny parquet shards this uses)."""

import json

from mlic_hf.training import build_model, load_splits, parse_args

from ...training.test_streaming_training import _streaming_argv, shards  # noqa: F401 (fixture)
from ...training.test_training import data_cache  # noqa: F401 (fixture of the shards)
from ..tiny_configs import TINY_CONFIGS


def test_label_groups_of_a_stream_equal_the_on_disk_ones(shards):
    """ML-VPT derives its label groups from the training labels: a streamed split gives the same groups (its labels
    are read without images)."""
    tiny = {k: v for k, v in TINY_CONFIGS["mlic-ml-vpt"].items() if k not in ("backbone", "image_size")}
    groups = {}
    for streaming in (True, False):
        model_args, data_args, training_args = parse_args(
            _streaming_argv("unused", shards["files"], streaming=streaming, method="mlic-ml-vpt",
                            config_overrides=json.dumps({**tiny, "variant": "ml-vpt", "num_groups": 2})))
        train, _, _, names = load_splits(data_args, training_args.seed)
        config = build_model(model_args, names, train).config
        groups[streaming] = (config.co_groups, config.dc_groups, config.label_groups_source)
    assert groups[True] == groups[False]
    assert groups[True][2] == "co-occurrence of 32 training images"
