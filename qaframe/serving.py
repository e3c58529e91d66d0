"""The HTTP API and web page of `qaframe serve`: a FastAPI app around a loaded Predictor.

Endpoints: `POST /predict`, `POST /predict/batch`, `GET /health`, `GET /` (the page); HEAD too
for the last two. Served on a loopback address, the app answers only requests addressed to
it by a loopback name (`HostCheck`).
Every client mistake gets a JSON body `{"error": "..."}`: 413 for a body over the limit,
400 for a body that is not JSON, 422 for wrong types, text that is blank (only spaces and
invisible characters) or not valid Unicode,
`top_k` outside 1..20, a context or batch over its limit, or input the model cannot take.

Inference runs in worker threads so the event loop keeps answering (e.g. `/health`)
while the model works. The Predictor is thread-safe:
its own lock lets one tokenize-and-forward pass run at a time (a fast tokenizer shared
between threads fails with "Already borrowed", and torch already spreads one pass over
all CPU cores, so parallel passes would only compete for them), while span decoding of
one request overlaps the next request's forward pass. Requests queue on that lock.
"""

from __future__ import annotations

import json
import time
from importlib.resources import files
from typing import Any, Sequence

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from qaframe.errors import ContextWithoutTokens, UserError
from qaframe.predictor import Predictor
from qaframe.text import unusable_text

MAX_TOP_K = 20
PAGE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class Question(BaseModel):
    """One question about one context; `top_k` answers come back, best first."""

    model_config = ConfigDict(strict=True, extra="forbid")

    question: str
    context: str
    top_k: int = Field(1, ge=1, le=MAX_TOP_K)


class Batch(BaseModel):
    """Several questions answered in one call."""

    model_config = ConfigDict(strict=True, extra="forbid")

    items: list[Question]


class ClientError(Exception):
    """A request the server refuses; becomes `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class BodyLimit:
    """ASGI middleware: answer 413 when the declared or the actual request body exceeds `max_bytes`."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and int(declared) > self.max_bytes:  # uvicorn (h11) refuses a Content-Length that is no number
            await self.refuse(send, 413, self.too_large(int(declared)))
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self.refuse(send, 413, self.too_large(size, at_least=True))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def too_large(self, size: int, at_least: bool = False) -> str:
        """The 413 message."""
        amount = f"at least {size:,}" if at_least else f"{size:,}"
        return f"request body is {amount} bytes, the limit is {self.max_bytes:,}; send a shorter context or fewer items"

    @staticmethod
    async def refuse(send, status: int, message: str) -> None:
        """Send a JSON error response without calling the app."""
        body = json.dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def host_name(header: str) -> str:
    """The host of a Host header without its port: `[::1]:8000` -> `::1`, `localhost:8000` -> `localhost`."""
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HostCheck:
    """ASGI middleware: answer 400 to a request whose Host header names none of `allowed`.

    A server on the loopback address answers only to its own names, so a web page elsewhere
    cannot reach it by pointing a name of its own at 127.0.0.1 (DNS rebinding).
    """

    def __init__(self, app, allowed: Sequence[str]):
        self.app = app
        self.allowed = {name.lower() for name in allowed}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            header = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if host_name(header).lower() not in self.allowed:
                await BodyLimit.refuse(send, 400, f"Host {header!r} is not this server's ({', '.join(sorted(self.allowed))}); "
                                                  "serve with --host 0.0.0.0 to answer other names")
                return
        await self.app(scope, receive, send)


def describe_validation(error: RequestValidationError) -> tuple[int, str]:
    """Turn FastAPI's validation errors into a status and one readable line."""
    problems = error.errors()
    if any(problem["type"] == "json_invalid" for problem in problems):
        problem = problems[0]
        reason = problem.get("ctx", {}).get("error", "malformed")
        return 400, f"request body is not valid JSON: {reason} (at character {problem['loc'][-1]}); send a JSON object"
    if any(problem["loc"] == ("body",) for problem in problems):
        return 422, 'request body must be a JSON object such as {"question": "...", "context": "..."} sent as application/json'
    lines = []
    for problem in problems[:5]:
        where = ""
        for part in problem["loc"][1:]:
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
        lines.append(f"{where or 'body'}: {problem['msg']}")
    if len(problems) > 5:
        lines.append(f"and {len(problems) - 5} more problems")
    return 422, "; ".join(lines)


