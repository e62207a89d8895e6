"""Query2Label against a transcription of the official model's forward (github.com/SlongLiu/query2labels,
``lib/models/query2label.py``, ``transformer.py``, ``position_encoding.py``), written for this test with the official
module names, its weights converted by the documented key map; and its own defaults and switches."""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from mlic_hf import Query2LabelConfig, Query2LabelForMultiLabelImageClassification
from mlic_hf.models.query2label.convert_query2label import config_from_official_args, convert_state_dict


class _Sine(nn.Module):
    """The official ``PositionEmbeddingSine(hidden/2, normalize=True)``: cumulative sums over a grid of ones, divided
    by the last + 1e-6, times 2π; frequencies 10000^(2⌊i/2⌋/npf); sin of even and cos of odd channels interleaved."""

    def __init__(self, num_pos_feats, height, width):
        super().__init__()
        ones = torch.ones(1, height, width)
        y, x = ones.cumsum(1), ones.cumsum(2)
        y = y / (y[:, -1:, :] + 1e-6) * 2 * math.pi
        x = x / (x[:, :, -1:] + 1e-6) * 2 * math.pi
        dim_t = torch.arange(num_pos_feats, dtype=torch.float32)
        dim_t = 10000 ** (2 * (dim_t // 2) / num_pos_feats)
        px, py = x[..., None] / dim_t, y[..., None] / dim_t
        px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=4).flatten(3)
        py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=4).flatten(3)
        self.register_buffer("pe", torch.cat((py, px), dim=3).permute(0, 3, 1, 2))


class _EncoderLayer(nn.Module):
    def __init__(self, d, heads, ff, pre_norm=False):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads)
        self.linear1, self.linear2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.pre_norm = pre_norm

    def forward(self, src, pos):  # dropout off
        if self.pre_norm:  # forward_pre
            src2 = self.norm1(src)
            q = k = src2 + pos
            src = src + self.self_attn(q, k, value=src2)[0]
            return src + self.linear2(F.relu(self.linear1(self.norm2(src))))
        q = k = src + pos  # forward_post
        src = self.norm1(src + self.self_attn(q, k, value=src)[0])
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


class _DecoderLayer(nn.Module):
    def __init__(self, d, heads, ff, keep_self_attn, pre_norm=False):
        super().__init__()
        if keep_self_attn:
            self.self_attn, self.norm1 = nn.MultiheadAttention(d, heads), nn.LayerNorm(d)
        self.multihead_attn = nn.MultiheadAttention(d, heads)
        self.linear1, self.linear2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.pre_norm = pre_norm

    def forward(self, tgt, memory, pos, query_pos):  # dropout off
        if self.pre_norm:  # forward_pre (the official one needs self-attention: it reads norm1 and self_attn)
            tgt2 = self.norm1(tgt)
            q = k = tgt2 + query_pos
            tgt = tgt + self.self_attn(q, k, value=tgt2)[0]
            tgt2 = self.norm2(tgt)
            tgt = tgt + self.multihead_attn(query=tgt2 + query_pos, key=memory + pos, value=memory)[0]
            return tgt + self.linear2(F.relu(self.linear1(self.norm3(tgt))))
        if hasattr(self, "self_attn"):  # forward_post
            q = k = tgt + query_pos
            tgt = self.norm1(tgt + self.self_attn(q, k, value=tgt)[0])
        tgt = self.norm2(tgt + self.multihead_attn(query=tgt + query_pos, key=memory + pos, value=memory)[0])
        return self.norm3(tgt + self.linear2(F.relu(self.linear1(tgt))))


