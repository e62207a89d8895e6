"""The switches that reproduce the ML-VPT authors' code (gate-logit loss, clamped ASL, loss scale, gate bias, features
before the final norm, normalisation, published groups, best-of-runs grouping) and the ``m3-authors*`` presets, each
against a direct computation."""

import json
import logging
import random

import numpy as np
import pytest
import torch
from peft import get_peft_model

from mlic_hf.losses import AsymmetricLoss, asymmetric_loss, loss_from_config
from mlic_hf.models.multilabel_vpt import MultiLabelVPTConfig, MultiLabelVPTForMultiLabelImageClassification
from mlic_hf.models.multilabel_vpt.configuration_multilabel_vpt import IMAGENET_MEAN, IMAGENET_STD
from mlic_hf.models.multilabel_vpt.moe import DualGroupHead, GroupAwareMoE, gate_logits
from mlic_hf.models.multilabel_vpt.preset import AUTHORS_SWITCHES, PRESETS
from mlic_hf.models.multilabel_vpt.prompts import embed_tokens, prompt_attention_mask
from mlic_hf.models.multilabel_vpt.published_groups import (
    COCO_LABELS,
    NUS_WIDE_LABELS,
    PUBLISHED_GROUPS,
    match_published_groups,
    published_label_groups,
)

from .test_modeling_multilabel_vpt import LABELS, PIXELS, TINY  # the same tiny model as the method's tests


def tiny(**overrides):
    torch.manual_seed(0)
    return MultiLabelVPTForMultiLabelImageClassification(MultiLabelVPTConfig(**{**TINY, **overrides}))


def written_out_gate_logits(model, pixel_values):
    """Σ_e softmax(s)_e s_e per label and kind, with s_e = z_t^e · W_k^e (+ b_k^e), from the prompt outputs."""
    with torch.no_grad():
        out = model(pixel_values, output_hidden_states=True)
        z = out.extras["prompt_outputs"]
        if model.config.prompt_features_norm:
            z = model.vit.norm(z)
        n_c, n_m = model.config.num_groups, model.config.num_prompts_per_group
        result = {}
        for kind_index, kind in enumerate(("co", "dc")):
            moe = model.head.moe[kind]
            logits = torch.zeros(pixel_values.shape[0], 6)
            for b in range(pixel_values.shape[0]):
                for k, t in enumerate(moe.groups):
                    scores = []
                    for e in range(n_m):
                        token = z[b, (kind_index * n_c + t) * n_m + e]
                        bias = moe.gate_bias[k, e] if moe.gate_bias is not None else 0.0
                        scores.append(token @ moe.gate_weight[k, e] + bias)
                    scores = torch.stack(scores)
                    logits[b, k] = (torch.softmax(scores, 0) * scores).sum()
            result[kind] = logits
    return out, result


