"""The witness's HTTP face: C2SP tlog-witness `POST /add-checkpoint`, and nothing else.

Answers as the spec says: 200 with the cosignature line; 409 with the size the witness holds
(`text/x.tlog.size`); 400, 403, 404 and 422 with the refusal's code and message as text.
"""

from __future__ import annotations

import anyio.to_thread
from fastapi import FastAPI, Request, Response

from interlock.audit.witness import STATUS, Witness
from interlock.core.errors import AuditError, RequestError, StoreError
from interlock.server.bodies import read_bytes

# A checkpoint with a few signatures and 63 proof lines fits in 8 KiB; anything much larger is not a request.
MAX_BODY_BYTES = 64 * 1024


def create_witness_app(witness: Witness) -> FastAPI:
    app = FastAPI(title="Interlock witness", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        try:
            body = await read_bytes(request, MAX_BODY_BYTES)
            # Cosigning waits for a durable commit: off the event loop.
            line = await anyio.to_thread.run_sync(witness.add_checkpoint, body)
        except AuditError as refusal:
            if refusal.code == "witness.conflict":
                return Response(f"{refusal.detail['size']}\n", 409, headers={"Content-Type": "text/x.tlog.size"})
            return _text(STATUS.get(refusal.code, 400), f"{refusal.code}: {refusal.message}\n")
        except RequestError as refusal:
            return _text(413 if refusal.code == "input.too_large" else 400, f"{refusal.code}: {refusal.message}\n")
        except StoreError as failure:
            return _text(503, f"{failure.code}: {failure.message}\n")
        return _text(200, line)

    return app


def _text(status: int, text: str) -> Response:
    return Response(text, status, media_type="text/plain; charset=utf-8")
