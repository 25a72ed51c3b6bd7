"""What the serve tests share: an in-process client per configuration (the rulesets load once
per session), a small weights table, and the example case that groups differently in 2.0 and 3.0."""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

with warnings.catch_warnings():  # newer Starlette suggests httpx2 for its test client; httpx is what we use
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from grouper.serve import ServeConfig, create_app

#: sex 1, age 53: 2.0 groups it HJ11 (MCC from G62.806), 3.0 HJ13 (CC)
CASE = {"case_id": "A001", "sex": 1, "age": 53, "dx": ["K76.600x006", "K07.200x012", "Q39.601", "G62.806"],
        "px": ["52.2100x001"], "los": 9}
WEIGHTS_CSV = "drg,rw,mean_cost,mean_los,n\nHJ11,4.2,45000,14,120\nHJ13,2.5,26000,10,300\n"


def weights_file(folder: Path) -> Path:
    p = folder / "weights.csv"
    if not p.exists():
        p.write_text(WEIGHTS_CSV, encoding="utf-8")
    return p


@lru_cache(maxsize=8)
def client(config: ServeConfig) -> TestClient:
    """A client of the app for ``config`` (frozen, so cached): server errors raise in the test."""
    return TestClient(create_app(config), raise_server_exceptions=True)


def both() -> TestClient:
    """The default service: chs-drg-2.0 (default) and chs-drg-3.0, no weights, no token."""
    return client(ServeConfig(rulesets=("chs-drg-2.0", "chs-drg-3.0")))