# ----------------------------------------------------------------------------------------------------------------------
# Gate logits and the gate-logit loss
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
def test_gate_logits_are_the_softmax_weighted_scores(bias):
    moe = GroupAwareMoE([0, 1, 1, 2, 0], num_groups=3, num_experts=2, dim=6, hidden_size=3, gate_bias=bias)
    tokens = torch.randn(2, 3, 2, 6)
    features, weights, scores = moe(tokens, return_scores=True)
    torch.testing.assert_close(moe(tokens)[0], features)
    expected = torch.zeros(2, 5)
    for b in range(2):
        for k, t in enumerate(moe.groups):
            s = torch.stack([tokens[b, t, e] @ moe.gate_weight[k, e] + (moe.gate_bias[k, e] if bias else 0)
                             for e in range(2)])
            expected[b, k] = sum(torch.softmax(s, 0)[e] * s[e] for e in range(2))
    with torch.no_grad():
        torch.testing.assert_close(gate_logits(weights, scores), expected)
    head = DualGroupHead({"co": [0, 1, 1, 2, 0]}, num_groups=3, tokens_per_group=2, dim=6, hidden_size=3,
                         gate_bias=bias)
    head.moe["co"].load_state_dict(moe.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(head(tokens.reshape(2, 6, 6))["co_gate_logits"], expected)


def test_gate_logit_loss_adds_the_asl_of_both_gates():
    paper = tiny(loss_reduction="sum").eval()
    authors = tiny(loss_reduction="sum", gate_logit_loss=True).eval()
    authors.load_state_dict(paper.state_dict())
    out, gate = written_out_gate_logits(authors, PIXELS)
    with torch.no_grad():
        heads = sum(asymmetric_loss(out.extras[f"{k}_logits"], LABELS, reduction="sum") for k in ("co", "dc"))
        gates = sum(asymmetric_loss(gate[k], LABELS, reduction="sum") for k in ("co", "dc"))
        torch.testing.assert_close(paper(PIXELS, labels=LABELS).loss, heads)  # eq. 17: two terms
        torch.testing.assert_close(authors(PIXELS, labels=LABELS).loss, heads + gates)  # the authors' four
    torch.testing.assert_close(authors(PIXELS).logits, paper(PIXELS).logits)  # the prediction is unchanged
    assert len(authors.loss_logits(out)) == 4 and len(paper.loss_logits(out)) == 2


def test_gate_logit_loss_trains_every_parameter():
    model = tiny(gate_logit_loss=True, gate_bias=False, loss_reduction="mean", loss_scale=1000.0,
                 asl_clamp_probabilities=True, asl_eps=1e-5, asl_clip=0.0, asl_gamma_neg=2.0).train()
    model(PIXELS, labels=LABELS).loss.backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert [n for n, p in trainable.items() if p.grad is None or not torch.isfinite(p.grad).all()] == []


# ----------------------------------------------------------------------------------------------------------------------
# The authors' ASL: probability clamp, mean x 1000
# ----------------------------------------------------------------------------------------------------------------------


def authors_asl(x, y, gamma_neg, gamma_pos, clip, eps):
    """AsymmetricLossOptimized.forward of ML-VPT's losses/aslloss.py:130-179, written out (dtgfl=True)."""
    xs_pos = torch.sigmoid(x)
    xs_neg = 1.0 - xs_pos
    if clip is not None and clip > 0:
        xs_neg = (xs_neg + clip).clamp(max=1)
    loss = y * torch.log(xs_pos.clamp(min=eps)) + (1 - y) * torch.log(xs_neg.clamp(min=eps))
    with torch.no_grad():
        w = torch.pow(1 - xs_pos * y - xs_neg * (1 - y), gamma_pos * y + gamma_neg * (1 - y))
    loss = loss * w
    return -loss.sum() / x.size(0) / y.size(1) * 1000


@pytest.mark.parametrize("clip", [0.0, 0.05])
def test_clamped_asl_is_the_authors_loss(clip):
    torch.manual_seed(1)
    x = torch.randn(4, 7) * 6
    x[0, 0], x[1, 1], x[2, 2] = -25.0, 30.0, 14.0  # beyond the 1e-5 clamp: a positive and two negatives
    y = (torch.rand(4, 7) < 0.4).float()
    y[0, 0], y[1, 1], y[2, 2] = 1.0, 0.0, 0.0
    ours = 1000 * asymmetric_loss(x, y, gamma_neg=2.0, gamma_pos=0.0, clip=clip, eps=1e-5, reduction="mean",
                                  clamp_probabilities=True)
    torch.testing.assert_close(ours, authors_asl(x, y, 2.0, 0.0, clip, 1e-5))
    module = AsymmetricLoss(gamma_neg=2.0, gamma_pos=0.0, clip=clip, eps=1e-5, reduction="mean",
                            clamp_probabilities=True)
    torch.testing.assert_close(1000 * module(x, y), ours)


def test_the_clamp_caps_the_loss_and_stops_the_gradient():
    x = torch.tensor([[-25.0, 30.0, 1.0]], requires_grad=True)
    y = torch.tensor([[1.0, 0.0, 0.0]])
    clamped = asymmetric_loss(x, y, gamma_neg=2.0, gamma_pos=0.0, clip=0.0, eps=1e-5, reduction="none",
                              clamp_probabilities=True)
    exact = asymmetric_loss(x, y, gamma_neg=2.0, gamma_pos=0.0, clip=0.0, eps=1e-5, reduction="none")
    cap = -torch.log(torch.tensor(1e-5))
    # clamped: the positive at -25 and the negative at +30 cost exactly -log(eps) (times p^2 = 1 for the negative)
    torch.testing.assert_close(clamped[0, :2], torch.stack([cap, cap]))
    assert exact[0, 0] > 24 and exact[0, 1] > 29  # logsigmoid: the true loss
    torch.testing.assert_close(clamped[0, 2], exact[0, 2])  # unclamped elements agree
    (grad,) = torch.autograd.grad(clamped.sum(), x)
    assert grad[0, 0] == 0 and grad[0, 1] == 0 and grad[0, 2] != 0
    (exact_grad,) = torch.autograd.grad(exact.sum(), x)
    assert exact_grad[0, 0] < -0.99 and exact_grad[0, 1] > 0.99


def test_clamped_asl_ignores_negative_labels_and_builds_from_the_config():
    x = torch.randn(3, 4)
    y = torch.tensor([[1.0, -1, 0, 0], [0, 1, -1, 1], [0, 0, 0, 1]])
    masked = asymmetric_loss(x, y, reduction="sum", clamp_probabilities=True)
    keep = (y >= 0).float()
    unmasked = asymmetric_loss(x, y.clamp(min=0), reduction="none", clamp_probabilities=True)
    torch.testing.assert_close(masked, (unmasked * keep).sum())
    config = MultiLabelVPTConfig(**TINY, loss="asl", asl_clamp_probabilities=True, asl_eps=1e-5, asl_clip=0.0,
                                 asl_gamma_neg=2.0, loss_reduction="mean")
    loss = loss_from_config(config)
    assert isinstance(loss, AsymmetricLoss) and loss.clamp_probabilities
    assert (loss.gamma_neg, loss.gamma_pos, loss.clip, loss.eps, loss.reduction) == (2.0, 0.0, 0.0, 1e-5, "mean")
    assert not loss_from_config(MultiLabelVPTConfig(**TINY, loss="asl")).clamp_probabilities
    assert MultiLabelVPTForMultiLabelImageClassification(config).loss_fn.clamp_probabilities


def test_model_loss_with_the_authors_loss_switches():
    switches = dict(gate_logit_loss=True, asl_clamp_probabilities=True, asl_eps=1e-5, asl_clip=0.0,
                    asl_gamma_neg=2.0, asl_gamma_pos=0.0, loss_reduction="mean", loss_scale=1000.0)
    model = tiny(**switches).eval()
    out, gate = written_out_gate_logits(model, PIXELS)
    with torch.no_grad():
        terms = [out.extras["co_logits"], out.extras["dc_logits"], gate["co"], gate["dc"]]
        expected = sum(authors_asl(t, LABELS, 2.0, 0.0, 0.0, 1e-5) for t in terms)  # 4 terms, each mean x 1000
        torch.testing.assert_close(model(PIXELS, labels=LABELS).loss, expected)
        unscaled = tiny(**{**switches, "loss_scale": 1.0}).eval()
        unscaled.load_state_dict(model.state_dict())
        torch.testing.assert_close(model(PIXELS, labels=LABELS).loss, 1000 * unscaled(PIXELS, labels=LABELS).loss)
        as_tuple = model(PIXELS, labels=LABELS, return_dict=False)  # the loss stays first
        torch.testing.assert_close(as_tuple[0], expected)


# ----------------------------------------------------------------------------------------------------------------------
# Gate bias, features before the final norm, normalisation
# ----------------------------------------------------------------------------------------------------------------------


def test_without_gate_bias_the_gates_have_no_bias_and_compute_the_biasless_scores():
    with_bias, without = tiny(), tiny(gate_bias=False)
    names = {n for n, _ in with_bias.named_parameters()} - {n for n, _ in without.named_parameters()}
    assert names == {"head.moe.co.gate_bias", "head.moe.dc.gate_bias"}
    assert sum(p.numel() for p in with_bias.parameters()) - sum(p.numel() for p in without.parameters()) == 2 * 6 * 2
    missing = without.load_state_dict(with_bias.state_dict(), strict=False)
    assert missing.unexpected_keys == sorted(names) and not missing.missing_keys
    with torch.no_grad():
        for moe in with_bias.head.moe.values():  # a zero bias is the biasless model
            moe.gate_bias.zero_()
        torch.testing.assert_close(without(PIXELS).logits, with_bias(PIXELS).logits)
        for moe in with_bias.head.moe.values():
            moe.gate_bias.normal_()
        assert not torch.allclose(without(PIXELS).logits, with_bias(PIXELS).logits)


def test_prompt_features_before_the_norm_are_a_manual_forward():
    after, before = tiny().eval(), tiny(prompt_features_norm=False).eval()
    before.load_state_dict(after.state_dict())
    vit, prompts = after.vit, after.prompts
    with torch.no_grad():
        x = embed_tokens(vit, PIXELS)
        mask = prompt_attention_mask(1, after.prompt_groups, x.shape[1] - 1, "group")
        n = prompts.num_tokens
        for i, block in enumerate(vit.blocks):  # fresh prompts before every block
            seq = block(torch.cat([x[:, :1], prompts.tokens[i].expand(2, -1, -1), x[:, 1:]], dim=1), attn_mask=mask)
            x, raw = torch.cat([seq[:, :1], seq[:, 1 + n:]], dim=1), seq[:, 1:1 + n]
        torch.testing.assert_close(before(PIXELS).logits, before.head(raw)["logits"])
        torch.testing.assert_close(after(PIXELS).logits, after.head(vit.norm(raw))["logits"])
        assert not torch.allclose(before(PIXELS).logits, after(PIXELS).logits)


def test_image_normalization():
    def config(backbone, mode, **kwargs):
        return MultiLabelVPTConfig(backbone=backbone, num_labels=6, num_groups=2, image_normalization=mode, **kwargs)

    for backbone in ("vit_base_patch16_224.orig_in21k_ft_in1k", "vit_base_patch16_224", "vit_small_patch14_dinov2"):
        authors = config(backbone, "authors")
        assert (authors.image_mean, authors.image_std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert config("vit_tiny_patch16_224", "authors").image_mean is None  # a stand-in keeps its own statistics
    assert config("vit_tiny_patch16_224", "imagenet").image_mean == IMAGENET_MEAN
    assert config("vit_base_patch16_224", "backbone").image_mean is None
    assert config("vit_base_patch16_224", "authors", image_mean=[0.5] * 3).image_mean == [0.5] * 3  # given wins
    # built: the stand-in takes timm's pretrained statistics (0.5 for vit_tiny), the authors' ViT-B ImageNet's
    assert tiny(image_normalization="authors").config.image_mean == [0.5, 0.5, 0.5]
    assert tiny(image_normalization="imagenet").config.image_std == IMAGENET_STD


def test_switch_validation():
    with pytest.raises(ValueError, match="gate_logit_loss"):
        MultiLabelVPTConfig(**TINY, gate_logit_loss=True, use_moe=False)
    with pytest.raises(ValueError, match="gate_logit_loss"):
        MultiLabelVPTConfig(**TINY, gate_logit_loss=True, variant="vpt")
    with pytest.raises(ValueError, match="loss_scale"):
        MultiLabelVPTConfig(**TINY, loss_scale=0.0)
    with pytest.raises(ValueError, match="grouping_runs"):
        MultiLabelVPTConfig(**TINY, grouping_runs=0)
    with pytest.raises(ValueError, match="image_normalization"):
        MultiLabelVPTConfig(**TINY, image_normalization="clip")
    with pytest.raises(ValueError, match="label_groups_preset"):
        MultiLabelVPTConfig(**TINY, label_groups_preset="voc")


def test_old_checkpoints_load_with_the_papers_defaults(tmp_path):
    model = tiny().eval()
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    new_fields = ("grouping_runs", "label_groups_preset", "gate_bias", "gate_logit_loss", "asl_clamp_probabilities",
                  "loss_scale", "image_normalization")
    for name in new_fields:  # a config.json written before these switches existed
        saved.pop(name, None)
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded = MultiLabelVPTForMultiLabelImageClassification.from_pretrained(tmp_path).eval()
    defaults = MultiLabelVPTConfig()
    assert all(getattr(loaded.config, n) == getattr(defaults, n) for n in new_fields)
    with torch.no_grad():
        torch.testing.assert_close(loaded(PIXELS, labels=LABELS).loss, model(PIXELS, labels=LABELS).loss)


# ----------------------------------------------------------------------------------------------------------------------
# Published groups
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, labels", [("coco", COCO_LABELS), ("nus-wide", NUS_WIDE_LABELS)])
def test_published_groups_are_complete_partitions(name, labels):
    groups = PUBLISHED_GROUPS[name]
    assert groups.labels == tuple(labels) and len(set(labels)) == len(labels) == {"coco": 80, "nus-wide": 81}[name]
    for kind in ("co", "dc"):
        partition = getattr(groups, kind)
        assert len(partition) == 5 and all(partition)  # 5 non-empty groups
        members = [label for group in partition for label in group]
        assert sorted(members) == sorted(labels)  # every label exactly once
    assert match_published_groups(list(reversed(labels))) == name
    assert match_published_groups(labels[:-1]) is None


def test_published_groups_hold_the_authors_facts():
    # spot checks against data/aux_data/coco/coco_cluster5_0.json ({"0": 0} is the 4th object: person alone),
    # coco_coocurrence5_0.json (first object: labels 32, 34, 35, 38) and nus_coocurrence5_0.json (3rd: 15, 22, 36, 78)
    coco, nus = PUBLISHED_GROUPS["coco"], PUBLISHED_GROUPS["nus-wide"]
    assert coco.dc[3] == ("person",)
    assert coco.co[0] == tuple(COCO_LABELS[i] for i in (32, 34, 35, 38))
    assert coco.co[0] == ("sports ball", "baseball bat", "baseball glove", "tennis racket")
    assert nus.co[2] == tuple(NUS_WIDE_LABELS[i] for i in (15, 22, 36, 78)) == ("coral", "fish", "map", "whales")
    assert [len(g) for g in coco.co] == [4, 22, 7, 21, 26] and [len(g) for g in nus.dc] == [19, 26, 20, 14, 2]


def test_published_groups_load_into_a_config_by_label_name():
    order = list(COCO_LABELS)
    random.Random(0).shuffle(order)  # any label order: the groups follow the names
    config = MultiLabelVPTConfig(id2label=dict(enumerate(order)), label_groups_preset="coco")
    co, dc = PUBLISHED_GROUPS["coco"].assignment("co"), PUBLISHED_GROUPS["coco"].assignment("dc")
    assert config.co_groups == [co[name] for name in order] and config.dc_groups == [dc[name] for name in order]
    assert config.label_groups_source == PUBLISHED_GROUPS["coco"].source
    assert (config.co_groups, config.dc_groups) == published_label_groups("coco", order)
    auto = MultiLabelVPTConfig(id2label=dict(enumerate(NUS_WIDE_LABELS)), label_groups_preset="auto")
    assert (auto.co_groups, auto.dc_groups) == published_label_groups("nus-wide", NUS_WIDE_LABELS)
    assert "ML-VPT authors' published groups" in auto.model_card_sections()[0][1]
    # a checkpoint's config round-trips (the stored groups are the preset's)
    assert MultiLabelVPTConfig.from_dict(config.to_dict()).co_groups == config.co_groups
    with torch.device("meta"):
        model = MultiLabelVPTForMultiLabelImageClassification(config)
    assert model.head.moe["dc"].groups == config.dc_groups


def test_published_groups_errors_and_auto_fallback(caplog):
    other = {i: f"l{i}" for i in range(6)}
    assert MultiLabelVPTConfig(id2label=other, num_groups=3, label_groups_preset="auto").co_groups is None
    with pytest.raises(ValueError, match="not among them"):
        MultiLabelVPTConfig(id2label=other, num_groups=5, label_groups_preset="coco")
    coco = dict(enumerate(COCO_LABELS))
    with pytest.raises(ValueError, match="num_groups=3"):
        MultiLabelVPTConfig(id2label=coco, num_groups=3, label_groups_preset="coco")
    assert MultiLabelVPTConfig(id2label=coco, num_groups=3, label_groups_preset="auto").co_groups is None
    mine = [i % 5 for i in range(80)]
    with pytest.raises(ValueError, match="differ"):
        MultiLabelVPTConfig(id2label=coco, co_groups=mine, dc_groups=mine, label_groups_preset="coco")
    with caplog.at_level(logging.INFO):
        kept = MultiLabelVPTConfig(id2label=coco, co_groups=mine, dc_groups=mine, label_groups_preset="auto")
    assert kept.co_groups == mine and "kept" in caplog.text


def test_the_training_data_hook_uses_the_published_groups():
    import datasets

    rows = np.zeros((40, 80), dtype=np.float32)
    rows[:, :2] = 1  # statistics that would give other groups
    rows[::2, 40:] = 1
    train = datasets.Dataset.from_dict({"labels": rows.tolist()})
    config = MultiLabelVPTConfig(id2label=dict(enumerate(COCO_LABELS)), label_groups_preset="auto")
    expected = (config.co_groups, config.dc_groups)
    config.setup_from_training_data(train, recompute=True)  # a new label set that the preset covers
    assert (config.co_groups, config.dc_groups) == expected == published_label_groups("coco", COCO_LABELS)


# ----------------------------------------------------------------------------------------------------------------------
# Best of several clusterings by Calinski-Harabasz score
# ----------------------------------------------------------------------------------------------------------------------


def test_grouping_keeps_the_run_with_the_best_calinski_harabasz_score():
    from sklearn.metrics import calinski_harabasz_score

    from mlic_hf.models.multilabel_vpt.grouping import (
        affinity_matrices,
        compute_label_groups,
        conditional_probabilities,
        cooccurrence_counts,
        spectral_groups,
    )

    from .test_grouping import planted_blocks

    labels = planted_blocks(num_blocks=5, block_size=3, seed=0)
    _, m_minus = affinity_matrices(conditional_probabilities(cooccurrence_counts(labels)))
    runs = [spectral_groups(m_minus, 5, seed=s, n_init=1) for s in range(6)]
    scores = [calinski_harabasz_score(m_minus, run) for run in runs]  # CPSD's score: the affinity rows as points
    assert len({tuple(run) for run in runs}) > 1  # the DC graph's runs differ: the choice matters
    best = spectral_groups(m_minus, 5, seed=0, n_init=1, n_runs=6)
    np.testing.assert_array_equal(best, runs[int(np.argmax(scores))])
    np.testing.assert_array_equal(spectral_groups(m_minus, 5, seed=0, n_init=1, n_runs=6), best)  # deterministic
    np.testing.assert_array_equal(spectral_groups(m_minus, 5, seed=0, n_init=1, n_runs=1), runs[0])
    groups = compute_label_groups(labels, num_groups=5, seed=0, n_init=1, n_runs=6)
    assert groups.dc == tuple(best.tolist()) and groups.n_runs == 6 and groups.to_dict()["n_runs"] == 6
    with pytest.raises(ValueError, match="n_runs"):
        spectral_groups(m_minus, 5, n_runs=0)


def test_the_config_computes_groups_with_its_number_of_runs():
    import datasets

    from mlic_hf.models.multilabel_vpt.grouping import groups_from_dataset

    from .test_grouping import planted_blocks

    train = datasets.Dataset.from_dict({"labels": planted_blocks(num_blocks=3, block_size=2, seed=0).tolist()})
    config = MultiLabelVPTConfig(**{**TINY, "co_groups": None, "dc_groups": None, "grouping_runs": 3})
    config.setup_from_training_data(train)
    expected = groups_from_dataset(train, num_groups=3, n_runs=3).to_config_kwargs()
    assert (config.co_groups, config.dc_groups) == (expected["co_groups"], expected["dc_groups"])
    assert "best of 3 runs" in config.model_card_sections()[0][1]


# ----------------------------------------------------------------------------------------------------------------------
# Presets
# ----------------------------------------------------------------------------------------------------------------------

AUTHORS_PRESETS = {  # preset: (backbone, learning rate, prompt_features_norm)
    "m3-authors": ("vit_base_patch16_224.orig_in21k_ft_in1k", 5e-4, True),
    "m3-authors-in21k": ("vit_base_patch16_224.augreg_in21k", 5e-4, False),
    "m3-authors-mae": ("vit_base_patch16_224.mae", 5e-4, False),
    "m3-authors-mocov3": ("vit_base_patch16_224", 5e-4, False),
    "m3-authors-dinov2": ("vit_base_patch14_dinov2.lvd142m", 1e-4, True),
    "m3-authors-dinov2-small": ("vit_small_patch14_dinov2.lvd142m", 5e-4, True),
}


@pytest.mark.parametrize("name", sorted(AUTHORS_PRESETS))
def test_authors_presets_parse_and_build_their_config(name):
    from mlic_hf.training import build_config, parse_args

    backbone, lr, features_norm = AUTHORS_PRESETS[name]
    model_args, data_args, training_args = parse_args(["--preset", name])
    assert (model_args.method, model_args.backbone, model_args.image_size, model_args.loss) == (
        "mlic-ml-vpt", backbone, 224, "asl")
    assert (training_args.learning_rate, training_args.weight_decay, training_args.max_grad_norm) == (lr, 1e-2, 0.0)
    assert training_args.per_device_train_batch_size == 64 and training_args.num_train_epochs == 40
    assert training_args.one_cycle and training_args.one_cycle_pct_start == 0.2
    assert training_args.ema_decay == pytest.approx(0.82 ** (1 / 1282), abs=1e-6) and not training_args.ema_warmup
    assert training_args.early_stopping_patience == 7
    assert data_args.hflip == 0.0 and data_args.cutout == 0.5 and data_args.rand_augment
    config = build_config(model_args, list(COCO_LABELS))
    for key, value in AUTHORS_SWITCHES.items():
        assert getattr(config, key) == value, key
    assert config.prompt_features_norm is features_norm
    assert (config.image_mean, config.image_std) == (IMAGENET_MEAN, IMAGENET_STD)  # every backbone of theirs
    assert (config.co_groups, config.dc_groups) == published_label_groups("coco", COCO_LABELS)
    assert PRESETS["m3"]["learning_rate"] == 5e-4 and "config_overrides" not in PRESETS["m3"]  # m3 unchanged


def test_authors_preset_with_another_backbone_keeps_its_statistics():
    from mlic_hf.training import build_config, parse_args

    # a stand-in ViT: --config_overrides is merged into the preset's switches (its keys win, the others stay)
    overrides = {"backbone_kwargs": TINY["backbone_kwargs"], "num_groups": 3, "co_groups": TINY["co_groups"],
                 "dc_groups": TINY["dc_groups"], "grouping_runs": 2}
    model_args, _, _ = parse_args(["--preset", "m3-authors", "--backbone", "vit_tiny_patch16_224", "--image_size",
                                   "32", "--config_overrides", json.dumps(overrides)])
    config = build_config(model_args, [f"l{i}" for i in range(6)])
    for key, value in AUTHORS_SWITCHES.items():
        assert getattr(config, key) == (2 if key == "grouping_runs" else value), key
    assert config.image_mean is None and config.gate_logit_loss and config.label_groups_preset == "auto"
    model = MultiLabelVPTForMultiLabelImageClassification(config)
    assert model.config.image_mean == [0.5, 0.5, 0.5]  # timm's vit_tiny statistics, not the ViT-B recipe's ImageNet
    out = model.train()(PIXELS, labels=LABELS)
    assert torch.isfinite(out.loss) and len(model.loss_logits(out)) == 4


# ----------------------------------------------------------------------------------------------------------------------
# The library's COCO / NUS-WIDE loaders give the labels the published groups are keyed by
# ----------------------------------------------------------------------------------------------------------------------

#: MS-COCO's 80 category ids (1..90 with gaps), in id order
COCO_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33,
            34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61,
            62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]


def test_coco_loader_labels_take_the_published_groups(tmp_path):
    from mlic_hf.data.coco import load_coco
    from mlic_hf.data.common import label_names_of

    from ...data.fixtures import coco_instances, write_image, write_text

    assert len(COCO_IDS) == len(set(COCO_IDS)) == len(COCO_LABELS) == 80
    categories = [{"supercategory": "x", "id": i, "name": n} for i, n in zip(COCO_IDS, COCO_LABELS)]
    random.Random(1).shuffle(categories)  # the instances file lists them in any order; the loader sorts by id
    for split, image_id in (("train", 10), ("val", 7)):
        name = f"COCO_{split}2014_{image_id:012d}.jpg"
        write_text(tmp_path / "annotations" / f"instances_{split}2014.json",
                   json.dumps(coco_instances([(image_id, name)], [(image_id, 1, 0)], categories)))
        write_image(tmp_path / f"{split}2014" / name)
    names = label_names_of(load_coco(tmp_path))
    assert names == list(COCO_LABELS)  # the authors' order is the loader's (both: category-id order)
    config = MultiLabelVPTConfig(id2label=dict(enumerate(names)), label_groups_preset="auto")
    assert (config.co_groups, config.dc_groups) == published_label_groups("coco", COCO_LABELS)


def test_nus_wide_loader_labels_take_the_published_groups(tmp_path):
    from mlic_hf.data.common import label_names_of
    from mlic_hf.data.nuswide import load_nus_wide

    from ...data.fixtures import write_image, write_text

    write_text(tmp_path / "Concepts81.txt", "\r\n".join(NUS_WIDE_LABELS) + "\r\n")
    for tag in ("Train", "Test"):
        write_text(tmp_path / "ImageList" / f"{tag}Imagelist.txt", f"actor\\0001_{tag}.jpg\r\n")
        for concept in NUS_WIDE_LABELS:
            write_text(tmp_path / "Groundtruth" / "TrainTestLabels" / f"Labels_{concept}_{tag}.txt",
                       "1\r\n" if concept == "sky" else "0\r\n")
        write_image(tmp_path / "Flickr" / "actor" / f"0001_{tag}.jpg")
    names = label_names_of(load_nus_wide(tmp_path))
    assert names == list(NUS_WIDE_LABELS)
    config = MultiLabelVPTConfig(id2label=dict(enumerate(names)), label_groups_preset="nus-wide")
    assert (config.co_groups, config.dc_groups) == published_label_groups("nus-wide", NUS_WIDE_LABELS)
