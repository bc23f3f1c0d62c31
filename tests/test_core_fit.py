"""The fitting loop: learning, stop rules, reproducibility, callbacks, resume."""
import json

import pytest
import torch

from inrkit.models import find_group, remove_neurons, siren
from inrkit.signals import ImageSignal
from inrkit.train import FitConfig, fit, lr_factor


@pytest.fixture
def image_signal(tiny_image):
    return ImageSignal(tiny_image)


def _model(seed=0):
    return siren(2, 3, [32, 32], generator=torch.Generator().manual_seed(seed))


def test_fit_improves_psnr(image_signal):
    before = image_signal.evaluate(_model())["psnr"]
    result = fit(_model(), image_signal, FitConfig(steps=60, lr=1e-3, progress=False))
    assert result.metrics["psnr"] > before + 5
    assert result.steps == 60 and result.history[-1]["step"] == 60
    assert {"step", "loss", "psnr", "seconds"} <= set(result.history[0])


def test_reproducible(image_signal):
    cfg = FitConfig(steps=15, batch_size=200, progress=False, seed=4)
    a = fit(_model(1), image_signal, cfg)
    b = fit(_model(1), image_signal, cfg)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


def test_target_psnr_and_time_budget(image_signal):
    r = fit(_model(), image_signal, FitConfig(steps=500, lr=1e-3, target_psnr=18.0, progress=False))
    assert r.stopped_by == "target_psnr" and r.steps < 500
    r = fit(_model(), image_signal, FitConfig(steps=10**6, time_budget=0.5, progress=False))
    assert r.stopped_by == "time_budget" and r.seconds < 5


def test_schedule():
    assert lr_factor("cosine", 0, 100, 0.1) == pytest.approx(1.0)
    assert lr_factor("cosine", 100, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor("constant", 50, 100, 0.1) == 1.0


def test_history_json(image_signal, tmp_path):
    fit(_model(), image_signal, FitConfig(steps=20, log_every=5, progress=False, history_path=str(tmp_path / "h.json")))
    data = json.loads((tmp_path / "h.json").read_text())
    assert [row["step"] for row in data["history"]] == [5, 10, 15, 20] and "psnr" in data["metrics"]


class _Shrink:
    """Removes half of layer 0 at step 5 and records what the optimizer kept."""

    def __init__(self):
        self.kept_state = None
        self.mapped_state = None

    def extra_loss(self, state):
        return 1e-6 * state.model.weights[1].abs().sum()

    def on_step_end(self, state):
        if state.step == 5:
            untouched = state.model.weights[2]
            state_map = remove_neurons(state.model, find_group(state.model, 0), list(range(16)))
            state.replace_model(state.model, state_map)
            self.kept_state = untouched in state.optimizer.state and state.model.weights[2] is untouched
            self.mapped_state = state.model.weights[0] in state.optimizer.state


def test_callbacks_change_model_midrun(image_signal):
    cb = _Shrink()
    result = fit(_model(), image_signal, FitConfig(steps=12, progress=False), callbacks=[cb])
    assert result.model.widths == [2, 16, 32, 3]
    assert cb.kept_state  # Adam state of the untouched last layer survived the surgery
    assert cb.mapped_state  # the sliced layer's Adam state was carried through the state map


def test_checkpoint_resume_matches_uninterrupted(image_signal, tmp_path):
    ck = str(tmp_path / "ck.safetensors")
    fit(_model(), image_signal, FitConfig(steps=10, batch_size=300, progress=False, seed=2, lr_min_factor=1.0,
                                          schedule="constant", checkpoint_path=ck, checkpoint_every=5))
    cfg = FitConfig(steps=20, batch_size=300, progress=False, seed=2, schedule="constant", checkpoint_path=ck,
                    checkpoint_every=5, resume=True)
    resumed = fit(_model(7), image_signal, cfg)  # architecture and weights come from the checkpoint
    straight = fit(_model(), image_signal,
                   FitConfig(steps=20, batch_size=300, progress=False, seed=2, schedule="constant"))
    assert resumed.steps == 20
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(resumed.model.parameters(), straight.model.parameters()))


def test_checkpoint_resume_is_bit_identical(image_signal, tmp_path):
    ck = str(tmp_path / "ck.safetensors")
    cfg = FitConfig(steps=14, batch_size=300, progress=False, seed=3, precision="fp32", checkpoint_path=ck,
                    checkpoint_every=7)
    straight = fit(_model(), image_signal, FitConfig(**{**cfg.__dict__, "checkpoint_path": None}))
    first = fit(_model(), image_signal, cfg, callbacks=[_StopAt(7)])  # interrupted at step 7 of 14
    assert first.steps == 7
    torch.manual_seed(99)  # the global RNG is not part of the state and must not matter
    resumed = fit(_model(5), image_signal, FitConfig(**{**cfg.__dict__, "resume": True}))
    assert resumed.steps == 14
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]
    assert all(torch.equal(p, q) for p, q in zip(resumed.model.parameters(), straight.model.parameters()))


class _StopAt:
    def __init__(self, step):
        self.step = step

    def on_step_end(self, state):
        state.stop = state.step >= self.step


