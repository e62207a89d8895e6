#!/usr/bin/env python
"""Export a checkpoint to ONNX (dynamic batch axis) and check onnxruntime against PyTorch on real images.

    python scripts/export_onnx.py --checkpoint outputs/demo --output_dir outputs/demo-onnx
    python scripts/export_onnx.py --checkpoint outputs/demo --output_dir onnx/ --check photos/ --atol 1e-4

Writes ``model.onnx``, ``config.json`` and ``preprocessor_config.json`` to ``--output_dir``; run it with
``mlic_hf.export.ONNXMultiLabelClassifier(output_dir)(images)``. ``--check`` (image files or folders) compares the
logits of onnxruntime and PyTorch and fails (exit 1) above ``--atol``. Needs ``pip install "mlic_hf[onnx]"``.
"""

import argparse
import sys

import mlic_hf  # noqa: F401
from mlic_hf.cli import script_entry
from mlic_hf.export import DEFAULT_OPSET, check_atol, check_export, export_onnx
from mlic_hf.inference import expand_inputs, load_checkpoint


@script_entry(ImportError)
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory or Hub id")
    parser.add_argument("--output_dir", required=True, help="folder for model.onnx and its configs")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument("--check", nargs="*", default=None, metavar="IMAGE",
                        help="image files/folders on which onnxruntime must match PyTorch")
    parser.add_argument("--atol", type=float, default=1e-4, help="largest allowed logit difference for --check")
    args = parser.parse_args(argv)
    check_atol(args.atol)  # before the export: a wrong tolerance is the flag's fault, not the export's
    if args.opset < 17:
        raise ValueError(f"--opset must be at least 17 (LayerNormalization), got {args.opset}")
    images = expand_inputs(args.check) if args.check else []
    if args.check is not None and not images:
        raise ValueError(f"--check found no image files in {args.check}")
    model, processor = load_checkpoint(args.checkpoint)
    path = export_onnx(model, args.output_dir, processor, opset=args.opset)
    print(f"wrote {path}")
    if images:  # a mismatch is an ExportMismatchError: exit status 1
        difference = check_export(model, args.output_dir, images, atol=args.atol)
        print(f"onnxruntime matches PyTorch on {len(images)} image(s): largest logit difference {difference:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
