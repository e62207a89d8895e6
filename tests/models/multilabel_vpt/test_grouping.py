"""Label grouping of ML-VPT (mlic_hf.models.multilabel_vpt.grouping) and scripts/compute_label_groups.py."""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
import logging
import math
from pathlib import Path

import datasets
import numpy as np
import pytest

from mlic_hf.data.common import make_features
from mlic_hf.models.multilabel_vpt.grouping import (
    LabelGroups,
    affinity_matrices,
    compute_label_groups,
    conditional_probabilities,
    cooccurrence_counts,
    groups_from_dataset,
    observed_pair_counts,
    spectral_groups,
)

from ...data.fixtures import label_split, write_image, write_jsonl

REPO = Path(__file__).resolve().parents[3]

# 4 samples x 3 labels, counted by hand below.
HAND = [
    [1, 1, 0],
    [1, 0, 1],
    [1, 1, 1],
    [0, 0, 1],
]


def planted_blocks(num_blocks: int, block_size: int, num_samples: int = 400, seed: int = 0, noise: float = 0.02):
    """Labels ``b * block_size ... (b + 1) * block_size - 1`` form block ``b``. Each sample activates one or two
    blocks (each label of an active block present with probability 0.9) plus independent noise labels."""
    rng = np.random.default_rng(seed)
    num_labels = num_blocks * block_size
    labels = np.zeros((num_samples, num_labels), dtype=np.int8)
    for row in labels:
        for block in rng.choice(num_blocks, size=rng.integers(1, 3), replace=False):
            row[block * block_size:(block + 1) * block_size] = rng.random(block_size) < 0.9
        row |= rng.random(num_labels) < noise
    return labels


def same_group_pairs(assignment, blocks) -> int:
    """Number of label pairs of the same block that share a group."""
    return sum(
        assignment[i] == assignment[j] and blocks[i] == blocks[j]
        for i, j in itertools.combinations(range(len(blocks)), 2)
    )


def mean_within(matrix: np.ndarray, partition) -> float:
    values = [matrix[i, j] for members in partition for i, j in itertools.combinations(members, 2)]
    return float(np.mean(values))


# ----------------------------------------------------------------------------------------------------------------------
# Statistics and affinities
# ----------------------------------------------------------------------------------------------------------------------


def test_hand_computed_counts_probabilities_and_affinities():
    counts = cooccurrence_counts(HAND)
    # diagonal: label 0 in rows 0-2, label 1 in rows 0 and 2, label 2 in rows 1-3;
    # pairs: (0, 1) rows 0 and 2, (0, 2) rows 1 and 2, (1, 2) row 2
    np.testing.assert_array_equal(counts, [[3, 2, 2], [2, 2, 1], [2, 1, 3]])
    assert counts.dtype == np.int64

    s = conditional_probabilities(counts)  # S[i, j] = P(i | j) = counts[i, j] / counts[j, j]
    expected_s = np.array([
        [1.0, 2 / 2, 2 / 3],
        [2 / 3, 1.0, 1 / 3],
        [2 / 3, 1 / 2, 1.0],
    ])
    np.testing.assert_allclose(s, expected_s)
    assert s[0, 1] == 1.0 and s[1, 0] == pytest.approx(2 / 3)  # not symmetric: P(0 | 1) = 1, P(1 | 0) = 2/3

    m_plus, m_minus = affinity_matrices(s, tau=2.0)
    r = math.sqrt
    expected_plus = np.array([
        [1.0, (r(1.0) + r(2 / 3)) / 2, (r(2 / 3) + r(2 / 3)) / 2],
        [(r(1.0) + r(2 / 3)) / 2, 1.0, (r(1 / 3) + r(1 / 2)) / 2],
        [(r(2 / 3) + r(2 / 3)) / 2, (r(1 / 3) + r(1 / 2)) / 2, 1.0],
    ])
    np.testing.assert_allclose(m_plus, expected_plus)
    assert m_plus[0, 1] == pytest.approx(0.908248, abs=1e-6)
    assert m_plus[1, 2] == pytest.approx(0.642229, abs=1e-6)
    np.testing.assert_allclose(m_minus, 1.0 - expected_plus)  # complement w.r.t. the all-ones matrix
    np.testing.assert_allclose(np.diag(m_minus), 0.0)
    assert (m_minus >= 0).all()

    m_plus_1, m_minus_1 = affinity_matrices(s, tau=1.0)  # tau = 1: plain symmetrised probabilities
    assert m_plus_1[1, 2] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert m_minus_1[0, 1] == pytest.approx(1 - (1 + 2 / 3) / 2)


