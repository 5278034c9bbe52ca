"""The model store: ``model.pt`` + ``meta.json`` in ``Layout.model_dir(camera, flavor, latent)``
(``Layout.model_file`` and ``Layout.model_meta``).

``save_model`` writes both atomically (``meta.json`` last, so a directory with a ``meta.json``
always has its weights). ``load_model(dir)`` returns a ``LoadedModel`` that works in electrons:
``encode(x [N, *input_shape]) -> z [N, latent]`` and ``decode(z) -> x [N, *input_shape]``
(``input_shape``: ``(H, W)`` for one window, ``(n_windows, H, W)`` for a grid model, ``(D,)`` for
line vectors); ``.view`` says which calibrated column / windows / crop / downsampling it was trained
on (None for line vectors), and ``.view.extract(...)`` (or ``.extract_input``) cuts exactly that
input out of calibrated rows. ``meta["view_name"]`` names the view (absent before views had
names: window0).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import numpy as np
import torch

from arcray import __version__
from arcray.errors import InputError
from arcray.io import atomic_write_bytes, atomic_write_json, exists, read_bytes
from arcray.model.ae import AEConfig, ConvAutoencoder, build_autoencoder
from arcray.model.normalise import AsinhNormaliser, normaliser_from_dict
from arcray.model.view import View
from arcray.paths import MODEL_FILE, MODEL_META_FILE, join


def save_model(model_dir: str, model: ConvAutoencoder, *, normaliser: AsinhNormaliser, view: View | None,
               camera: str, flavor: str, metrics: dict | None = None, config_hash: str | None = None,
               extra: dict | None = None) -> None:
    """Register ``model`` (any ``build_autoencoder`` model, DDP-unwrapped) in ``model_dir``."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save({"ae_config": model.cfg.to_dict(), "state_dict": state}, buf)
    atomic_write_bytes(join(model_dir, MODEL_FILE), buf.getvalue())
    meta = {
        "arcray_version": __version__,
        "camera": camera,
        "flavor": flavor,
        "arch": model.cfg.arch,
        "latent": model.cfg.latent,
        "ae_config": model.cfg.to_dict(),
        "view": None if view is None else view.to_dict(),
        "normaliser": normaliser.to_dict(),
        "metrics": metrics or {},
        "config_hash": config_hash,
        **(extra or {}),
    }
    atomic_write_json(join(model_dir, MODEL_META_FILE), meta)


@dataclass
class LoadedModel:
    """A registered model ready to use on electron images."""

    model: ConvAutoencoder
    normaliser: AsinhNormaliser
    view: View | None
    meta: dict = field(default_factory=dict)
    device: str = "cpu"
    batch_size: int = 256

    @property
    def latent(self) -> int:
        return self.model.cfg.latent

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's shape: ``(H, W)``, ``(n_windows, H, W)`` or ``(D,)``."""
        return tuple(self.model.cfg.input_shape)

    def extract_input(self, images: np.ndarray, mask: np.ndarray | None = None):
        """Calibrated column values (e.g. ``windows`` [N, n_win, 128, 128]) -> ``(x, mask)``."""
        if self.view is None:
            raise InputError("this model reads line vectors, not calibrated images")
        return self.view.extract(images, mask)

    @torch.no_grad()
    def encode(self, x: np.ndarray) -> np.ndarray:
        """Electron samples ``[N, *input_shape]`` (the view's shape) -> latents ``[N, latent]``."""
        x = np.asarray(x, np.float32)
        if x.ndim != 1 + len(self.input_shape) or tuple(x.shape[1:]) != self.input_shape:
            raise InputError(f"encode expects [N, {', '.join(map(str, self.input_shape))}] "
                             f"samples, got shape {x.shape}")
        out = []
        for i in range(0, len(x), self.batch_size):
            y = torch.from_numpy(self.normaliser.forward(x[i:i + self.batch_size])).to(self.device)
            out.append(self.model.encode(y).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.latent), np.float32)

    @torch.no_grad()
    def decode(self, z: np.ndarray) -> np.ndarray:
        """Latents ``[N, latent]`` -> electron samples ``[N, *input_shape]`` float32."""
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent:
            raise InputError(f"decode expects [N, {self.latent}] latents, got shape {z.shape}")
        out = []
        for i in range(0, len(z), self.batch_size):
            y = self.model.decode(torch.from_numpy(z[i:i + self.batch_size]).to(self.device))
            out.append(self.normaliser.inverse(y.float().cpu().numpy()))
        return np.concatenate(out) if out else np.zeros((0, *self.input_shape), np.float32)

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        return self.decode(self.encode(x))


def load_model(model_dir: str, *, device: str = "cpu") -> LoadedModel:
    """Load a registered model; ``InputError`` when the directory holds none."""
    meta_path, model_path = join(model_dir, MODEL_META_FILE), join(model_dir, MODEL_FILE)
    if not exists(meta_path) or not exists(model_path):
        raise InputError(f"no registered model in {model_dir} (missing {MODEL_META_FILE} or {MODEL_FILE})")
    meta = json.loads(read_bytes(meta_path))
    blob = torch.load(io.BytesIO(read_bytes(model_path)), map_location=device, weights_only=True)
    model = build_autoencoder(AEConfig(**blob["ae_config"]))
    model.load_state_dict(blob["state_dict"])
    model.to(device).eval()
    return LoadedModel(model=model, normaliser=normaliser_from_dict(meta["normaliser"]),
                       view=View.from_dict(meta["view"]) if meta.get("view") else None, meta=meta,
                       device=device)
