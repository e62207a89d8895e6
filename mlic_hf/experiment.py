"""Kept for backward compatibility: the code lives in :mod:`mlic_hf.training.experiment` (import from there or from
:mod:`mlic_hf.training`)."""

from .training.experiment import (  # noqa: F401
    DataArguments,
    ModelArguments,
    attach_transforms,
    build_config,
    build_model,
    checkpoint_config,
    evaluate_checkpoint,
    last_complete_checkpoint,
    load_splits,
    make_trainer,
    parse_args,
    parse_json_object,
    resolve_method,
    run_training,
    split_names,
    write_run_files,
)
from .training.experiment import __all__  # noqa: F401
