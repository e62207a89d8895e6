"""A Gradio demo of an mlic_hf checkpoint: upload an image → every label's score, the labels above the checkpoint's
calibrated thresholds, and where in the image each predicted label was found (label maps).

Run it locally::

    python demo/app.py --checkpoint outputs/demo            # http://127.0.0.1:7860
    MLIC_CHECKPOINT=user/model python demo/app.py          # a Hub checkpoint

On Hugging Face Spaces: copy this folder into a Space (``sdk: gradio``; the front matter is in ``demo/README.md``)
and set the Space variable ``MLIC_CHECKPOINT`` to the model's Hub id. ``build_demo`` is importable for tests and
notebooks.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path


DEFAULT_CHECKPOINT = os.environ.get("MLIC_CHECKPOINT", "outputs/demo")
TITLE = "mlic_hf: multi-label image classification"


# A Hub model id ("user/model"), shown as it is; anything else is a local path, shown by its folder name only.
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*")


def checkpoint_display_name(checkpoint: str) -> str:
    """What the page shows of ``checkpoint``: a Hub id as is, a local checkpoint's folder name only (its absolute path
    would tell every visitor of a public demo about the server's file system)."""
    text = str(checkpoint)
    if _HUB_ID.fullmatch(text) and not os.path.isdir(text):
        return text
    return Path(text).resolve().name or Path(text).name or "checkpoint"


def header_markdown(checkpoint: str, method: str, num_labels: int, calibrated: bool) -> str:
    """The Markdown header of the app. The checkpoint's name and method come from files (a folder name, config.json)
    and are escaped (``escape_markdown``: no HTML, link, image or other Markdown syntax can come from them)."""
    from mlic_hf.hub.card import escape_markdown

    which = "calibrated per-class thresholds" if calibrated else "threshold 0.5 (not calibrated)"
    return (f"# {TITLE}\nCheckpoint <code>{escape_markdown(checkpoint_display_name(checkpoint))}</code> "
            f"({escape_markdown(method)}, {int(num_labels)} labels). Labels are predicted with the {which}; the maps "
            "show where each predicted label was found.")


class Predictor:
    """The checkpoint, its image processor and thresholds; ``__call__`` is the demo's one event handler."""

    def __init__(self, checkpoint: str, max_maps: int = 6) -> None:
        import mlic_hf  # noqa: F401  (registers the methods with the Auto classes)
        from mlic_hf.calibration import resolve_thresholds
        from mlic_hf.inference import load_checkpoint

        self.checkpoint = checkpoint
        self.model, self.processor = load_checkpoint(checkpoint)
        self.thresholds = resolve_thresholds(self.model.config)
        self.calibrated = getattr(self.model.config, "thresholds", None) is not None
        self.max_maps = max_maps

    def __call__(self, image):
        """(scores by label, the predicted labels as text, label-map overlays with captions) of a PIL image."""
        import gradio as gr

        from mlic_hf.explain import explain_images, overlay

        if image is None:
            raise gr.Error("Upload an image first.")
        (explanation,) = explain_images(self.model, [image], self.processor)
        scores = {name: float(s) for name, s in zip(explanation.label_names, explanation.scores)}
        shown = explanation.shown_labels(self.thresholds, self.max_maps)
        predicted = [i for i in shown if explanation.scores[i] >= self.thresholds[i]]
        text = ", ".join(f"{explanation.label_names[i]} ({explanation.scores[i]:.2f} ≥ {self.thresholds[i]:.2f})"
                         for i in predicted) or "no label above its threshold"
        gallery = [(overlay(explanation.image, explanation.maps[i]),
                    f"{explanation.label_names[i]} {explanation.scores[i]:.2f}") for i in shown]
        return scores, text, gallery


def build_demo(checkpoint: str = DEFAULT_CHECKPOINT, examples: list[str] | None = None):
    """The Gradio Blocks app of ``checkpoint`` (its API endpoint is ``/predict``)."""
    import gradio as gr

    predictor = Predictor(checkpoint)
    config = predictor.model.config
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(header_markdown(checkpoint, config.model_type, config.num_labels, predictor.calibrated))
        with gr.Row():
            image = gr.Image(type="pil", label="Image")
            with gr.Column():
                scores = gr.Label(num_top_classes=predictor.model.config.num_labels, label="Scores (every label)")
                labels = gr.Textbox(label="Predicted labels", interactive=False)
        maps = gr.Gallery(label="Label maps", columns=3, height="auto")
        button = gr.Button("Classify", variant="primary")
        button.click(predictor, inputs=image, outputs=[scores, labels, maps], api_name="predict")
        image.upload(predictor, inputs=image, outputs=[scores, labels, maps], api_name=False)
        if examples:
            gr.Examples(examples, inputs=image)
    return demo


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help="checkpoint folder or Hub id "
                        "(default: $MLIC_CHECKPOINT, else outputs/demo)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--examples", nargs="*", default=None, help="example image files shown under the app")
    args = parser.parse_args(argv)
    try:
        demo = build_demo(args.checkpoint, args.examples)
    except (ValueError, OSError, ImportError) as err:
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 2
    demo.launch(server_name=args.host, server_port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
