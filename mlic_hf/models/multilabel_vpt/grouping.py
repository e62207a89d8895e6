"""Label grouping of ML-VPT (method M3): co-occurrence (CO) and discriminative (DC) label groups.

Lives with the method in ``mlic_hf/models/multilabel_vpt/``.

ML-VPT (Ma et al., "Correlative and Discriminative Label Grouping for Multi-Label Visual Prompt Tuning", section 3.3)
adopts the task decomposition of CPSD (Xu et al., IJCAI 2022): the ``K`` labels are split twice into ``N_c`` groups by
spectral clustering, once on a co-occurrence graph (labels that appear together end up in the same *CO* group) and
once on its complement, the dis-occurrence graph (labels that rarely appear together end up in the same *DC* group, so
labels that do co-occur are spread over different DC groups).

The pipeline, one function per step:

1. :func:`cooccurrence_counts`: ``counts[i, j]`` = number of training samples in which labels ``i`` and ``j`` are
   both positive (``counts[j, j]`` = number of samples in which ``j`` is positive). Entries ``< 0`` of the label
   matrix (unknown / ignored labels, e.g. VOC "difficult") are *not observed* and never counted.
2. :func:`conditional_probabilities`: ``S[i, j] = P(label i | label j) = counts[i, j] / counts[j, j]`` (column ``j`` is
   conditioned on label ``j``; ``S`` is not symmetric and its diagonal is 1).
3. :func:`affinity_matrices`: equation 5 of the paper, with ``R = S ** (1 / tau)`` element-wise,
   ``M_plus = (R + R.T) / 2`` (CO graph) and ``M_minus = 1 - M_plus`` (DC graph); see the function for why the
   complement is taken with the all-ones matrix rather than the identity written in eq. 5.
4. :func:`spectral_groups`: :class:`sklearn.cluster.SpectralClustering` on a precomputed affinity, seeded, with several
   k-means initialisations, relabelled canonically; with ``n_runs > 1``, the best of that many seeded clusterings by
   Calinski-Harabasz score, as CPSD's partition code keeps the best of its runs.

:func:`compute_label_groups` runs all of it and returns a :class:`LabelGroups`, whose
:meth:`LabelGroups.to_config_kwargs` gives the ``co_groups`` / ``dc_groups`` lists stored in the M3 model config (so
a checkpoint is self-contained).
:func:`groups_from_dataset` reads the label matrix of an ``mlic_hf`` dataset split
(:func:`mlic_hf.data.label_matrix.label_matrix_from_dataset`, no image decoded); ``scripts/compute_label_groups.py`` is the command-line front end.

Example (three blocks of two labels that appear together, plus two samples mixing blocks):

```python
>>> from mlic_hf.models.multilabel_vpt.grouping import compute_label_groups
>>> rows = [[1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1]] * 20 + [[1, 0, 0, 1, 0, 0], [0, 0, 1, 0, 0, 1]]
>>> groups = compute_label_groups(rows, num_groups=3)
>>> groups.co                                   # CO groups = the blocks
(0, 0, 1, 1, 2, 2)
>>> groups.partition("dc")                      # DC groups: labels of a block are spread over different groups
[(0, 5), (1, 3), (2, 4)]
>>> groups.to_config_kwargs()
{'co_groups': [0, 0, 1, 1, 2, 2], 'dc_groups': [0, 1, 2, 1, 2, 0]}

```
"""

from __future__ import annotations

import logging
import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...data.label_matrix import label_matrix_from_dataset

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_NUM_GROUPS",
    "DEFAULT_TAU",
    "GROUP_KINDS",
    "LabelGroups",
    "affinity_matrices",
    "compute_label_groups",
    "conditional_probabilities",
    "cooccurrence_counts",
    "groups_from_dataset",
        "observed_pair_counts",
    "spectral_groups",
]

#: Number of CO and of DC groups used by the paper (``N_c``).
DEFAULT_NUM_GROUPS = 5
#: The root of eq. 5; CPSD's partition code takes the square root.
DEFAULT_TAU = 2.0
#: The two kinds of groups, as accepted by :meth:`LabelGroups.members`.
GROUP_KINDS = ("co", "dc")

