"""ML-VPT (M3) specifics: Table 4 parameter counts, frozen backbone, eq. 17 loss, ablation switches, PEFT parity."""

import logging
import math

import pytest
import torch
from peft import get_peft_model

from mlic_hf.losses import asymmetric_loss
from mlic_hf.models.multilabel_vpt import MultiLabelVPTConfig, MultiLabelVPTForMultiLabelImageClassification

TINY = dict(backbone="vit_tiny_patch16_224", image_size=32, backbone_kwargs={"patch_size": 8, "embed_dim": 32,
            "num_heads": 2, "depth": 3}, id2label={i: f"l{i}" for i in range(6)}, num_groups=3,
            num_prompts_per_group=2, co_groups=[0, 0, 1, 1, 2, 2], dc_groups=[0, 1, 2, 0, 1, 2])
PIXELS = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
LABELS = torch.tensor([[1.0, 0, 1, 0, 0, 1], [0, 1, 0, 0, 1, 0]])


def tiny(**overrides):
    return MultiLabelVPTForMultiLabelImageClassification(MultiLabelVPTConfig(**{**TINY, **overrides}))


def counts(model):
    total = sum(p.numel() for p in model.parameters())
    return total, sum(p.numel() for p in model.parameters() if p.requires_grad)


# Table 4 of the paper (DINOv2/B, 80 COCO labels), in millions: (total, learnable)
TABLE4 = {"ml-vpt": (87.60, 1.02), "vpt": (86.91, 0.33), "linear-probe": (86.64, 0.06)}


@pytest.mark.parametrize("variant", sorted(TABLE4))
def test_table4_parameter_counts_dinov2_base(variant):
    paper_total, paper_learnable = TABLE4[variant]
    with torch.device("meta"):  # parameter counts only: no memory, no weights
        native = MultiLabelVPTForMultiLabelImageClassification(MultiLabelVPTConfig(
            backbone="vit_base_patch14_dinov2", variant=variant, backbone_kwargs={"img_size": 518}))
        default = MultiLabelVPTForMultiLabelImageClassification(MultiLabelVPTConfig(
            backbone="vit_base_patch14_dinov2", variant=variant))
    total, learnable = counts(native)
    # The paper counts DINOv2's native 37x37 position grid and truncates to two decimals: every row matches exactly.
    assert math.floor(total / 1e4) / 100 == paper_total
    assert math.floor(learnable / 1e4) / 100 == paper_learnable
    assert abs(total / 1e6 - paper_total) / paper_total < 0.02
    # learnable counts: within the paper's 0.01 M resolution; ML-VPT's 1.022 M also within 2 % (VPT's 0.338 M and
    # linear probing's 0.0615 M truncate to 0.33 / 0.06 but are 2.4 % / 2.5 % above those truncated values)
    assert 0 <= learnable / 1e6 - paper_learnable < 0.01
    if variant == "ml-vpt":
        assert abs(learnable / 1e6 - paper_learnable) / paper_learnable < 0.02
    # at the default 224 px the position grid is 16x16: the totals stay within 2 %, learnable counts are unchanged
    default_total, default_learnable = counts(default)
    assert abs(default_total / 1e6 - paper_total) / paper_total < 0.02
    assert default_learnable == learnable


def test_only_prompts_experts_gates_and_heads_train_and_the_backbone_is_bit_identical():
    model = tiny().train()
    assert not model.vit.training  # the frozen ViT stays in eval mode (no dropout / drop-path)
    backbone = {k: v.clone() for k, v in model.vit.state_dict().items()}
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith(("prompts.", "head.")) for n in trainable)
    assert {n.split(".")[3] for n in trainable if n.startswith("head.moe")} == {"down_weight", "down_bias", "up_weight",
                                                                                "up_bias", "gate_weight", "gate_bias"}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)  # every parameter, as Trainer
    model(PIXELS, labels=LABELS).loss.backward()
    optimizer.step()
    for key, value in model.vit.state_dict().items():
        assert torch.equal(value, backbone[key]), key


def test_loss_is_the_sum_of_both_heads_asl():
    model = tiny(loss_reduction="sum").eval()
    out = model(PIXELS, labels=LABELS)
    expected = sum(asymmetric_loss(out.extras[f"{k}_logits"], LABELS, reduction="sum") for k in ("co", "dc"))
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(torch.sigmoid(out.logits),
                               0.5 * (torch.sigmoid(out.extras["co_logits"]) + torch.sigmoid(out.extras["dc_logits"])))
    assert out.label_features.shape == (2, 6, 64)


