"""ONNX export of any mlic_hf checkpoint, and inference with onnxruntime.

Why ``torch.onnx`` and not optimum: optimum's exporter needs an ``OnnxConfig`` per model type, and registering one
for an architecture outside transformers ties the export to optimum's internal task tables; every mlic_hf method
already traces with ``torch.export`` (the dynamo-based ``torch.onnx.export``), which gives one path for all of them.
The exported graph takes ``pixel_values`` ``(batch, 3, S, S)`` (the batch axis dynamic) and returns ``logits``
``(batch, num_labels)``; the folder also holds ``config.json`` (labels, calibrated thresholds) and
``preprocessor_config.json``, so :class:`ONNXMultiLabelClassifier` preprocesses exactly like the PyTorch model.

Install the extra: ``pip install "mlic_hf[onnx]"`` (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
#: The opset the exporter targets (onnxruntime ≥ 1.16 runs it).
DEFAULT_OPSET = 18


class ExportMismatchError(ValueError):
    """onnxruntime's logits differ from PyTorch's beyond the tolerance: the export ran, its check failed (a script
    exits with status 1, not the 2 of a user's mistake)."""

    exit_status = 1


class LogitsOnly(nn.Module):
    """A model as a function ``pixel_values -> logits`` (what the ONNX graph computes)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values, return_dict=True).logits


def _require_onnx():
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ImportError(f"ONNX export needs the onnx extra: pip install 'mlic_hf[onnx]' ({err})") from err


def export_onnx(model, output_dir: str | os.PathLike, processor=None, opset: int = DEFAULT_OPSET,
                max_batch: int = 1024) -> Path:
    """Export ``model`` (an mlic_hf model, in eval mode) to ``<output_dir>/model.onnx`` with a dynamic batch axis,
    beside its ``config.json`` and the image processor's ``preprocessor_config.json``. Returns the ``.onnx`` path.

    ``processor`` defaults to the one matching the config. The graph is traced at batch 2 (a batch of 1 would let
    the tracer specialise the batch axis)."""
    from .image_processing import MLICImageProcessor

    _require_onnx()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    size = int(model.config.image_size)
    device = next(model.parameters()).device
    example = torch.randn(2, 3, size, size, device=device)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    path = output_dir / ONNX_FILE
    with _naming_failed_write(path), torch.no_grad():
        torch.onnx.export(LogitsOnly(model).eval(), (example,), str(path), input_names=["pixel_values"],
                          output_names=["logits"], dynamo=True, dynamic_shapes={"pixel_values": {0: batch}},
                          opset_version=opset, verbose=False)
    with _naming_failed_write(output_dir / "config.json", remove=False):
        model.config.save_pretrained(output_dir)  # atomic (MLICConfig.to_json_file): a re-export never leaves half a config
    with _naming_failed_write(output_dir / "preprocessor_config.json", remove=False):
        (processor or MLICImageProcessor.from_model_config(model.config)).save_pretrained(output_dir)
    logger.info("exported %s to %s (opset %d)", type(model).__name__, path, opset)
    return path


@contextlib.contextmanager
def _naming_failed_write(path: Path, remove: bool = True) -> Iterator[None]:
    """A failed write of ``path`` (a full disk: an ``OSError``, or the exporter's ``RuntimeError`` about bytes not
    written) becomes an ``OSError`` naming the file and the cause; with ``remove``, a partial file is deleted (it
    would pass for an export)."""
    try:
        yield
    except (OSError, RuntimeError) as err:
        message = " ".join(str(err).split()) or type(err).__name__
        if not isinstance(err, OSError) and "writ" not in message.lower():
            raise  # an export (tracing) failure keeps its traceback
        if remove:
            with contextlib.suppress(OSError):
                path.unlink()
        cause = err.strerror if isinstance(err, OSError) and err.strerror else message
        try:
            free = shutil.disk_usage(path.parent).free
            space = f"; {free / 2**20:.1f} MiB free on its disk"
        except OSError:
            space = ""
        raise OSError(f"could not write {path}: {cause}{space}") from err


class ONNXMultiLabelClassifier:
    """An exported folder (:func:`export_onnx`) run with onnxruntime: images → sigmoid probabilities.

    ``config`` and ``processor`` are the ones saved beside the graph, so labels, calibrated thresholds and the
    preprocessing are the PyTorch model's."""

    def __init__(self, folder: str | os.PathLike, providers: Sequence[str] = ("CPUExecutionProvider",),
                 threads: int | None = None) -> None:
        import onnxruntime
        from transformers import AutoConfig

        from .image_processing import MLICImageProcessor

        folder = Path(folder)
        if not (folder / ONNX_FILE).is_file():
            raise FileNotFoundError(f"{folder} has no {ONNX_FILE}: export it with scripts/export_onnx.py")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(folder / ONNX_FILE), options, providers=list(providers))
        self.config = AutoConfig.from_pretrained(folder)
        self.processor = MLICImageProcessor.from_pretrained(folder)
        self.label_names = [self.config.id2label[i] for i in range(self.config.num_labels)]

    def logits(self, pixel_values: np.ndarray) -> np.ndarray:
        """``(B, num_labels)`` logits of preprocessed ``(B, 3, S, S)`` float32 pixels."""
        return self.session.run(["logits"], {"pixel_values": np.ascontiguousarray(pixel_values, np.float32)})[0]

    def __call__(self, images: Sequence) -> np.ndarray:
        """Sigmoid probabilities ``(N, num_labels)`` of PIL images (or paths)."""
        from .image_processing import load_image

        images = [load_image(i) if isinstance(i, (str, os.PathLike)) else i for i in images]
        pixels = self.processor(images=images, return_tensors="np")["pixel_values"]
        return 1.0 / (1.0 + np.exp(-self.logits(pixels)))


def check_atol(atol: float) -> None:
    """A ``ValueError`` naming ``--atol`` unless it is a tolerance (0 or more; not NaN): a negative or NaN one would
    fail every check and blame the export."""
    if not (isinstance(atol, (int, float)) and not math.isnan(atol) and atol >= 0):
        raise ValueError(f"--atol must be a non-negative number (the largest allowed logit difference), got {atol}")


def check_export(model, folder: str | os.PathLike, images: Sequence, atol: float = 1e-4) -> float:
    """Largest absolute difference between onnxruntime's and PyTorch's logits on ``images``; raises
    ``ValueError`` above ``atol``."""
    from .image_processing import load_image

    check_atol(atol)
    runner = ONNXMultiLabelClassifier(folder)
    images = [load_image(i) if isinstance(i, (str, os.PathLike)) else i for i in images]
    pixels = runner.processor(images=images, return_tensors="pt")["pixel_values"]  # the one saved beside the graph
    device = next(model.parameters()).device
    with torch.no_grad():
        expected = model.eval()(pixel_values=pixels.to(device)).logits.float().cpu().numpy()
    difference = float(np.abs(runner.logits(pixels.numpy()) - expected).max())
    if not difference <= atol:
        raise ExportMismatchError(f"onnxruntime's logits differ from PyTorch's by {difference:.3g} (> {atol:g}) on "
                         f"{len(images)} image(s)")
    return difference


__all__ = ["DEFAULT_OPSET", "ExportMismatchError", "LogitsOnly", "ONNXMultiLabelClassifier", "ONNX_FILE", "check_atol",
           "check_export", "export_onnx"]
