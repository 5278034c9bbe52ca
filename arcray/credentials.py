"""Credentials for the mailing-list archive and the SAS, never from a command-line argument.

Lookup order for a service (``mailman`` or ``sas``):
1. environment ``ARCRAY_<SERVICE>_USER`` and ``ARCRAY_<SERVICE>_PASSWORD``;
2. ``ARCRAY_<SERVICE>_PASSWORD_FILE`` (a file holding the password; a Kubernetes Secret mounted
   as a file works), with the user from ``ARCRAY_<SERVICE>_USER``;
3. an explicit ``password_file`` given by the caller (CLI ``--password-file``);
4. a ``~/.netrc`` entry for the host (``NETRC`` overrides the path), as sdss_access does.

``Credentials.__repr__`` hides the password, so it never reaches a log or a traceback.
"""

from __future__ import annotations

import netrc
import os
from dataclasses import dataclass, field
from urllib.parse import urlparse

from arcray.errors import AuthError


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str = field(repr=False)
    source: str = ""  # where they came from (for messages): "environment", "netrc", "file"

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password=***, source={self.source!r})"

    def as_tuple(self) -> tuple[str, str]:
        return (self.user, self.password)


def _read_password_file(path: str) -> str:
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as f:
            pw = f.read().strip("\r\n")
    except OSError as exc:
        raise AuthError(f"cannot read password file {path}: {exc.strerror}") from None
    if not pw:
        raise AuthError(f"password file {path} is empty")
    return pw


def resolve(service: str, url: str | None = None, *, user: str | None = None,
            password_file: str | None = None) -> Credentials:
    """Find credentials for ``service`` (``mailman`` | ``sas``) used against ``url``."""
    prefix = f"ARCRAY_{service.upper()}_"
    env_user = user or os.environ.get(prefix + "USER")
    if env_user and os.environ.get(prefix + "PASSWORD"):
        return Credentials(env_user, os.environ[prefix + "PASSWORD"], "environment")
    pw_file = os.environ.get(prefix + "PASSWORD_FILE") or password_file
    if env_user and pw_file:
        return Credentials(env_user, _read_password_file(pw_file), "file")
    host = urlparse(url).hostname if url else None
    if host:
        path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
        if os.path.exists(path):
            try:
                entry = netrc.netrc(path).authenticators(host)
            except (netrc.NetrcParseError, OSError) as exc:
                raise AuthError(f"cannot parse {path}: {getattr(exc, 'msg', exc)}") from None
            if entry and entry[2]:
                return Credentials(env_user or entry[0], entry[2], "netrc")
    raise AuthError(
        f"no credentials for {service}: set {prefix}USER and {prefix}PASSWORD (or "
        f"{prefix}PASSWORD_FILE), or add a ~/.netrc entry for {host or 'the host'}"
    )
