"""The model store: ``model.pt`` + ``meta.json`` in ``Layout.model_dir(camera, flavor, latent)``
(``Layout.model_file`` and ``Layout.model_meta``).

``save_model`` writes both atomically (``meta.json`` last, so a directory with a ``meta.json``
always has its weights). ``load_model(dir)`` returns a ``LoadedModel`` that works in electrons:
``encode(x [N, H, W]) -> z [N, latent]`` and ``decode(z) -> x [N, H, W]``; ``.view`` says which
calibrated column / window / crop / downsampling it was trained on, and ``.view.extract(...)``
(or ``.extract_input``) cuts exactly that input out of calibrated rows.
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
from arcray.model.normalise import AsinhNormaliser
from arcray.model.view import View
from arcray.paths import MODEL_FILE, MODEL_META_FILE, join


def save_model(model_dir: str, model: ConvAutoencoder, *, normaliser: AsinhNormaliser, view: View,
               camera: str, flavor: str, metrics: dict | None = None, config_hash: str | None = None,
               extra: dict | None = None) -> None:
    """Register ``model`` (a ``ConvAutoencoder``, DDP-unwrapped) in ``model_dir``."""
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
        "view": view.to_dict(),
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
    view: View
    meta: dict = field(default_factory=dict)
    device: str = "cpu"
    batch_size: int = 256

    @property
    def latent(self) -> int:
        return self.model.cfg.latent

    @property
    def input_shape(self) -> tuple[int, int]:
        return self.model.cfg.height, self.model.cfg.width_px

    def extract_input(self, images: np.ndarray, mask: np.ndarray | None = None):
        """Calibrated column values (e.g. ``windows`` [N, n_win, 256, 256]) -> ``(x, mask)``."""
        return self.view.extract(images, mask)

    @torch.no_grad()
    def encode(self, x: np.ndarray) -> np.ndarray:
        """Electron images ``[N, H, W]`` (the view's shape) -> latents ``[N, latent]`` float32."""
        x = np.asarray(x, np.float32)
        if x.ndim != 3 or tuple(x.shape[1:]) != self.input_shape:
            raise InputError(f"encode expects [N, {self.input_shape[0]}, {self.input_shape[1]}] "
                             f"electrons, got shape {x.shape}")
        out = []
        for i in range(0, len(x), self.batch_size):
            y = torch.from_numpy(self.normaliser.forward(x[i:i + self.batch_size])).to(self.device)
            out.append(self.model.encode(y).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.latent), np.float32)

    @torch.no_grad()
    def decode(self, z: np.ndarray) -> np.ndarray:
        """Latents ``[N, latent]`` -> electron images ``[N, H, W]`` float32."""
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent:
            raise InputError(f"decode expects [N, {self.latent}] latents, got shape {z.shape}")
        out = []
        for i in range(0, len(z), self.batch_size):
            y = self.model.decode(torch.from_numpy(z[i:i + self.batch_size]).to(self.device))
            out.append(self.normaliser.inverse(y.float().cpu().numpy()))
        h, w = self.input_shape
        return np.concatenate(out) if out else np.zeros((0, h, w), np.float32)

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
    return LoadedModel(model=model, normaliser=AsinhNormaliser.from_dict(meta["normaliser"]),
                       view=View.from_dict(meta["view"]), meta=meta, device=device)