class _Net(torch.nn.Module):
    """Not an inrkit MLP: a ReLU network with a LayerNorm."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.LayerNorm(32), torch.nn.ReLU(),
                                        torch.nn.Linear(32, 3))

    def forward(self, x):
        return self.body(x)


def test_fit_accepts_any_module_and_resumes_it(image_signal, tmp_path):
    torch.manual_seed(0)
    net = _Net()
    start = {k: v.clone() for k, v in net.state_dict().items()}
    result = fit(net, image_signal, FitConfig(steps=30, lr=1e-2, progress=False, precision="auto"))
    assert result.model is net and result.summary()["params"] == sum(p.numel() for p in net.parameters())
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    with pytest.raises(Exception, match="bf16 needs an inrkit MLP"):
        fit(_Net(), image_signal, FitConfig(steps=1, progress=False, precision="bf16"))
    ck = str(tmp_path / "net.ck")
    cfg = FitConfig(steps=12, batch_size=100, progress=False, seed=1, checkpoint_path=ck, checkpoint_every=4)

    def fresh():
        net = _Net()
        net.load_state_dict(start)
        return net

    straight = fit(fresh(), image_signal, FitConfig(**{**cfg.__dict__, "checkpoint_path": None}))
    fit(fresh(), image_signal, cfg, callbacks=[_StopAt(8)])
    other = _Net()  # same structure, other weights: the checkpoint's state_dict is loaded into it
    resumed = fit(other, image_signal, FitConfig(**{**cfg.__dict__, "resume": True}))
    assert resumed.steps == 12
    assert all(torch.equal(p, q) for p, q in zip(resumed.model.parameters(), straight.model.parameters()))


def test_sgd_exponential_schedule_and_periodic_evaluation(image_signal):
    cfg = FitConfig(steps=6, lr=1e-3, optimizer="sgd", schedule="exponential", lr_min_factor=0.1, eval_every=3,
                    log_every=2, progress=False)
    seen = []

    class Spy:
        def on_step_end(self, state):
            seen.append((type(state.optimizer), state.optimizer.param_groups[0]["lr"]))

    result = fit(_model(), image_signal, cfg, callbacks=[Spy()])
    assert [r["step"] for r in result.history] == [2, 3, 4, 6]
    assert "psnr" in result.history[1]["eval"] and "eval" not in result.history[0]
    assert seen[0] == (torch.optim.SGD, pytest.approx(1e-3)) and seen[-1][1] == pytest.approx(1e-3 * 0.1 ** (5 / 6))
    assert lr_factor("exponential", 5, 10, 0.01) == pytest.approx(0.1)
    with pytest.raises(Exception, match="optimizer"):
        FitConfig(optimizer="lbfgs")


def test_tasks_declare_bf16_support(image_signal):
    class NoBf16:
        supports_bf16 = False

        def __init__(self, signal):
            self.signal = signal

        def num_samples(self):
            return self.signal.num_samples()

        def train_batch(self, batch_size, generator, device):
            return self.signal.train_batch(batch_size, generator, device)

        def loss(self, model, coords, targets):
            return self.signal.loss(model, coords, targets)

        def evaluate(self, model):
            return {}

    with pytest.raises(Exception, match="bf16"):
        fit(_model(), NoBf16(image_signal), FitConfig(steps=1, progress=False, precision="bf16"))
    result = fit(_model(), NoBf16(image_signal), FitConfig(steps=2, progress=False))  # auto -> fp32
    assert result.steps == 2 and result.metrics == {}


def test_the_model_names_its_parameter_groups_and_default_batch():
    from inrkit.train import PointTask

    class TwoRates(torch.nn.Module):
        """A model that owns its training defaults (the protocol of inrkit.models.trainable)."""

        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(2, 8), torch.nn.Linear(8, 1)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))

        def param_groups(self, lr, encoding_lr=None):
            return [{"params": list(self.a.parameters()), "base_lr": lr, "lr": lr},
                    {"params": list(self.b.parameters()), "base_lr": 3 * lr, "lr": 3 * lr}]

        def default_batch_size(self, n_points):
            return 50

    seen = []

    class Spy:
        def on_step_end(self, state):
            seen.append([g["lr"] for g in state.optimizer.param_groups])

    class Counting(PointTask):
        def train_batch(self, batch_size, generator, device):
            sizes.append(batch_size)
            return super().train_batch(batch_size, generator, device)

    sizes = []
    task = Counting(torch.rand(400, 2), torch.rand(400, 1))
    fit(TwoRates(), task, FitConfig(steps=2, lr=1e-2, schedule="constant", progress=False), callbacks=[Spy()])
    assert seen[0] == [pytest.approx(1e-2), pytest.approx(3e-2)] and sizes == [50, 50]
    sizes.clear()
    fit(TwoRates(), task, FitConfig(steps=1, batch_size=7, progress=False))  # the config's batch wins
    assert sizes == [7]
    plain = _model()  # an MLP: one group, the fit's own batch rule
    assert len(plain.param_groups(1e-3)) == 1 and plain.default_batch_size(10**7) is None
