"""``genesis serve``: one live engine and the Panel apps of ``dashboards/`` in one server process.

The apps are scripts (``dashboards/surveillance.py``, ``strategy.py``, ``reports.py``) that
Panel runs once per browser session; each asks :func:`current_engine` for the process's
engine and subscribes a bounded buffer to it. Nothing in ``genesis`` imports ``dashboards``:
the server is given their paths.

Security: bound to 127.0.0.1 by default. ``auth='basic'`` uses Panel's basic auth with the
password from the environment variable ``GENESIS_SERVE_PASSWORD`` (any user name; or
``GENESIS_SERVE_USERS``: a JSON file of ``{"user": "password"}``), never from the
repository; ``auth='oauth'`` passes a provider (``github``, ``google``, ``azure``, ``generic``
...) and ``GENESIS_OAUTH_KEY`` / ``GENESIS_OAUTH_SECRET`` / ``GENESIS_OAUTH_REDIRECT_URI`` to
Panel. With either, visitors who have not logged in may look (as guests) but every
state-changing action is refused (:func:`genesis.live.auth.authorize`).
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any

from genesis.live.engine import EngineConfig, LiveEngine

log = logging.getLogger(__name__)

APPS = ("surveillance", "strategy", "reports", "cross_asset")
AUTH_MODES = ("basic", "oauth")
_ENGINE: LiveEngine | None = None


def current_engine() -> LiveEngine:
    """The engine of this server process (the apps call this)."""
    if _ENGINE is None:
        raise RuntimeError("no live engine in this process: start the dashboards with `genesis serve`")
    return _ENGINE


def set_engine(engine: LiveEngine | None) -> None:
    global _ENGINE
    _ENGINE = engine


def dashboards_dir() -> Path:
    """Where the app scripts are: ``GENESIS_DASHBOARDS``, else ``dashboards/`` of this checkout."""
    path = Path(os.environ.get("GENESIS_DASHBOARDS") or Path(__file__).resolve().parents[2] / "dashboards")
    missing = [a for a in APPS if not (path / f"{a}.py").exists()]
    if missing:
        raise FileNotFoundError(f"dashboard app(s) {missing} not found in {path}; set GENESIS_DASHBOARDS to the "
                                "dashboards/ folder of a Genesis checkout")
    return path


def auth_options(auth: str | None, *, oauth_provider: str | None = None,
                 oauth_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Keyword arguments for ``panel.serve`` for an auth mode (secrets from the environment)."""
    if auth is None:
        return {}
    if auth not in AUTH_MODES:
        raise ValueError(f"--auth {auth!r}: choose from {AUTH_MODES}")
    options: dict[str, Any] = {
        "cookie_secret": os.environ.get("GENESIS_SERVE_COOKIE_SECRET") or secrets.token_hex(32),
        # Guests may look; what changes state needs a logged-in user (genesis.live.auth).
        "oauth_optional": True,
    }
    if auth == "basic":
        users = os.environ.get("GENESIS_SERVE_USERS")
        password = os.environ.get("GENESIS_SERVE_PASSWORD")
        if users:
            if not Path(users).is_file():
                raise FileNotFoundError(f"GENESIS_SERVE_USERS={users}: no such file (a JSON object user -> password)")
            options["basic_auth"] = users
        elif password:
            options["basic_auth"] = password
        else:
            raise ValueError("--auth basic needs a password: set GENESIS_SERVE_PASSWORD (any user name logs in "
                             "with it) or GENESIS_SERVE_USERS (a JSON file of user -> password)")
    else:
        if not oauth_provider:
            raise ValueError("--auth oauth needs --oauth-provider (github, google, azure, generic, ...)")
        key, secret = os.environ.get("GENESIS_OAUTH_KEY"), os.environ.get("GENESIS_OAUTH_SECRET")
        if not (key and secret):
            raise ValueError("--auth oauth needs GENESIS_OAUTH_KEY and GENESIS_OAUTH_SECRET in the environment")
        options.update(oauth_provider=oauth_provider, oauth_key=key, oauth_secret=secret)
        redirect = os.environ.get("GENESIS_OAUTH_REDIRECT_URI")
        if redirect:
            options["oauth_redirect_uri"] = redirect
        if oauth_extra:
            options["oauth_extra_params"] = dict(oauth_extra)
    return options


def serve(config: EngineConfig, *, port: int = 5006, auth: str | None = None, oauth_provider: str | None = None,
          oauth_extra: dict[str, Any] | None = None, websocket_origin: list[str] | None = None,
          show: bool = False, threaded: bool = False):
    """Start the engine and serve the apps at ``http://<config.address>:<port>/`` (blocking unless
    ``threaded``: then the server runs on its own thread and is returned; ``.stop()`` ends it)."""
    import panel as pn

    address = config.address
    options = auth_options(auth, oauth_provider=oauth_provider, oauth_extra=oauth_extra)
    config = EngineConfig(**{**config.__dict__, "auth": auth is not None})
    directory = dashboards_dir()
    engine = LiveEngine(config)
    log.info("compiling the engine's kernels (or loading them from Numba's cache)")
    log.info("warmed up in %.1f s", engine.warm_up())
    set_engine(engine)
    engine.start()
    origins = websocket_origin or [f"{address}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"]
    apps = {name: str(directory / f"{name}.py") for name in APPS}
    log.info("serving %s on http://%s:%d (%s mode)", ", ".join(APPS), address, port, config.mode)
    try:
        server = pn.serve(apps, port=port, address=address, websocket_origin=origins, show=show,
                          title={name: f"Genesis {name}" for name in APPS}, threaded=threaded, liveness=True,
                          start=not threaded, **options)
    except BaseException:
        engine.stop()
        set_engine(None)
        raise
    if threaded:
        return server
    engine.stop()
    set_engine(None)
    return server


__all__ = ["serve", "current_engine", "set_engine", "dashboards_dir", "auth_options", "APPS", "AUTH_MODES"]
