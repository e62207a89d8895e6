"""`ModelEMA` averages only what trains (trainable parameters and floating buffers) and its files load old and new;
`MLICTrainingArguments` rejects scheduler settings that ``one_cycle`` would silently override."""

import copy
import math

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from mlic_hf.training.arguments import MLICTrainingArguments
from mlic_hf.training.ema import ModelEMA
from mlic_hf.training.trainer import MLICTrainer

# what TinyNet's EMA must hold, in state_dict order: floating buffers and trainable parameters (``tied.weight`` is
# ``head.weight``)
AVERAGED = ["scale", "norm.weight", "norm.bias", "norm.running_mean", "norm.running_var", "head.weight", "head.bias",
            "tied.bias"]


class TinyNet(nn.Module):
    """A frozen layer, BatchNorm, a tied weight, a float buffer, an integer buffer and a non-persistent buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen = nn.Linear(4, 4).requires_grad_(False)
        self.norm = nn.BatchNorm1d(4)
        self.head = nn.Linear(4, 3)
        self.tied = nn.Linear(4, 3)
        self.tied.weight = self.head.weight
        self.register_buffer("scale", torch.ones(3))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("cache", torch.zeros(2), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.frozen(x))
        return (self.head(h) + self.tied(h)) * self.scale


def _train_step(model: TinyNet, optimizer: torch.optim.Optimizer) -> None:
    model.train()
    model(torch.randn(8, 4)).square().mean().backward()
    optimizer.step()
    optimizer.zero_grad()
    with torch.no_grad():
        model.scale.mul_(1.1)


def _old_format(model: nn.Module, num_updates: int) -> dict[str, torch.Tensor]:
    """What the previous ModelEMA saved: every floating tensor of the state_dict (frozen ones too)."""
    tensors = {k: v.detach().clone().float() + 0.25 for k, v in model.state_dict().items() if v.is_floating_point()}
    tensors["__num_updates__"] = torch.tensor([num_updates], dtype=torch.int64)
    return tensors


def test_ema_holds_trainable_parameters_and_floating_buffers():
    model = TinyNet()
    ema = ModelEMA(model, decay=0.9)
    assert list(ema.shadow) == AVERAGED
    for name, value in ema.shadow.items():
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, model.state_dict()[name].float())
        assert value.data_ptr() != model.state_dict()[name].data_ptr()  # a copy, not the live tensor


def test_updates_follow_the_warm_up_lerp_sequence():
    model = TinyNet()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    ema = ModelEMA(model, decay=0.3)  # (1 + t) / (10 + t) reaches 0.3 at t = 3: the cap is exercised
    frozen = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("frozen.")}
    expected = {k: v.clone() for k, v in ema.shadow.items()}
    for t in range(6):
        _train_step(model, optimizer)
        decay = min(0.3, (1 + t) / (10 + t))
        assert ema.current_decay() == pytest.approx(decay)
        ema.update(model)
        state = model.state_dict()
        for name in AVERAGED:
            expected[name] = decay * expected[name] + (1 - decay) * state[name].float()
    assert ema.num_updates == 6
    for name in AVERAGED:
        torch.testing.assert_close(ema.shadow[name], expected[name], rtol=1e-6, atol=1e-6)
    assert not torch.equal(ema.shadow["norm.running_mean"], torch.zeros(4))  # train mode moved the BN stats
    for name, value in frozen.items():
        assert torch.equal(model.state_dict()[name], value)


def test_updates_follow_tensors_replaced_by_to():
    """``.to()`` puts new buffer tensors (and with ``overwrite_module_params_on_conversion``, new Parameter objects)
    into the modules: the EMA must read those, not the tensors it saw at construction."""
    model = TinyNet()
    ema = ModelEMA(model, decay=0.5, warmup=False)
    bias = ema.shadow["head.bias"].clone()
    previous = torch.__future__.get_overwrite_module_params_on_conversion()
    torch.__future__.set_overwrite_module_params_on_conversion(True)
    try:
        model.double()
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(previous)
    with torch.no_grad():
        model.scale.fill_(3.0)
        model.head.bias.fill_(-1.0)
    ema.update(model)
    torch.testing.assert_close(ema.shadow["scale"], torch.full((3,), 2.0))
    assert ema.shadow["scale"].dtype == torch.float32
    torch.testing.assert_close(ema.shadow["head.bias"], 0.5 * bias - 0.5)
    ema.copy_to(model)
    assert model.scale.dtype == torch.float64
    torch.testing.assert_close(model.scale, torch.full((3,), 2.0, dtype=torch.float64))


def _ema_with_distinct_values(model: TinyNet) -> ModelEMA:
    ema = ModelEMA(model, decay=0.9)
    for value in ema.shadow.values():
        value.add_(10.0)  # distinguishable from the live weights
    return ema


def test_copy_to_and_swapped_into_leave_frozen_parameters_alone():
    model = TinyNet()
    ema = _ema_with_distinct_values(model)
    with torch.no_grad():
        model.frozen.weight.fill_(7.0)  # changed after the EMA was built: the old EMA would overwrite it
    live = {k: v.clone() for k, v in model.state_dict().items()}
    with ema.swapped_into(model) as swapped:
        assert swapped is model
        state = model.state_dict()
        for name in AVERAGED:
            torch.testing.assert_close(state[name], ema.shadow[name])
        assert model.tied.weight is model.head.weight
        for name in ("frozen.weight", "frozen.bias", "norm.num_batches_tracked", "steps"):
            assert torch.equal(state[name], live[name]), name
    for name, value in model.state_dict().items():
        assert torch.equal(value, live[name]), name  # all restored
    ema.copy_to(model)
    state = model.state_dict()
    for name in AVERAGED:
        torch.testing.assert_close(state[name], ema.shadow[name])
    assert torch.equal(state["frozen.weight"], torch.full((4, 4), 7.0))
    assert torch.equal(state["frozen.bias"], live["frozen.bias"])


def test_copy_to_another_model_object_by_name():
    model = TinyNet()
    ema = _ema_with_distinct_values(model)
    other = copy.deepcopy(model)
    ema.copy_to(other)
    torch.testing.assert_close(other.head.weight, ema.shadow["head.weight"])
    assert not torch.equal(model.head.weight, other.head.weight)  # the first model is not touched


def test_save_load_round_trip(tmp_path):
    model = TinyNet()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    ema = ModelEMA(model, decay=0.9)
    for _ in range(3):
        _train_step(model, optimizer)
        ema.update(model)
    path = tmp_path / "ema.safetensors"
    ema.save(str(path))
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        assert sorted(handle.keys()) == sorted(AVERAGED + ["__num_updates__"])  # no frozen weights on disk
    restored = ModelEMA(TinyNet(), decay=0.9)
    restored.load(str(path))
    assert restored.num_updates == 3
    assert list(restored.shadow) == list(ema.shadow)
    for name, value in ema.shadow.items():
        assert torch.equal(restored.shadow[name], value)


def test_load_old_format_with_extra_keys(tmp_path):
    model = TinyNet()
    path = tmp_path / "old.safetensors"
    old = _old_format(model, num_updates=42)
    assert {"frozen.weight", "frozen.bias", "tied.weight"} <= set(old)
    save_file(old, str(path))
    ema = ModelEMA(model)
    ema.load(str(path))
    assert ema.num_updates == 42 and list(ema.shadow) == AVERAGED
    for name in AVERAGED:
        assert torch.equal(ema.shadow[name], old[name])


def test_load_missing_keys_names_file_and_keys(tmp_path):
    model = TinyNet()
    ema = ModelEMA(model)
    path = tmp_path / "partial.safetensors"
    tensors = _old_format(model, num_updates=5)
    del tensors["head.bias"], tensors["scale"]
    save_file(tensors, str(path))
    before = {k: v.clone() for k, v in ema.shadow.items()}
    with pytest.raises(ValueError, match=r"partial\.safetensors.*lacks 2 needed tensors: head\.bias, scale"):
        ema.load(str(path))
    assert ema.num_updates == 0  # nothing half-loaded
    for name, value in before.items():
        assert torch.equal(ema.shadow[name], value)
    tensors = _old_format(model, num_updates=5)
    tensors["head.bias"] = torch.zeros(7)
    save_file(tensors, str(path))
    with pytest.raises(ValueError, match=r"wrong shape: head\.bias"):
        ema.load(str(path))


def test_a_model_with_nothing_to_average(tmp_path):
    model = nn.Linear(3, 2).requires_grad_(False)
    ema = ModelEMA(model)
    assert ema.shadow == {}
    ema.update(model)
    ema.copy_to(model)
    with ema.swapped_into(model):
        pass
    ema.save(str(tmp_path / "empty.safetensors"))
    ema.load(str(tmp_path / "empty.safetensors"))
    assert ema.num_updates == 1


# --- one_cycle against transformers' schedulers ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"lr_scheduler_type": "cosine"}, "--lr_scheduler_type cosine has no effect with --one_cycle true"),
        ({"warmup_steps": 0.1}, "--warmup_steps 0.1 has no effect with --one_cycle true"),
        ({"warmup_steps": 5}, "--warmup_steps 5 has no effect"),
        ({"lr_scheduler_kwargs": '{"num_cycles": 2}'}, "--lr_scheduler_kwargs .* has no effect"),
        ({"lr_scheduler_type": "constant", "warmup_steps": 3}, "constant and --warmup_steps 3 have no effect"),
    ],
)
def test_one_cycle_rejects_transformers_scheduler_settings(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message) as error:
        MLICTrainingArguments(output_dir=str(tmp_path), **extra)
    assert "pass --one_cycle false" in str(error.value)
    MLICTrainingArguments(output_dir=str(tmp_path), one_cycle=False, **extra)  # fine without one_cycle


def test_one_cycle_parses_from_the_command_line(tmp_path):
    from mlic_hf.training import parse_args

    with pytest.raises(ValueError, match="--lr_scheduler_type cosine has no effect"):
        parse_args(["--output_dir", str(tmp_path), "--lr_scheduler_type", "cosine"])
    args = parse_args(["--output_dir", str(tmp_path), "--lr_scheduler_type", "cosine", "--one_cycle", "false"])[2]
    assert args.lr_scheduler_type == "cosine" and not args.one_cycle
    assert parse_args(["--output_dir", str(tmp_path)])[2].one_cycle  # the defaults stay valid


class _Regressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": nn.functional.mse_loss(self.linear(x).squeeze(-1), labels)}


class _LearningRates:
    """Trainer callback recording the learning rate each optimizer step uses."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        rates = self.rates = []

        class Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
                rates.append(optimizer.param_groups[0]["lr"])

        self.callback = Callback()