def check_text(value: str, where: str, limit: int) -> None:
    """Refuse the text `qaframe predict` refuses (`unusable_text`) and over-long text."""
    reason = unusable_text(value)
    if reason:
        raise ClientError(422, f"{where}: is {reason}")
    if len(value) > limit:
        raise ClientError(422, f"{where}: is {len(value):,} characters, the limit is {limit:,}; send a shorter text")


def create_app(
    predictor: Predictor,
    *,
    max_body_bytes: int = 1_000_000,
    max_context_chars: int = 20_000,
    max_question_chars: int = 1_000,
    max_batch: int = 32,
    allowed_hosts: Sequence[str] | None = None,
) -> FastAPI:
    """Build the FastAPI app that answers questions with `predictor` within the given limits.

    `allowed_hosts`: the host names requests may address (see HostCheck); None answers any.
    """
    app = FastAPI(
        title="qaframe",
        summary="Extractive question answering (Korean first)",
        docs_url=None,  # the interactive docs load scripts from a CDN; /openapi.json stays
        redoc_url=None,
    )
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed=allowed_hosts)
    page = files("qaframe").joinpath("static/index.html").read_text(encoding="utf-8")

    async def answer(questions: list[Question], prefix: str) -> list[list[dict]]:
        for index, item in enumerate(questions):
            where = f"{prefix}[{index}]." if prefix else ""
            check_text(item.question, f"{where}question", max_question_chars)
            check_text(item.context, f"{where}context", max_context_chars)
        pairs = [(item.question, item.context) for item in questions]
        try:
            found = await anyio.to_thread.run_sync(predictor.answer, pairs, max(item.top_k for item in questions))
        except ContextWithoutTokens as error:
            where = f"{prefix}[{error.index}]." if prefix else ""
            raise ClientError(422, f"{where}context: {error.reason}") from None
        except UserError as error:
            raise ClientError(422, str(error)) from None
        return [answers[: item.top_k] for item, answers in zip(questions, found)]

    def elapsed_ms(started: float) -> float:
        return round((time.perf_counter() - started) * 1000, 2)

    @app.exception_handler(ClientError)
    async def client_error(request: Request, error: ClientError) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        status, message = describe_validation(error)
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"error": f"internal error: {type(error).__name__}"}, status_code=500)

    @app.post("/predict")
    async def predict(item: Question) -> dict[str, Any]:
        """Answer one question about one context."""
        started = time.perf_counter()
        (answers,) = await answer([item], prefix="")
        return {"answers": answers, "model": predictor.name, "elapsed_ms": elapsed_ms(started)}

    @app.post("/predict/batch")
    async def predict_batch(batch: Batch) -> dict[str, Any]:
        """Answer several questions; `results[i]` holds the answers to `items[i]`."""
        started = time.perf_counter()
        if not batch.items:
            raise ClientError(422, "items: must hold at least one question")
        if len(batch.items) > max_batch:
            raise ClientError(422, f"items: holds {len(batch.items)} questions, the limit is {max_batch}; split the batch")
        results = await answer(batch.items, prefix="items")
        return {"results": [{"answers": answers} for answers in results], "model": predictor.name, "elapsed_ms": elapsed_ms(started)}

    @app.api_route("/health", methods=["GET", "HEAD"])
    async def health() -> dict[str, str]:
        """Say the server is up and which model it serves."""
        return {"status": "ok", "model": predictor.name}

    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        """The question-answering web page."""
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_POLICY})

    return app
