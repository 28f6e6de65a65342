"""What the two masked attentions share, MaskedAttention (timm's ``Attention``) and
MaskedTalkingHeadAttn (CaiT's): wrapping an existing module without copying its weights, the
soft heads' learnable logits, and loading checkpoints that have none."""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn


class MaskedHeads:
    """Mixed in before the timm attention class it masks; ``configure`` is the subclass's own."""

    @classmethod
    def from_attention(cls, attn: nn.Module, alphas: Sequence[float], **config):
        """A masked module sharing ``attn``'s submodules and parameters (no copy of weights)."""
        masked = cls.__new__(cls)
        masked.__dict__.update({name: copy.copy(value) if isinstance(value, (dict, set)) else value
                                for name, value in vars(attn).items()})
        masked.configure(alphas, **config)
        return masked

    def _reset_soft_logit(self, initial: Sequence[float], device: torch.device) -> None:
        """One learnable theta per soft head, alpha = sigmoid(theta) starting at ``initial``;
        none when no head is soft."""
        self._parameters.pop("soft_logit", None)
        if initial:
            alpha = torch.tensor(list(initial), device=device)
            self.soft_logit = nn.Parameter(torch.log(alpha) - torch.log1p(-alpha))  # sigmoid^-1(alpha)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # A DeiT or CaiT checkpoint has no soft_logit: loading it keeps the configured initial
        # alphas, so pretrained weights load strictly into any masked model.
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if prefix + "soft_logit" in missing_keys:
            missing_keys.remove(prefix + "soft_logit")