def _train_lrs(tmp_path, **extra) -> tuple[list[float], MLICTrainer]:
    data = [{"x": torch.randn(2), "labels": torch.randn(())} for _ in range(8)]
    args = MLICTrainingArguments(output_dir=str(tmp_path), max_steps=8, per_device_train_batch_size=1,
                                 learning_rate=0.1, eval_strategy="no", save_strategy="no", use_cpu=True,
                                 ema_decay=0.0, dataloader_num_workers=0, disable_tqdm=True, **extra)
    recorder = _LearningRates()
    trainer = MLICTrainer(model=_Regressor(), args=args, train_dataset=data, callbacks=[recorder.callback])
    trainer.train()
    return recorder.rates, trainer


def test_without_one_cycle_the_trainer_uses_the_transformers_schedule(tmp_path):
    rates, trainer = _train_lrs(tmp_path / "cosine", one_cycle=False, lr_scheduler_type="cosine", warmup_steps=2)
    assert not isinstance(trainer.lr_scheduler, torch.optim.lr_scheduler.OneCycleLR)
    # transformers' cosine-with-warm-up: linear to the peak over 2 steps, then half a cosine over the 6 others
    expected = [0.1 * t / 2 if t < 2 else 0.1 * 0.5 * (1 + math.cos(math.pi * (t - 2) / 6)) for t in range(8)]
    assert rates == pytest.approx(expected, rel=1e-6, abs=1e-9)
    rates, trainer = _train_lrs(tmp_path / "one-cycle")
    assert isinstance(trainer.lr_scheduler, torch.optim.lr_scheduler.OneCycleLR)
    assert rates[0] == pytest.approx(0.1 / 25) and max(rates) == pytest.approx(0.1, rel=0.05)  # OneCycleLR's


