"""The baseline of ``http.append``: a bare FastAPI app with one ``POST /v1/events`` and nothing behind it.

It reads the JSON body and answers 201 with a small JSON object: the cost of uvicorn + Starlette + FastAPI
for the same request, with no middleware, no authentication, no validation and no database.

``python -m benchmarks.bare_app --port PORT`` serves it the way ``ledger serve`` serves the ledger's API:
``uvicorn.run`` with one worker and uvicorn's default event loop and HTTP implementation (``auto``), no
access log, no server header.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request

app = FastAPI(title="bare baseline")


@app.post("/v1/events", status_code=201)
async def append_event(request: Request) -> dict[str, Any]:
    event = await request.json()
    return {"created": True, "event_id": event["id"]}


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bare_app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        log_config=None,
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
