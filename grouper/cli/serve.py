"""``drg serve``: the grouper as an HTTP service and a web page for coders (grouper.serve)."""

from __future__ import annotations

import click

from grouper.cli._common import command_errors


def _weights(values: tuple[str, ...], first: str) -> dict[str, str]:
    """--weights [RULESET=]FILE, repeatable: a bare FILE is for the first ruleset."""
    out: dict[str, str] = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep:
            name, path = first, v
        if name in out:
            raise click.BadParameter(f"weights for {name!r} given twice", param_hint="--weights")
        out[name] = path
    return out


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; loopback unless told otherwise (0.0.0.0 for every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes (each loads the rulesets once).")
@click.option("-r", "--ruleset", "rulesets", multiple=True, metavar="NAME|DIR",
              help="Ruleset to serve (repeatable, for side-by-side; the first is the default). "
                   "Default: chs-drg-2.0 and chs-drg-3.0. Requests choose among these by name only.")
@click.option("--weights", "weights", multiple=True, metavar="[RULESET=]FILE",
              help="Weights table of `drg weights` for a ruleset (bare FILE: the first ruleset); adds RW.")
@click.option("--pack", metavar="NAME|FILE", help="Payment pack (with --weights): adds payment standard, "
                                                  "case type and expected payment.")
@click.option("--token", envvar="DRG_SERVE_TOKEN", metavar="TOKEN",
              help="Require `Authorization: Bearer TOKEN` on /v1 (or set DRG_SERVE_TOKEN).")
@click.option("--cors-origin", "cors", multiple=True, metavar="ORIGIN",
              help="Allow browser calls from this origin (repeatable); CORS is off without it.")
@click.option("--max-cases", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Cases in one JSON request (more: 413).")
@click.option("--max-body", type=click.IntRange(min=1), default=1 << 20, show_default=True,
              help="Bytes of a JSON request body (more: 413); Arrow bodies may be 256 times larger.")
def serve(host, port, workers, rulesets, weights, pack, token, cors, max_cases, max_body):
    """Serve grouping over HTTP: POST /v1/group (JSON or Arrow stream), GET /v1/rulesets,
    /v1/rulesets/NAME/groups, /v1/codes?q=..., /healthz, the OpenAPI document at /openapi.json
    and the coders' web page at /ui/. Stops gracefully on Ctrl-C / SIGTERM."""
    try:
        from grouper.serve import ServeConfig
        from grouper.serve.run import serve as run
    except ImportError as exc:  # the optional extra is missing
        raise click.ClickException(f"drg serve needs the serve extra: pip install 'drg-grouper[serve]' ({exc})")
    from grouper.rulesets import DEFAULT_RULESET, NEXT_RULESET

    rulesets = rulesets or (DEFAULT_RULESET, NEXT_RULESET)
    config = ServeConfig(rulesets=tuple(rulesets), weights=tuple(_weights(weights, rulesets[0]).items()), pack=pack, token=token,
                         cors_origins=tuple(cors), max_cases=max_cases, max_body_bytes=max_body,
                         max_arrow_bytes=max_body * 256)
    with command_errors():
        run(config, host=host, port=port, workers=workers)
