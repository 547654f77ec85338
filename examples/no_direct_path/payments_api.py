"""A payments API that trusts only calls the Interlock proxy let through (issue 5, "no direct path").

Every route but /health runs only with a valid `Interlock-Execution` token: signed by the proxy's key (its
JWK Set, from `interlock proxy --config proxy.yaml --print-jwks`), for this API (`aud`), fresh, never seen
before, and bound to exactly this method, target and body. A caller that skips the proxy — or replays,
or edits, a call the proxy forwarded — is refused here too.

    python payments_api.py --port 9000 --jwks proxy-jwks.json --audience payments-api [--record calls.jsonl]

`--record` appends one JSON line per call it receives (what it did and why), for the tests.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from interlock.core.errors import ExecutionError
from interlock.enforce.execution import EXECUTION_HEADER, ExecutionVerifier


def create_app(verifier: ExecutionVerifier, record: Path | None = None) -> Starlette:
    def log(entry: dict[str, Any]) -> None:
        if record is not None:
            with record.open("a") as handle:
                handle.write(json.dumps(entry) + "\n")

    async def gated(request: Request) -> JSONResponse:
        body = await request.body()
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            execution = verifier.verify(request.headers.get(EXECUTION_HEADER), method=request.method,
                                        target=target, body=body)
        except ExecutionError as refused:
            log({"refused": refused.code, "method": request.method, "target": target})
            return JSONResponse(refused.to_json(), status_code=403)
        log({"executed": request.method, "target": target, "body": body.decode(), "grant": execution.grant,
             "request_id": execution.request_id, "execution": request.headers[EXECUTION_HEADER]})
        if request.method == "POST":
            return JSONResponse({"transfer": "done", "grant": execution.grant}, status_code=201)
        if request.url.path.endswith("/statement"):  # a long answer: the proxy streams it through
            lines = [{"day": day, "amount": 100 + day % 7, "memo": "x" * 200} for day in range(1000)]
            return JSONResponse({"account": request.path_params["account"], "lines": lines})
        return JSONResponse({"account": request.path_params["account"], "balance": 1250})

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(routes=[
        Route("/payments/{account}", gated, methods=["POST"]),
        Route("/accounts/{account}/balance", gated, methods=["GET"]),
        Route("/accounts/{account}/statement", gated, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--jwks", type=Path, required=True, help="the proxy's JWK Set")
    parser.add_argument("--audience", default="payments-api")
    parser.add_argument("--record", type=Path)
    args = parser.parse_args()
    verifier = ExecutionVerifier(json.loads(args.jwks.read_text()), audience=args.audience)
    uvicorn.run(create_app(verifier, args.record), host="127.0.0.1", port=args.port, access_log=False)


if __name__ == "__main__":
    main()
