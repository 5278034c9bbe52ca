"""Records shared by the parts of the simulator (schedule -> frames, night logs, truth)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class SimExposure:
    """One exposure of one spectrograph, as the observers' tools would report it.

    ``cameras`` lists the camera files written for it (``("b1", "r1")`` at APO). Values that the
    real logs print (collimator, field/design/config, temperature) are here so every night-log
    layout can be rendered from the same record as the frames' headers.
    """

    expnum: int
    mjd: int  # SDSS MJD of the night
    observatory: str  # "apo" | "lco"
    flavor: str  # "arc" | "flat" | "science" | "bias" | "dark"
    hartmann: str  # "Out" | "Left" | "Right" | "Closed"
    exptime: float  # s, as EXPTIME
    date_obs: datetime  # UTC/TAI start of integration (naive, UTC)
    cameras: tuple[str, ...]
    field_id: int = -999
    design_id: int = -999
    config_id: int = -999
    colla: int = 0
    collb: int = 0
    collc: int = 0
    temperature: float = 0.0  # C, spectrograph median temperature (MC1TEMDN)
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_hartmann(self) -> bool:
        return self.hartmann in ("Left", "Right")
