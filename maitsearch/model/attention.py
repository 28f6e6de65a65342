"""MaskedAttention: timm's ``Attention`` with per-head locality masks (docs/DESIGN.md, section 5).

It *is* a timm ``Attention`` (a subclass) and owns the same submodules under the same names
(``qkv``, ``proj``, ``q_norm``, ``k_norm``, ``norm``, ``gate``), so state dicts move freely between
DeiT and MaiT. Each head is one of three kinds, fixed when the layer is configured:

- hard:  other patches' logits are multiplied by 0 (``paper``) or set to -inf (``local``);
- soft:  other patches' logits are multiplied by alpha = sigmoid(theta), theta learnable;
- plain: untouched. Plain heads run together in one SDPA call, exactly as timm runs them.

A layer with no hard or soft head runs timm's own ``forward``. The kernel for the hard heads is
picked once per device from the token count, one for training (``kernels.resolve_kernel``) and
one for eval mode and export (``kernels.resolve_inference_kernel``: the band kernel, which
computes only the window and exports cleanly, where it is faster). Attention
probabilities for ALS come from ``attention_probs``, which the forward pass never calls.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from timm.layers import Attention, register_notrace_module

from . import kernels
from .kernels.flex import FlexMasks
from .locality import head_pattern_seed, random_matrix, token_matrix, window_matrix
from .masked_heads import MaskedHeads

_CONFIG_BUFFERS = ("allowed", "head_order_index", "head_restore_index")


def _exporting() -> bool:
    """torch.export (and the ONNX exporter built on it), the TorchScript-based ONNX exporter, or
    torch.jit.trace: a graph is being recorded for deployment, so take export's kernels."""
    return torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export() or torch.jit.is_tracing()


