"""A family of convolutional autoencoders over one-channel images (pure torch).

``AEConfig`` fixes depth (number of stride-2 levels), width (channels of the first level, doubled
per level), latent size (1..64), residual blocks on/off and the input size. ``ARCHS`` names a few
members: ``small3`` is close to the study's small three-level conv AE, ``deep_res`` a deeper
residual one, ``tiny`` a fast one for smoke runs and tests, ``pca_res`` a linear path initialised
from the training PCA plus a nonlinear conv correction (``arcray.model.pca_ae``), ``grid_res`` the
same over every window of a detector grid with a smooth sub-pixel shift field across the detector
(``arcray.model.grid_ae``; input ``[N, n_windows, H, W]``), ``line_mlp`` an MLP over line vectors
(``arcray.model.line_ae``; input ``[N, width_px]``, ``height`` 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from arcray.errors import ConfigError

LATENT_MIN, LATENT_MAX = 1, 64
KINDS = ("conv", "pca_res", "grid_res", "line_mlp")
IMAGE_KINDS = ("conv", "pca_res")  # one window [N, H, W]; grid_res reads [N, n_windows, H, W]


@dataclass(frozen=True)
class AEConfig:
    """``depth`` stride-2 levels, ``width`` channels at level 0 (x2 per level, capped at
    ``max_width``), ``blocks`` residual blocks per level (0 = plain convs), latent size, input
    ``height`` x ``width_px`` pixels (each a multiple of 2**depth); ``n_windows`` windows read
    together and their centres ``positions`` ((u, v) per window, detector rows and columns mapped
    to -1..1) for ``grid_res``."""

    arch: str = "small3"
    latent: int = 4
    depth: int = 3
    width: int = 16
    max_width: int = 128
    blocks: int = 0
    height: int = 64
    width_px: int = 64
    kind: str = "conv"  # "conv": ConvAutoencoder; "pca_res": PCA-initialised PCAResAutoencoder
    n_windows: int = 1
    positions: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self) -> None:
        if self.positions is not None:  # JSON gives lists
            object.__setattr__(self, "positions", tuple((float(u), float(v)) for u, v in self.positions))

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's shape: ``(H, W)``, ``(n_windows, H, W)`` (grid_res) or ``(width_px,)``."""
        if self.kind == "line_mlp":
            return (self.width_px,)
        if self.kind == "grid_res":
            return (self.n_windows, self.height, self.width_px)
        return (self.height, self.width_px)

    def validate(self) -> "AEConfig":
        if not LATENT_MIN <= self.latent <= LATENT_MAX:
            raise ConfigError(f"latent size must be in {LATENT_MIN}..{LATENT_MAX}, got {self.latent}")
        if self.depth < 1 or self.width < 1:
            raise ConfigError("depth and width must be >= 1")
        if self.kind not in KINDS:
            raise ConfigError(f"unknown autoencoder kind {self.kind!r}; choose one of {KINDS}")
        if self.kind == "grid_res" and (self.positions is None or len(self.positions) != self.n_windows):
            raise ConfigError(f"grid_res needs one (u, v) position per window ({self.n_windows})")
        if self.kind == "line_mlp":
            return self
        f = 2 ** self.depth
        if self.height % f or self.width_px % f:
            raise ConfigError(f"input {self.height}x{self.width_px} must be a multiple of {f} "
                              f"for depth {self.depth}")
        return self

    def channels(self) -> list[int]:
        return [min(self.width * 2**i, self.max_width) for i in range(self.depth)]

    def to_dict(self) -> dict:
        return asdict(self)


ARCHS: dict[str, dict] = {
    "tiny": dict(depth=2, width=8, blocks=0),
    "small3": dict(depth=3, width=16, blocks=0),
    "deep_res": dict(depth=4, width=16, max_width=64, blocks=1),
    # linear path initialised from the training PCA + a zero-initialised conv correction
    "pca_res": dict(depth=3, width=16, blocks=0, kind="pca_res"),
    # every grid window: PCA over all of them + a smooth shift field + a shared conv correction
    "grid_res": dict(depth=3, width=8, max_width=32, blocks=0, kind="grid_res"),
    # line vectors (arcray.model.line_ae)
    "line_mlp": dict(depth=2, width=64, blocks=0, kind="line_mlp"),
}


def arch_config(arch: str, latent: int, height: int, width: int, **overrides) -> AEConfig:
    """The named architecture ``arch`` at latent size ``latent`` for ``height`` x ``width`` input
    (``overrides``: e.g. ``n_windows`` and ``positions`` of a grid)."""
    if arch not in ARCHS:
        raise ConfigError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHS)}")
    base = AEConfig(arch=arch, latent=int(latent), height=int(height), width_px=int(width),
                    **ARCHS[arch])
    return replace(base, **overrides).validate()


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.GroupNorm(1, ch), nn.SiLU(),
                                  nn.Conv2d(ch, ch, 3, padding=1), nn.GroupNorm(1, ch))
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


def _down(cin: int, cout: int, blocks: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.SiLU()]
    layers += [ResBlock(cout) for _ in range(blocks)]
    return nn.Sequential(*layers)


def _up(cin: int, cout: int, blocks: int, last: bool) -> nn.Module:
    layers: list[nn.Module] = [ResBlock(cin) for _ in range(blocks)]
    layers.append(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1))
    if not last:
        layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class ConvAutoencoder(nn.Module):
    """Images ``[N, H, W]`` (or ``[N, 1, H, W]``, normalised units) <-> latents ``[N, latent]``."""

    def __init__(self, cfg: AEConfig):
        super().__init__()
        self.cfg = cfg.validate()
        ch = cfg.channels()
        self.encoder = nn.Sequential(*[_down(c_in, c_out, cfg.blocks)
                                       for c_in, c_out in zip([1] + ch[:-1], ch)])
        f = 2 ** cfg.depth
        self._bottom = (ch[-1], cfg.height // f, cfg.width_px // f)
        n_flat = ch[-1] * self._bottom[1] * self._bottom[2]
        self.to_latent = nn.Linear(n_flat, cfg.latent)
        self.from_latent = nn.Sequential(nn.Linear(cfg.latent, n_flat), nn.SiLU())
        rev = ch[::-1]
        self.decoder = nn.Sequential(*[
            _up(c_in, c_out, cfg.blocks, last=(i == len(rev) - 1))
            for i, (c_in, c_out) in enumerate(zip(rev, rev[1:] + [1]))])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return self.to_latent(self.encoder(x).flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.from_latent(z).view(z.shape[0], *self._bottom)
        return self.decoder(h).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def build_autoencoder(cfg: AEConfig | dict) -> nn.Module:
    """The model of ``cfg``. ``pca_res``/``grid_res`` models start as zeros: initialise them from data with
    ``arcray.model.pca_ae.init_model_from_data`` (or load its saved weights)."""
    if isinstance(cfg, dict):
        cfg = AEConfig(**cfg)
    if cfg.kind == "grid_res":
        from arcray.model.grid_ae import GridAutoencoder

        return GridAutoencoder(cfg)
    if cfg.kind == "line_mlp":
        from arcray.model.line_ae import LineAutoencoder

        return LineAutoencoder(cfg)
    if cfg.kind == "pca_res":
        from arcray.model.pca_ae import PCAResAutoencoder

        return PCAResAutoencoder(cfg)
    return ConvAutoencoder(cfg)

