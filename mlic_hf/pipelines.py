"""A multi-label image-classification pipeline, and mlic_hf's image reading in both pipelines.

``pipeline("image-classification", model=DIR)`` works for every mlic_hf checkpoint out of the box (sigmoid scores,
pass ``top_k=num_labels`` to get every label). This module adds the task ``"multi-label-image-classification"``
(:class:`MultiLabelImageClassificationPipeline`), which additionally returns every label by default (``top_k=None``
means all labels) and can keep only scores ≥ ``threshold``; a checkpoint with calibrated per-class thresholds
(``config.thresholds``, :mod:`mlic_hf.calibration`) keeps the labels above their own thresholds unless a
``threshold`` is given (``threshold=0`` returns every label).

Both pipelines read local files and PIL images of mlic_hf checkpoints with :func:`read_image_input`: 16-bit and
float images are rescaled and alpha is composited on white, as in training and ``scripts/predict.py``.
Transformers' own reader (``transformers.image_utils.load_image``) runs PIL's ``convert("RGB")`` before the image
processor sees the image, which clips 16-bit data at 255 and drops alpha; the task's pipeline class is fixed by
transformers (only ``trust_remote_code`` custom pipelines can replace it), so :func:`register_pipeline` wraps
``ImageClassificationPipeline.preprocess`` to read with mlic_hf first *only when the pipeline's image processor is
an* :class:`~mlic_hf.image_processing.MLICImageProcessor`; other models' pipelines are unchanged. URLs are read by
mlic_hf too (a failed download names the URL); base64 strings are still read by transformers (16-bit data clipped).

Labels are read by index (``id2label``, the order of the weights' label rows), never through ``label2id``.

:func:`multilabel_pipeline` loads a checkpoint path with :func:`mlic_hf.inference.load_checkpoint`, so a broken
checkpoint (bad weights file, pickle-only weights, a config that does not fit the weights) gives mlic_hf's one-line
error. ``pipeline("image-classification", model=DIR)`` loads the model inside transformers, which wraps a loading error
in "Could not load model ... See the original errors: ... Traceback" with mlic_hf's message at its end; a config error
(thresholds, labels, sizes) is raised before that wrapper, unwrapped. To get the one-line error with the standard
task, load first: ``model, processor = load_checkpoint(DIR)`` then ``pipeline("image-classification", model=model,
image_processor=processor)``.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image
from transformers import Pipeline, pipeline
from transformers.image_utils import load_image as transformers_load_image
from transformers.pipelines import PIPELINE_REGISTRY, ImageClassificationPipeline

from .auto import AutoModelForMultiLabelImageClassification
from .calibration import resolve_thresholds
from .image_processing import MLICImageProcessor, is_url, load_image, to_rgb_pil

TASK = "multi-label-image-classification"


def read_image_input(image, timeout=None):
    """A pipeline input as the image processor should see it: a local file, URL or PIL image → 8-bit RGB PIL image
    (mlic_hf's conversion), arrays and tensors unchanged, base64 strings read by transformers.

    A folder raises ``ValueError`` and a path that is neither a file, a URL nor base64 image data
    ``FileNotFoundError``, both naming the path (transformers' reader reports them as bad base64)."""
    if isinstance(image, Image.Image):
        return to_rgb_pil(image)
    if not isinstance(image, (str, os.PathLike)):
        return image
    text = os.fspath(image)
    if os.path.isfile(text) or is_url(text):  # a failed download names the URL (transformers' reader does not)
        return load_image(text, timeout=timeout)
    if os.path.isdir(text):
        raise ValueError(f"{text!r} is a folder; pass image files (mlic_hf.inference.expand_inputs lists a "
                         "folder's images)")
    try:
        return transformers_load_image(text, timeout=timeout)  # a URL or base64 image data
    except ValueError:  # transformers' "Incorrect image source": neither of them
        raise FileNotFoundError(f"no such image file: {text!r} (nor a URL or base64-encoded image)") from None


# transformers' own method, also when this module is reloaded after the wrapper below was installed
_transformers_preprocess = getattr(ImageClassificationPipeline.preprocess, "transformers_preprocess",
                                   ImageClassificationPipeline.preprocess)


def _preprocess_reading_with_mlic(self, image, timeout=None):
    """``ImageClassificationPipeline.preprocess``, reading the image with mlic_hf for mlic_hf checkpoints."""
    if isinstance(self.image_processor, MLICImageProcessor):
        image = read_image_input(image, timeout=timeout)
    return _transformers_preprocess(self, image, timeout=timeout)


_preprocess_reading_with_mlic.transformers_preprocess = _transformers_preprocess


class MultiLabelImageClassificationPipeline(ImageClassificationPipeline):
    """Image classification with independent per-label sigmoid scores. Call with an image, a path, or a list; keyword
    arguments: ``top_k`` (default: all labels), ``threshold`` (default: the checkpoint's calibrated per-class
    ``config.thresholds`` if it has them, else none: every label), ``timeout``."""

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
        # whatever the image processor (one can be passed in), read images with mlic_hf
        return _transformers_preprocess(self, read_image_input(image, timeout=timeout), timeout=timeout)

    def postprocess(self, model_outputs, function_to_apply=None, top_k=None, threshold=None):
        from transformers.pipelines.text_classification import ClassificationFunction

        if isinstance(function_to_apply, str):
            function_to_apply = ClassificationFunction(function_to_apply.lower())
        results = super().postprocess(model_outputs, function_to_apply=function_to_apply, top_k=top_k)
        # without a threshold or calibrated ones, every label (-inf: also raw scores with function_to_apply="none")
        cutoffs = resolve_thresholds(self.model.config, threshold, default=-np.inf)
        # by index: id2label is the order of the weights' rows; label2id is not consulted
        index = {name: i for i, name in self.model.config.id2label.items()}
        return [r for r in results if r["score"] >= cutoffs[index[r["label"]]]]


def register_pipeline() -> None:
    """Register the ``"multi-label-image-classification"`` task with transformers' pipeline registry, and make
    ``pipeline("image-classification")`` read images with mlic_hf for mlic_hf checkpoints (see the module doc)."""
    ImageClassificationPipeline.preprocess = _preprocess_reading_with_mlic
    if TASK not in PIPELINE_REGISTRY.get_supported_tasks():
        PIPELINE_REGISTRY.register_pipeline(
            TASK,
            pipeline_class=MultiLabelImageClassificationPipeline,
            pt_model=AutoModelForMultiLabelImageClassification,
            type="image",
        )


def multilabel_pipeline(model, **kwargs) -> Pipeline:
    """``pipeline("multi-label-image-classification", model=model, **kwargs)``; a checkpoint path or Hub id is
    loaded by mlic_hf (:func:`mlic_hf.inference.load_checkpoint`: one clear error for a broken checkpoint) and the
    model and its image processor (unless ``image_processor`` is given) are handed to transformers. With a loading
    option of transformers (``revision``, ``token``, ``dtype``, ``device_map``, ``model_kwargs``, ``config``,
    ``trust_remote_code``), transformers loads the checkpoint itself (its errors are wrapped)."""
    register_pipeline()
    # loading options only transformers' loader knows (a Hub revision, dtype...): leave the loading to it
    if isinstance(model, (str, os.PathLike)) and not _LOADING_KWARGS.intersection(kwargs):
        from .inference import load_checkpoint

        model, processor = load_checkpoint(os.fspath(model))  # on the CPU; `device` is applied by the pipeline
        kwargs.setdefault("image_processor", processor)
    return pipeline(TASK, model=model, **kwargs)


#: ``pipeline()`` arguments that change how a checkpoint is loaded: with any of them, transformers loads it.
_LOADING_KWARGS = frozenset({"config", "revision", "token", "dtype", "device_map", "model_kwargs",
                             "trust_remote_code"})
