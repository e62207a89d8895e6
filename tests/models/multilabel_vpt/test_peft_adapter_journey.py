"""Journey 7 of the acceptance suite (``tests/test_journeys.py``), ML-VPT's own: ML-VPT as a PEFT adapter on a timm
ViT: train, save the adapter, load it onto a fresh ViT, same predictions."""

import torch

IMAGE_SIZE = 32


def test_journey_7_ml_vpt_as_a_peft_adapter(tmp_path):
    import timm
    from peft import PeftModel, get_peft_model

    from mlic_hf.models.multilabel_vpt.peft_methods import MLVPTConfig

    def base_vit():
        torch.manual_seed(1)  # the "pretrained" weights a user would load again
        return timm.create_model("vit_tiny_patch16_224", img_size=IMAGE_SIZE, patch_size=8, embed_dim=32,
                                 num_heads=2, depth=3, num_classes=4)

    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(8, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    labels = (torch.rand(8, 4, generator=generator) > 0.5).float()
    model = get_peft_model(base_vit(), MLVPTConfig(co_groups=[0, 0, 1, 1], dc_groups=[0, 1, 0, 1], num_groups=2,
                                                   num_prompts_per_group=2))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(pixels), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    model.eval()
    with torch.no_grad():
        expected = model(pixels)
    model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    loaded = PeftModel.from_pretrained(base_vit(), tmp_path / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixels), expected, rtol=0, atol=0)