def test_ignored_entries_are_not_counted():
    labels = [
        [1, 1, -1],
        [1, -1, 1],
        [1, 1, 0],
        [-1, 0, 1],
    ]
    counts = cooccurrence_counts(labels)
    np.testing.assert_array_equal(counts, [[3, 2, 1], [2, 2, 0], [1, 0, 2]])
    # any negative value means "not observed"
    np.testing.assert_array_equal(cooccurrence_counts(np.where(np.array(labels) < 0, -7, labels)), counts)

    # observed[i, j] = samples with j positive and i known
    observed = observed_pair_counts(labels)
    np.testing.assert_array_equal(observed, [[3, 2, 1], [2, 2, 1], [2, 1, 2]])
    s = conditional_probabilities(counts, observed)
    assert s[1, 0] == pytest.approx(2 / 2)  # label 1 is unknown in row 1: P(1 | 0) from rows 0 and 2 only
    assert s[2, 0] == pytest.approx(1 / 2)
    assert s[0, 2] == pytest.approx(1 / 1)
    assert s[1, 2] == 0.0 and s[2, 1] == 0.0
    naive = conditional_probabilities(counts)  # without denominators an unknown label counts as absent
    assert naive[1, 0] == pytest.approx(2 / 3)

    # without unknown entries the observed denominators are the diagonal counts
    full = observed_pair_counts(HAND)
    np.testing.assert_array_equal(full, np.broadcast_to(np.diag(cooccurrence_counts(HAND)), (3, 3)))


def test_never_positive_label_probabilities():
    counts = cooccurrence_counts([[1, 0, 0], [1, 1, 0]])
    s = conditional_probabilities(counts)
    np.testing.assert_allclose(s[:, 2], [0, 0, 1])  # P(. | never seen) = 0, diagonal 1
    np.testing.assert_allclose(s[2, :], [0, 0, 1])
    assert np.isfinite(s).all()


@pytest.mark.parametrize(
    "labels, message",
    [
        ([1, 0, 1], "shape"),
        (np.zeros((2, 2, 2)), "shape"),
        (np.zeros((0, 3)), "no rows"),
        (np.zeros((3, 0)), "no columns"),
        ([[1, 0], [2, 0]], "got 2 at \\(sample 1, label 0\\)"),
        ([[1, 0.5]], "0.5"),
        ([[1, float("nan")]], "NaN"),
        ([["a", "b"]], "dtype"),
        ([[1, 0], [1]], "convert"),
    ],
)
def test_bad_label_matrices(labels, message):
    with pytest.raises(ValueError, match=message):
        cooccurrence_counts(labels)
    with pytest.raises(ValueError, match=message):
        compute_label_groups(labels, num_groups=1)


def test_bad_matrices_and_parameters():
    with pytest.raises(ValueError, match="square"):
        conditional_probabilities(np.ones((2, 3)))
    with pytest.raises(ValueError, match="symmetric"):
        conditional_probabilities([[2, 1], [0, 2]])
    with pytest.raises(ValueError, match="exceeds"):
        conditional_probabilities([[1, 2], [2, 3]])
    with pytest.raises(ValueError, match="non-negative"):
        conditional_probabilities([[1, -1], [-1, 1]])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        affinity_matrices([[1, 2], [0, 1]])
    for tau in (0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="tau"):
            affinity_matrices(np.eye(2), tau=tau)
        with pytest.raises(ValueError, match="tau"):
            compute_label_groups(HAND, num_groups=1, tau=tau)
    with pytest.raises(ValueError, match="num_groups"):
        compute_label_groups(HAND, num_groups=0)
    with pytest.raises(TypeError, match="num_groups"):
        compute_label_groups(HAND, num_groups=2.5)
    with pytest.raises(ValueError, match="n_init"):
        compute_label_groups(HAND, num_groups=1, n_init=0)
    with pytest.raises(ValueError, match="seed"):
        compute_label_groups(HAND, num_groups=1, seed=-1)


# ----------------------------------------------------------------------------------------------------------------------
# Spectral clustering
# ----------------------------------------------------------------------------------------------------------------------


