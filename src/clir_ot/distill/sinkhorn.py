r"""Batched, masked, log-domain entropic optimal transport (Sinkhorn) in PyTorch.

For each pair in the batch, with marginals :math:`a \in \Delta^n`, :math:`b \in \Delta^m` (padding
carries zero mass) and cost :math:`M \in \mathbb{R}^{n \times m}`:

.. math::
    P^\star = \arg\min_{P \in U(a, b)} \langle P, M \rangle_F - \varepsilon H(P),
    \qquad H(P) = -\sum_{ij} P_{ij} (\log P_{ij} - 1)

solved by Sinkhorn's iterations on log-scalings (Cuturi 2013; Peyré & Cuturi 2019, §4.4):

.. math::
    f \leftarrow \log a - \operatorname{LSE}_j(-M_{ij}/\varepsilon + g_j), \qquad
    g \leftarrow \log b - \operatorname{LSE}_i(-M_{ij}/\varepsilon + f_i), \qquad
    P_{ij} = \exp(f_i - M_{ij}/\varepsilon + g_j).

The unbalanced variant relaxes both marginals with :math:`\tau\,\mathrm{KL}` penalties and an
entropic term relative to :math:`a \otimes b` (POT's ``sinkhorn_unbalanced``, ``reg_type="kl"``):
the updates are scaled by :math:`\tau / (\tau + \varepsilon)` and the kernel includes
:math:`\log a_i + \log b_j`.

Padding never produces NaN or inf: masked entries use a large *finite* negative log-value, the
solver runs in float32 even under autocast, and the returned plan is exactly zero on padding.
Gradient modes: ``"envelope"`` (iterations without graph; at the optimum
:math:`\partial\, \mathrm{OT}_\varepsilon / \partial M = P^\star`, so ``(P.detach() * M).sum()``
has the exact gradient of the regularised OT value) and ``"autodiff"`` (backpropagate through the
unrolled iterations).

References: M. Cuturi, "Sinkhorn Distances", NeurIPS 2013; POT ``ot.bregman.sinkhorn_log``.

See also: ``ot.sinkhorn(a, b, M, reg, method="sinkhorn_log")``, the test oracle.

Example
-------
>>> a = torch.tensor([[0.5, 0.5]]); b = torch.tensor([[0.5, 0.5]])
>>> M = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
>>> sinkhorn(a, b, M, reg=0.1).round(decimals=3)
tensor([[[0.5000, 0.0000],
         [0.0000, 0.5000]]])
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch

GradMode = Literal["envelope", "autodiff"]
_MASKED = -1e9  # finite "log 0": exp underflows to exactly 0, gradients stay finite


class SinkhornConvergenceWarning(UserWarning):
    """Sinkhorn stopped at its iteration limit with a marginal error above the threshold."""


def _safe_log(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, torch.log(torch.where(mask, x, torch.ones_like(x))), torch.full_like(x, _MASKED))


def sinkhorn(a: torch.Tensor, b: torch.Tensor, M: torch.Tensor, reg: float, num_iter: int = 100,
             stop_thr: float = 1e-6, check_every: int = 10, grad_mode: GradMode = "envelope",
             reg_m: float | None = None, log: bool = False, warn: bool = True):
    """Entropic OT plans for a batch of cost matrices.

    Args:
        a: ``(B, n)`` source marginals, zero on padding (rows need not sum to 1 when unbalanced).
        b: ``(B, m)`` target marginals, zero on padding.
        M: ``(B, n, m)`` costs.
        reg: entropic regularisation ε > 0.
        num_iter: maximum number of iterations (each updates both scalings).
        stop_thr: stop when the L1 error of the row marginals (balanced) or the change of the
            scalings (unbalanced) is below this, checked every ``check_every`` iterations.
        grad_mode: ``"envelope"`` or ``"autodiff"`` (see module docstring).
        reg_m: τ for the unbalanced (KL-relaxed) variant; ``None`` = balanced.
        log: also return ``{"n_iter", "err"}``.
        warn: warn with :class:`SinkhornConvergenceWarning` when not converged.

    Returns:
        ``P`` of shape ``(B, n, m)`` in float32 (zero on padding), and the log dict if ``log``.
    """
    if reg <= 0:
        raise ValueError(f"Sinkhorn needs reg > 0, got {reg}")
    if grad_mode not in ("envelope", "autodiff"):
        raise ValueError(f"unknown grad_mode {grad_mode!r}")
    if reg_m is not None and reg_m <= 0:
        raise ValueError(f"unbalanced Sinkhorn needs reg_m > 0, got {reg_m}")
    with torch.autocast(device_type=M.device.type, enabled=False):
        a, b, M = a.float(), b.float(), M.float()
        mask_a, mask_b = a > 0, b > 0
        mask = mask_a[:, :, None] & mask_b[:, None, :]
        log_a, log_b = _safe_log(a, mask_a), _safe_log(b, mask_b)
        Z = -M / reg
        if reg_m is not None:  # kernel relative to a ⊗ b (POT reg_type="kl")
            Z = Z + log_a[:, :, None] + log_b[:, None, :]
        Z = torch.where(mask, Z, torch.full_like(Z, _MASKED))
        fi = 1.0 if reg_m is None else reg_m / (reg_m + reg)
        f = torch.zeros_like(a)
        g = torch.zeros_like(b)
        err = float("inf")
        n_iter = 0
        with torch.set_grad_enabled(grad_mode == "autodiff" and torch.is_grad_enabled()):
            Z_iter = Z if grad_mode == "autodiff" else Z.detach()
            for n_iter in range(1, num_iter + 1):
                f_prev, g_prev = f, g
                # padded rows/columns have log-mass -1e9: their scalings stay hugely negative and finite
                f = fi * (log_a - torch.logsumexp(Z_iter + g[:, None, :], dim=2))
                g = fi * (log_b - torch.logsumexp(Z_iter + f[:, :, None], dim=1))
                if n_iter % check_every == 0 or n_iter == num_iter:
                    with torch.no_grad():
                        if reg_m is None:
                            rows = torch.exp(Z_iter + f[:, :, None] + g[:, None, :]).sum(2)
                            err = (rows - a).abs().sum(1).max().item()
                        else:
                            err = max(((f - f_prev) * mask_a).abs().max().item(),
                                      ((g - g_prev) * mask_b).abs().max().item())
                    if err < stop_thr:
                        break
        P = torch.exp((Z if grad_mode == "autodiff" else Z.detach()) + f[:, :, None] + g[:, None, :])
        P = torch.where(mask, P, torch.zeros_like(P))
        if grad_mode == "envelope":  # the plan is a constant of the loss: dOT/dM = P*
            P = P.detach()
    if warn and err >= stop_thr:
        warnings.warn(f"Sinkhorn did not converge in {num_iter} iterations (marginal error {err:.2e} ≥ "
                      f"{stop_thr:.0e}); raise num_iter or reg", SinkhornConvergenceWarning, stacklevel=2)
    if log:
        return P, {"n_iter": n_iter, "err": err}
    return P


def plan_entropy(P: torch.Tensor) -> torch.Tensor:
    """Shannon entropy −Σ P log P of each normalised plan in the batch, ``(B,)`` (0·log 0 = 0)."""
    Pn = P / P.sum(dim=(1, 2), keepdim=True).clamp_min(1e-30)
    return -(Pn * torch.log(Pn.clamp_min(1e-30))).sum(dim=(1, 2))
