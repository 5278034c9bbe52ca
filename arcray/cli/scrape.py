"""`arcray` commands of this stage (placeholder until the stage lands)."""

from arcray.cli.apps import app  # noqa: F401
