"""Objectives on the task's target positions (IGNORE elsewhere), computed in float32 whatever the autocast."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .tasks import IGNORE


def masked_ce_sum(logits_BTV: torch.Tensor, targets_BT: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of next-token losses over target positions, number of target positions)."""
    flat = logits_BTV.reshape(-1, logits_BTV.shape[-1]).float()
    loss = F.cross_entropy(flat, targets_BT.reshape(-1), ignore_index=IGNORE, reduction="sum")
    return loss, (targets_BT != IGNORE).sum()


def correct_count(logits_BTV: torch.Tensor, targets_BT: torch.Tensor) -> torch.Tensor:
    mask = targets_BT != IGNORE
    return ((logits_BTV.argmax(-1) == targets_BT) & mask).sum()


def kl_sum(student_BTV: torch.Tensor, teacher_BTV: torch.Tensor, targets_BT: torch.Tensor,
           temperature: float) -> torch.Tensor:
    """Sum over target positions of T^2 KL(teacher_T || student_T) (Hinton et al.; T^2 keeps gradient scale)."""
    mask_N = (targets_BT != IGNORE).reshape(-1)
    vocab = student_BTV.shape[-1]
    log_s = F.log_softmax(student_BTV.reshape(-1, vocab)[mask_N].float() / temperature, dim=-1)
    log_t = F.log_softmax(teacher_BTV.reshape(-1, vocab)[mask_N].float() / temperature, dim=-1)
    return F.kl_div(log_s, log_t, log_target=True, reduction="sum") * temperature**2
