"""Cross-layer attention similarity (paper appendix A.3, after DeepViT).

For head h and token t, M[h, t, i, j] is the cosine similarity between layer i's and layer j's
attention rows A[i][h, t, :] and A[j][h, t, :]. Averaged over tokens and images it gives one
L x L matrix per head; high values between late layers are the "attention collapse" that the
paper finds masks reduce.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .attention import attention_probs


@torch.no_grad()
def cross_layer_similarity(model, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """(H, L, L) mean cosine similarity of attention rows between layers, per head."""
    was_training = model.training
    model.eval()
    layers, heads = len(model.blocks), model.blocks[0].attn.num_heads
    total = torch.zeros(heads, layers, layers, dtype=torch.float64)
    rows = 0
    maps: dict[int, torch.Tensor] = {}

    def capture(layer):
        def hook(attn, args):
            probs = attention_probs(attn, args[0])  # (B, H, T, T)
            maps[layer] = torch.nn.functional.normalize(probs.double(), dim=-1)
        return hook

    handles = [block.attn.register_forward_pre_hook(capture(l)) for l, block in enumerate(model.blocks)]
    try:
        for batch in images.split(batch_size):
            maps.clear()
            model(batch)
            stacked = torch.stack([maps[l] for l in range(layers)])  # (L, B, H, T, T)
            # dot products of the same (image, head, token) row between every pair of layers
            total += torch.einsum("ibhtk,jbhtk->hij", stacked, stacked).cpu()
            rows += stacked.shape[1] * stacked.shape[3]
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return (total / rows).numpy()


def similarity_from_checkpoint(checkpoint: Path, spec, config: dict, images: int = 256) -> np.ndarray:
    """Rebuild a run's proxy model from a kept checkpoint and measure it on validation images."""
    from .data import load_data
    from .engine import ProxyConfig, build_proxy_model

    proxy = ProxyConfig(**{k: v for k, v in (config.get("proxy") or {}).items() if k in ProxyConfig.__dataclass_fields__})
    data = load_data(proxy.data, image_size=proxy.image_size)
    model = build_proxy_model(spec, proxy, data)
    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    batch = torch.cat([x for x, _ in data.batches("val", images)])[:images]
    return cross_layer_similarity(model, batch)
