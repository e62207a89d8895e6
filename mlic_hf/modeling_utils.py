"""Shared pieces of every mlic_hf model: the output dataclass and the `PreTrainedModel` base.

The base's ``from_pretrained`` is transformers' restricted to safetensors weights, with errors that name the file or
folder at fault: a local checkpoint folder that does not exist, a broken weights file, a config whose label count
does not match the weights, or a requested label set other than the checkpoint's. Two checks run before any weight
is allocated: a checkpoint with only pickle weights (``pytorch_model.bin``) is refused naming the file, and the
config's ``num_labels`` must be a dimension of some tensor in the safetensors files (read from their headers), so a
tampered label count fails at once instead of allocating a classifier of that size.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import re
import sys
from dataclasses import dataclass

import torch
from torch import nn
from safetensors import SafetensorError, safe_open
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput

from .configuration_utils import MLICConfig
from .file_utils import staged_folder
from .layers.backbone import TimmBackbone
from .losses import loss_from_config

logger = logging.getLogger(__name__)


class CheckpointLoadError(Exception):
    """A checkpoint that cannot be loaded, when transformers' ``pipeline()`` loads it: the ``OSError`` or
    ``ValueError`` that ``from_pretrained`` raises otherwise (``__cause__``), its message unchanged. ``pipeline()``
    catches those two and raises a "Could not load model ..." ``ValueError`` holding every tried class's traceback
    as text, the reason at its end; this class is not one of them, so the reason reaches the caller as it is."""


@dataclass
class MultiLabelImageClassifierOutput(ModelOutput):
    """Output of every mlic_hf classifier.

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): training loss, returned when `labels` are given.
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`): per-label logits; `sigmoid(logits)` are
            the label probabilities (each label an independent Bernoulli variable).
        label_features (`torch.FloatTensor`, *optional*): per-label features (e.g. decoder outputs), method-specific.
        feature_maps (`tuple[torch.FloatTensor]`, *optional*): backbone feature maps, when
            `output_hidden_states=True`.
        attentions (`tuple[torch.FloatTensor]`, *optional*): attention maps, method-specific.
        label_maps (`torch.FloatTensor` of shape `(batch_size, num_labels, height, width)`, *optional*): where in the
            image each label's evidence lies, on the method's feature grid, when `output_class_maps=True` (not
            `output_label_maps`: transformers' Trainer takes every forward argument named "*label*" for a label; see
            :meth:`MLICPreTrainedModel.label_maps` and each method's docstring for what the maps are).
        extras (`dict`, *optional*): further method-specific outputs (e.g. auxiliary logits).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    label_features: torch.FloatTensor | None = None
    feature_maps: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    label_maps: torch.FloatTensor | None = None
    extras: dict | None = None


class MLICPreTrainedModel(PreTrainedModel):
    """Base class of every mlic_hf model.

    Provides the timm backbone factory (:meth:`build_backbone`), the loss (``self.loss_fn`` from the config), and a
    weight init that only touches the method's own layers: backbone weights (pretrained or timm's own init) are
    left as they are.
    """

    config_class = MLICConfig
    base_model_prefix = "mlic"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    # True for the methods with Transformer layers (GradientCheckpointingLayer, or ML-VPT's ViT blocks): M1's only
    # activations are its CNN's, and checkpointing a BatchNorm CNN would update the running statistics twice a step
    supports_gradient_checkpointing = False
    # Our losses normalise themselves (see `loss_reduction`); Trainer must not pass `num_items_in_batch` nor rescale
    # the loss by the number of processes (it would double the gradients with 2 DDP processes).
    accepts_loss_kwargs = False
    _no_split_modules: list[str] = []

    @staticmethod
    def adopt_backbone_normalisation(config: MLICConfig, pretrained_cfg: dict) -> None:
        """Fill unset ``image_mean``/``image_std`` from the backbone's timm pretrained config (ImageNet's otherwise)."""
        if config.image_mean is None:
            config.image_mean = [float(v) for v in pretrained_cfg.get("mean", (0.485, 0.456, 0.406))]
        if config.image_std is None:
            config.image_std = [float(v) for v in pretrained_cfg.get("std", (0.229, 0.224, 0.225))]

    def build_backbone(self, config: MLICConfig) -> TimmBackbone:
        """Create the config's timm backbone and fill in the normalisation stats from timm if unset."""
        backbone = TimmBackbone(
            config.backbone,
            out_indices=config.out_indices,
            use_pretrained=config.use_pretrained_backbone,
            weights=config.backbone_weights,
            **(config.backbone_kwargs or {}),
        )
        self.adopt_backbone_normalisation(config, backbone.pretrained_cfg)
        # Leave the backbone's weights to timm (pretrained or its own init scheme): mark them initialised.
        for module in backbone.modules():
            module._is_hf_initialized = True
        return backbone

    def post_init(self):
        super().post_init()
        self.loss_fn = loss_from_config(self.config)
        # per instance (M2 has iRPE or plain encoder layers, or none): FSDP's TRANSFORMER_BASED_WRAP shards at these
        # classes and fails on a name the model does not contain
        self._no_split_modules = self.repeated_layer_names()

    def repeated_layer_names(self) -> list[str]:
        """Class names of the model's repeated Transformer layers (``_no_split_modules``: the units FSDP shards
        and activation checkpointing recomputes): its ``GradientCheckpointingLayer`` subclasses by default."""
        return sorted({type(m).__name__ for m in self.modules() if isinstance(m, GradientCheckpointingLayer)})

    @torch.no_grad()
    def label_maps(self, pixel_values: torch.Tensor) -> MultiLabelImageClassifierOutput:
        """Logits and per-label spatial maps ``(B, num_labels, h, w)`` on the method's feature grid, in eval mode
        (``forward(pixel_values, output_class_maps=True)``). What a map is depends on the method: class activation
        maps (M1), the label queries' cross-attention (M2, M4), group-prompt attention to the patches (ML-VPT); see
        the method's ``forward``. :func:`mlic_hf.explain.overlay_label_maps` draws them on the image."""
        was_training = self.training
        self.eval()
        try:
            return self(pixel_values=pixel_values, output_class_maps=True, return_dict=True)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.trunc_normal_(module.weight, std=std)
        elif isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d)):
            if getattr(module, "weight", None) is not None:
                init.ones_(module.weight)
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
            if getattr(module, "running_mean", None) is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, nn.MultiheadAttention):
            module._reset_parameters()  # PyTorch's own init (Xavier in_proj, zero biases)
        elif _defines_own_init(module):
            # mlic_hf's own layers (group-wise heads, position embeddings, iRPE tables, prompts, experts) own
            # their init: from_pretrained builds on the meta device and only this method initialises new weights.
            module.reset_parameters()

    def loss_logits(self, output: MultiLabelImageClassifierOutput) -> list[torch.Tensor]:
        """The logits the training loss is the sum of losses over: ``[output.logits]``, or each head's logits for a
        method with several heads (ML-VPT's eq. 17)."""
        return [output.logits]

    def compute_loss(self, logits: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
        """The configured loss of ``logits`` against multi-hot ``labels`` (float32; ``None`` without labels).

        Entries of ``labels`` below 0 (e.g. -1 or -100) are ignored (weight 0), the convention for VOC "difficult"
        labels and for partially annotated data.
        """
        if labels is None:
            return None
        if labels.shape != logits.shape:
            raise ValueError(
                f"labels must be multi-hot with shape (batch_size, num_labels) = {tuple(logits.shape)}, "
                f"got {tuple(labels.shape)}"
            )
        # the losses themselves ignore labels < 0 (one masking path for functions, modules and models)
        return self.loss_fn(logits, labels.to(device=logits.device, dtype=torch.float32))

    def save_pretrained(self, save_directory, *args, save_image_processor: bool = True, **kwargs):
        """``PreTrainedModel.save_pretrained`` (safetensors) plus the matching :class:`MLICImageProcessor`, so the
        directory alone serves ``pipeline("image-classification", model=DIR)``.

        Saving over a checkpoint replaces each file atomically (:func:`~mlic_hf.file_utils.staged_folder`;
        transformers writes them in place): a save killed or stopped by a full disk at any point leaves every file
        whole, and a failed write is an ``OSError`` naming the file. With ``push_to_hub=True`` the folder is
        transformers' staging area for the upload and is written as transformers writes it."""
        kwargs.pop("safe_serialization", None)  # always safetensors
        main = kwargs.get("is_main_process", True)
        if kwargs.get("push_to_hub") or not main:  # other processes only join the collectives of a sharded save
            result = super().save_pretrained(save_directory, *args, **kwargs)
            if save_image_processor and main:
                self._save_image_processor(save_directory)
            return result
        with staged_folder(save_directory) as staging:
            result = super().save_pretrained(staging, *args, **kwargs)
            if save_image_processor:
                self._save_image_processor(staging)
            written = set(os.listdir(staging))
        _remove_stale_shards(save_directory, written)
        return result

    def _save_image_processor(self, folder) -> None:
        from .image_processing import MLICImageProcessor

        MLICImageProcessor.from_model_config(self.config).save_pretrained(folder)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """``PreTrainedModel.from_pretrained`` restricted to safetensors weights, with a label-set check: loading a
        checkpoint with other labels than requested (``id2label``/``num_labels`` or ``config``) raises a
        ``ValueError`` unless ``ignore_mismatched_sizes=True`` (then heads of another size are re-initialised).

        ``reset_label_layers=True`` (with ``ignore_mismatched_sizes=True``) re-initialises the label layers
        (:meth:`label_layers`) after loading, also where their shapes fit a label set of the same size, whose heads
        are otherwise kept in index order: what fine-tuning on new labels wants.

        Also raises ``FileNotFoundError`` for a local checkpoint folder that does not exist (instead of trying it as
        a Hub id), ``OSError`` naming a broken weights file or a pickle-only one (``pytorch_model.bin``), and
        ``ValueError`` naming the parameter and both shapes when the weights do not fit the model the checkpoint's
        config builds. Called by ``pipeline()``, it raises these as :class:`CheckpointLoadError`."""
        try:
            return cls._from_pretrained_checked(pretrained_model_name_or_path, *model_args, **kwargs)
        except (OSError, ValueError) as err:
            if _called_by_pipeline_loader():
                raise CheckpointLoadError(str(err)) from err
            raise

    @classmethod
    def _from_pretrained_checked(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        reset_labels = kwargs.pop("reset_label_layers", False)
        if reset_labels and not kwargs.get("ignore_mismatched_sizes"):
            raise ValueError("reset_label_layers=True is for another label set: pass ignore_mismatched_sizes=True too")
        kwargs.setdefault("use_safetensors", True)
        pretrained_model_name_or_path = check_checkpoint_path(pretrained_model_name_or_path, kwargs)
        check_weights_format(pretrained_model_name_or_path, kwargs)
        check_labels(cls, pretrained_model_name_or_path, model_args, kwargs, warn_kept=not reset_labels)
        if not kwargs.get("ignore_mismatched_sizes"):  # otherwise label layers of another size are wanted
            check_weights_fit_labels(cls, pretrained_model_name_or_path, model_args, kwargs)
        loaded = _load_checked(super().from_pretrained, pretrained_model_name_or_path, model_args, kwargs)
        # transformers 5 re-creates every loaded parameter as trainable (requires_grad=True): a method's frozen
        # parts (ML-VPT's ViT) would silently train when a checkpoint is fine-tuned
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # (model, info) with output_loading_info
        fill_non_persistent_buffers(model)
        model.freeze_parameters()
        if reset_labels:
            logger.info("re-initialised for the new labels: %s", ", ".join(model.reset_label_layers()))
        return loaded

    def get_backbone(self) -> nn.Module | None:
        """The pretrained feature extractor (``self.backbone`` by default; ML-VPT: its ViT), which
        ``--backbone_learning_rate`` trains at its own rate."""
        return getattr(self, "backbone", None)

    def label_layers(self) -> list[nn.Module]:
        """The modules whose parameters belong to the label set (label embeddings, per-label classifiers): fine-tuning
        a checkpoint on other labels re-initialises them (:meth:`reset_label_layers`), also where their shapes would
        fit. Each method names its own; none by default."""
        return []

    @torch.no_grad()
    def reset_label_layers(self) -> list[str]:
        """Re-initialise :meth:`label_layers` as a fresh model initialises them (also weights ``from_pretrained``
        loaded); returns the names of the parameters reset."""
        reset = {id(p) for module in self.label_layers() for p in module.parameters()}
        for module in self.label_layers():
            for tensor in (*module.parameters(), *module.buffers()):
                tensor._is_hf_initialized = False  # transformers' init functions skip tensors marked as loaded
            for submodule in module.modules():
                self._init_weights(submodule)
        return [name for name, p in self.named_parameters() if id(p) in reset]

    def freeze_parameters(self) -> None:
        """Set ``requires_grad=False`` on the parameters the method never trains (none by default; ML-VPT: its
        ViT). Called by ``__init__`` and again after ``from_pretrained`` loaded the weights."""


@torch.no_grad()
def fill_non_persistent_buffers(model: nn.Module) -> None:
    """Compute the non-persistent buffers of timm modules (blur filters of anti-aliased CNNs such as TResNet, Swin's
    relative position indices and masks, LeViT's bias indices) with timm's ``init_non_persistent_buffers``. A
    checkpoint does not hold them and transformers builds the model on the meta device, so after ``from_pretrained``
    they hold whatever memory they were given: a TResNet gave NaN logits."""
    for module in model.modules():
        fill = getattr(module, "init_non_persistent_buffers", None)
        if callable(fill) and type(module).__module__.startswith("timm."):
            fill()


def _remove_stale_shards(folder, written: set[str]) -> None:
    """Delete the weight shards and shard index of an earlier save in ``folder`` that the last save (its file names:
    ``written``) did not replace, as transformers' ``save_pretrained`` does in the folder it writes: a stale index
    would point the loader at old shards."""
    shard = re.compile(r"model(-\d{5}-of-\d{5}\.safetensors|\.safetensors\.index\.json)")
    for name in os.listdir(folder):
        if shard.fullmatch(name) and name not in written and os.path.isfile(os.path.join(folder, name)):
            os.remove(os.path.join(folder, name))


def _called_by_pipeline_loader() -> bool:
    """Whether transformers' ``pipeline()`` is loading the model (its ``load_model`` is on the call stack). The
    stack is the one sign: the Auto class consumes the ``_from_pipeline`` keyword before a model class sees it."""
    from transformers.pipelines import base

    loader = getattr(base.load_model, "__code__", None)
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is loader:
            return True
        frame = frame.f_back
    return False


def _defines_own_init(module: nn.Module) -> bool:
    """Whether ``module`` is an mlic_hf layer with its own ``reset_parameters`` (torch's and timm's are handled by
    type above or left to timm)."""
    return type(module).__module__.startswith("mlic_hf.") and callable(getattr(module, "reset_parameters", None))


def check_labels(cls, path, model_args, kwargs, warn_kept: bool = True) -> None:
    """Raise if the requested label set differs from the checkpoint's (see ``MLICPreTrainedModel.from_pretrained``)."""
    requested = None
    config = kwargs.get("config", model_args[0] if model_args else None)
    if isinstance(config, MLICConfig):
        requested = dict(config.id2label)
    elif kwargs.get("id2label") is not None:
        requested = {int(k): v for k, v in kwargs["id2label"].items()}
    elif kwargs.get("num_labels") is not None:
        requested = {i: None for i in range(int(kwargs["num_labels"]))}
    if requested is None:
        return
    try:
        saved = cls.config_class.from_pretrained(
            path,
            **{k: kwargs[k] for k in ("cache_dir", "revision", "token", "local_files_only", "subfolder") if k in kwargs},
        )
    except Exception:  # let from_pretrained report unreachable/missing checkpoints itself
        return
    saved_labels = dict(saved.id2label)
    same_size = len(saved_labels) == len(requested)
    same_names = all(v is None for v in requested.values()) or requested == saved_labels
    if same_size and same_names:
        return
    if kwargs.get("ignore_mismatched_sizes", False):
        if same_size and warn_kept:
            logger.warning(
                "Loading %s with a different label set of the same size: label heads are kept in index order.", path
            )
        return
    raise ValueError(
        f"{path}: the checkpoint was trained for {len(saved_labels)} labels "
        f"({list(saved_labels.values())[:10]}{'...' if len(saved_labels) > 10 else ''}) but "
        f"{len(requested)} labels were requested"
        + ("" if all(v is None for v in requested.values()) else f" ({list(requested.values())[:10]})")
        + ". Pass ignore_mismatched_sizes=True to re-initialise the label-specific layers."
    )


_HUB_KWARGS = ("cache_dir", "revision", "token", "subfolder")


def check_weights_format(path, kwargs) -> None:
    """``OSError`` naming the file when a checkpoint (local, or cached from the Hub) has PyTorch pickle weights
    (``pytorch_model.bin``) but no safetensors: mlic_hf loads only safetensors, since unpickling can run code."""
    if path is None or kwargs.get("use_safetensors") is False or kwargs.get("state_dict") is not None:
        return
    if _weights_files(path, kwargs, use_safetensors=True):
        return
    pickled = _weights_files(path, kwargs, use_safetensors=False)
    if pickled:
        raise OSError(
            f"{pickled[0]}: mlic_hf loads only safetensors weights (model.safetensors), and this checkpoint has only "
            "PyTorch pickle weights (loading a pickle can run code). If the file is trusted, convert it: "
            "torch.load it and save with safetensors.torch.save_file(state_dict, 'model.safetensors')")


def check_weights_fit_labels(cls, path, model_args, kwargs) -> None:
    """``ValueError`` when no tensor of the checkpoint's safetensors files has a dimension of the config's
    ``num_labels`` (every method has per-label weights, e.g. ``classifier.bias``), read from the files' headers
    before the model is built: a tampered ``num_labels`` would otherwise allocate a classifier of that size first.
    Unreadable or absent files are left to the loading itself (it names them)."""
    if path is None:
        return
    config = kwargs.get("config", model_args[0] if model_args else None)
    if not isinstance(config, MLICConfig):
        try:
            config = cls.config_class.from_pretrained(
                path, **{k: kwargs[k] for k in (*_HUB_KWARGS, "local_files_only") if k in kwargs})
        except Exception:  # let from_pretrained report unreachable/missing checkpoints itself
            return
    files = _weights_files(path, kwargs, use_safetensors=True)
    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        try:
            with safe_open(file, framework="pt") as handle:
                shapes.update({name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()})
        except (SafetensorError, OSError):
            return
    num_labels = config.num_labels
    if not shapes or any(num_labels in shape for shape in shapes.values()):
        return
    hint = next(((name, shape) for name, shape in shapes.items() if "classifier" in name), None)
    raise ValueError(
        f"{path}: the weights do not fit the config (num_labels={num_labels}): no tensor of "
        f"{files[0] if len(files) == 1 else 'its weights files'} has a dimension of {num_labels}"
        + (f" ({hint[0]} has shape {hint[1]} in the weights file)" if hint else "")
        + ". Use the config.json saved with these weights; pass ignore_mismatched_sizes=True only to re-initialise "
        "the label layers on purpose (e.g. to fine-tune on a new label set).")


def _looks_local(path) -> bool:
    """Whether ``path`` is meant as a local folder rather than a Hub id (``user/model``)."""
    if isinstance(path, os.PathLike):
        return True
    text = str(path)
    first = text.replace(os.sep, "/").split("/")[0]
    return text.startswith((".", "/", "~")) or (first != text and os.path.isdir(first))


def _cached_on_hub(repo_id: str, kwargs) -> bool:
    """Whether the Hub model ``repo_id`` has a config in the local cache (so it loads offline)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=kwargs.get("cache_dir"),
                                       revision=kwargs.get("revision"))
    except ValueError:  # not a valid repo id (huggingface_hub's HFValidationError)
        return False
    return isinstance(found, str)


def check_checkpoint_path(path, kwargs=None):
    """``path`` as transformers should be given it (``~`` expanded: transformers would take ``~/x`` for a Hub id),
    failing at once, naming the path, for a checkpoint that cannot be found locally.

    Transformers treats any string that is not a folder as a Hub id, and retries the network for a minute before
    failing on a mistyped local path; so a path that looks local (``./``, ``/``, ``~``, or a first component that is
    a local folder) must exist, and with ``HF_HUB_OFFLINE`` set anything else must be a cached Hub model."""
    from huggingface_hub import constants

    if path is None:  # from_pretrained(None, config=..., state_dict=...): nothing to look up
        return None
    text = os.path.expanduser(os.fspath(path))
    if os.path.isdir(text):
        return text if isinstance(path, str) and path.startswith("~") else path
    if os.path.isfile(text):
        raise NotADirectoryError(
            f"{str(path)!r} is a file: pass the checkpoint folder (with config.json and model.safetensors)")
    if _looks_local(path):
        raise FileNotFoundError(f"no checkpoint folder {str(path)!r}")
    if constants.HF_HUB_OFFLINE and not _cached_on_hub(str(path), kwargs or {}):
        raise FileNotFoundError(
            f"no checkpoint folder {str(path)!r}, and no cached Hub model of that name (HF_HUB_OFFLINE is set)")
    return path


@contextlib.contextmanager
def _held_load_report():
    """Hold back transformers' "LOAD REPORT" warnings while loading; yields the held records.

    The report of a size mismatch is replaced by one error; every other report is logged afterwards."""
    held: list[logging.LogRecord] = []

    def hold(record: logging.LogRecord) -> bool:
        if "LOAD REPORT" in record.getMessage():
            held.append(record)
            return False
        return True

    source = logging.getLogger("transformers.modeling_utils")
    source.addFilter(hold)
    completed = False
    try:
        yield held
        completed = True
    finally:
        source.removeFilter(hold)
        if not completed:  # transformers' own error refers to its report: show it
            _emit(held)


def _emit(records: list[logging.LogRecord]) -> None:
    for record in records:
        logging.getLogger(record.name).handle(record)


def _load_checked(load, path, model_args, kwargs):
    """Call transformers' ``from_pretrained`` (``load``) turning its errors for a broken weights file or weights of
    other shapes than the config's into one error naming the file or the parameter."""
    if kwargs.get("ignore_mismatched_sizes"):
        return _load_weights(load, path, model_args, kwargs)
    want_info = kwargs.pop("output_loading_info", False)
    # Load with mismatches allowed but reported, so the error can name the parameter and both shapes (transformers'
    # own error only points at a report table).
    kwargs = {**kwargs, "ignore_mismatched_sizes": True, "output_loading_info": True}
    with _held_load_report() as held:
        model, info = _load_weights(load, path, model_args, kwargs)
    if info["mismatched_keys"]:
        raise ValueError(_mismatch_message(path, model.config, info["mismatched_keys"]))
    _emit(held)
    return (model, info) if want_info else model


def _load_weights(load, path, model_args, kwargs):
    try:
        return load(path, *model_args, **kwargs)
    except (SafetensorError, pickle.UnpicklingError, EOFError) as err:
        raise _broken_weights_error(path, kwargs, err) from err
    except RuntimeError as err:
        if "PytorchStreamReader" not in str(err):  # torch's error for a truncated .bin archive
            raise
        raise _broken_weights_error(path, kwargs, err) from err


def _mismatch_message(path, config, mismatched) -> str:
    name, in_file, in_model = sorted(mismatched, key=lambda item: item[0])[0]
    more = f" (and {len(mismatched) - 1} more)" if len(mismatched) > 1 else ""
    return (
        f"{path}: the weights do not fit the config (num_labels={config.num_labels}): {name} has shape "
        f"{tuple(in_file)} in the weights file but {tuple(in_model)} in the model the config builds{more}. Use "
        "the config.json saved with these weights; pass ignore_mismatched_sizes=True only to re-initialise these "
        "layers on purpose (e.g. to fine-tune on a new label set)."
    )


def _broken_weights_error(path, kwargs, err) -> OSError:
    """An ``OSError`` naming the broken weights file (the first that fails to open) and what is wrong."""
    use_safetensors = kwargs.get("use_safetensors") is not False
    files = _weights_files(path, kwargs, use_safetensors)
    broken = next((f for f in files if not _opens_as_safetensors(f)), None) if use_safetensors else None
    if broken is None:
        broken = files[0] if len(files) == 1 else f"{path} (its weights file)"
    kind = "safetensors" if use_safetensors else "PyTorch weights"
    # one line, first sentence: torch's messages span lines and go on to advise weights_only=False (unsafe)
    message = " ".join(str(err).split()).split(". ")[0]
    return OSError(f"{broken}: not a valid {kind} file ({message}); re-save or re-download the checkpoint")


def _opens_as_safetensors(file: str) -> bool:
    try:
        with safe_open(file, framework="pt"):
            return True
    except (SafetensorError, OSError):
        return False


def _weights_files(path, kwargs, use_safetensors: bool) -> list[str]:
    """The weights files of a checkpoint that are present locally (folder or Hub cache), shards included."""
    from transformers.utils import cached_file

    hub = {k: kwargs[k] for k in _HUB_KWARGS if kwargs.get(k) is not None}

    def locate(name):
        try:
            return cached_file(path, name, local_files_only=True, _raise_exceptions_for_missing_entries=False, **hub)
        except (OSError, ValueError):
            return None

    single = "model.safetensors" if use_safetensors else "pytorch_model.bin"
    index = locate(f"{single}.index.json")
    try:
        with open(index) as handle:
            names = sorted(set(json.load(handle)["weight_map"].values()))
    except (TypeError, OSError, ValueError, KeyError):  # no index (TypeError: None), or an unreadable one
        names = [single]
    return [found for found in map(locate, names) if found]
