#!/usr/bin/env python
"""Predict labels for images or folders of images with a checkpoint.

    python scripts/predict.py --checkpoint outputs/demo photo.jpg more_photos/ --threshold 0.5
    python scripts/predict.py --checkpoint outputs/demo images/ --output predictions.jsonl
    python scripts/predict.py --checkpoint outputs/demo photo.jpg --explain maps/   # label maps on the image

Prints one line per image (labels above the threshold with their probabilities), or writes JSON lines with every
label's probability (``--output``). Without ``--threshold``, a checkpoint's calibrated per-class thresholds
(``scripts/calibrate_thresholds.py``; ``scripts/train.py`` saves them) decide, else 0.5. A bad flag, checkpoint or image file is reported in one line (``error: ...``,
exit code 2); ``--skip_bad`` skips unreadable images (including decompression bombs) instead. ``--explain DIR``
also writes ``DIR/<image>_labels.png`` per image: the image and a heat-map overlay of each predicted label's map
(:mod:`mlic_hf.explain`; what a map is depends on the method, see "Label maps" in docs/usage.md).
"""

import argparse
import json
import sys

import mlic_hf  # noqa: F401
from mlic_hf.cli import script_entry
from mlic_hf.file_utils import atomic_write
from mlic_hf.inference import check_prediction_options, load_checkpoint, predict_files


@script_entry()
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="image files and/or folders (searched recursively)")
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory or Hub id")
    parser.add_argument("--threshold", type=float, default=None, help=(
        "probability above which a label is predicted (default: the checkpoint's calibrated per-class thresholds, "
        "else 0.5)"))
    parser.add_argument("--top_k", type=int, default=None, help="report at most this many labels per image")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--skip_bad", action="store_true", help="skip unreadable files instead of stopping")
    parser.add_argument("--output", default=None, help="write JSON lines here instead of printing")
    parser.add_argument("--explain", default=None, metavar="DIR",
                        help="also write each image with its predicted labels' maps overlaid to DIR")
    args = parser.parse_args(argv)
    # the flags first: a bad one should not wait for the model to load
    check_prediction_options(args.threshold, args.top_k, args.batch_size)
    model, processor = load_checkpoint(args.checkpoint)
    results, skipped = predict_files(
        model, args.inputs, threshold=args.threshold, top_k=args.top_k, batch_size=args.batch_size,
        skip_bad=args.skip_bad, processor=processor,
    )
    report(results, args.output)
    if args.explain:
        from mlic_hf.explain import explain_files

        written = explain_files(model, [r["file"] for r in results], args.explain, threshold=args.threshold,
                                processor=processor)
        print(f"wrote {len(written)} label-map figure(s) to {args.explain}")
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    return 0


def report(results: list[dict], output: str | None) -> None:
    """Write the results as JSON lines to ``output``, or print one line per image."""
    if output:
        with atomic_write(output, "w") as handle:
            for result in results:
                handle.write(json.dumps(result) + "\n")
        print(f"wrote {len(results)} predictions to {output}")
        return
    for result in results:
        shown = ", ".join(f"{name} ({result['scores'][name]:.3f})" for name in result["labels"]) or "-"
        print(f"{result['file']}: {shown}")


if __name__ == "__main__":
    sys.exit(main())
