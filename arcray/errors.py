"""The one exception hierarchy of arcray.

The library raises these; the CLI (``arcray.cli.main``) turns them into a one-line message on
stderr and the exit code below. Messages must never contain a secret (password, token, cookie).
"""

from __future__ import annotations


class ArcrayError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(ArcrayError):
    """Bad options or configuration given by the user."""

    exit_code = 2


class InputError(ArcrayError):
    """Input data that cannot be used (missing file, wrong format, empty selection)."""

    exit_code = 2


class AuthError(ArcrayError):
    """Credentials missing or refused by a remote service. Never carries the secret."""

    exit_code = 2


class RemoteError(ArcrayError):
    """A remote service failed after all retries (network, 5xx, unexpected response)."""

    exit_code = 3


class PartialFailure(ArcrayError):
    """A stage finished, but some items failed (they are listed in its failures table)."""

    exit_code = 1

    def __init__(self, message: str, *, n_ok: int = 0, n_failed: int = 0):
        super().__init__(message)
        self.n_ok = n_ok
        self.n_failed = n_failed


class ClusterError(ArcrayError):
    """The Ray cluster cannot be reached or a submitted job failed."""

    exit_code = 4
