"""Sharing trained mlic_hf checkpoints on the Hugging Face Hub: model cards, their plots, uploads.

- [`card`]: [`write_model_card`] renders ``model_card_template.md`` (in this package) into the checkpoint's
  ``README.md`` (Hub metadata with a ``model-index``, method and paper, architecture, training settings, metrics,
  per-class AP, plots, a usage snippet, limitations, citation);
- [`plots`]: the card's PNG plots (``plots/per_class_ap.png``, ``plots/precision_recall.png``);
- [`upload`]: [`files_to_upload`] lists what [`push_to_hub`] uploads (weights as safetensors, configs, card, plots,
  ``mlic_run.json``; never trainer checkpoints, optimizer/scheduler states or pickles); [`push_to_hub`] writes the
  card, creates the repository and uploads those files.

Nothing here knows a method: method specifics come from the config (``config.method_info``,
``config.model_card_sections()``).

Example:

```python
>>> from mlic_hf.hub import files_to_upload, push_to_hub, write_model_card
>>> write_model_card("outputs/demo", repo_id="me/mlic-demo")  # doctest: +SKIP
PosixPath('outputs/demo/README.md')
>>> files_to_upload("outputs/demo")  # doctest: +SKIP
['README.md', 'config.json', 'mlic_run.json', 'model.safetensors', 'plots/per_class_ap.png', ...]
>>> push_to_hub("outputs/demo", "me/mlic-demo")  # doctest: +SKIP
'https://huggingface.co/me/mlic-demo'
```
"""

from .card import (
    MODEL_CARD_TEMPLATE,
    PER_CLASS_AP_PLOT,
    PLOTS_DIR,
    PRECISION_RECALL_PLOT,
    PREDICTIONS_FILE,
    REQUIRED_FILES,
    RUN_FILE,
    check_checkpoint_dir,
    find_model_card_template,
    write_model_card,
)
from .upload import UPLOAD_ALLOW_PATTERNS, UPLOAD_IGNORE_PATTERNS, files_to_upload, push_to_hub


__all__ = [
    "MODEL_CARD_TEMPLATE",
    "PER_CLASS_AP_PLOT",
    "PLOTS_DIR",
    "PRECISION_RECALL_PLOT",
    "PREDICTIONS_FILE",
    "REQUIRED_FILES",
    "RUN_FILE",
    "UPLOAD_ALLOW_PATTERNS",
    "UPLOAD_IGNORE_PATTERNS",
    "check_checkpoint_dir",
    "files_to_upload",
    "find_model_card_template",
    "push_to_hub",
    "write_model_card",
]
