"""One training run, start to end (``scripts/train.py``): load the splits and build the model, train, choose raw
or EMA weights on the eval split, calibrate per-class thresholds, report the test split once, save the model with
its run files and card, and push it if asked. The pieces are in :mod:`.build` and :mod:`.run_files`; nothing here
prints (the script prints the returned report).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from transformers import set_seed

from ..calibration import calibrate_thresholds, metrics_at_thresholds, store_thresholds
from ..hub import write_model_card
from ..metrics import format_metrics_table, multilabel_metrics, sigmoid
from .arguments import DataArguments, ModelArguments
from .build import attach_transforms, build_model, load_splits, make_trainer
from .checkpoints import output_dir_lock, resolve_resume_checkpoint
from .ema import EMA_WEIGHTS_NAME
from .run_files import check_push_to_hub, push_run, write_label_map_example, write_run_files
from .trainer import MLICTrainer

__all__ = ["run_training"]

logger = logging.getLogger(__name__)


def run_training(model_args: ModelArguments, data_args: DataArguments, training_args) -> dict[str, Any]:
    """Train, select raw vs EMA weights on the eval split, report the test split, save the final model.

    Returns ``metrics`` (the final test metrics, with per-class AP), ``used_ema``, ``trainer``, ``label_names``,
    and, from the main process (``None`` elsewhere), ``report``: the test metrics as a table for the script to
    print, and ``hub_url`` when the run was pushed."""
    push_to_hub = check_push_to_hub(training_args)
    # the main process (or each node's, when each node saves) holds output_dir for the run: a second run there
    # would rotate (delete) this one's checkpoints
    with output_dir_lock(training_args.output_dir, take=training_args.should_save):
        return _train_and_save(model_args, data_args, training_args, push_to_hub)


def _train_and_save(model_args: ModelArguments, data_args: DataArguments, training_args,
                    push_to_hub: bool) -> dict[str, Any]:
    """The run of :func:`run_training` once ``output_dir`` is held."""
    # before anything is loaded: a resume that cannot work fails in a second, not after the data and model
    resume = resolve_resume_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir,
                                       (EMA_WEIGHTS_NAME,) if training_args.ema_decay else ())
    set_seed(training_args.seed)
    train, evaluation, test, label_names, splits = load_splits(data_args, training_args.seed,
                                                               return_split_names=True)
    model = build_model(model_args, label_names, train)
    raw_test = test
    train, evaluation, test, train_transform = attach_transforms(
        model, data_args, train, evaluation, test, training_args.seed
    )
    trainer = make_trainer(model, data_args, training_args, train, evaluation, train_transform)
    train_result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()  # trainer_state.json in output_dir: the loss curve and evaluations of the whole run

    result = _test_with_best_weights(trainer, test, data_args, label_names)
    trainer.save_metrics("test", {**result.scalars(), "test_per_class_AP": result.metrics["per_class_AP"]})
    trainer.save_model(training_args.output_dir)
    outcome = {"metrics": result.metrics, "used_ema": result.used_ema, "trainer": trainer, "label_names": label_names,
               "report": None, "hub_url": None}
    if trainer.is_world_process_zero():
        write_label_map_example(trainer.model, raw_test, training_args.output_dir)
        extra = {
            "train_runtime_s": float(train_result.metrics.get("train_runtime", 0.0)),
            "num_train_samples": len(train),
            "num_test_samples": len(test),
            "world_size": int(training_args.world_size),
            "splits": splits,  # the names actually used (defaults resolved), shown on the model card
        }
        output_dir = training_args.output_dir
        write_run_files(output_dir, model_args, data_args, training_args, result.metrics, result.used_ema,
                        scores=result.probabilities, labels=result.labels, extra=extra)
        write_model_card(output_dir, repo_id=training_args.hub_model_id)
        outcome["report"] = _test_report(result, data_args.label)
        if push_to_hub:
            outcome["hub_url"] = push_run(output_dir, training_args)
    return outcome


def _test_report(result: _TestResult, dataset: str) -> str:
    """The test metrics with per-class AP as the table the script prints."""
    scalars = {k[len("test_"):]: v for k, v in result.scalars().items()}
    table = format_metrics_table(scalars | {"per_class_AP": result.metrics["per_class_AP"]}, result.label_names)
    return f"Test metrics ({'EMA' if result.used_ema else 'raw'} weights) on {dataset}:\n{table}"


@dataclass
class _TestResult:
    """The test split predicted once, with the weights (raw or EMA) chosen on the eval split."""

    metrics: dict[str, Any]  # multilabel_metrics, with per_class_AP (and CF1_calibrated ... when calibrated)
    used_ema: bool
    probabilities: np.ndarray
    labels: np.ndarray  # the test label_ids: negative entries are unknown labels
    label_names: list[str]

    def scalars(self) -> dict[str, float]:
        """The scalar metrics as ``test_*`` keys, with ``test_used_ema_weights``."""
        scalars = {f"test_{k}": float(v) for k, v in self.metrics.items() if k != "per_class_AP"}
        scalars["test_used_ema_weights"] = float(self.used_ema)
        return scalars


def _test_with_best_weights(trainer: MLICTrainer, test, data_args: DataArguments, label_names) -> _TestResult:
    """Choose raw or EMA weights on the eval split, then predict the test split once with the chosen weights, and
    calibrate per-class thresholds on the eval split (reported on test as ``*_calibrated``)."""
    eval_metrics = trainer.evaluate()
    used_ema = trainer.use_best_weights(eval_metrics)
    # The chosen weights are in the model now: detached, the EMA is not evaluated a second time on the test split.
    ema, trainer.ema = trainer.ema, None
    prediction = trainer.predict(test, metric_key_prefix="test")
    probabilities, labels = _probabilities_and_labels(prediction)
    metrics = multilabel_metrics(
        probabilities,
        np.clip(labels, 0, 1),
        ignore_mask=labels < 0,
        threshold=data_args.threshold,
        top_k=data_args.top_k,
        ap_mode=data_args.ap_mode,
        label_names=label_names,
    )
    thresholds = _calibrate_on_eval_split(trainer, data_args)
    trainer.ema = ema
    if thresholds is not None:
        metrics.update(metrics_at_thresholds(probabilities, np.clip(labels, 0, 1), thresholds, labels < 0))
    return _TestResult(metrics, used_ema, probabilities, labels, label_names)


def _probabilities_and_labels(prediction) -> tuple[np.ndarray, np.ndarray]:
    """Sigmoid probabilities and label ids of a ``Trainer.predict`` output (logits first when it is a tuple)."""
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    return sigmoid(logits), np.asarray(prediction.label_ids)


def _calibrate_on_eval_split(trainer: MLICTrainer, data_args: DataArguments) -> np.ndarray | None:
    """Per-class thresholds chosen on the eval split with the final weights (``--calibrate_thresholds``), stored in
    the model's config (saved with it); None when switched off."""
    if data_args.calibrate_thresholds == "none" or trainer.eval_dataset is None:
        return None
    probabilities, labels = _probabilities_and_labels(trainer.predict(trainer.eval_dataset, metric_key_prefix="cal"))
    thresholds = calibrate_thresholds(probabilities, np.clip(labels, 0, 1), ignore_mask=labels < 0,
                                      objective=data_args.calibrate_thresholds,
                                      target_precision=data_args.target_precision)
    config = trainer.model.config
    store_thresholds(config, thresholds, data_args.calibrate_thresholds, data_args.target_precision)
    logger.info("calibrated per-class thresholds on the eval split (%s): %s", config.thresholds_objective,
                np.array2string(thresholds, precision=3, max_line_width=120, threshold=12))
    return thresholds