class _OfficialHead(nn.Module):
    """``Qeruy2Label`` without its backbone: input_proj → Transformer (encoder, decoder from zeros, final norm) →
    GroupWiseLinear, sequence-first as the official code."""

    def __init__(self, channels, num_labels, d, heads, ff, enc_layers, dec_layers, keep_first, keep_other, proj,
                 grid, pre_norm=False):
        super().__init__()
        self.input_proj = nn.Conv2d(channels, d, 1) if proj else nn.Identity()
        self.pos = _Sine(d // 2, grid, grid)
        self.transformer = nn.Module()
        self.transformer.encoder = nn.Module()
        self.transformer.encoder.layers = nn.ModuleList(_EncoderLayer(d, heads, ff, pre_norm)
                                                        for _ in range(enc_layers))
        if pre_norm:
            self.transformer.encoder.norm = nn.LayerNorm(d)
        self.transformer.decoder = nn.Module()
        keep = [keep_first if i == 0 else keep_other for i in range(dec_layers)]
        self.transformer.decoder.layers = nn.ModuleList(_DecoderLayer(d, heads, ff, k, pre_norm) for k in keep)
        self.transformer.decoder.norm = nn.LayerNorm(d)
        self.query_embed = nn.Embedding(num_labels, d)
        self.fc = nn.Module()
        self.fc.W = nn.Parameter(torch.randn(1, num_labels, d) / math.sqrt(d))
        self.fc.b = nn.Parameter(torch.randn(1, num_labels) / math.sqrt(d))
        for p in self.transformer.parameters():  # random, so that norms' and biases' places are checked too
            p.data.normal_(0, 0.2)

    def forward(self, features):
        src = self.input_proj(features)
        bs = src.shape[0]
        pos = self.pos.pe.repeat(bs, 1, 1, 1).flatten(2).permute(2, 0, 1)
        src = src.flatten(2).permute(2, 0, 1)
        query_pos = self.query_embed.weight.unsqueeze(1).repeat(1, bs, 1)
        memory = src
        for layer in self.transformer.encoder.layers:
            memory = layer(memory, pos)
        if hasattr(self.transformer.encoder, "norm"):
            memory = self.transformer.encoder.norm(memory)
        tgt = torch.zeros_like(query_pos)
        for layer in self.transformer.decoder.layers:
            tgt = layer(tgt, memory, pos, query_pos)
        hs = self.transformer.decoder.norm(tgt).transpose(0, 1)  # B, K, d
        return (self.fc.W * hs).sum(-1) + self.fc.b


def _pair(enc_layers=1, dec_layers=2, keep_first=False, keep_other=False, proj=True, num_labels=6, pre_norm=False):
    d, heads, ff = 32, 4, 64
    args = {"backbone": "resnet18", "img_size": 64, "hidden_dim": d, "dim_feedforward": ff, "enc_layers": enc_layers,
            "dec_layers": dec_layers, "nheads": heads, "dropout": 0.0, "keep_input_proj": proj,
            "keep_first_self_attn_dec": keep_first, "keep_other_self_attn_dec": keep_other, "num_class": num_labels,
            "pre_norm": pre_norm}
    config = config_from_official_args(args)
    torch.manual_seed(0)
    model = Query2LabelForMultiLabelImageClassification(config).eval()
    official = _OfficialHead(model.backbone.channels[-1], num_labels, d, heads, ff, enc_layers, dec_layers,
                             keep_first, keep_other, proj, grid=2, pre_norm=pre_norm).eval()
    state = {f"module.{k}": v for k, v in official.state_dict().items()}  # as saved by DistributedDataParallel
    state.update({f"module.backbone.0.body.{k}": v for k, v in model.backbone.body.state_dict().items()})
    state["module.backbone.1.pe"] = official.pos.pe
    del state["module.pos.pe"]
    missing, unexpected = model.load_state_dict(convert_state_dict(state), strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    return model, official


@pytest.mark.parametrize(
    "switches",
    [{}, {"keep_first": True, "keep_other": True}, {"keep_first": True}, {"keep_other": True, "dec_layers": 3},
     {"enc_layers": 0}, {"enc_layers": 2, "dec_layers": 1},
     {"pre_norm": True, "keep_first": True, "keep_other": True}],
    ids=["official-default", "all-self-attention", "first-self-attention", "other-self-attention", "no-encoder",
         "two-encoder-layers", "pre-norm"],
)
def test_equals_the_official_forward_with_converted_weights(switches):
    model, official = _pair(**switches)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        features = model.backbone(x)[-1]
        torch.testing.assert_close(model(x).logits, official(features), rtol=1e-5, atol=1e-5)


def test_identity_input_projection_when_the_width_is_the_backbones():
    with pytest.raises(ValueError, match="hidden_size equal to the backbone's channels: resnet18 gives 512"):
        Query2LabelForMultiLabelImageClassification(Query2LabelConfig(backbone="resnet18", hidden_size=32,
                                                                      num_labels=3))
    model = Query2LabelForMultiLabelImageClassification(Query2LabelConfig(
        backbone="resnet18", image_size=64, hidden_size=512, intermediate_size=64, num_attention_heads=4,
        num_labels=3)).eval()
    assert isinstance(model.input_proj, nn.Identity)
    assert model(torch.randn(1, 3, 64, 64)).logits.shape == (1, 3)


def test_sine_position_embedding_is_the_official_table():
    from mlic_hf.layers.position import sine_position_embedding_2d

    for height, width in [(2, 2), (14, 14), (3, 5)]:
        official = _Sine(16, height, width).pe
        torch.testing.assert_close(sine_position_embedding_2d(32, height, width, interleave=True, eps=1e-6),
                                   official, rtol=0, atol=1e-6)


def test_defaults_are_the_official_coco_command():
    config = Query2LabelConfig()
    assert (config.backbone, config.image_size, config.num_labels) == ("resnet101", 448, 80)
    assert (config.hidden_size, config.intermediate_size, config.num_attention_heads) == (2048, 8192, 4)
    assert (config.num_encoder_layers, config.num_decoder_layers, config.dropout) == (1, 2, 0.1)
    assert (config.input_projection, config.decoder_self_attention, config.position_embedding) == (False, "none", "sine")
    assert (config.loss, config.asl_gamma_neg, config.asl_gamma_pos, config.asl_clip, config.asl_eps) == (
        "asl", 2.0, 0.0, 0.0, 1e-5)
    assert (config.frozen_batch_norm, config.frozen_backbone_stride) == (True, 4)


def test_backbone_stem_and_first_stage_are_frozen_and_batch_norms_are_buffers():
    from torchvision.ops.misc import FrozenBatchNorm2d  # what timm's freeze_batch_norm_2d builds

    model = Query2LabelForMultiLabelImageClassification(Query2LabelConfig(
        backbone="resnet18", image_size=64, hidden_size=32, input_projection=True, intermediate_size=64,
        num_labels=3))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not any(n.startswith(("backbone.body.conv1.", "backbone.body.layer1.")) for n in trainable)
    assert any(n.startswith("backbone.body.layer2.") for n in trainable)
    assert not [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert any(isinstance(m, FrozenBatchNorm2d) for m in model.backbone.modules())
    everything = Query2LabelForMultiLabelImageClassification(Query2LabelConfig(
        backbone="resnet18", image_size=64, hidden_size=32, input_projection=True, intermediate_size=64,
        num_labels=3, frozen_backbone_stride=None, frozen_batch_norm=False))
    assert all(p.requires_grad for p in everything.parameters())


def test_label_embeddings_are_query_positions_in_every_layer():
    """Q2L's queries start from zeros: with the label embeddings zeroed, every label decodes the same output."""
    model, _ = _pair(enc_layers=1, dec_layers=2)
    with torch.no_grad():
        model.label_embeddings.weight.zero_()
        out = model(torch.randn(2, 3, 64, 64))
    features = out.label_features
    torch.testing.assert_close(features, features[:, :1].expand_as(features))


def test_official_settings_mlic_hf_does_not_build_are_refused():
    with pytest.raises(ValueError, match="tresnetl"):
        config_from_official_args({"backbone": "tresnetl"})
    with pytest.raises(ValueError, match="num_decoder_layers"):
        Query2LabelConfig(num_decoder_layers=0)


def test_initialisation_is_the_official_one():
    """Xavier-uniform matrices, zero attention biases, PyTorch's FFN biases, N(0, 1) label embeddings and the uniform
    ±1/sqrt(d) classifier, as the official ``_reset_parameters``, ``nn.Embedding`` and ``GroupWiseLinear``."""
    torch.manual_seed(0)
    model = Query2LabelForMultiLabelImageClassification(Query2LabelConfig(
        backbone="resnet18", image_size=64, hidden_size=64, input_projection=True, intermediate_size=256,
        num_labels=300, decoder_self_attention="all"))
    d, ff = 64, 256
    layer, decoder_layer = model.encoder[0], model.decoder.layers[0]
    for weight in (layer.self_attn.qkv.weight, layer.linear1.weight, decoder_layer.cross_attn.in_proj_weight,
                   decoder_layer.cross_attn.out_proj.weight, decoder_layer.linear2.weight):
        fan_out, fan_in = weight.shape
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert weight.abs().max() <= bound and weight.abs().max() > 0.9 * bound  # xavier-uniform's bound, reached
    for bias in (layer.self_attn.qkv.bias, layer.self_attn.out_proj.bias, decoder_layer.cross_attn.in_proj_bias,
                 decoder_layer.cross_attn.out_proj.bias, decoder_layer.self_attn.in_proj_bias):
        assert torch.count_nonzero(bias) == 0
    assert 0.9 / math.sqrt(d) < layer.linear1.bias.abs().max() <= 1 / math.sqrt(d)
    assert 0.9 / math.sqrt(ff) < layer.linear2.bias.abs().max() <= 1 / math.sqrt(ff)
    assert 0.9 < model.label_embeddings.weight.std() < 1.1
    assert 0.9 / math.sqrt(d) < model.classifier.weight.abs().max() <= 1 / math.sqrt(d)
    assert 0.9 / math.sqrt(d) < model.classifier.bias.abs().max() <= 1 / math.sqrt(d)
