"""Who may change state: strategy controls and alert workflow changes.

A server bound to loopback (127.0.0.0/8, ::1, localhost) without authentication is reachable
only from this machine, so its single user may act without logging in (actions are recorded as
``local``). A server listening beyond loopback, or any server started with authentication
(``genesis serve --auth``: visitors may still look, as guests), refuses every state-changing
action unless the request comes from an authenticated user (Panel's basic auth or OAuth:
``pn.state.user``); the user's name goes to the audit trail of the action.
"""

from __future__ import annotations

import ipaddress

LOCAL_USER = "local"
ANONYMOUS = ("", None, "guest", "anonymous")


class NotAuthorized(PermissionError):
    """A state-changing action refused (the message says why and what to do)."""


def is_loopback_address(address: str) -> bool:
    """Whether a bind address only accepts connections from this machine.

    '0.0.0.0', '::' and '' (every interface) and any routable address are not loopback.
    """
    host = (address or "").strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost: it may resolve anywhere
        return False


def authorize(address: str, user: str | None, action: str = "this action", *, auth: bool = False) -> str:
    """The user to record for ``action`` on a server bound to ``address``, or NotAuthorized.

    ``user``: the request's authenticated user (None, '' or 'guest' when there is none);
    ``auth``: whether the server was started with authentication. An anonymous request acts as
    ``local`` on a loopback server without authentication, and is refused otherwise.
    """
    name = user.strip() if isinstance(user, str) else user
    if name not in ANONYMOUS:
        return str(name)
    if is_loopback_address(address) and not auth:
        return LOCAL_USER
    where = "with authentication on" if auth else f"on {address!r}, beyond loopback,"
    raise NotAuthorized(
        f"{action} refused: the server listens {where} and the request has no authenticated user; "
        "log in (genesis serve --auth basic, or an OAuth provider) and try again")


__all__ = ["authorize", "is_loopback_address", "NotAuthorized", "LOCAL_USER"]
