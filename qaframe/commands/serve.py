"""`qaframe serve`: answer questions over HTTP (API and web page) with a saved model."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import click

from qaframe.cli import NonEmptyPath, check_device
from qaframe.errors import UserError

EXTRA_MISSING = "qaframe serve needs the serve extra: pip install 'qaframe[serve]'"


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0 picks a free one), or a one-line UserError saying why not."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, protocol)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # connections made while the model loads wait in the backlog
    except OSError as error:
        reason = error.strerror or str(error)
        raise UserError(f"--host {host} --port {port}: cannot listen there ({reason}); pick another --port or --host") from None
    return sock


def loopback_names(host: str) -> list[str] | None:
    """The names a server listening on loopback `host` answers to (guarding against DNS rebinding), or None for any."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost
        loopback = False
    return sorted({"localhost", "127.0.0.1", "::1", host}) if loopback else None


@click.command()
@click.option("--model", "model_dir", required=True, type=NonEmptyPath(file_okay=False), metavar="DIR", help="A saved model folder: `qaframe run`'s <output>/model/ or a Hugging Face QA model.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on; 0.0.0.0 exposes the server to the network.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on; 0 picks a free one.")
@click.option("--device", default="cpu", show_default=True, help="Where the model runs: cpu, cuda, cuda:1, mps.")
@click.option("--trust-remote-code", is_flag=True, help="Allow the model folder to run its own Python code (off by default).")
def serve(model_dir: Path, host: str, port: int, device: str, trust_remote_code: bool) -> None:
    """Serve a model: POST /predict, POST /predict/batch, GET /health and a web page at /."""
    try:
        import fastapi  # noqa: F401  (checked here so the message names the extra)
        import uvicorn
    except ImportError:
        raise UserError(EXTRA_MISSING) from None
    if not model_dir.is_dir():
        raise UserError(f"--model {model_dir}: no such folder; give the model/ folder written by `qaframe run` or a Hugging Face QA model folder")

    check_device(device)
    sock = listen(host, port)  # before the model loads, so a taken port fails at once

    from qaframe.predictor import Predictor
    from qaframe.serving import create_app

    predictor = Predictor.load(model_dir, device=device, trust_remote_code=trust_remote_code)
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(predictor, allowed_hosts=loopback_names(host)), host=host, port=port, log_level="info")
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    click.echo(f"Serving {predictor.name} on {url} (press Ctrl+C to stop)")
    uvicorn.Server(config).run(sockets=[sock])
