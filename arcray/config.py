"""Typed configuration shared by every stage.

Each stage defines one ``StageConfig`` subclass next to its code, with every field documented
(units in the description). ``config_hash`` is written into the provenance of every output.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict


class StageConfig(BaseModel):
    """Base of all stage configs: frozen, no unknown fields, hashable for provenance."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def config_hash(self) -> str:
        """A short stable hash of the config's JSON form (12 hex digits)."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
