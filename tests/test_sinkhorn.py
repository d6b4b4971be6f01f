"""Batched log-domain Sinkhorn against POT, and the OT / MSE losses."""

from __future__ import annotations

import warnings

import numpy as np
import ot
import pytest
import torch

from clir_ot.distill.losses import MSEDistillLoss, OTAlignmentLoss, cosine_cost, token_masses
from clir_ot.distill.sinkhorn import SinkhornConvergenceWarning, sinkhorn

pytestmark = pytest.mark.unit


def ragged_batch(seed: int = 0, B: int = 5, n: int = 9, m: int = 7):
    g = torch.Generator().manual_seed(seed)
    lengths_a = [n, 3, 6, 1, 8][:B]
    lengths_b = [m, 7, 2, 5, 1][:B]
    a = torch.zeros(B, n)
    b = torch.zeros(B, m)
    for i, (la, lb) in enumerate(zip(lengths_a, lengths_b, strict=True)):
        a[i, :la] = torch.rand(la, generator=g) + 0.1
        b[i, :lb] = torch.rand(lb, generator=g) + 0.1
    a, b = a / a.sum(1, keepdim=True), b / b.sum(1, keepdim=True)
    M = torch.rand(B, n, m, generator=g) * 2
    return a, b, M, lengths_a, lengths_b


def pot_plan(a, b, M, reg, la, lb, **kw):
    return ot.sinkhorn(a[:la].double().numpy(), b[:lb].double().numpy(), M[:la, :lb].double().numpy(), reg,
                       method="sinkhorn_log", numItermax=2000, stopThr=1e-10, **kw)


def test_equals_pot_per_pair_on_ragged_padded_batch() -> None:
    a, b, M, la, lb = ragged_batch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        P = sinkhorn(a, b, M, reg=0.05, num_iter=2000, stop_thr=1e-7)
    for i in range(len(a)):
        ref = pot_plan(a[i], b[i], M[i], 0.05, la[i], lb[i])
        np.testing.assert_allclose(P[i, :la[i], :lb[i]].numpy(), ref, atol=2e-6)
        assert P[i, la[i]:].abs().sum() == 0 and P[i, :, lb[i]:].abs().sum() == 0


