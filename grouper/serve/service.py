"""What the service holds for its whole life, built once at start-up: the configuration, one
``Grouper`` and code index per ruleset, the weights and pack. Requests name rulesets only by
their registered name; files are named here, by whoever starts the service, never by a request."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from grouper.engine import Grouper
from grouper.rulesets import DEFAULT_RULESET
from grouper.serve.codes import CodeIndex
from grouper.serve.pricing import Pricing, load_pricing

__all__ = ["ENV_CONFIG", "ENV_TOKEN", "ServeConfig", "Service"]

ENV_CONFIG = "DRG_SERVE_CONFIG"  # the configuration, as JSON, for uvicorn's worker processes
ENV_TOKEN = "DRG_SERVE_TOKEN"  # the bearer token, when not given as --token


@dataclass(frozen=True)
class ServeConfig:
    """Start-up choices (hashable). ``weights``: (ruleset name, weights table file) pairs."""

    rulesets: tuple[str, ...] = (DEFAULT_RULESET,)
    weights: tuple[tuple[str, str], ...] = ()
    pack: str | None = None
    token: str | None = None
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 1 << 20  # a JSON body
    max_arrow_bytes: int = 256 << 20  # an Arrow stream body
    max_cases: int = 1000  # cases in one JSON request
    max_arrow_cases: int = 2_000_000  # cases in one Arrow request
    max_codes: int = 64  # diagnoses, and procedures, of one case
    threads: int | None = None  # kernel threads for Arrow batches

    def to_json(self) -> str:
        d = asdict(self)
        d.pop("token")  # never written into the environment of child processes as config
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        d = json.loads(text)
        d["rulesets"] = tuple(d["rulesets"])
        d["cors_origins"] = tuple(d["cors_origins"])
        d["weights"] = tuple((n, p) for n, p in d["weights"])
        return cls(**d)

    @classmethod
    def from_env(cls) -> ServeConfig:
        cfg = cls.from_json(os.environ[ENV_CONFIG]) if os.environ.get(ENV_CONFIG) else cls()
        token = os.environ.get(ENV_TOKEN) or None
        return cfg if cfg.token or not token else cls(**{**asdict(cfg), "token": token})


class Service:
    """The loaded rulesets (by name, in start-up order; the first is the default), their code
    indices, and the pricing. A bad ruleset, weights table or pack fails here, at start-up."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.groupers: dict[str, Grouper] = {}
        for r in config.rulesets:
            g = Grouper(r, n_threads=config.threads)
            self.groupers.setdefault(g.ruleset.name, g)
        self.default = next(iter(self.groupers))
        self.codes = {name: CodeIndex(g.ruleset) for name, g in self.groupers.items()}
        weights = dict(config.weights)
        unknown = [n for n in weights if n not in self.groupers]
        if unknown:
            raise ValueError(f"--weights for ruleset(s) not served: {', '.join(unknown)} "
                             f"(served: {', '.join(self.groupers)})")
        self.pricing: Pricing = load_pricing(weights, config.pack)
        if self.pricing.pack is not None and not self.pricing.weights:
            raise ValueError("--pack needs --weights (the pack prices relative weights)")

    def grouper(self, name: str | None) -> Grouper | None:
        return self.groupers.get(name or self.default)
