"""``drg serve``: the grouper as an HTTP service for hospital and bureau systems, and a web page
for coders, on FastAPI/uvicorn (the optional ``serve`` extra). Nothing imports this package
except the command line."""

from grouper.serve.service import ENV_CONFIG, ENV_TOKEN, ServeConfig, Service

__all__ = ["ENV_CONFIG", "ENV_TOKEN", "ServeConfig", "Service", "create_app"]


def create_app(config: ServeConfig | None = None):
    """The ASGI application (imports FastAPI only when asked for)."""
    from grouper.serve.app import create_app as make

    return make(config)