def test_switches_build_train_and_change_the_parameter_count():
    base_total, base_learnable = counts(tiny())
    dim, depth, prompts = 32, 3, 2 * 3 * 2
    shallow = tiny(prompt_depth="shallow")
    assert counts(shallow)[1] == base_learnable - (depth - 1) * prompts * dim
    no_moe = tiny(use_moe=False)
    experts = 2 * 3 * 2 * (dim * 5 + 5 + 5 * dim + dim)
    gates = 2 * 6 * 2 * (dim + 1)
    assert counts(no_moe)[1] == base_learnable - experts - gates
    co_only = tiny(use_dc_groups=False)
    assert counts(co_only)[1] == (base_learnable - depth * prompts // 2 * dim - experts // 2 - gates // 2
                                  - (6 * dim + 6))
    hidden = tiny(expert_hidden_size=7)
    assert counts(hidden)[1] == base_learnable + 2 * 3 * 2 * 2 * (2 * dim + 1)
    for overrides in ({"prompt_mask": "self"}, {"prompt_mask": "none"}, {"head_fusion": "logit"},
                      {"expert_activation": "gelu"}, {"prompt_features_norm": False}, {"prompt_dropout": 0.1}):
        assert counts(tiny(**overrides)) == (base_total, base_learnable), overrides
    for model in (shallow, no_moe, co_only, hidden, tiny(prompt_mask="self"), tiny(head_fusion="logit")):
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
        loss = model.train()(PIXELS, labels=LABELS).loss
        assert torch.isfinite(loss)
        loss.backward()
        optimizer.step()
        assert any(not torch.equal(b, p) for b, p in zip(before, [p for p in model.parameters() if p.requires_grad]))


def test_prompt_mask_changes_the_output():
    group, free = tiny(prompt_mask="group").eval(), tiny(prompt_mask="none").eval()
    free.load_state_dict(group.state_dict())
    with torch.no_grad():
        assert not torch.allclose(group(PIXELS).logits, free(PIXELS).logits)


def test_baseline_variants():
    dim, labels = 32, 6
    vpt, probe, full = tiny(variant="vpt", vpt_num_prompts=4), tiny(variant="linear-probe"), tiny(variant="full-finetune")
    assert counts(vpt)[1] == 3 * 4 * dim + labels * dim + labels
    assert counts(probe)[1] == labels * dim + labels
    assert counts(full)[1] == counts(full)[0]
    assert full.train().vit.training
    for model in (vpt, probe, full):
        out = model(PIXELS, labels=LABELS)
        assert out.logits.shape == (2, labels) and torch.isfinite(out.loss)
        torch.testing.assert_close(out.loss, asymmetric_loss(out.logits, LABELS, reduction="batch_mean"))


def test_group_fallbacks_warn(caplog):
    with caplog.at_level(logging.WARNING):
        model = tiny(co_groups=None, dc_groups=None)
    assert "no label groups" in caplog.text
    assert model.config.co_groups == [0, 0, 1, 1, 2, 2] and model.config.dc_groups == [0, 1, 2, 0, 1, 2]
    assert model.config.label_groups_source == "fallback"
    assert "Default groups" in model.config.model_card_sections()[0][1]
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # as from_pretrained(..., num_labels=9, ignore_mismatched_sizes=True)
        config = MultiLabelVPTConfig(**{**TINY, "id2label": {i: f"l{i}" for i in range(9)}})
    assert "co_groups has 6 entries but the config has 9 labels" in caplog.text
    assert config.co_groups is None and config.dc_groups is None
    model = MultiLabelVPTForMultiLabelImageClassification(config)
    assert len(model.config.co_groups) == 9 and model(PIXELS).logits.shape == (2, 9)


def test_config_validation():
    with pytest.raises(ValueError, match="variant"):
        MultiLabelVPTConfig(variant="lora")
    with pytest.raises(ValueError, match=r"outside \[0, num_groups=3\)"):
        MultiLabelVPTConfig(**{**TINY, "co_groups": [0, 1, 2, 3, 0, 1]})
    with pytest.raises(ValueError, match="fewer groups"):
        MultiLabelVPTConfig(num_labels=3, num_groups=5)
    with pytest.raises(ValueError, match="use_co_groups"):
        MultiLabelVPTConfig(use_co_groups=False, use_dc_groups=False)
    with pytest.raises(TypeError, match="VisionTransformer"):
        MultiLabelVPTForMultiLabelImageClassification(MultiLabelVPTConfig(backbone="resnet18", num_labels=6,
                                                                           num_groups=2))


@pytest.mark.parametrize("switches", [{}, {"gate_bias": False, "prompt_mask": "self", "head_fusion": "logit"}],
                         ids=["paper", "authors"])
def test_peft_adapter_computes_the_same_function(switches):
    import timm

    from mlic_hf.models.multilabel_vpt.peft_methods import MLVPTConfig

    model = tiny(**switches).eval()
    adapter_config = MLVPTConfig.from_model_config(model.config)
    assert adapter_config.gate_bias is switches.get("gate_bias", True)
    vit = timm.create_model(TINY["backbone"], img_size=32, num_classes=6, **TINY["backbone_kwargs"])
    vit.load_state_dict(model.vit.state_dict(), strict=False)  # same backbone; its own head is unused
    peft_model = get_peft_model(vit, adapter_config).eval()
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("prompts."):
            state["base_model.model.blocks.mlvpt_prompts.default." + key[len("prompts."):]] = value
        elif key.startswith("head."):
            state["base_model.model.head.mlvpt_head.default." + key[len("head."):]] = value
    missing = peft_model.load_state_dict(state, strict=False)
    assert not [k for k in missing.missing_keys if "mlvpt_" in k] and not missing.unexpected_keys
    with torch.no_grad():
        torch.testing.assert_close(peft_model(PIXELS), model(PIXELS).logits)