def test_equals_pots_batched_solver_on_a_padded_batch() -> None:
    """POT 0.9.7's own batched log-domain solver (``ot.batch``), which takes zero-mass padding as it is."""
    import ot.batch

    a, b, M, la, lb = ragged_batch(seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        P = sinkhorn(a, b, M, reg=0.05, num_iter=3000, stop_thr=1e-8)
    ref = ot.batch.solve_batch(M.double(), 0.05, a.double(), b.double(), max_iter=3000, tol=1e-10,
                               method="log_sinkhorn", grad="detach").plan
    np.testing.assert_allclose(P.numpy(), ref.float().numpy(), atol=2e-6)


def test_marginals_batched_equals_looped_and_padded_equals_unpadded() -> None:
    a, b, M, la, lb = ragged_batch(1)
    P, info = sinkhorn(a, b, M, reg=0.1, num_iter=500, stop_thr=1e-6, log=True)
    assert info["err"] < 1e-6 and info["n_iter"] <= 500
    torch.testing.assert_close(P.sum(2), a, atol=1e-5, rtol=0)
    torch.testing.assert_close(P.sum(1), b, atol=1e-5, rtol=0)
    for i in range(len(a)):
        alone = sinkhorn(a[i:i + 1, :la[i]], b[i:i + 1, :lb[i]], M[i:i + 1, :la[i], :lb[i]], reg=0.1, num_iter=500,
                         stop_thr=1e-6)
        torch.testing.assert_close(P[i:i + 1, :la[i], :lb[i]], alone, atol=1e-6, rtol=0)


def test_unbalanced_equals_pot() -> None:
    a, b, M, la, lb = ragged_batch(2)
    P = sinkhorn(a, b, M, reg=0.1, reg_m=0.5, num_iter=2000, stop_thr=1e-9, warn=False)
    for i in range(len(a)):
        ref = ot.unbalanced.sinkhorn_unbalanced(a[i, :la[i]].double().numpy(), b[i, :lb[i]].double().numpy(),
                                                M[i, :la[i], :lb[i]].double().numpy(), 0.1, 0.5,
                                                numItermax=2000, stopThr=1e-10)
        np.testing.assert_allclose(P[i, :la[i], :lb[i]].numpy(), ref, atol=2e-6)


def test_cost_approaches_emd_as_reg_shrinks() -> None:
    a, b, M, la, lb = ragged_batch(3, B=1, n=6, m=6)
    emd = ot.emd2(a[0].double().numpy(), b[0].double().numpy(), M[0].double().numpy())
    gaps = []
    for reg in (0.5, 0.1, 0.02, 0.005):
        P = sinkhorn(a, b, M, reg=reg, num_iter=5000, stop_thr=1e-7, warn=False)
        gaps.append(float((P * M).sum()) - emd)
    assert all(g >= -1e-5 for g in gaps) and gaps == sorted(gaps, reverse=True)
    assert gaps[-1] < 1e-3


def test_finite_values_and_gradients_for_cosine_costs_down_to_small_reg() -> None:
    torch.manual_seed(0)
    t = torch.randn(3, 10, 16)
    s = torch.randn(3, 12, 16, requires_grad=True)
    mt = torch.ones(3, 10)
    ms = torch.ones(3, 12)
    mt[1, 6:] = 0
    ms[2, 3:] = 0
    ms[0, :] = 0  # an empty sequence
    for reg in (1.0, 0.1, 0.01, 1e-3):
        for mode in ("envelope", "autodiff"):
            loss = OTAlignmentLoss(reg=reg, num_iter=200, grad_mode=mode)
            out = loss.compute_loss_from_embeddings(t, token_masses(mt), s, token_masses(ms))
            assert torch.isfinite(out.loss) and torch.isfinite(out.plan).all()
            (grad,) = torch.autograd.grad(out.loss, s)
            assert torch.isfinite(grad).all(), (reg, mode)
            assert grad[2, 3:].abs().sum() == 0  # padding gets no gradient


def test_gradient_modes_agree_in_direction() -> None:
    torch.manual_seed(1)
    t = torch.randn(4, 8, 16)
    s0 = torch.randn(4, 9, 16)
    grads = {}
    for mode in ("envelope", "autodiff"):
        s = s0.clone().requires_grad_(True)
        loss = OTAlignmentLoss(reg=0.05, num_iter=300, stop_thr=1e-7, grad_mode=mode)
        out = loss.compute_loss_from_embeddings(t, token_masses(torch.ones(4, 8)), s, token_masses(torch.ones(4, 9)))
        (grads[mode],) = torch.autograd.grad(out.loss, s)
    cos = torch.nn.functional.cosine_similarity(grads["envelope"].flatten(), grads["autodiff"].flatten(), dim=0)
    assert cos > 0.9


def test_dtype_device_and_bad_arguments() -> None:
    a, b, M, *_ = ragged_batch(4)
    P = sinkhorn(a.double(), b.double(), M.double(), reg=0.1, warn=False)
    assert P.dtype == torch.float32 and P.device == M.device
    with pytest.raises(ValueError, match="reg > 0"):
        sinkhorn(a, b, M, reg=0.0)
    with pytest.raises(ValueError, match="reg must be > 0"):
        OTAlignmentLoss(reg=-1)
    with pytest.warns(SinkhornConvergenceWarning, match="did not converge in 2 iterations"):
        sinkhorn(a, b, M, reg=0.01, num_iter=2, stop_thr=1e-9)


def test_ot_loss_is_zero_for_identical_token_sets_and_plan_is_an_alignment() -> None:
    torch.manual_seed(2)
    t = torch.randn(1, 5, 32)
    perm = torch.tensor([3, 0, 4, 1, 2])
    s = t[:, perm]
    out = OTAlignmentLoss(reg=0.01, num_iter=500).compute_loss_from_embeddings(
        t, token_masses(torch.ones(1, 5)), s, token_masses(torch.ones(1, 5)))
    assert out.loss < 1e-3
    assert torch.equal(out.plan[0].argmax(1), torch.argsort(perm))  # token i of t aligns to where it moved
    assert torch.allclose(cosine_cost(t, t).diagonal(dim1=1, dim2=2), torch.zeros(1, 5), atol=1e-6)


def test_mse_distill_loss_has_both_terms() -> None:
    t = torch.tensor([[1.0, 0.0]])
    s_en = torch.tensor([[0.0, 1.0]])
    s_x = torch.tensor([[1.0, 1.0]])
    loss = MSEDistillLoss()
    assert loss.compute_loss_from_embeddings(t, s_en, s_x).item() == pytest.approx(2.0 + 1.0)
    assert loss.compute_loss_from_embeddings(t, s_en, None).item() == pytest.approx(2.0)
    assert "Reimers" in loss.citation and "Huang" in OTAlignmentLoss().citation


def test_envelope_gradient_is_the_plan_and_matches_the_regularised_value() -> None:
    torch.manual_seed(3)
    a, b = torch.full((1, 4), 0.25), torch.full((1, 5), 0.2)
    M = torch.rand(1, 4, 5, dtype=torch.float64).float() * 2
    reg = 0.1

    def reg_value(cost: torch.Tensor) -> float:
        P = sinkhorn(a, b, cost, reg, num_iter=3000, stop_thr=1e-7, warn=False)
        return float((P * cost).sum() + reg * (P * (torch.log(P.clamp_min(1e-30)) - 1)).sum())

    Mx = M.clone().requires_grad_(True)
    P = sinkhorn(a, b, Mx, reg, num_iter=3000, stop_thr=1e-7, grad_mode="envelope", warn=False)
    (grad,) = torch.autograd.grad((P * Mx).sum(), Mx)
    torch.testing.assert_close(grad, P.detach())
    eps = 1e-2
    for i, j in ((0, 0), (1, 3), (3, 4)):
        up, down = M.clone(), M.clone()
        up[0, i, j] += eps
        down[0, i, j] -= eps
        assert (reg_value(up) - reg_value(down)) / (2 * eps) == pytest.approx(grad[0, i, j].item(), abs=2e-3)
