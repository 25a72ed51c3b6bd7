"""The ASGI application of ``drg serve`` (FastAPI): the /v1 API, /healthz, the OpenAPI document
and the coders' web page under /ui. Safe by default: optional bearer token on /v1, request
bodies read with a size cap, every client error a 4xx JSON answer ``{"error": ...}``, CORS only
for the origins configured. Swagger UI is off (it loads scripts from a CDN; intranets are
offline); the OpenAPI document is at /openapi.json."""

from __future__ import annotations

import gc
import hmac
from pathlib import Path
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from grouper._util.version import __version__
from grouper.rulesets import describe
from grouper.serve.cases import ENCODER, RequestError, group_arrow, group_json, one_line, shown
from grouper.serve.schemas import CASE_EXAMPLE, CaseIn, CodeHit, ErrorOut, GroupOut, GroupsOut, RulesetOut
from grouper.serve.service import ServeConfig, Service

__all__ = ["ARROW", "app_from_env", "create_app"]

ARROW = "application/vnd.apache.arrow.stream"
STATIC = Path(__file__).parent / "static"
_ERRORS = {c: {"model": ErrorOut} for c in (400, 401, 404, 413, 415, 422)}


def _error(status: int, message: str, detail=None, headers=None) -> JSONResponse:
    body = {"error": one_line(message)}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with a 413 as soon as it is known to be over ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"request body of {int(declared)} bytes; at most {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _request_body_doc() -> dict:
    schema = CaseIn.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"required": True, "content": {
        "application/json": {
            "schema": {"oneOf": [schema, {"type": "array", "items": schema}]},
            "examples": {"one": {"summary": "One case", "value": CASE_EXAMPLE},
                         "list": {"summary": "A list of cases", "value": [CASE_EXAMPLE, {**CASE_EXAMPLE, "case_id": "A002",
                                                                                         "dx": "J18.900|I10.x00"}]}}},
        ARROW: {"schema": {"type": "string", "format": "binary"},
                "description": "Arrow IPC stream with the case columns (case_id, sex, age, dx, px, ...)"}}}


