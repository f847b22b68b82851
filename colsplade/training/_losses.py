"""Training objectives: ranking losses, distillation, SPLADE sparsity regularisers and statistics.

All losses take scores where higher = more relevant and return a scalar (mean over the batch).
Shapes: B queries, N candidate documents, V vocabulary size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

__all__ = [
    "RegularizerSchedule",
    "colbert_scores",
    "flops_regularizer",
    "info_nce_loss",
    "kl_distillation_loss",
    "l1_regularizer",
    "listwise_distillation_loss",
    "margin_mse_loss",
    "margin_ranking_loss",
    "sparsity_stats",
    "splade_scores",
    "teacher_false_negatives",
]


def splade_scores(queries: torch.Tensor, docs: torch.Tensor) -> torch.Tensor:
    """Dot products of SPLADE vectors: ``queries`` (B, V), ``docs`` (N, V) -> (B, N)."""
    return queries @ docs.T


def colbert_scores(
    queries: torch.Tensor, query_mask: torch.Tensor, docs: torch.Tensor, doc_mask: torch.Tensor
) -> torch.Tensor:
    """MaxSim of every query against every document -> (B, N).

    ``queries`` (B, m, dim) / ``query_mask`` (B, m); ``docs`` (N, n, dim) / ``doc_mask`` (N, n);
    masks are 1 for kept tokens. Dropped document tokens never win the max (set to -inf first);
    dropped query tokens add nothing.
    """
    sims = torch.einsum("qmd,knd->qkmn", queries, docs)  # (B, N, m, n)
    sims = sims.masked_fill(~doc_mask.bool()[None, :, None, :], float("-inf"))
    best = sims.max(dim=-1).values  # (B, N, m)
    best = torch.nan_to_num(best, neginf=0.0)  # a document with no kept token scores 0
    return (best * query_mask[:, None, :].to(best.dtype)).sum(dim=-1)


def info_nce_loss(scores: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Softmax contrastive loss (InfoNCE): ``scores`` (B, N) over candidates, ``labels`` (B,) the column of
    each query's positive; the other columns (its hard negatives, other queries' documents = in-batch
    negatives) are the negatives. ``-mean_b log softmax(scores_b / T)[labels_b]``.
    """
    return F.cross_entropy(scores.float() / temperature, labels)


def margin_ranking_loss(positive: torch.Tensor, negatives: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Pairwise hinge: ``mean relu(margin - s(q, d+) + s(q, d-))``; ``positive`` (B,), ``negatives`` (B, k)."""
    return F.relu(margin - positive.float()[:, None] + negatives.float()).mean()


def margin_mse_loss(
    positive: torch.Tensor,
    negatives: torch.Tensor,
    teacher_positive: torch.Tensor,
    teacher_negatives: torch.Tensor,
) -> torch.Tensor:
    """MarginMSE (Hofstätter et al.): the student's margins ``s(d+) - s(d-)`` regress onto the teacher's.

    ``positive`` / ``teacher_positive`` (B,); ``negatives`` / ``teacher_negatives`` (B, k).
    """
    student = positive.float()[:, None] - negatives.float()
    teacher = teacher_positive.float()[:, None] - teacher_negatives.float()
    return F.mse_loss(student, teacher)


def kl_distillation_loss(
    scores: torch.Tensor, teacher_scores: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """KL(teacher || student) of the softmax distributions over each query's candidates; (B, k) both."""
    student = F.log_softmax(scores.float() / temperature, dim=-1)
    teacher = F.log_softmax(teacher_scores.float() / temperature, dim=-1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean")


def listwise_distillation_loss(
    scores: torch.Tensor,
    teacher_scores: torch.Tensor,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Listwise KL(teacher || student) over each query's whole candidate list; (B, N) both.

    Unlike MarginMSE it compares distributions, not score differences, so a student whose scores live on
    another scale than the teacher's (SPLADE dot products against ColBERT's MaxSim sums) learns the
    teacher's order without matching its margins; ``temperature`` softens the teacher (and the student).
    The teacher gets no gradient. ``mask`` (B, N) bool marks the columns that are no candidates of a row
    (another copy of its positive, say): they take part in neither distribution.
    """
    student = scores.float() / temperature
    teacher = teacher_scores.detach().float() / temperature
    if mask is not None:
        # a large finite negative, not -inf: KL's 0 * log 0 terms must stay 0, not NaN
        student = student.masked_fill(mask, -1e4)
        teacher = teacher.masked_fill(mask, -1e4)
    return F.kl_div(
        F.log_softmax(student, dim=-1), F.log_softmax(teacher, dim=-1), log_target=True, reduction="batchmean"
    )


def teacher_false_negatives(teacher_scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, N) bool: the candidates the teacher scores at least as high as the row's positive (column
    ``labels[i]``), the positive itself excluded. A contrastive loss should not push those down: they are
    likely unlabelled positives (common among BM25 negatives of pseudo-queries).
    """
    teacher = teacher_scores.detach().float()
    positive = teacher.gather(1, labels[:, None])
    flagged = teacher >= positive
    flagged[torch.arange(len(labels)), labels] = False
    return flagged


def flops_regularizer(weights: torch.Tensor) -> torch.Tensor:
    """FLOPS regulariser (Paria et al., used by SPLADE): ``sum_v (mean_b w_bv)^2`` of ``weights`` (B, V).

    Squares the *mean* activation of each term, so it penalises terms that are on for many texts
    (the expensive ones in an inverted index) more than rare, specific ones.
    """
    return (weights.float().mean(dim=0) ** 2).sum()


def l1_regularizer(weights: torch.Tensor) -> torch.Tensor:
    """L1: ``mean_b sum_v |w_bv|`` of ``weights`` (B, V)."""
    return weights.float().abs().sum(dim=-1).mean()


@dataclass
class RegularizerSchedule:
    """Separate λ for queries and documents, warmed up quadratically over ``warmup_steps``.

    SPLADE starts with λ near 0 so the ranking loss shapes the vectors first, then sparsity is enforced:
    ``λ(t) = λ_max * min(1, t / warmup_steps)^2``.
    """

    lambda_query: float = 5e-4
    lambda_doc: float = 3e-4
    warmup_steps: int = 0

    def factor(self, step: int) -> float:
        if self.warmup_steps <= 0:
            return 1.0
        return min(1.0, step / self.warmup_steps) ** 2

    def lambdas(self, step: int) -> tuple[float, float]:
        """(λ_query, λ_doc) at optimisation step ``step``."""
        f = self.factor(step)
        return self.lambda_query * f, self.lambda_doc * f


@torch.no_grad()
def sparsity_stats(queries: torch.Tensor | None, docs: torch.Tensor | None) -> dict[str, float]:
    """Sparsity of SPLADE batches ``queries`` (B, V) / ``docs`` (N, V).

    ``query_nnz`` / ``doc_nnz``: average non-zeros per vector; ``*_nnz_ratio``: that over V;
    ``flops``: expected multiplications of one query-document dot product through an inverted index,
    ``sum_v P(q_v > 0) P(d_v > 0)`` estimated on the batch (the quantity the FLOPS regulariser targets).
    """
    out: dict[str, float] = {}
    for name, w in (("query", queries), ("doc", docs)):
        if w is None:
            continue
        active = (w > 0).float()
        out[f"{name}_nnz"] = float(active.sum(dim=-1).mean())
        out[f"{name}_nnz_ratio"] = out[f"{name}_nnz"] / w.shape[-1]
    if queries is not None and docs is not None:
        out["flops"] = float(((queries > 0).float().mean(0) * (docs > 0).float().mean(0)).sum())
    return out