def test_planted_blocks_co_recovers_blocks_dc_separates_them():
    labels = planted_blocks(num_blocks=5, block_size=3, seed=0)
    blocks = np.repeat(np.arange(5), 3)
    groups = compute_label_groups(labels, num_groups=5, tau=2.0, seed=0)

    # CO groups are exactly the blocks (canonical ids: blocks are contiguous, so the arrays are equal)
    assert groups.co == tuple(blocks.tolist())
    assert groups.partition("co") == [(0, 1, 2), (3, 4, 5), (6, 7, 8), (9, 10, 11), (12, 13, 14)]

    # DC groups spread the blocks: no DC group holds a whole block, and at most 2 of the 15 same-block pairs share a
    # DC group (a random partition into 5 groups would put ~3 pairs together). With blocks of 3 the DC graph is close
    # to a complete 5-partite graph whose best cuts are degenerate, so the strict "one label per block" property is
    # not guaranteed by spectral clustering; it is asserted on blocks of 2 below.
    dc = np.array(groups.dc)
    for block in range(5):
        assert len(set(dc[blocks == block])) > 1, f"block {block} is a single DC group: {groups.dc}"
    assert same_group_pairs(dc, blocks) <= 2

    # DC groups gather labels that co-occur less than average; CO groups labels that co-occur more than average
    m_plus, _ = affinity_matrices(conditional_probabilities(cooccurrence_counts(labels)))
    average = m_plus[~np.eye(15, dtype=bool)].mean()
    assert mean_within(m_plus, groups.partition("dc")) < average < mean_within(m_plus, groups.partition("co"))


@pytest.mark.parametrize("data_seed", [0, 1, 2])
def test_planted_pairs_dc_groups_never_hold_two_labels_of_a_block(data_seed):
    labels = planted_blocks(num_blocks=5, block_size=2, seed=data_seed)
    blocks = np.repeat(np.arange(5), 2)
    groups = compute_label_groups(labels, num_groups=5)
    assert groups.co == tuple(blocks.tolist())
    assert same_group_pairs(np.array(groups.dc), blocks) == 0
    for group in range(5):  # each DC group holds at most one label of each block
        members = groups.members("dc", group)
        assert len({int(blocks[i]) for i in members}) == len(members)


def test_same_seed_same_groups():
    labels = planted_blocks(num_blocks=5, block_size=3, seed=4)
    first = compute_label_groups(labels, num_groups=5, seed=7, n_init=5)
    second = compute_label_groups(labels, num_groups=5, seed=7, n_init=5)
    assert first == second
    m_plus, m_minus = affinity_matrices(conditional_probabilities(cooccurrence_counts(labels)))
    for affinity in (m_plus, m_minus):
        a = spectral_groups(affinity, 5, seed=3, n_init=4)
        b = spectral_groups(affinity, 5, seed=3, n_init=4)
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.int64 and a.shape == (15,)
    assert first.seed == 7 and first.n_init == 5 and first.tau == 2.0


def test_spectral_groups_canonical_ids_and_trivial_cases():
    labels = planted_blocks(num_blocks=3, block_size=2, seed=1)
    m_plus, _ = affinity_matrices(conditional_probabilities(cooccurrence_counts(labels)))
    # permuting the labels permutes the partition; ids stay canonical (ordered by smallest label index)
    order = np.array([5, 2, 0, 3, 1, 4])
    groups = spectral_groups(m_plus[np.ix_(order, order)], 3)
    np.testing.assert_array_equal(groups, [0, 1, 2, 1, 2, 0])  # blocks {0,1}, {2,3}, {4,5} after the permutation
    assert groups[0] == 0
    np.testing.assert_array_equal(spectral_groups(m_plus, 1), np.zeros(6))
    np.testing.assert_array_equal(spectral_groups(m_plus, 6), np.arange(6))
    with pytest.raises(ValueError, match="cannot split 6 labels into 7 groups"):
        spectral_groups(m_plus, 7)
    with pytest.raises(ValueError, match="symmetric"):
        spectral_groups(np.triu(m_plus), 2)
    with pytest.raises(ValueError, match="non-negative"):
        spectral_groups(-m_plus, 2)
    with pytest.raises(ValueError, match="no edges"):
        spectral_groups(np.eye(6), 2)


# ----------------------------------------------------------------------------------------------------------------------
# Degenerate inputs
# ----------------------------------------------------------------------------------------------------------------------


