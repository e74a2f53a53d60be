"""U-Net (2D slices or 3D patches) with residual blocks, optional self-attention and timestep embedding."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    """Shape of a U-Net; saved in every checkpoint so the weights alone rebuild the model."""

    in_channels: int = 4
    out_channels: int = 1
    widths: tuple[int, ...] = (32, 64, 96, 128)
    time_embedding: bool = True
    attention: bool = True
    groups: int = 8
    dims: int = 2
    """2: slices (N, C, H, W); 3: volumes or patches (N, C, D, H, W)."""
    deep_supervision: bool = False
    """Extra output heads on the decoder's coarser levels, for a training loss at every scale; inference
    reads the full-resolution head only."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> UNetConfig:
        return cls(**{**values, "widths": tuple(values["widths"])})


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps, shape (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with an optional additive time embedding and a 1x1 skip."""

    def __init__(self, c_in: int, c_out: int, groups: int, time_dim: int | None, conv=nn.Conv2d):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, c_in), c_in)
        self.conv1 = conv(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, c_out) if time_dim else None
        self.norm2 = nn.GroupNorm(min(groups, c_out), c_out)
        self.conv2 = conv(c_out, c_out, 3, padding=1)
        self.skip = conv(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.act = nn.SiLU(inplace=True)  # on the norm's fresh output: no extra tensor per call

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        if self.time is not None and emb is not None:
            h = h + self.time(emb).view(*emb.shape[:1], -1, *([1] * (h.dim() - 2)))
        h = self.conv2(self.act(self.norm2(h)))
        return h.add_(self.skip(x))


class SelfAttention(nn.Module):
    """Single-head self-attention over all positions of a feature map."""

    def __init__(self, channels: int, groups: int, conv=nn.Conv2d):
        super().__init__()
        self.norm = nn.GroupNorm(min(groups, channels), channels)
        self.qkv = conv(channels, 3 * channels, 1)
        self.out = conv(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, -1).transpose(-1, -2).unbind(1)
        attended = nn.functional.scaled_dot_product_attention(q, k, v)
        return x + self.out(attended.transpose(-1, -2).reshape(x.shape))


class UNet(nn.Module):
    """Encoder-decoder with skip connections; denoiser when ``time_embedding`` is on, segmenter otherwise."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        widths, groups = config.widths, config.groups
        conv = {2: nn.Conv2d, 3: nn.Conv3d}[config.dims]
        time_dim = 4 * widths[0] if config.time_embedding else None
        self.time_mlp = (nn.Sequential(nn.Linear(widths[0], time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
                         if time_dim else None)
        self.stem = conv(config.in_channels, widths[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        c = widths[0]
        for i, width in enumerate(widths):
            self.down_blocks.append(ResBlock(c, width, groups, time_dim, conv))
            c = width
            if i < len(widths) - 1:
                self.downsamples.append(conv(c, c, 3, stride=2, padding=1))
        self.mid = ResBlock(c, c, groups, time_dim, conv)
        self.attention = SelfAttention(c, groups, conv) if config.attention else nn.Identity()
        self.up_blocks = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.upsamples.append(conv(c, width, 3, padding=1))
            self.up_blocks.append(ResBlock(2 * width, width, groups, time_dim, conv))
            c = width
        self.head = nn.Sequential(nn.GroupNorm(min(groups, c), c), nn.SiLU(inplace=True),
                                  conv(c, config.out_channels, 3, padding=1))
        self.coarse_heads = nn.ModuleList(  # decoder levels below the finest, fine to coarse
            nn.Sequential(nn.GroupNorm(min(groups, w), w), nn.SiLU(), conv(w, config.out_channels, 1))
            for w in (widths[1:-1] if config.deep_supervision else ()))

    @property
    def memory_format(self) -> torch.memory_format:
        """Channels-last layout for this U-Net's dimensionality (faster convolutions on CPU and GPU)."""
        return torch.channels_last if self.config.dims == 2 else torch.channels_last_3d

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None,
                all_levels: bool = False) -> torch.Tensor | list[torch.Tensor]:
        """The output; with ``all_levels``, a list: the output, then the coarse heads' from fine to coarse."""
        emb = None
        if self.time_mlp is not None:
            if t is None:
                raise ValueError("this U-Net needs a timestep")
            emb = self.time_mlp(timestep_embedding(t, self.config.widths[0]))
        h = self.stem(x)
        skips = []
        for i, block in enumerate(self.down_blocks):
            h = block(h, emb)
            if i < len(self.downsamples):
                skips.append(h)
                h = self.downsamples[i](h)
        h = self.attention(self.mid(h, emb))
        decoded = []
        for upsample, block in zip(self.upsamples, self.up_blocks):
            skip = skips.pop()
            h = upsample(nn.functional.interpolate(h, size=skip.shape[2:], mode="nearest"))
            h = block(torch.cat([h, skip], dim=1), emb)
            if all_levels:
                decoded.append(h)
        if not all_levels:
            return self.head(h)
        return [self.head(h)] + [head(level) for head, level in zip(self.coarse_heads, decoded[-2::-1])]