class _App(FastAPI):
    """FastAPI with a short way through for the request a hospital system sends most: one JSON
    case (or a list) to POST /v1/group. ``_fast`` answers it without the middleware stack, the
    dependency solver and the parameter models when everything about it is plain and it groups
    (a 200); anything else, errors included, goes on to the FastAPI route, which gives its usual
    answer (the body already read is handed on). The route stays the API's definition (OpenAPI)."""

    fast_answers = 0  # requests answered by _fast (the tests check it is used)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/v1/group" and scope["method"] == "POST" \
                and not scope.get("root_path"):
            await self._fast(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def _fast(self, scope, receive, send):
        svc: Service = self.state.service
        config = svc.config
        head: dict[bytes, bytes] = {}
        for k, v in scope["headers"]:
            if k in _FAST_HEADERS:
                if k in head or k == b"origin":  # repeated, or a browser's (CORS): the usual way
                    return await super().__call__(scope, receive, send)
                head[k] = v
        kind = head.get(b"content-type", b"application/json").decode("latin-1").split(";")[0].strip().lower()
        ruleset, explain = _fast_query(scope["query_string"])
        length = head.get(b"content-length", b"")
        if kind not in ("application/json", "") or explain is None or svc.grouper(ruleset) is None \
                or (length.isdigit() and int(length) > config.max_body_bytes) \
                or (config.token is not None and not _bearer_ok(head.get(b"authorization", b""), config.token)):
            return await super().__call__(scope, receive, send)
        got, size, more = [], 0, True
        while more:
            message = await receive()
            got.append(message)
            if message["type"] != "http.request":
                return await super().__call__(scope, _replay(got, receive), send)
            size += len(message.get("body", b""))
            if size > config.max_body_bytes:
                return await super().__call__(scope, _replay(got, receive), send)
            more = message.get("more_body", False)
        body = got[0].get("body", b"") if len(got) == 1 else b"".join(m.get("body", b"") for m in got)
        try:
            data = ENCODER.encode(group_json(svc, svc.grouper(ruleset).ruleset.name, body, explain)).encode("utf-8")
        except Exception:  # an error answer (or a fault) is the route's to give, exactly as always
            return await super().__call__(scope, _replay(got, receive), send)
        self.fast_answers += 1
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(data)).encode()), (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": data})


_FAST_HEADERS = frozenset((b"content-type", b"content-length", b"authorization", b"origin"))
_TRUE_FALSE = {"1": True, "true": True, "0": False, "false": False}


def _fast_query(query: bytes) -> tuple[str | None, bool | None]:
    """(ruleset, explain) of a plain query string; explain None when _fast should not answer
    (an unknown or repeated parameter, a value the route would have to judge)."""
    if not query:
        return None, False
    ruleset, explain, seen = None, False, set()
    for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if k in seen or not v:
            return None, None
        seen.add(k)
        if k == "ruleset" and len(v) <= 64:
            ruleset = v
        elif k == "explain" and v in _TRUE_FALSE:
            explain = _TRUE_FALSE[v]
        else:
            return None, None
    return ruleset, explain


def _bearer_ok(header: bytes, token: str) -> bool:
    scheme, _, got = header.decode("latin-1").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(got.strip().encode(), token.encode())


def _replay(messages: list, receive):
    """``receive`` that first gives back the messages already read."""
    pending = iter(messages)

    async def again():
        for m in pending:
            return m
        return await receive()
    return again


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The application for ``config`` (default: from the environment, see ``ServeConfig.from_env``)."""
    config = config or ServeConfig.from_env()
    svc = Service(config)
    app = _App(title="drg-grouper", version=__version__, docs_url=None, redoc_url=None,
                  description="CHS-DRG grouping as a service: one case or a list as JSON, thousands as an "
                              "Arrow stream. Errors answer `{\"error\": message}` with a 4xx status.")
    app.state.service = svc
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError):
        return _error(exc.status, exc.message, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errs = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        first = errs[0] if errs else {"loc": [], "msg": "invalid request"}
        return _error(422, f"{'.'.join(shown(p) for p in first['loc'])}: {first['msg']}", errs)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    async def authorized(request: Request) -> None:
        if config.token is None:
            return
        got = request.headers.get("authorization", "")
        scheme, _, token = got.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), config.token.encode()):
            raise RequestError(401, "missing or wrong bearer token (Authorization: Bearer <token>)")

    def ruleset_of(name: str | None):
        g = svc.grouper(name)
        if g is None:
            raise RequestError(404, f"no ruleset {shown(name, quote=True)} in this service (served: {', '.join(svc.groupers)})")
        return g

    guarded = [Depends(authorized)]

    @app.post("/v1/group", tags=["group"], dependencies=guarded, response_model=GroupOut | list[GroupOut],
              responses={**_ERRORS, 200: {"content": {ARROW: {"schema": {"type": "string", "format": "binary"}}},
                                          "description": "One result for one case, a list for a list; an Arrow "
                                                         "stream of the grouper's output for an Arrow body"}},
              openapi_extra={"requestBody": _request_body_doc()})
    async def group(request: Request,
                    ruleset: str | None = Query(None, max_length=64, description="Registered ruleset name "
                                                "(default: the first one the service was started with)"),
                    explain: bool = Query(False, description="Add the decision path (`explain=1`)")):
        """Group one case (JSON object), a list of cases (JSON array) or a table (Arrow IPC stream)."""
        g = ruleset_of(ruleset)
        name = g.ruleset.name
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if kind == ARROW:
            body = await _read_body(request, config.max_arrow_bytes)
            data = await run_in_threadpool(group_arrow, svc, g, body)
            return Response(data, media_type=ARROW)
        if kind not in ("application/json", ""):
            raise RequestError(415, f"content type {shown(kind, quote=True)}: send application/json or {ARROW}")
        body = await _read_body(request, config.max_body_bytes)
        return JSONResponse(group_json(svc, name, body, explain))

    @app.get("/v1/rulesets", tags=["rulesets"], dependencies=guarded, response_model=list[RulesetOut],
             responses=_ERRORS)
    def rulesets():
        """The rulesets this service groups with (the first is the default)."""
        out = []
        for i, (name, g) in enumerate(svc.groupers.items()):
            d = describe(g.ruleset)
            out.append({k: d[k] for k in ("name", "version", "title", "status", "fingerprint")}
                       | {"default": i == 0, "weights": name in svc.pricing.weights})
        return out

    @app.get("/v1/rulesets/{name}/groups", tags=["rulesets"], dependencies=guarded, response_model=GroupsOut,
             responses=_ERRORS)
    def groups(name: str):
        """MDC, ADRG and DRG of a ruleset with their names (and RW when weights are configured)."""
        rs = ruleset_of(name).ruleset
        w = svc.pricing.weights.get(rs.name)
        fail = set(rs.engine.get("fail_adrgs", ()))  # placeholder rules, not groups (as Ruleset.counts)
        adrgs = {a.report_code: {"code": a.report_code, "name": a.name, "mdc": a.mdc}
                 for a in rs.adrgs.values() if a.code not in fail}
        drgs = {}
        for d in rs.drgs.values():
            if d.adrg in fail:
                continue
            adrg = rs.adrgs[d.adrg].report_code if d.adrg in rs.adrgs else d.adrg
            drgs.setdefault(d.code, {"code": d.code, "name": d.name, "adrg": adrg}
                            | ({"rw": w.rw(d.code)} if w else {}))
        return {"ruleset": rs.name, "mdcs": [{"code": m.code, "name": m.name} for m in rs.mdcs],
                "adrgs": list(adrgs.values()), "drgs": list(drgs.values())}

    @app.get("/v1/codes", tags=["codes"], dependencies=guarded, response_model=list[CodeHit], responses=_ERRORS)
    def codes(q: str = Query(..., min_length=1, max_length=64, description="Code prefix or part of a name"),
              kind: str | None = Query(None, pattern="^(dx|px)$", description="dx or px (default both)"),
              ruleset: str | None = Query(None, max_length=64),
              limit: int = Query(20, ge=1, le=100)):
        """Diagnosis and procedure codes for autocomplete: codes starting with q, then names containing it."""
        return svc.codes[ruleset_of(ruleset).ruleset.name].search(q, kind, limit)

    @app.get("/healthz", tags=["service"])
    def healthz():
        """Liveness: the service is up and its rulesets are loaded (no token needed)."""
        return {"status": "ok", "version": __version__, "rulesets": list(svc.groupers)}

    @app.get("/", include_in_schema=False)
    def index():
        return RedirectResponse("/ui/")

    app.mount("/ui", StaticFiles(directory=STATIC, html=True), name="ui")
    return app


def app_from_env() -> FastAPI:
    """uvicorn's factory for worker processes: the configuration comes from the environment.
    What start-up loaded (rulesets, code indices: some 70,000 objects) lives as long as the
    process, so it is frozen out of the cyclic garbage collector: a full collection would
    otherwise scan it all and hold up every request for about 0.1 s."""
    app = create_app(ServeConfig.from_env())
    gc.collect()
    gc.freeze()
    return app