def test_the_training_data_hook_computes_the_groups_from_the_training_split():
    import datasets
    import numpy as np

    from mlic_hf.models.multilabel_vpt.grouping import groups_from_dataset

    rng = np.random.default_rng(0)
    blocks = [[0, 1], [2, 3], [4, 5]]  # labels of a block always appear together
    rows = []
    for _ in range(60):
        chosen = rng.choice(3, size=rng.integers(1, 3), replace=False)
        rows.append([1.0 if any(k in blocks[b] for b in chosen) else 0.0 for k in range(6)])
    train = datasets.Dataset.from_dict({"labels": rows})
    config = MultiLabelVPTConfig(**{**TINY, "co_groups": None, "dc_groups": None})
    config.setup_from_training_data(train)
    expected = groups_from_dataset(train, num_groups=3, tau=2.0, seed=0).to_config_kwargs()
    assert config.co_groups == expected["co_groups"] and config.dc_groups == expected["dc_groups"]
    assert config.co_groups == [0, 0, 1, 1, 2, 2]  # the planted blocks
    assert config.label_groups_source == "co-occurrence of 60 training images"
    kept = MultiLabelVPTConfig(**{**TINY, "co_groups": [0, 1, 2, 0, 1, 2]})
    kept.setup_from_training_data(train)  # groups given: left alone
    assert kept.co_groups == [0, 1, 2, 0, 1, 2] and kept.dc_groups == TINY["dc_groups"]
    kept.setup_from_training_data(train, recompute=True)  # a new label set: groups of the old labels replaced
    assert kept.co_groups == expected["co_groups"] and kept.dc_groups == expected["dc_groups"]


def test_m3_preset_is_the_papers_recipe():
    from mlic_hf.training import parse_args

    model_args, data_args, training_args = parse_args(["--preset", "m3"])
    assert model_args.method == "mlic-ml-vpt" and model_args.backbone == "vit_base_patch16_224"
    assert model_args.image_size == 224 and model_args.loss == "asl"
    assert training_args.learning_rate == 5e-4 and training_args.one_cycle
    assert training_args.per_device_train_batch_size == 64 and training_args.num_train_epochs == 40
    assert training_args.ema_decay == 0.9997 and training_args.early_stopping_patience == 3
    assert data_args.rand_augment and data_args.cutout > 0


@pytest.mark.parametrize("backbone, dim, depth", [
    ("vit_base_patch16_224", 768, 12),
    ("vit_base_patch14_dinov2", 768, 12),
    ("vit_small_patch14_dinov2", 384, 12),
    ("vit_base_patch16_224.mae", 768, 12),
])
def test_the_papers_backbones_build(backbone, dim, depth):
    with torch.device("meta"):  # structure only (random init offline; pretrained=True where the Hub is reachable)
        model = MultiLabelVPTForMultiLabelImageClassification(MultiLabelVPTConfig(backbone=backbone))
    assert model.prompts.tokens.shape == (depth, 30, dim)  # deep: 2 kinds x 5 groups x 3 tokens per block
    assert model.head.moe["co"].gate_weight.shape == (80, 3, dim)
    assert counts(model)[1] == depth * 30 * dim + 2 * 15 * (2 * dim * 5 + 5 + dim) + 2 * 80 * 3 * (dim + 1) \
        + 2 * (80 * dim + 80)


def test_model_card_lists_the_label_groups(tmp_path):
    from mlic_hf.hub import write_model_card

    model = tiny(id2label={0: "cat", 1: "dog", 2: "sofa", 3: "car", 4: "bus", 5: "a|b"})
    model.save_pretrained(tmp_path)
    card = write_model_card(tmp_path).read_text()
    assert "### Label groups" in card and "Spectral clustering" in card
    assert "| 0 | cat, dog | cat, car |" in card and "| 2 | bus, a&#124;b | sofa, a&#124;b |" in card  # escaped by the card
    assert "`co_groups` | `[0, 0, 1, 1, 2, 2]`" in card  # short lists stay in the architecture table


def test_mocov3_checkpoints_load_their_base_encoder(tmp_path):
    import timm

    source = timm.create_model(TINY["backbone"], img_size=32, num_classes=0, **TINY["backbone_kwargs"])
    state = {f"module.base_encoder.{k}": v for k, v in source.state_dict().items()}
    state.update({f"module.momentum_encoder.{k}": torch.zeros_like(v) for k, v in source.state_dict().items()})
    state["module.base_encoder.head.0.weight"] = torch.zeros(4, 32)  # MoCo's projection MLP, not a classifier
    state["module.predictor.0.weight"] = torch.zeros(4, 4)
    torch.save({"epoch": 300, "arch": "vit_tiny", "state_dict": state}, tmp_path / "mocov3.pth.tar")
    model = tiny(backbone_weights=str(tmp_path / "mocov3.pth.tar"))
    assert model.loaded_weights.endswith("mocov3.pth.tar")
    for key, value in source.state_dict().items():
        assert torch.equal(model.vit.state_dict()[key], value), key