# Relative tolerance of the symmetry / range checks on user-supplied matrices.
_ATOL = 1e-8


# ----------------------------------------------------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------------------------------------------------


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return value


def _check_seed(seed: Any) -> int:
    seed = _check_int(seed, "seed", 0)
    if seed >= 2**32:
        raise ValueError(f"seed: expected an integer in [0, 2**32), got {seed}")
    return seed


def _check_tau(tau: Any) -> float:
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real):
        raise TypeError(f"tau: expected a positive number, got {tau!r} ({type(tau).__name__})")
    tau = float(tau)
    if not math.isfinite(tau) or tau <= 0:
        raise ValueError(f"tau: expected a finite number > 0, got {tau}")
    return tau


def _as_square(matrix: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected a numeric (K, K) matrix ({err})") from None
    if array.ndim != 2 or array.shape[0] != array.shape[1] or array.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty square (K, K) matrix, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return array


def _first_index(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _as_label_matrix(labels: Any) -> np.ndarray:
    """``labels`` as a float64 ``(N, K)`` array of 0 / 1 / negative (= not observed) values, or a ``ValueError``."""
    if hasattr(labels, "detach") and hasattr(labels, "cpu"):  # torch.Tensor, without importing torch
        labels = labels.detach().cpu().numpy()
    try:
        array = np.asarray(labels)
    except ValueError as err:  # ragged nested lists
        raise ValueError(f"labels: expected an (N, K) matrix of 0/1 values, could not convert it ({err})") from None
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(
            "labels: expected an (N, K) numeric matrix of 0/1 values (negative = not observed), "
            f"got dtype {array.dtype}"
        )
    if array.ndim != 2:
        raise ValueError(f"labels: expected an (N, K) matrix (N samples, K labels), got shape {array.shape}")
    num_samples, num_labels = array.shape
    if num_samples == 0:
        raise ValueError("labels: the label matrix has no rows (no samples to count co-occurrences in)")
    if num_labels == 0:
        raise ValueError("labels: the label matrix has no columns (no labels)")
    array = array.astype(np.float64, copy=False)
    if np.isnan(array).any():
        position = _first_index(np.isnan(array))
        raise ValueError(
            f"labels: NaN at (sample {position[0]}, label {position[1]}); mark unknown labels with a negative value "
            "(e.g. -1) instead"
        )
    bad = ~((array == 0) | (array == 1) | (array < 0))
    if bad.any():
        position = _first_index(bad)
        raise ValueError(
            "labels: expected 0 (negative), 1 (positive) or a value < 0 (not observed), "
            f"got {float(array[position]):g} at "
            f"(sample {position[0]}, label {position[1]})"
        )
    return array


# ----------------------------------------------------------------------------------------------------------------------
# Co-occurrence statistics
# ----------------------------------------------------------------------------------------------------------------------


def cooccurrence_counts(labels: Any) -> np.ndarray:
    """Label co-occurrence counts of a label matrix.

    Args:
        labels: an ``(N, K)`` array-like (NumPy array, nested lists, ``torch.Tensor``) with 1 = positive, 0 = negative
            and any value ``< 0`` = not observed (unknown or ignored label, e.g. VOC "difficult" or partial labels).
            Booleans are accepted. Any other value (e.g. 0.5, 2, NaN) raises a ``ValueError`` naming its position.

    Returns:
        An ``int64`` ``(K, K)`` symmetric matrix: ``counts[i, j]`` is the number of samples in which labels ``i`` and
        ``j`` are both positive; the diagonal ``counts[j, j]`` is the number of samples in which ``j`` is positive.
        Unobserved entries are never counted.
    """
    array = _as_label_matrix(labels)
    positive = (array == 1).astype(np.float64)
    # A float64 BLAS product is exact for counts below 2**53 and much faster than an integer matmul.
    return np.rint(positive.T @ positive).astype(np.int64)


def observed_pair_counts(labels: Any) -> np.ndarray:
    """The denominators of :func:`conditional_probabilities` for partially labelled data.

    Returns an ``int64`` ``(K, K)`` matrix whose ``[i, j]`` entry is the number of samples in which label ``j`` is
    positive *and* label ``i`` is observed (value 0 or 1, not ``< 0``). Without unobserved entries every column ``j``
    equals ``counts[j, j]`` of :func:`cooccurrence_counts`.
    """
    array = _as_label_matrix(labels)
    observed = (array >= 0).astype(np.float64)
    positive = (array == 1).astype(np.float64)
    return np.rint(observed.T @ positive).astype(np.int64)


def conditional_probabilities(counts: Any, observed: Any | None = None) -> np.ndarray:
    """Conditional label probabilities from co-occurrence counts.

    Orientation: ``S[i, j] = P(label i | label j) = counts[i, j] / counts[j, j]``, i.e. column ``j`` is conditioned
    on label ``j`` (the orientation of CPSD's ``adj / nums``). ``S`` is not symmetric in general; the diagonal is 1.

    Args:
        counts: the ``(K, K)`` output of :func:`cooccurrence_counts` (symmetric, non-negative,
            ``counts[i, j] <= counts[j, j]``).
        observed: optional ``(K, K)`` denominators from :func:`observed_pair_counts`; with unobserved label entries,
            ``S[i, j] = counts[i, j] / observed[i, j]`` estimates ``P(i | j)`` only from the samples where label ``i``
            is known (instead of counting an unknown ``i`` as absent). ``None`` uses ``counts[j, j]``.

    Returns:
        The float64 ``(K, K)`` matrix ``S``, values in ``[0, 1]``.

    Degenerate labels: a label ``j`` that is never positive (``counts[j, j] == 0``) gets ``P(i | j) = 0`` for every
    ``i != j`` (an all-zero column apart from ``S[j, j] = 1``); its row is 0 as well since it co-occurs with nothing.
    More generally a zero denominator gives a 0 probability.
    """
    counts = _as_square(counts, "counts")
    if (counts < 0).any():
        position = _first_index(counts < 0)
        raise ValueError(f"counts: must be non-negative, got {counts[position]:g} at {position}")
    if not np.allclose(counts, counts.T, rtol=0, atol=_ATOL):
        raise ValueError("counts: a co-occurrence count matrix must be symmetric (counts[i, j] == counts[j, i])")
    diagonal = np.diag(counts)
    if observed is None:
        denominators = np.broadcast_to(diagonal[None, :], counts.shape)
        denominator_name = "counts[j, j]"
    else:
        denominators = _as_square(observed, "observed")
        if denominators.shape != counts.shape:
            raise ValueError(f"observed: expected shape {counts.shape} (the shape of counts), got {denominators.shape}")
        if not np.allclose(np.diag(denominators), diagonal, rtol=0, atol=_ATOL):
            raise ValueError("observed: its diagonal must equal the diagonal of counts (samples where j is positive)")
        denominator_name = "observed[i, j]"
    too_large = counts > denominators + _ATOL
    if too_large.any():
        i, j = _first_index(too_large)
        raise ValueError(
            f"counts: counts[{i}, {j}] = {counts[i, j]:g} exceeds {denominator_name} = {denominators[i, j]:g}; "
            "not a co-occurrence count matrix"
        )
    probabilities = np.divide(counts, denominators, out=np.zeros_like(counts), where=denominators > 0)
    np.fill_diagonal(probabilities, 1.0)
    return np.clip(probabilities, 0.0, 1.0)


def affinity_matrices(probabilities: Any, tau: float = DEFAULT_TAU) -> tuple[np.ndarray, np.ndarray]:
    """The CO and DC affinity matrices of equation 5.

    With ``R = S ** (1 / tau)`` (element-wise ``tau``-th root, which lifts small probabilities so that rare but
    real co-occurrences still count):

    - ``M_plus = (R + R.T) / 2``: co-occurrence graph ``G+`` (symmetric, values in ``[0, 1]``, diagonal 1);
    - ``M_minus = 1 - M_plus``: dis-occurrence graph ``G-`` (symmetric, values in ``[0, 1]``, diagonal 0).

    Which complement: eq. 5 writes ``M- = I - (...)``. Read with ``I`` the identity matrix, every off-diagonal
    affinity would be ``<= 0``, which is not a valid affinity for spectral clustering (scikit-learn requires
    non-negative weights, and the graph would carry no "dis-occurrence" information). CPSD's public partition code
    (github.com/Robbie-Xu/CPSD, ``partition/generate_with_adj.py``), whose grouping the paper adopts, computes the DGP
    affinity as ``1 - sqrt(P)`` element-wise before symmetrising, i.e. the complement with respect to the all-ones
    matrix; we do the same, so ``I`` in eq. 5 is read as the all-ones matrix ``J``. ``1 - (R + R.T) / 2`` equals
    CPSD's ``((1 - R) + (1 - R).T) / 2``.

    Diagonal: it follows from ``S[j, j] = 1`` (``M_plus`` diagonal 1, ``M_minus`` diagonal 0). It has no effect on
    the groups: scikit-learn's spectral embedding builds the normalised graph Laplacian with
    ``scipy.sparse.csgraph.laplacian``, which ignores (zeroes) the diagonal of the affinity. (CPSD's counts come from
    ML-GCN's ``adj.pkl``, whose diagonal is, as far as we know, 0, i.e. diagonal 0 / 1 instead; equally irrelevant.)

    Args:
        probabilities: the ``(K, K)`` matrix ``S`` of :func:`conditional_probabilities` (values in ``[0, 1]``).
        tau: the root (``tau > 0``); 2 (square root) as in CPSD. ``tau = 1`` uses the probabilities as they are.

    Returns:
        ``(M_plus, M_minus)``, two float64 ``(K, K)`` symmetric matrices.
    """
    tau = _check_tau(tau)
    probabilities = _as_square(probabilities, "probabilities")
    if (probabilities < -_ATOL).any() or (probabilities > 1 + _ATOL).any():
        bad = (probabilities < -_ATOL) | (probabilities > 1 + _ATOL)
        raise ValueError(
            f"probabilities: expected values in [0, 1], got {probabilities[_first_index(bad)]:g} at {_first_index(bad)}"
        )
    root = np.clip(probabilities, 0.0, 1.0) ** (1.0 / tau)
    m_plus = (root + root.T) / 2.0
    m_minus = np.clip(1.0 - m_plus, 0.0, 1.0)
    return m_plus, m_minus


# ----------------------------------------------------------------------------------------------------------------------
# Spectral clustering
# ----------------------------------------------------------------------------------------------------------------------


def _canonical_groups(assignment: np.ndarray) -> np.ndarray:
    """Renumber group ids in order of the smallest label index they contain (label 0 is always in group 0)."""
    mapping: dict[int, int] = {}
    out = np.empty(len(assignment), dtype=np.int64)
    for index, group in enumerate(assignment.tolist()):
        out[index] = mapping.setdefault(int(group), len(mapping))
    return out


def spectral_groups(affinity: Any, num_groups: int, seed: int = 0, n_init: int = 10, n_runs: int = 1) -> np.ndarray:
    """Split ``K`` labels into ``num_groups`` groups by spectral clustering of a precomputed affinity matrix.

    Uses ``sklearn.cluster.SpectralClustering(n_clusters=num_groups, affinity="precomputed", random_state=seed,
    n_init=n_init, assign_labels="kmeans")`` (normalised-cut spectral embedding, then k-means with ``n_init``
    initialisations; the one of lowest inertia is kept). The result is deterministic for a given seed.

    With ``n_runs > 1`` the clustering is run with the seeds ``seed, seed + 1, ..., seed + n_runs - 1`` and the run
    with the highest Calinski-Harabasz score is kept (the first of equal scores), the score computed by
    ``sklearn.metrics.calinski_harabasz_score`` with the *affinity rows* as the points, as CPSD's partition code does
    (github.com/Robbie-Xu/CPSD, ``partition/generate_with_adj.py``, ``turn_arg``: ``calinski_harabasz_score(X,
    pred_y)`` with ``X`` the affinity matrix, not the spectral embedding). Runs that leave a group empty are skipped.
    This matters for the DC graph, where many partitions have almost the same normalised cut and single runs differ
    from seed to seed.

    Remaining differences from CPSD: it runs the clustering unseeded with ``n_init=20`` four times (its loop over
    ``gamma`` has no effect with a precomputed affinity), so ``n_runs=4, n_init=20`` is its procedure, seeded.

    Group ids are canonical: groups are numbered in order of the smallest label index they contain (label 0 is in
    group 0, the first label not in group 0 is in group 1, ...), so equal partitions give equal arrays.

    Trivial cases skip the clustering: ``num_groups == 1`` puts every label in group 0 and ``num_groups == K`` gives
    every label its own group.

    Args:
        affinity: a symmetric, non-negative ``(K, K)`` matrix (the diagonal is ignored).
        num_groups: number of groups, ``1 <= num_groups <= K``.
        seed: seed of the eigen-solver start vector and of k-means (``0 <= seed < 2**32``); run ``r`` uses
            ``seed + r``.
        n_init: number of k-means initialisations (``>= 1``).
        n_runs: number of seeded clusterings to choose from by Calinski-Harabasz score (``>= 1``; 1 = one run).

    Returns:
        An ``int64`` array of shape ``(K,)`` with the group id (``0 .. num_groups - 1``) of every label; every id is
        used.

    Raises:
        ValueError: on an invalid affinity, ``num_groups`` outside ``[1, K]``, a graph without any edge, or when
            every run yields fewer distinct groups than requested (use fewer groups).
    """
    num_groups = _check_int(num_groups, "num_groups", 1)
    seed = _check_seed(seed)
    n_init = _check_int(n_init, "n_init", 1)
    n_runs = _check_int(n_runs, "n_runs", 1)
    if seed + n_runs > 2**32:
        raise ValueError(f"seed + n_runs must be at most 2**32 (run r uses seed + r), got {seed} + {n_runs}")
    affinity = _as_square(affinity, "affinity")
    num_labels = affinity.shape[0]
    if (affinity < 0).any():
        position = _first_index(affinity < 0)
        raise ValueError(f"affinity: must be non-negative, got {affinity[position]:g} at {position}")
    if not np.allclose(affinity, affinity.T, rtol=1e-6, atol=_ATOL):
        raise ValueError("affinity: must be symmetric")
    if num_groups > num_labels:
        raise ValueError(
            f"cannot split {num_labels} labels into {num_groups} groups: num_groups must be <= the number of labels "
            f"({num_labels})"
        )
    if num_groups == 1:
        return np.zeros(num_labels, dtype=np.int64)
    if num_groups == num_labels:
        return np.arange(num_labels, dtype=np.int64)
    off_diagonal = affinity[~np.eye(num_labels, dtype=bool)]
    if not (off_diagonal > 0).any():
        raise ValueError(
            "affinity: every off-diagonal entry is 0, the graph has no edges and cannot be clustered (for the CO "
            "graph: no two labels ever appear together; for the DC graph: every pair of labels always appears together)"
        )
    try:
        from sklearn.cluster import SpectralClustering
        from sklearn.metrics import calinski_harabasz_score
    except ImportError as err:  # scikit-learn is only a development dependency of mlic_hf
        raise ImportError("label grouping needs scikit-learn: pip install scikit-learn") from err

    best, best_score, best_seed, found = None, -math.inf, seed, 0
    messages: dict[str, None] = {}
    for run_seed in range(seed, seed + n_runs):
        clustering = SpectralClustering(
            n_clusters=num_groups,
            affinity="precomputed",
            assign_labels="kmeans",
            random_state=run_seed,
            n_init=n_init,
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assignment = clustering.fit_predict(affinity)
        messages.update(dict.fromkeys(str(warning.message) for warning in caught))
        groups = _canonical_groups(np.asarray(assignment))
        found = max(found, int(groups.max()) + 1)
        if int(groups.max()) + 1 != num_groups:
            continue
        if n_runs == 1:
            best = groups
            break
        score = float(calinski_harabasz_score(affinity, groups))
        if score > best_score:  # strictly: the first of equal scores stays
            best, best_score, best_seed = groups, score, run_seed
    for message in messages:  # e.g. "Graph is not fully connected": report it through logging, once per message
        logger.warning("spectral clustering (%d labels, %d groups): %s", num_labels, num_groups, message)
    if best is None:
        raise ValueError(
            f"spectral clustering found only {found} of the {num_groups} requested groups for {num_labels} labels "
            f"(some groups would be empty){f' in each of {n_runs} runs' if n_runs > 1 else ''}; use fewer groups "
            f"(num_groups <= {found})"
        )
    if n_runs > 1:
        logger.info("spectral clustering: best of %d runs is seed %d (Calinski-Harabasz score %.4g)", n_runs,
                    best_seed, best_score)
    return best


# ----------------------------------------------------------------------------------------------------------------------
# The result
# ----------------------------------------------------------------------------------------------------------------------


def _check_assignment(values: Any, name: str, num_groups: int) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise TypeError(f"{name}: expected a sequence of group ids (one per label), got {type(values).__name__}")
    out = []
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name}[{index}]: expected an integer group id, got {value!r}")
        value = int(value)
        if not 0 <= value < num_groups:
            raise ValueError(f"{name}[{index}]: group id {value} is outside [0, {num_groups})")
        out.append(value)
    if not out:
        raise ValueError(f"{name}: expected one group id per label, got an empty sequence")
    missing = sorted(set(range(num_groups)) - set(out))
    if missing:
        raise ValueError(f"{name}: groups {missing} have no label (every group id 0..{num_groups - 1} must be used)")
    return tuple(out)


@dataclass(frozen=True)
class LabelGroups:
    """CO and DC label groups of a training set (the output of :func:`compute_label_groups`).

    Attributes:
        co: the CO group id of every label (``co[k]`` in ``0 .. num_groups - 1``).
        dc: the DC group id of every label.
        num_groups: number of groups of each kind (``N_c``).
        tau: the root of eq. 5 used to compute them.
        seed: the spectral-clustering seed used.
        n_init: the number of k-means initialisations used.
        n_runs: the number of seeded clusterings the groups were chosen from (by Calinski-Harabasz score).

    Group ids are canonical (numbered by the smallest label index they contain) and every id is used.
    """

    co: tuple[int, ...]
    dc: tuple[int, ...]
    num_groups: int
    tau: float
    seed: int
    n_init: int = 10
    n_runs: int = 1

    def __post_init__(self) -> None:
        num_groups = _check_int(self.num_groups, "num_groups", 1)
        object.__setattr__(self, "num_groups", num_groups)
        object.__setattr__(self, "tau", _check_tau(self.tau))
        object.__setattr__(self, "seed", _check_seed(self.seed))
        object.__setattr__(self, "n_init", _check_int(self.n_init, "n_init", 1))
        object.__setattr__(self, "n_runs", _check_int(self.n_runs, "n_runs", 1))
        co = _check_assignment(self.co, "co", num_groups)
        dc = _check_assignment(self.dc, "dc", num_groups)
        if len(co) != len(dc):
            raise ValueError(f"co and dc must have one group id per label each, got {len(co)} and {len(dc)} labels")
        object.__setattr__(self, "co", co)
        object.__setattr__(self, "dc", dc)

    @property
    def num_labels(self) -> int:
        """Number of labels ``K``."""
        return len(self.co)

    def assignment(self, kind: str) -> tuple[int, ...]:
        """The per-label group ids of ``kind`` (``"co"`` or ``"dc"``, case-insensitive)."""
        key = str(kind).lower()
        if key not in GROUP_KINDS:
            raise ValueError(f"kind: expected one of {GROUP_KINDS}, got {kind!r}")
        return self.co if key == "co" else self.dc

    def members(self, kind: str, group: int) -> tuple[int, ...]:
        """The label indices (ascending) in group ``group`` of ``kind`` (``"co"`` or ``"dc"``)."""
        assignment = self.assignment(kind)
        group = _check_int(group, "group", 0)
        if group >= self.num_groups:
            raise ValueError(f"group: expected 0 <= group < {self.num_groups}, got {group}")
        return tuple(index for index, value in enumerate(assignment) if value == group)

    def partition(self, kind: str) -> list[tuple[int, ...]]:
        """All groups of ``kind`` as lists of label indices: ``[members(kind, 0), members(kind, 1), ...]``."""
        return [self.members(kind, group) for group in range(self.num_groups)]

    def to_config_kwargs(self) -> dict[str, list[int]]:
        """``{"co_groups": [...], "dc_groups": [...]}``: the per-label group ids as stored in the M3 model config."""
        return {"co_groups": list(self.co), "dc_groups": list(self.dc)}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (plain ints, floats and lists); :meth:`from_dict` reads it back."""
        return {
            "co": list(self.co),
            "dc": list(self.dc),
            "num_groups": self.num_groups,
            "tau": self.tau,
            "seed": self.seed,
            "n_init": self.n_init,
            "n_runs": self.n_runs,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelGroups:
        """Inverse of :meth:`to_dict`. Unknown keys (e.g. ``id2label`` written by the script) are ignored; the
        config spelling ``co_groups`` / ``dc_groups`` is accepted for ``co`` / ``dc``."""
        if not isinstance(data, Mapping):
            raise TypeError(f"LabelGroups.from_dict: expected a mapping, got {type(data).__name__}")
        values: dict[str, Any] = {}
        for key, alias in (("co", "co_groups"), ("dc", "dc_groups")):
            if key in data:
                values[key] = data[key]
            elif alias in data:
                values[key] = data[alias]
        missing = [key for key in ("co", "dc", "num_groups", "tau", "seed") if key not in values and key not in data]
        if missing:
            raise ValueError(f"LabelGroups.from_dict: missing keys {missing} (got {sorted(data)})")
        for key in ("num_groups", "tau", "seed", "n_init", "n_runs"):
            if key in data:
                values[key] = data[key]
        return cls(**values)


# ----------------------------------------------------------------------------------------------------------------------
# The whole pipeline
# ----------------------------------------------------------------------------------------------------------------------


def _assign_to_smallest(assignment: np.ndarray, known: np.ndarray, num_groups: int) -> np.ndarray:
    """Give every label with ``known == False`` the currently smallest group (ties: the lowest group id)."""
    out = assignment.copy()
    sizes = np.bincount(out[known], minlength=num_groups)
    for index in np.flatnonzero(~known):
        group = int(np.argmin(sizes))
        out[index] = group
        sizes[group] += 1
    return out


def compute_label_groups(
    labels: Any,
    num_groups: int = DEFAULT_NUM_GROUPS,
    tau: float = DEFAULT_TAU,
    seed: int = 0,
    n_init: int = 10,
    n_runs: int = 1,
) -> LabelGroups:
    """CO and DC label groups of a training label matrix (section 3.3 / eq. 5 of the ML-VPT paper).

    Steps: :func:`cooccurrence_counts` -> :func:`conditional_probabilities` (with :func:`observed_pair_counts` as
    denominators, which equals ``counts[j, j]`` when every entry is observed) -> :func:`affinity_matrices` ->
    :func:`spectral_groups` on ``M_plus`` (CO groups) and on ``M_minus`` (DC groups), same seed for both.

    Degenerate inputs:

    - fewer labels than groups: ``ValueError`` naming both numbers;
    - labels never observed positive (``counts[j, j] == 0``): they carry no co-occurrence information and would be
      isolated nodes of the CO graph (a disconnected graph makes spectral clustering spend a group on them). Fallback:
      a warning naming their indices is logged, the *other* labels are clustered, and then each never-seen label (in
      index order) joins the currently smallest CO group and the currently smallest DC group (ties: lowest group id).
      If fewer than ``num_groups`` labels were ever seen, a ``ValueError`` is raised;
    - a clustering that leaves a group empty, or a graph with no edge at all: ``ValueError`` (see
      :func:`spectral_groups`), suggesting fewer groups.

    Args:
        labels: ``(N, K)`` label matrix of the *training* split: 1 positive, 0 negative, ``< 0`` not observed.
        num_groups: ``N_c``, number of CO groups and of DC groups (``>= 1``); 5 in the paper.
        tau: root of eq. 5 (``> 0``); 2 as in CPSD.
        seed: spectral-clustering seed; the same inputs and seed give the same groups.
        n_init: k-means initialisations of each spectral clustering.
        n_runs: seeded clusterings of each graph to keep the best of by Calinski-Harabasz score (see
            :func:`spectral_groups`); 1 = a single run.

    Returns:
        A :class:`LabelGroups`.
    """
    num_groups = _check_int(num_groups, "num_groups", 1)
    tau = _check_tau(tau)
    seed = _check_seed(seed)
    n_init = _check_int(n_init, "n_init", 1)
    n_runs = _check_int(n_runs, "n_runs", 1)
    array = _as_label_matrix(labels)
    num_samples, num_labels = array.shape
    if num_labels < num_groups:
        raise ValueError(
            f"cannot split {num_labels} labels into {num_groups} groups: there must be at least as many labels as "
            f"groups (use num_groups <= {num_labels})"
        )
    counts = cooccurrence_counts(array)
    observed = observed_pair_counts(array)
    seen = np.diag(counts) > 0
    num_seen = int(seen.sum())
    if num_seen < num_labels:
        unseen = np.flatnonzero(~seen).tolist()
        logger.warning(
            "%d of %d labels are never positive in the %d samples (label indices %s): they are left out of the "
            "clustering and each joins the smallest CO and DC group",
            len(unseen),
            num_labels,
            num_samples,
            unseen,
        )
        if num_seen < num_groups:
            raise ValueError(
                f"only {num_seen} of the {num_labels} labels are ever positive (never seen: {unseen}), fewer than the "
                f"{num_groups} groups requested; use num_groups <= {max(num_seen, 1)} or more training data"
            )
    index = np.flatnonzero(seen)
    probabilities = conditional_probabilities(counts[np.ix_(index, index)], observed[np.ix_(index, index)])
    m_plus, m_minus = affinity_matrices(probabilities, tau)
    co_seen = spectral_groups(m_plus, num_groups, seed=seed, n_init=n_init, n_runs=n_runs)
    dc_seen = spectral_groups(m_minus, num_groups, seed=seed, n_init=n_init, n_runs=n_runs)

    co = np.zeros(num_labels, dtype=np.int64)
    dc = np.zeros(num_labels, dtype=np.int64)
    co[index], dc[index] = co_seen, dc_seen
    if num_seen < num_labels:
        co = _canonical_groups(_assign_to_smallest(co, seen, num_groups))
        dc = _canonical_groups(_assign_to_smallest(dc, seen, num_groups))
    groups = LabelGroups(co=tuple(co.tolist()), dc=tuple(dc.tolist()), num_groups=num_groups, tau=tau, seed=seed,
                         n_init=n_init, n_runs=n_runs)
    logger.info(
        "label groups of %d labels from %d samples: CO sizes %s, DC sizes %s",
        num_labels,
        num_samples,
        [len(g) for g in groups.partition("co")],
        [len(g) for g in groups.partition("dc")],
    )
    return groups


# ----------------------------------------------------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------------------------------------------------


def groups_from_dataset(
    dataset: Any,
    num_groups: int = DEFAULT_NUM_GROUPS,
    tau: float = DEFAULT_TAU,
    seed: int = 0,
    n_init: int = 10,
    label_column: str = "labels",
    ignore_column: str | None = "ignore_mask",
    n_runs: int = 1,
) -> LabelGroups:
    """:func:`compute_label_groups` on the label matrix of a dataset split (:func:`label_matrix_from_dataset`)."""
    labels = label_matrix_from_dataset(dataset, label_column=label_column, ignore_column=ignore_column)
    return compute_label_groups(labels, num_groups=num_groups, tau=tau, seed=seed, n_init=n_init, n_runs=n_runs)