def test_fewer_labels_than_groups():
    with pytest.raises(ValueError, match="cannot split 3 labels into 5 groups"):
        compute_label_groups(HAND, num_groups=5)


def test_never_seen_label_falls_back_with_a_warning(caplog):
    planted = planted_blocks(num_blocks=5, block_size=3, seed=0)
    labels = np.insert(planted, 7, 0, axis=1)  # label 7 never positive; old labels 7..14 become 8..15
    labels[:5, 7] = -1  # and sometimes unknown
    with caplog.at_level(logging.WARNING, logger="mlic_hf.models.multilabel_vpt.grouping"):
        groups = compute_label_groups(labels, num_groups=5)
    warnings = [r.getMessage() for r in caplog.records if "never positive" in r.getMessage()]
    assert len(warnings) == 1 and "[7]" in warnings[0]

    # a valid partition of all 16 labels
    assert groups.num_labels == 16
    for kind in ("co", "dc"):
        partition = groups.partition(kind)
        assert all(partition) and sorted(i for g in partition for i in g) == list(range(16))
    # the seen labels keep the planted CO blocks; label 7 joined the smallest CO group (all blocks have 3 labels:
    # ties go to the lowest group id, i.e. the block of labels 0-2)
    seen = [i for i in range(16) if i != 7]
    blocks = np.repeat(np.arange(5), 3)
    assert [groups.co[i] for i in seen] == blocks.tolist()
    assert groups.co[7] == 0
    assert groups == compute_label_groups(labels, num_groups=5)  # still deterministic


def test_too_few_seen_labels():
    labels = np.zeros((10, 6), dtype=int)
    labels[:, :2] = [[1, 0], [0, 1]] * 5
    with pytest.raises(ValueError, match="only 2 of the 6 labels are ever positive"):
        compute_label_groups(labels, num_groups=3)


def test_no_cooccurrence_at_all_is_an_error():
    with pytest.raises(ValueError, match="no edges"):
        compute_label_groups(np.eye(6, dtype=int).repeat(3, axis=0), num_groups=2)


# ----------------------------------------------------------------------------------------------------------------------
# LabelGroups
# ----------------------------------------------------------------------------------------------------------------------


