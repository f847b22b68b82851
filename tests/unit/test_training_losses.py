"""Losses, regularisers and sparsity statistics on hand-made tensors: values and gradient signs."""

from __future__ import annotations

import math

import pytest
import torch

from colsplade.training import (
    RegularizerSchedule,
    colbert_scores,
    flops_regularizer,
    info_nce_loss,
    kl_distillation_loss,
    l1_regularizer,
    listwise_distillation_loss,
    margin_mse_loss,
    margin_ranking_loss,
    sparsity_stats,
    splade_scores,
    teacher_false_negatives,
)


def test_info_nce_value_and_gradient_signs():
    scores = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 1.0]], requires_grad=True)
    labels = torch.tensor([0, 1])
    loss = info_nce_loss(scores, labels)
    expected = (-math.log(math.e**2 / (math.e**2 + 2)) - math.log(math.e / (2 * math.e + 1))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    g = scores.grad
    # descent raises the positive's score and lowers the negatives'
    assert g[0, 0] < 0 and g[0, 1] > 0 and g[0, 2] > 0
    assert g[1, 1] < 0 and g[1, 0] > 0 and g[1, 2] > 0


def test_info_nce_temperature_sharpens():
    scores = torch.tensor([[1.0, 0.0]])
    labels = torch.tensor([0])
    assert info_nce_loss(scores, labels, temperature=0.1) < info_nce_loss(scores, labels, temperature=1.0)


def test_info_nce_ignores_masked_false_negatives():
    scores = torch.tensor([[1.0, float("-inf"), 0.0]])
    plain = info_nce_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
    assert info_nce_loss(scores, torch.tensor([0])).item() == pytest.approx(plain.item())


def test_margin_ranking():
    pos = torch.tensor([3.0, 0.5], requires_grad=True)
    neg = torch.tensor([[1.0, 2.5], [0.0, 1.0]], requires_grad=True)
    loss = margin_ranking_loss(pos, neg, margin=1.0)
    # hinge terms: max(0, 1-3+1)=0, max(0,1-3+2.5)=0.5, max(0,1-.5+0)=.5, max(0,1-.5+1)=1.5
    assert loss.item() == pytest.approx((0 + 0.5 + 0.5 + 1.5) / 4)
    loss.backward()
    assert (pos.grad <= 0).all() and pos.grad[1] < 0
    assert (neg.grad >= 0).all() and neg.grad[0, 0] == 0  # satisfied pair: no gradient


def test_margin_mse():
    pos = torch.tensor([2.0], requires_grad=True)
    neg = torch.tensor([[1.0]], requires_grad=True)
    loss = margin_mse_loss(pos, neg, torch.tensor([5.0]), torch.tensor([[1.0]]))
    assert loss.item() == pytest.approx((1.0 - 4.0) ** 2)
    loss.backward()
    assert pos.grad[0] < 0 and neg.grad[0, 0] > 0  # margin too small: widen it
    zero = margin_mse_loss(
        torch.tensor([3.0]), torch.tensor([[1.0]]), torch.tensor([7.0]), torch.tensor([[5.0]])
    )
    assert zero.item() == 0.0  # only margins matter, not the scale offset


def test_kl_distillation():
    student = torch.tensor([[0.0, 0.0]], requires_grad=True)
    teacher = torch.tensor([[2.0, 0.0]])
    loss = kl_distillation_loss(student, teacher)
    p = torch.softmax(teacher, -1)
    expected = float((p * (p.log() - math.log(0.5))).sum())
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert student.grad[0, 0] < 0 < student.grad[0, 1]
    assert kl_distillation_loss(teacher, teacher).item() == pytest.approx(0.0, abs=1e-7)


def test_listwise_distillation_masks_and_ignores_scale():
    student = torch.tensor([[1.0, 0.0, 5.0]], requires_grad=True)
    teacher = torch.tensor([[3.0, 1.0, -9.0]])
    masked = torch.tensor([[False, False, True]])
    loss = listwise_distillation_loss(student, teacher, temperature=2.0, mask=masked)
    # over the two unmasked candidates only, both softened by T = 2
    p = torch.softmax(teacher[0, :2] / 2, -1)
    q = torch.log_softmax(student.detach()[0, :2] / 2, -1)
    assert loss.item() == pytest.approx(float((p * (p.log() - q)).sum()), rel=1e-5)
    loss.backward()
    assert student.grad[0, 0] < 0 < student.grad[0, 1]  # pulled towards the teacher's order
    assert student.grad[0, 2].abs() < 1e-6  # a masked column takes no part
    # the teacher gets no gradient, and a student on the teacher's scale has no loss
    s2, t = student.detach().clone().requires_grad_(True), teacher.clone().requires_grad_(True)
    listwise_distillation_loss(s2, t).backward()
    assert t.grad is None and s2.grad is not None
    assert listwise_distillation_loss(teacher, teacher).item() == pytest.approx(0.0, abs=1e-7)
    assert not math.isnan(listwise_distillation_loss(student, teacher, mask=masked).item())


def test_teacher_false_negatives():
    teacher = torch.tensor([[2.0, 3.0, 1.0, 2.0], [0.0, 5.0, 9.0, 1.0]])
    flagged = teacher_false_negatives(teacher, torch.tensor([0, 1]))
    assert flagged.tolist() == [[False, True, False, True], [False, False, True, False]]


def test_flops_and_l1():
    w = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]], requires_grad=True)
    assert flops_regularizer(w).item() == pytest.approx(2.0**2 + 0 + 1.0**2)
    assert l1_regularizer(w).item() == pytest.approx((3.0 + 3.0) / 2)
    flops_regularizer(w).backward()
    assert (w.grad >= 0).all() and w.grad[0, 0] > 0  # penalty pushes weights down
    # FLOPS penalises a term shared by all documents more than the same mass spread over rare terms
    shared = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    spread = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert flops_regularizer(shared) > flops_regularizer(spread)
    assert l1_regularizer(shared) == l1_regularizer(spread)


def test_regularizer_warmup_is_quadratic():
    s = RegularizerSchedule(lambda_query=1.0, lambda_doc=0.5, warmup_steps=10)
    assert s.lambdas(0) == (0.0, 0.0)
    q, d = s.lambdas(5)
    assert q == pytest.approx(0.25) and d == pytest.approx(0.125)
    assert s.lambdas(10) == (1.0, 0.5) and s.lambdas(100) == (1.0, 0.5)
    assert RegularizerSchedule(1.0, 1.0, 0).lambdas(0) == (1.0, 1.0)


def test_sparsity_stats():
    q = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    d = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    s = sparsity_stats(q, d)
    assert s["query_nnz"] == 1.5 and s["doc_nnz"] == 3.0
    assert s["doc_nnz_ratio"] == pytest.approx(0.75)
    assert s["flops"] == pytest.approx(1.0 * 1.0 + 0.5 * 0.0)  # P(q_v>0) P(d_v>0) summed


def test_splade_and_colbert_scores():
    q = torch.tensor([[1.0, 2.0]])
    d = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    assert splade_scores(q, d).tolist() == [[3.0, 2.0]]
    qv = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # (1, 2 tokens, dim 2)
    dv = torch.tensor([[[1.0, 0.0], [0.6, 0.8]], [[0.0, 1.0], [9.0, 9.0]]])
    dmask = torch.tensor([[1, 1], [1, 0]])  # the (9, 9) token is dropped and must never win
    s = colbert_scores(qv, torch.tensor([[1, 1]]), dv, dmask)
    assert s[0, 0].item() == pytest.approx(1.0 + 0.8)
    assert s[0, 1].item() == pytest.approx(0.0 + 1.0)
