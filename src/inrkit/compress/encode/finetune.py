"""Fine-tuning SINR's kept coefficients (supports fixed) through the one trainer, :func:`inrkit.train.fit`."""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from inrkit.compress.decode.dictionary import sensing_matrix
from inrkit.compress.decode.layout import SparseModel
from inrkit.compress.encode.qat import fake_range
from inrkit.signals.base import Signal
from inrkit.train import FitConfig, fit
from inrkit.utils import resolve_device


class CodedMLP(nn.Module):
    """The MLP whose coded weight matrices are ``A[:, support] @ coef`` with the supports fixed.

    The trainable parameters are the coefficients, the biases and the uncoded layers.

    Args:
        code: the sparse-coded model.
        device: where the atoms and parameters live.
        aware: fake-quantise the coefficients (``code.options.bits``) and the dense tensors (``dense()``
            bits) in the forward pass, on the grids the codec will use (:func:`inrkit.compress.encode.qat.fake_range`).
    """

    def __init__(self, code: SparseModel, device: torch.device, aware: bool = False) -> None:
        super().__init__()
        self.bits = (int(code.options.bits), code.options.dense()) if aware else None
        self.base = code.model.copy().to(device)
        self.coded: dict[int, tuple[torch.Tensor, tuple[int, int]]] = {}
        self.coefs = nn.ParameterDict()
        for i, layer in enumerate(code.layers):
            if layer is None:
                continue
            atoms = sensing_matrix(layer.k1, layer.k2, code.options.seed).T[layer.idx]  # [n, s, k1]
            out, inp = self.base.weights[i].shape
            self.coded[i] = (torch.from_numpy(atoms).float().to(device), (out, inp))
            self.coefs[str(i)] = nn.Parameter(torch.from_numpy(layer.coef).float().to(device))
            self.base.weights[i].requires_grad_(False)

    def weight(self, i: int) -> torch.Tensor:
        """Coded weight matrix ``i`` from its atoms and current coefficients."""
        atoms, (out, inp) = self.coded[i]
        coef = self.coefs[str(i)] if self.bits is None else fake_range(self.coefs[str(i)], self.bits[0])
        vec = torch.einsum("ns,nsk->nk", coef, atoms)
        return vec.reshape(-1)[: out * inp].reshape(out, inp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = {f"weights.{i}": self.weight(i) for i in self.coded}
        if self.bits is not None:  # the dense tensors, as the codec quantises them
            dense = self.bits[1]
            for i in range(self.base.num_layers):
                params.setdefault(f"weights.{i}", fake_range(self.base.weights[i], dense))
                params[f"biases.{i}"] = fake_range(self.base.biases[i], dense)
        return torch.func.functional_call(self.base, params, (x,), strict=False)

    def sparse_model(self, code: SparseModel) -> SparseModel:
        """``code`` with the trained coefficients and the plain model they give (on the CPU)."""
        model = self.base.cpu()
        layers = list(code.layers)
        with torch.no_grad():
            for i in self.coded:
                layer = layers[i]
                assert layer is not None
                layers[i] = replace(layer, coef=self.coefs[str(i)].detach().cpu().double().numpy())
                model.weights[i].copy_(self.weight(i).cpu())
                model.weights[i].requires_grad_(True)
        return SparseModel(model, layers, code.options)


def finetune_codes(code: SparseModel, signal: Signal, steps: int = 100, lr: float = 1e-4,
                   batch_size: int | None = None, device: str | None = None, seed: int = 0,
                   progress: bool = False, aware: bool = False) -> SparseModel:
    """Fine-tune the kept coefficients (supports fixed), biases and uncoded layers on ``signal``.

    An addition to SINR (the paper quantises the OMP coefficients directly). Adam at a
    constant learning rate, in float32, through :func:`inrkit.train.fit` (which also
    chooses full or random batches when ``batch_size`` is ``None``).

    Args:
        code: the sparse-coded model (not changed).
        signal: the signal the model represents (any fit task).
        steps: optimisation steps (0 returns ``code``).
        lr: Adam's learning rate.
        batch_size: points per step (``None``: fit's rule).
        device: where to train.
        seed: seed of the batches.
        progress: show fit's progress bar (stderr).
        aware: quantisation-aware: train through the codec's quantisers of ``code.options`` (coefficients at
            ``bits``, dense tensors at ``dense()`` bits; see :class:`CodedMLP`).
    """
    if steps <= 0:
        return code
    net = CodedMLP(code, resolve_device(device), aware)
    config = FitConfig(steps=steps, lr=lr, schedule="constant", batch_size=batch_size, seed=seed, device=device,
                       progress=progress, precision="fp32", log_every=steps, evaluate=False)
    fit(net, signal, config)
    return net.sparse_model(code)
