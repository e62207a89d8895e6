#!/usr/bin/env python
"""Convert a checkpoint of a method's official code into an mlic_hf checkpoint (``save_pretrained`` folder).

    python scripts/convert_official.py --method query2label --checkpoint Q2L-R101-448/checkpoint.pkl \\
        --official_config Q2L-R101-448/config_new.json --labels coco_labels.txt --output_dir outputs/q2l-r101-448
    python scripts/convert_official.py --method ml-decoder --checkpoint tresnet_l_COCO__448_90_0.pth \\
        --output_dir outputs/ml-decoder-coco
    python scripts/convert_official.py --method csra --checkpoint csra_voc.pth --option lam=0.1 \\
        --labels voc_labels.txt --output_dir outputs/csra-voc
    python scripts/convert_official.py --method resnet-probabilistic --checkpoint MS_COCO_TRresNet_L_448_86.6.pth \\
        --option image_size=448 --output_dir outputs/asl-tresnet-l-coco

A method converts when its folder has ``convert_<method>.py`` (its docstring tables the official keys and ours):
Query2Label (github.com/SlongLiu/query2labels, torchvision ResNet backbones), ML-Decoder
(github.com/Alibaba-MIIL/ML_Decoder, TResNet), CSRA (github.com/Kevinz-code/CSRA, ResNet) and ASL's TResNet models
(github.com/Alibaba-MIIL/ASL: ``--method resnet-probabilistic``, M1's network of global average pooling and a
linear layer). The file is read with
``torch.load(weights_only=True)`` (never unpickled) or as safetensors; ``state_dict`` / ``model`` entries are
unwrapped, and an ML-Decoder checkpoint's ``idx_to_class`` gives the label names. Every converted tensor must fill the
model exactly (no key missing or left over), else the script names them and exits 2.
"""

import argparse
import importlib
import importlib.util
import json
import sys
from pathlib import Path

import mlic_hf  # noqa: F401  (registers the methods)
from mlic_hf.cli import script_entry
from mlic_hf.models import METHOD_PACKAGES
from mlic_hf.training.arguments import resolve_method


def converters() -> dict[str, object]:
    """model_type -> the converter module of every method with one (``mlic_hf/models/<pkg>/convert_<pkg>.py``)."""
    found = {}
    for package in METHOD_PACKAGES:
        name = f"mlic_hf.models.{package}.convert_{package}"
        if importlib.util.find_spec(name) is not None:
            module = importlib.import_module(name)
            found[importlib.import_module(f"mlic_hf.models.{package}").METHOD[0].model_type] = module
    return found


def read_checkpoint(path: str) -> tuple[dict, dict | None]:
    """(state dict, label names or None) of an official checkpoint file."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--checkpoint {path}: no such file")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(file), None
    import torch

    try:
        content = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors of all kinds: the file is not a plain tensor checkpoint
        raise OSError(f"--checkpoint {path}: cannot be read as a PyTorch checkpoint of tensors "
                      f"(torch.load(weights_only=True): {str(err).splitlines()[0]})") from err
    labels = None
    if isinstance(content, dict) and isinstance(content.get("idx_to_class"), dict):
        labels = {int(k): str(v) for k, v in content["idx_to_class"].items()}
    for key in ("state_dict", "model"):
        if isinstance(content, dict) and isinstance(content.get(key), dict):
            content = content[key]
            break
    if not isinstance(content, dict) or not all(hasattr(v, "shape") for v in content.values()):
        raise OSError(f"--checkpoint {path}: holds no state dict of tensors")
    return content, labels


def read_labels(path: str) -> dict[int, str]:
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"--labels {path}: no label names (one per line)")
    return dict(enumerate(lines))


def parse_options(items: list[str]) -> dict:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--option {item!r}: expected KEY=VALUE (VALUE as JSON, e.g. lam=0.1)")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value  # a bare word, e.g. backbone=tresnet_xl
    return options


@script_entry(ImportError)
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", required=True, help="model_type or short name (query2label, ml-decoder, csra, resnet-probabilistic)")
    parser.add_argument("--checkpoint", required=True, help="the official checkpoint file (.pth, .pkl, .safetensors)")
    parser.add_argument("--output_dir", required=True, help="folder for the mlic_hf checkpoint")
    parser.add_argument("--labels", help="text file of label names, one per line, in the checkpoint's order")
    parser.add_argument("--official_config", help="Query2Label: the official config.json of training arguments")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a converter option or config field (repeatable), e.g. lam=0.1, backbone=tresnet_xl")
    args = parser.parse_args(argv)
    config_class, model_class = resolve_method(args.method)
    available = converters()
    if config_class.model_type not in available:
        raise ValueError(f"--method {args.method}: no converter of official checkpoints (methods with one: "
                         f"{', '.join(sorted(available))})")
    options = parse_options(args.option)
    if args.official_config:
        options["official_config"] = args.official_config
    state, labels = read_checkpoint(args.checkpoint)
    if args.labels:
        labels = read_labels(args.labels)
    if labels is not None:
        options["id2label"] = labels
    config, weights = available[config_class.model_type].convert_checkpoint(state, source=args.checkpoint, **options)
    model = model_class(config)
    expected = model.state_dict()
    weights = {k: v for k, v in weights.items() if k in expected or not k.endswith("num_batches_tracked")}
    missing, unexpected = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ValueError(f"--checkpoint {args.checkpoint}: the converted weights do not fill {model_class.__name__}: "
                         f"missing {missing[:5]}, left over {unexpected[:5]}")
    model.load_state_dict(weights, strict=True)
    model.freeze_parameters()
    model.save_pretrained(args.output_dir)
    print(f"wrote {args.output_dir}: {config.model_type}, {config.backbone}, {config.num_labels} labels, "
          f"{sum(v.numel() for v in weights.values()) / 1e6:.1f} M values converted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