# --- the step schedule (--step_lr_epochs) --------------------------------------------------------------------------
def test_step_schedule_is_a_linear_warm_up_then_gamma_every_step_size():
    from mlic_hf.training.trainer import step_schedule

    factor = step_schedule(warmup_steps=4, step_size=10, gamma=0.1)
    assert [factor(s) for s in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [factor(s) for s in (9, 10, 19, 20, 35)] == [1.0, 0.1, 0.1, pytest.approx(0.01), pytest.approx(0.001)]
    assert step_schedule(0, 3, 0.5)(0) == 1.0  # no warm-up: the full rate from the first step


def test_step_schedule_in_the_trainer_follows_epochs_and_both_learning_rates(tmp_path):
    from ..models.tiny_configs import tiny_model

    args = MLICTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], ema_decay=0.0,
                                 eval_strategy="no", save_strategy="no", metric_for_best_model="loss",
                                 greater_is_better=False, one_cycle=False, learning_rate=0.1,
                                 backbone_learning_rate=0.01, warmup_steps=2 / 30, num_train_epochs=30,
                                 step_lr_epochs=5, step_lr_gamma=0.1, optim="sgd", optim_args="momentum=0.9")
    trainer = MLICTrainer(model=tiny_model("mlic-resnet-probabilistic"), args=args)
    optimizer = trainer.create_optimizer()
    assert isinstance(optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer, torch.optim.SGD)
    scheduler = trainer.create_scheduler(300, optimizer)  # 30 epochs of 10 steps
    rates = []
    for _ in range(300):
        rates.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    peaks = sorted({group["peak_lr"] for group in optimizer.param_groups})
    assert peaks == [0.01, 0.1]
    for step in (0, 10, 19, 20, 49, 50, 99, 100, 299):
        expected = step / 20 if step < 20 else 0.1 ** (step // 50)
        assert [r / group["peak_lr"] for r, group in zip(rates[step], optimizer.param_groups)] == \
            pytest.approx([expected] * len(rates[step])), step


@pytest.mark.parametrize(("extra", "message"), [
    ({"step_lr_epochs": 5}, "pass --one_cycle false"),
    ({"step_lr_epochs": 5, "one_cycle": False, "lr_scheduler_type": "cosine"}, "give one or the other"),
    ({"step_lr_epochs": 5, "one_cycle": False, "max_steps": 10}, "give --num_train_epochs, not --max_steps"),
    ({"step_lr_epochs": 0, "one_cycle": False}, "--step_lr_epochs must be a positive number"),
    ({"step_lr_epochs": 5, "one_cycle": False, "step_lr_gamma": 0}, r"--step_lr_gamma must be in \(0, 1\]"),
])
def test_step_schedule_settings_that_cannot_work_are_named(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        MLICTrainingArguments(output_dir=str(tmp_path), **extra)