@register_notrace_module  # FX traces around it (its forward branches on Python state), not into it
class MaskedAttention(MaskedHeads, Attention):
    """timm's ``Attention`` with per-head locality masks.

    Lifecycle: built either directly (``MaskedAttention(dim, heads, alphas=..., grid_size=...)``)
    or, far more often, by ``apply_mask_spec``, which wraps each block's existing attention with
    ``from_attention`` so the parameters are shared, not copied. ``configure`` fixes each head's
    kind (hard, soft or plain), the window tensors and the kernel per device type, once; the
    forward pass only dispatches on what was decided there. Applying a new spec calls
    ``configure`` again on the same module. Soft heads own one learnable ``soft_logit`` each.
    """

    def __init__(self, dim: int, num_heads: int = 8, *, alphas: Sequence[float] | None = None,
                 grid_size: tuple[int, int], num_prefix_tokens: int = 1, window: tuple[int, int] = (3, 3),
                 semantics: str = "paper", pattern: str = "window", pattern_seed: int = 0,
                 layer_index: int = 0, kernel: str = "auto", **timm_kwargs):
        super().__init__(dim, num_heads, **timm_kwargs)
        self.configure(alphas, grid_size=grid_size, num_prefix_tokens=num_prefix_tokens, window=window,
                       semantics=semantics, pattern=pattern, pattern_seed=pattern_seed,
                       layer_index=layer_index, kernel=kernel)

    def configure(self, alphas: Sequence[float] | None, *, grid_size: tuple[int, int], num_prefix_tokens: int,
                  window: tuple[int, int] = (3, 3), semantics: str = "paper", pattern: str = "window",
                  pattern_seed: int = 0, layer_index: int = 0, kernel: str = "auto") -> None:
        """(Re)set the per-head masks. ``alphas[h]``: 0 hard, 1 plain, in between soft (initial alpha)."""
        alphas = [1.0] * self.num_heads if alphas is None else [float(a) for a in alphas]
        if len(alphas) != self.num_heads:
            raise ValueError(f"alphas: expected {self.num_heads} (one per head), got {len(alphas)}")
        hard = [h for h, a in enumerate(alphas) if a == 0.0]
        soft = [h for h, a in enumerate(alphas) if 0.0 < a < 1.0]
        plain = [h for h, a in enumerate(alphas) if a >= 1.0]
        self.grid_size = tuple(grid_size)
        self.num_prefix_tokens = num_prefix_tokens
        self.num_tokens = num_prefix_tokens + self.grid_size[0] * self.grid_size[1]
        self.window, self.semantics, self.pattern = tuple(window), semantics, pattern
        self.hard_heads, self.soft_heads, self.plain_heads = tuple(hard), tuple(soft), tuple(plain)
        self.num_hard, self.num_masked = len(hard), len(hard) + len(soft)

        device = self.qkv.weight.device
        for name in _CONFIG_BUFFERS:
            self.register_buffer(name, None, persistent=False)
        order = hard + soft + plain
        if order != sorted(order):  # canonical placements mask the lowest heads and need no reordering
            self.head_order_index = torch.tensor(order, device=device)
            self.head_restore_index = self.head_order_index.argsort()
        if self.num_masked:
            if pattern == "window":
                allowed = token_matrix(window_matrix(self.grid_size, self.window, device), num_prefix_tokens)  # (T, T)
            else:
                allowed = torch.stack([
                    token_matrix(random_matrix(self.grid_size, self.window,
                                               head_pattern_seed(pattern_seed, layer_index, h)), num_prefix_tokens)
                    for h in hard + soft]).to(device)  # (masked heads, T, T)
            self.allowed = allowed
        self._reset_soft_logit([alphas[h] for h in soft], device)

        dropout = self.attn_drop.p
        # chosen once per device type, like timm's fused_attn
        self.kernels = {kind: kernels.resolve_kernel(kernel, device_type=kind, num_tokens=self.num_tokens,
                                                     pattern=pattern, attn_dropout=dropout)
                        for kind in ("cpu", "cuda")}
        self.groups = {kind: self._head_groups(name) for kind, name in self.kernels.items()}
        self.inference_kernels = {
            target: kernels.resolve_inference_kernel(kernel, target=target, num_tokens=self.num_tokens,
                                                     grid=self.grid_size, window=self.window, pattern=pattern)
            for target in kernels.INFERENCE_TARGETS}
        # Exported, a dense layer is one attention over all heads: the graph of timm's own layer
        # with the scale multiply replaced by the masks' (H, T, T) factor, nothing split or joined.
        self.inference_groups = {target: self._head_groups("fused" if (target, name) == ("export", "dense") else name)
                                 for target, name in self.inference_kernels.items()}
        use_band = self.num_hard and "band" in self.inference_kernels.values()
        self.band = kernels.BandTable(self.grid_size, self.window, num_prefix_tokens, device) if use_band else None
        strict = (semantics == "local",) * len(hard) + (False,) * len(soft)
        self._flex = FlexMasks(self.grid_size, self.window, num_prefix_tokens, strict) if self.num_masked else None

    def _head_groups(self, kernel: str) -> list[tuple[str, int, int]]:
        """(path, first head, head count) runs over the masked-first head order. Each run gets
        its own slice of the qkv projection, so no head is computed twice."""
        h, m = self.num_hard, self.num_masked
        if kernel == "fused":
            return [("fused", 0, self.num_heads)]
        if kernel == "flex":
            runs = [("flex", 0, m)]
        elif kernel == "local":
            runs = [("window", 0, h), ("multiplicative", h, m - h)]
        elif kernel == "band":
            runs = [("band", 0, h), ("multiplicative", h, m - h)]
        elif self.semantics == "local":
            runs = [("strict", 0, h), ("multiplicative", h, m - h)]
        else:
            runs = [("multiplicative", 0, m)]
        runs.append(("plain", m, self.num_heads - m))
        return [run for run in runs if run[2] > 0]

    # ---- public helpers --------------------------------------------------------------------
    def alphas(self) -> torch.Tensor:
        """(H,) current alpha of every head, in head order: 0 hard, 1 plain, sigmoid(theta) soft."""
        alpha = torch.ones(self.num_heads, device=self.qkv.weight.device)
        alpha[list(self.hard_heads)] = 0.0
        if self.soft_heads:
            alpha[list(self.soft_heads)] = torch.sigmoid(self.soft_logit.detach()).to(alpha)
        return alpha

    def attention_probs(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, T, T) attention probabilities with the masks applied, heads in their own order.
        Dense and unfused: for measuring ALS, never used by ``forward``."""
        q, k, _ = self._project(x)
        probs = self._masked_logits((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # (B, H, T, T)
        return probs if self.head_restore_index is None else probs.index_select(1, self.head_restore_index)

    def _masked_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, H, T, T) logits of every head, masked heads first, with every mask applied: masked
        heads' logits outside the window times alpha (0 hard, sigmoid(theta) soft), or -inf for
        ``local`` hard heads. Dense, and plain enough for TorchScript."""
        m, h = self.num_masked, self.num_hard
        allowed = self.allowed
        if m == 0 or allowed is None:
            return logits
        if allowed.dim() == 2:
            allowed = allowed.unsqueeze(0)  # (1 or masked heads, T, T)
        alpha = torch.zeros(m, dtype=logits.dtype, device=logits.device)
        if hasattr(self, "soft_logit"):
            alpha[h:] = torch.sigmoid(self.soft_logit).to(logits.dtype)
        factor = torch.where(allowed, torch.ones((), dtype=logits.dtype, device=logits.device), alpha[:, None, None])
        masked = logits[:, :m] * factor
        if h > 0 and self.semantics == "local":
            outside = ~allowed if allowed.size(0) == 1 else ~allowed[:h]
            masked = torch.cat([masked[:, :h].masked_fill(outside, -math.inf), masked[:, h:]], dim=1)
        return torch.cat([masked, logits[:, m:]], dim=1)

    # ---- forward ---------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None, is_causal: bool = False) -> torch.Tensor:
        if torch.jit.is_scripting():  # TorchScript compiles only this branch
            return self._scripted_forward(x)
        if not self.num_masked:
            return super().forward(x, attn_mask=attn_mask, is_causal=is_causal)
        if attn_mask is not None or is_causal:
            raise ValueError("MaskedAttention: locality masks do not combine with attn_mask or is_causal")
        B, T, _ = x.shape
        self._check_tokens(T)
        gate = self.gate(x).sigmoid() if getattr(self, "gate", None) is not None else None
        qkv = self.qkv(x).reshape(B, T, 3, self.num_heads, self.head_dim)
        if self.head_order_index is not None:
            qkv = qkv.index_select(3, self.head_order_index)
        groups = self._groups_for(x.device.type)
        parts = qkv.split([size for _, _, size in groups], dim=3)
        outs = []
        for (path, first, _), part in zip(groups, parts):
            q, k, v = part.permute(2, 0, 3, 1, 4).unbind(0)  # (B, size, T, d) each
            outs.append(self._attend(path, first, self.q_norm(q), self.k_norm(k), v).transpose(1, 2))
        x = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]  # (B, T, H, d), masked heads first
        if self.head_restore_index is not None:
            x = x.index_select(2, self.head_restore_index)
        x = self.norm(x.reshape(B, T, self.num_heads * self.head_dim))
        if gate is not None:
            x = x * gate
        return self.proj_drop(self.proj(x))

    def _groups_for(self, device_type: str) -> list[tuple[str, int, int]]:
        """Head groups of this call: export's, eval mode's or training's, chosen in ``configure``."""
        if _exporting():
            return self.inference_groups["export"]
        table = self.groups if self.training else self.inference_groups
        return table.get(device_type, table["cpu"])

    def _scripted_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Every head in one dense pass: what a scripted MaiT runs. The eager forward's head
        groups and kernels (custom autograd, FlexAttention) are Python-only; this computes the
        same function (``tests/test_models.py`` compares the two)."""
        B, T, _ = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        order = self.head_order_index
        if order is not None:
            qkv = qkv.index_select(2, order)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        probs = self._masked_logits((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        out = (self.attn_drop(probs) @ v).transpose(1, 2)  # (B, T, H, d), masked heads first
        restore = self.head_restore_index
        if restore is not None:
            out = out.index_select(2, restore)
        out = self.norm(out.reshape(B, T, self.num_heads * self.head_dim))
        if self.gate is not None:
            out = out * self.gate(x).sigmoid()
        return self.proj_drop(self.proj(out))

    def _attend(self, path: str, first: int, q, k, v) -> torch.Tensor:
        """One run of heads (B, h, T, d) -> (B, h, T, d) on its kernel."""
        dropout_p = self.attn_drop.p if self.training else 0.0
        if path == "plain":
            if self.fused_attn:
                return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
            attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
            return self.attn_drop(attn) @ v
        if path == "multiplicative":
            return kernels.multiplicative_attention(q, k, v, self._factor(first, q.shape[1], q.dtype), self.scale,
                                                    self.attn_drop if self.training else None)
        if path == "strict":
            return kernels.strict_attention(q, k, v, self._allowed(first, q.shape[1]), dropout_p)
        if path == "fused":
            logits = (q @ k.transpose(-2, -1)) * self._fused_factor(q.dtype)
            if self.num_hard and self.semantics == "local":
                logits = logits.masked_fill(self._fused_outside(), -math.inf)
            return logits.softmax(dim=-1) @ v
        if path == "band":
            return kernels.band_window_attention(q, k, v, self.band, scale=self.scale, semantics=self.semantics)
        if path == "window":
            return kernels.window_attention(q, k, v, grid=self.grid_size, window=self.window,
                                            num_prefix=self.num_prefix_tokens, scale=self.scale,
                                            semantics=self.semantics)
        table = self.allowed if self.pattern != "window" else None
        return self._flex.attention(q, k, v, self._alpha(q.dtype), self.scale, table)

    def _check_tokens(self, num_tokens: int) -> None:
        if num_tokens != self.num_tokens:
            raise ValueError(f"MaskedAttention was built for {self.num_tokens} tokens "
                             f"({self.num_prefix_tokens} prefix + {self.grid_size[0]}x{self.grid_size[1]} patches), "
                             f"got {num_tokens}: apply the mask spec after changing the input size")

    def _project(self, x: torch.Tensor):
        """q, k, v (B, H, T, d) of all heads, masked heads first."""
        B, T, _ = x.shape
        self._check_tokens(T)
        qkv = self.qkv(x).reshape(B, T, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.head_order_index is not None:
            qkv = qkv.index_select(2, self.head_order_index)
        q, k, v = qkv.unbind(0)
        return self.q_norm(q), self.k_norm(k), v

    def _allowed(self, first: int, count: int) -> torch.Tensor:
        """(T, T) window mask, or (count, T, T) per-head random patterns of masked heads first.."""
        return self.allowed if self.allowed.dim() == 2 else self.allowed[first:first + count]

    def _alpha(self, dtype) -> torch.Tensor:
        """(masked heads,) alpha in the masked-first order: zeros for hard, sigmoid(theta) for soft."""
        hard = torch.zeros(self.num_hard, dtype=dtype, device=self.allowed.device)
        if not self.soft_heads:
            return hard
        return torch.cat([hard, torch.sigmoid(self.soft_logit).to(dtype)])

    def _factor(self, first: int, count: int, dtype) -> torch.Tensor:
        """(count, T, T) or (T, T) logit multipliers of masked heads first..: 1 on allowed keys,
        alpha elsewhere. Hard heads alone need no alpha: their multiplier is the mask itself."""
        allowed = self._allowed(first, count)
        if first + count <= self.num_hard:
            return allowed
        alpha = self._alpha(dtype)[first:first + count, None, None]
        return torch.where(allowed, torch.ones((), dtype=dtype, device=alpha.device), alpha)

    def _fused_factor(self, dtype) -> torch.Tensor:
        """(H, T, T) logit multipliers of every head, masked heads first, with the scale folded
        in: constants an exporter folds (soft heads' alphas aside)."""
        m, T = self.num_masked, self.num_tokens
        masked = self._factor(0, m, dtype).to(dtype).expand(m, T, T)
        if m < self.num_heads:
            masked = torch.cat([masked, torch.ones(self.num_heads - m, T, T, dtype=dtype, device=masked.device)])
        return masked * self.scale

    def _fused_outside(self) -> torch.Tensor:
        """(H, T, T) True where a ``local`` hard head's logit is -inf."""
        h, T = self.num_hard, self.num_tokens
        outside = ~self._allowed(0, h).expand(h, T, T)
        rest = torch.zeros(self.num_heads - h, T, T, dtype=torch.bool, device=outside.device)
        return torch.cat([outside, rest])

    def extra_repr(self) -> str:
        return (f"heads={self.num_heads}, hard={list(self.hard_heads)}, soft={list(self.soft_heads)}, "
                f"window={self.window}, semantics={self.semantics}, pattern={self.pattern}, "
                f"grid={self.grid_size}, prefix={self.num_prefix_tokens}, kernel={self.kernels['cpu']}, "
                f"inference={self.inference_kernels['cpu']}, export={self.inference_kernels['export']}")
