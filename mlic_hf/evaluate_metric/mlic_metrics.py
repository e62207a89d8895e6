"""`evaluate` metric for multi-label image classification: mAP, CP/CR/CF1, OP/OR/OF1 and their top-k variants.

Load it offline from the installed package::

    import evaluate
    from mlic_hf.metrics import evaluate_module_path

    metric = evaluate.load(evaluate_module_path())

The computation is delegated to `mlic_hf.metrics.multilabel_metrics` (vectorised NumPy).
"""

import datasets
import evaluate
import numpy as np

from mlic_hf.metrics import AP_MODES, multilabel_metrics


_DESCRIPTION = """\
Standard metrics of multi-label image classification (MS-COCO, PASCAL VOC, NUS-WIDE, ...):

- mAP: mean over classes of the average precision (AP) of the ranking of the images by score. Classes without a
  positive reference are excluded (with a warning). Three AP conventions: "non_interpolated" (default; identical to
  scikit-learn's `average_precision_score`, as used by ASL / ML-Decoder), "interpolated" (PASCAL VOC 2010+ all-point
  interpolation, as used by Query2Label) and "11point" (PASCAL VOC 2007).
- CP, CR, CF1 (per-class precision / recall averaged over classes, and their F1) and OP, OR, OF1 (overall precision /
  recall over all labels, and their F1) of the labels whose probability is >= `threshold`, with the ML-GCN / ASL
  conventions (a class without predicted positives has precision 0, without positive references recall 0).
- CP_top{k}, ..., OF1_top{k}: the same for labels that are among the k highest-scoring of their image and have a
  probability >= `threshold` (ML-GCN "top-3" convention).

All values are fractions in [0, 1] (multiply by 100 for the usual percentages).
"""

_CITATION = """\
@article{everingham2010pascal,
  title   = {The Pascal Visual Object Classes (VOC) Challenge},
  author  = {Everingham, Mark and Van Gool, Luc and Williams, Christopher K. I. and Winn, John and Zisserman, Andrew},
  journal = {International Journal of Computer Vision},
  volume  = {88},
  number  = {2},
  pages   = {303--338},
  year    = {2010}
}
@inproceedings{chen2019multi,
  title     = {Multi-Label Image Recognition with Graph Convolutional Networks},
  author    = {Chen, Zhao-Min and Wei, Xiu-Shen and Wang, Peng and Guo, Yanwen},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages     = {5177--5186},
  year      = {2019}
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`, shape (num_images, num_classes)):
        Scores of every class for every image: probabilities (default) or logits (set `scores_are_logits=True`).
        mAP only depends on the ordering of the scores; the thresholded metrics need probabilities.
    references (`list` of `list` of `int`, shape (num_images, num_classes)):
        Ground truth, 1 = the label is present, 0 = absent. Negative values (e.g. -1 for PASCAL VOC "difficult"
        labels, or the -100 padding value) mark entries that are ignored by every metric.
    threshold (`float`, *optional*, defaults to 0.5): probability threshold of the thresholded metrics.
    top_k (`int`, *optional*, defaults to 3): k of the `*_top{k}` metrics; `None` skips them.
    ap_mode (`str`, *optional*, defaults to `"non_interpolated"`): one of "non_interpolated", "interpolated",
        "11point".
    scores_are_logits (`bool`, *optional*, defaults to `False`): apply a sigmoid before thresholding.

Returns:
    `dict`: `"mAP"`, `"CP"`, `"CR"`, `"CF1"`, `"OP"`, `"OR"`, `"OF1"` and (unless `top_k` is None) the same six with
    suffix `_top{k}`, as floats in [0, 1]; `"per_class_AP"`: a list with the AP of every class (NaN for classes without
    a positive reference).

Examples:

    >>> import evaluate
    >>> from mlic_hf.metrics import evaluate_module_path
    >>> metric = evaluate.load(evaluate_module_path())
    >>> results = metric.compute(
    ...     predictions=[[0.9, 0.2], [0.4, 0.7], [0.8, 0.1]], references=[[1, 0], [0, 1], [1, 1]], top_k=1
    ... )
    >>> round(results["mAP"], 4)
    0.9167
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MlicMetrics(evaluate.Metric):
    """Multi-label image classification metrics (mAP, CP/CR/CF1, OP/OR/OF1, top-k variants)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("int32")),
                }
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.average_precision_score.html",
                "http://host.robots.ox.ac.uk/pascal/VOC/",
            ],
        )

    def _compute(
        self,
        predictions,
        references,
        threshold: float = 0.5,
        top_k=3,
        ap_mode: str = "non_interpolated",
        scores_are_logits: bool = False,
    ) -> dict:
        if ap_mode not in AP_MODES:
            raise ValueError(f"Unknown `ap_mode` {ap_mode!r}; expected one of {list(AP_MODES)}.")
        scores = np.asarray(predictions, dtype=np.float32)
        labels = np.asarray(references, dtype=np.int64)
        if scores.ndim != 2 or labels.shape != scores.shape:
            raise ValueError(
                "`predictions` and `references` must be 2-D with the same shape (num_images, num_classes), got "
                f"{scores.shape} and {labels.shape}."
            )
        ignore_mask = labels < 0
        results = multilabel_metrics(
            scores,
            np.where(ignore_mask, 0, labels),
            threshold=threshold,
            top_k=top_k,
            ignore_mask=ignore_mask if ignore_mask.any() else None,
            ap_mode=ap_mode,
            scores_are_logits=scores_are_logits,
        )
        per_class_ap = results.pop("per_class_AP")
        output = {key: float(value) for key, value in results.items()}
        output["per_class_AP"] = [float(value) for value in per_class_ap]
        return output