def test_label_groups_round_trip_and_config_kwargs():
    groups = compute_label_groups(planted_blocks(num_blocks=3, block_size=2, seed=2), num_groups=3, seed=1, n_init=3)
    data = json.loads(json.dumps(groups.to_dict()))
    assert LabelGroups.from_dict(data) == groups
    assert LabelGroups.from_dict({**data, "id2label": {"0": "a"}, "dataset": "x"}) == groups  # extra keys ignored

    kwargs = groups.to_config_kwargs()
    assert set(kwargs) == {"co_groups", "dc_groups"}
    assert kwargs["co_groups"] == list(groups.co) and kwargs["dc_groups"] == list(groups.dc)
    assert all(type(v) is int for v in kwargs["co_groups"] + kwargs["dc_groups"])
    aliased = {k: v for k, v in data.items() if k not in ("co", "dc")} | kwargs
    assert LabelGroups.from_dict(aliased) == groups

    assert groups.members("co", 0) == (0, 1) and groups.members("CO", 2) == (4, 5)
    assert sum(len(groups.members("dc", g)) for g in range(3)) == 6
    with pytest.raises(ValueError, match="kind"):
        groups.members("xx", 0)
    with pytest.raises(ValueError, match="group"):
        groups.members("co", 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        groups.co = (0,)


def test_label_groups_validation():
    LabelGroups(co=[0, 1, 1], dc=(1, 0, 0), num_groups=2, tau=2, seed=0)  # lists are accepted, stored as tuples
    with pytest.raises(ValueError, match=r"groups \[2\] have no label"):
        LabelGroups(co=(0, 1, 1), dc=(0, 1, 0), num_groups=3, tau=2.0, seed=0)
    with pytest.raises(ValueError, match="outside"):
        LabelGroups(co=(0, 2), dc=(0, 1), num_groups=2, tau=2.0, seed=0)
    with pytest.raises(ValueError, match="one group id per label"):
        LabelGroups(co=(0, 1), dc=(0, 1, 1), num_groups=2, tau=2.0, seed=0)
    with pytest.raises(ValueError, match="tau"):
        LabelGroups(co=(0, 1), dc=(0, 1), num_groups=2, tau=0.0, seed=0)
    with pytest.raises(ValueError, match="missing keys"):
        LabelGroups.from_dict({"co": [0], "dc": [0]})


# ----------------------------------------------------------------------------------------------------------------------
# Datasets and the script
# ----------------------------------------------------------------------------------------------------------------------


def test_groups_from_dataset(tmp_path):
    groups = groups_from_dataset(label_split(tmp_path), num_groups=2)
    assert groups.num_labels == 3 and groups.num_groups == 2


def load_script():
    spec = importlib.util.spec_from_file_location("_mlic_script_compute_label_groups",
                                                  REPO / "scripts" / "compute_label_groups.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_folder_dataset(root: Path) -> list[str]:
    """A flat image folder whose labels come in 3 co-occurring blocks of 2 (names sort in block order)."""
    names = ["a_hat", "a_scarf", "b_boot", "b_sock", "c_cup", "c_mug"]
    labels = planted_blocks(num_blocks=3, block_size=2, num_samples=48, seed=3, noise=0.0)
    image = write_image(root / "img0.png")
    rows = []
    for n, row in enumerate(labels):
        if n:
            (root / f"img{n}.png").write_bytes(image.read_bytes())
        rows.append({"file_name": f"img{n}.png", "labels": [names[k] for k in np.flatnonzero(row)]})
    write_jsonl(root / "metadata.jsonl", rows)
    (root / "labels.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    return names


def test_script_end_to_end(tmp_path, capsys):
    script = load_script()
    names = make_folder_dataset(tmp_path / "data")
    output = tmp_path / "out" / "groups.json"
    argv = ["--dataset", "folder", "--data_dir", str(tmp_path / "data"), "--num_groups", "3", "--seed", "1",
            "--output", str(output)]
    assert script.main(argv) == 0
    printed = capsys.readouterr().out
    assert "CO 0 (2 labels" in printed and "a_hat, a_scarf" in printed and "DC 2" in printed

    written = json.loads(output.read_text(encoding="utf-8"))
    groups = LabelGroups.from_dict(written)
    assert groups.co == (0, 0, 1, 1, 2, 2)
    assert written["config_kwargs"] == groups.to_config_kwargs()
    assert written["id2label"] == {str(i): name for i, name in enumerate(names)}
    assert (written["dataset"], written["split"], written["num_samples"]) == ("folder", "train", 48)
    assert (groups.num_groups, groups.tau, groups.seed, groups.n_init) == (3, 2.0, 1, 10)


def test_script_errors_are_messages(tmp_path, capsys):
    script = load_script()
    assert script.main(["--dataset", "folder", "--data_dir", str(tmp_path / "nowhere")]) == 2
    assert "error:" in capsys.readouterr().err
    assert script.main(["--dataset", "no_such_dataset"]) == 2
    assert "unknown dataset" in capsys.readouterr().err
    make_folder_dataset(tmp_path / "data")
    assert script.main(["--dataset", "folder", "--data_dir", str(tmp_path / "data"), "--num_groups", "9"]) == 2
    assert "cannot split 6 labels into 9 groups" in capsys.readouterr().err
    assert script.main(["--tau", "0"]) == 2  # checked before any data is read
    assert capsys.readouterr().err.strip() == "error: --tau must be a finite number > 0, got 0.0"
    assert script.main(["--dataset", "voc2007", "--dataset_name", "parquet"]) == 2
    assert "not both" in capsys.readouterr().err


def test_script_n_runs_keeps_the_best_run(tmp_path):
    """``--n_runs`` gives the groups of ``compute_label_groups(..., n_runs=...)`` (best Calinski-Harabasz run)."""
    from mlic_hf.data import load_mlic_dataset

    script = load_script()
    make_folder_dataset(tmp_path / "data")
    output = tmp_path / "groups.json"
    argv = ["--dataset", "folder", "--data_dir", str(tmp_path / "data"), "--num_groups", "3", "--n_runs", "3",
            "--output", str(output)]
    assert script.main(argv) == 0
    written = LabelGroups.from_dict(json.loads(output.read_text(encoding="utf-8")))
    labels = np.asarray(list(load_mlic_dataset("folder", str(tmp_path / "data"))["train"]["labels"]))
    expected = compute_label_groups(labels, num_groups=3, n_runs=3)
    assert (written.co, written.dc, written.n_runs) == (expected.co, expected.dc, 3)
    assert script.main(["--n_runs", "0"]) == 2
