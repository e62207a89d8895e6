"""A multi-label image-classification pipeline.

``pipeline("image-classification", model=DIR)`` works for every mlic_hf checkpoint out of the box (sigmoid scores,
pass ``top_k=num_labels`` to get every label). This module adds the task ``"multi-label-image-classification"``
(:class:`MultiLabelImageClassificationPipeline`), which additionally

* returns every label by default (``top_k=None`` means all labels) and can keep only scores ≥ ``threshold``;
* opens files itself with :func:`mlic_hf.image_processing.load_image`, so 16-bit and float images are rescaled
  (transformers' ``load_image`` converts files with PIL's ``convert("RGB")``, which clips 16-bit data at 255).
"""

from __future__ import annotations

import os

from transformers import Pipeline, pipeline
from transformers.pipelines import PIPELINE_REGISTRY, ImageClassificationPipeline

from .auto import AutoModelForMultiLabelImageClassification
from .image_processing import load_image

TASK = "multi-label-image-classification"


class MultiLabelImageClassificationPipeline(ImageClassificationPipeline):
    """Image classification with independent per-label sigmoid scores. Call with an image, a path, or a list; keyword
    arguments: ``top_k`` (default: all labels), ``threshold`` (default: none), ``timeout``."""

    def _sanitize_parameters(self, top_k=None, function_to_apply=None, timeout=None, threshold=None):
        preprocess, forward, postprocess = super()._sanitize_parameters(
            top_k=top_k, function_to_apply=function_to_apply, timeout=timeout
        )
        postprocess.setdefault("top_k", self.model.config.num_labels)
        postprocess.setdefault("function_to_apply", "sigmoid")
        if threshold is not None:
            postprocess["threshold"] = float(threshold)
        return preprocess, forward, postprocess

    def preprocess(self, image, timeout=None):
        if isinstance(image, (str, os.PathLike)) and os.path.isfile(image):
            image = load_image(image)
        return super().preprocess(image, timeout=timeout)

    def postprocess(self, model_outputs, function_to_apply=None, top_k=None, threshold=None):
        from transformers.pipelines.text_classification import ClassificationFunction

        if isinstance(function_to_apply, str):
            function_to_apply = ClassificationFunction(function_to_apply.lower())
        results = super().postprocess(model_outputs, function_to_apply=function_to_apply, top_k=top_k)
        if threshold is not None:
            results = [r for r in results if r["score"] >= threshold]
        return results


def register_pipeline() -> None:
    """Register the ``"multi-label-image-classification"`` task with transformers' pipeline registry."""
    if TASK not in PIPELINE_REGISTRY.get_supported_tasks():
        PIPELINE_REGISTRY.register_pipeline(
            TASK,
            pipeline_class=MultiLabelImageClassificationPipeline,
            pt_model=AutoModelForMultiLabelImageClassification,
            type="image",
        )


def multilabel_pipeline(model, **kwargs) -> Pipeline:
    """Shortcut for ``pipeline("multi-label-image-classification", model=model, **kwargs)``."""
    register_pipeline()
    return pipeline(TASK, model=model, **kwargs)
