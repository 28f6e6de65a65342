"""The model layer: locality masks on timm's attention, their kernels, and measuring attention.

- ``locality``: windows on the patch grid, ALS from probabilities, attention cost.
- ``attention``: ``MaskedAttention``, a drop-in subclass of timm's ``Attention``.
- ``talking_heads``: ``MaskedTalkingHeadAttn``, the same for CaiT's patch layers.
- ``kernels``: dense, O(N*k) window, band (eval and export) and FlexAttention paths for masked heads.
- ``mait``: ``apply_mask_spec`` for any timm ViT or CaiT, and the registered ``mait_*`` models.
- ``measure``: ALS of every head, cross-layer similarity.
- ``export``: weights with timm's config.json, ONNX with its onnxruntime check, int8, torch.export.

Knows specs; knows nothing of data, training or searches (docs/DESIGN.md, section 2).
"""

from .attention import MaskedAttention
from .mait import MaiT, apply_mask_spec, resolve_spec
from .measure import attention_probs, cross_layer_similarity, measure_als
from .talking_heads import MaskedTalkingHeadAttn

__all__ = ["MaskedAttention", "MaskedTalkingHeadAttn", "MaiT", "attention_probs", "apply_mask_spec", "resolve_spec",
           "measure_als", "cross_layer_similarity"]
