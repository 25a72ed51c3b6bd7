"""Running the service: uvicorn with the configuration handed to its worker processes through
the environment (``DRG_SERVE_CONFIG``; the token through ``DRG_SERVE_TOKEN``, never on a
command line). uvicorn's own shutdown finishes in-flight requests on SIGINT/SIGTERM."""

from __future__ import annotations

import os

from grouper.serve.service import ENV_CONFIG, ENV_TOKEN, ServeConfig, Service

__all__ = ["serve"]


def serve(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          log_level: str = "warning", graceful_s: int = 30) -> None:
    """Load everything once here (a bad ruleset, weights table or pack fails before binding),
    then serve until stopped."""
    import uvicorn

    Service(config)  # fail fast, in this process, with a one-line error
    os.environ[ENV_CONFIG] = config.to_json()
    if config.token:
        os.environ[ENV_TOKEN] = config.token
    uvicorn.run("grouper.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, access_log=False, timeout_graceful_shutdown=graceful_s, server_header=False)
