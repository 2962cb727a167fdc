"""``ledger serve --workers N``: N uvicorn processes, each with its own listening socket on the same port.

Every worker binds the address with ``SO_REUSEPORT``, so the kernel spreads new connections over the workers
by their addresses.  (With one socket shared by every worker, the worker that wakes first accepts every
connection waiting, and a burst of keep-alive connections can all land on one process.)  This process, the
supervisor, answers no request: it runs the background workers (the sealer, the Kafka relay and ingest
consumer) once, starts another worker when one dies, and on SIGTERM or SIGINT stops the workers gracefully
(each finishes the requests it holds) and then the background workers.

The workers count their metrics in files of one private temporary folder (prometheus_client's multiprocess
mode), which ``GET /metrics`` in any of them adds up; the folder is removed at the end.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from multiprocessing.process import BaseProcess
from typing import Any

from api.app import SERVE_WORKER_ENV, start_background_workers
from api.metrics import MULTIPROCESS_ENV
from ledger.errors import ConfigurationError
from ledger.settings import Settings

log = logging.getLogger("ledger.api.serving")

BACKLOG = 2048  # uvicorn's default
STARTUP_GRACE_SECONDS = 10.0
"""A worker that exits sooner after its start is a failure to start: the supervisor stops instead of looping."""
STOP_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.5


def serve_processes(settings: Settings, workers: int, options: dict[str, Any]) -> int:
    """Run ``workers`` server processes until SIGTERM or SIGINT; the exit code (1 when a worker could not start).

    ``options`` are keyword arguments of ``uvicorn.Config`` (host, port, log level, ...).
    """
    host, port = options["host"], options["port"]
    # a port in use is refused here, once, with a clear message: a plain bind fails while anything listens on it,
    # even another server's SO_REUSEPORT workers, which these would otherwise join
    _listening_socket(host, port, share=False).close()
    metrics_dir = tempfile.mkdtemp(prefix="ledger-metrics-")  # 0700
    os.environ[SERVE_WORKER_ENV] = options.get("log_level", "info")
    os.environ[MULTIPROCESS_ENV] = metrics_dir
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    background = start_background_workers(settings)
    processes: list[tuple[BaseProcess, float]] = []
    failed = False
    try:
        processes = [_start(context, options) for _ in range(workers)]
        log.info("serving on %s:%d with %d worker processes", host, port, workers)
        while not stop.wait(POLL_SECONDS):
            for index, (process, started) in enumerate(processes):
                if process.is_alive():
                    continue
                if time.monotonic() - started < STARTUP_GRACE_SECONDS:
                    log.error("a server process exited with code %s while starting; stopping", process.exitcode)
                    failed = True
                    stop.set()
                    break
                log.warning("a server process exited with code %s; starting another", process.exitcode)
                processes[index] = _start(context, options)
    finally:
        _stop_all([process for process, _ in processes])
        for worker in background:
            worker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 1 if failed else 0


def _start(context: Any, options: dict[str, Any]) -> tuple[BaseProcess, float]:
    process: BaseProcess = context.Process(target=run_worker, args=(options,), name="ledger-serve-worker")
    process.start()
    return process, time.monotonic()


def _stop_all(processes: list[BaseProcess]) -> None:
    for process in processes:
        if process.is_alive():
            process.terminate()  # SIGTERM: uvicorn's graceful shutdown
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def _listening_socket(host: str, port: int, *, share: bool = True) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if share:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def run_worker(options: dict[str, Any]) -> None:
    """One worker process: its own ``SO_REUSEPORT`` socket, the app of ``api.app.create_worker_app``."""
    import uvicorn

    sock = _listening_socket(options["host"], options["port"])
    sock.listen(BACKLOG)
    config = uvicorn.Config("api.app:create_worker_app", factory=True, **options)
    uvicorn.Server(config).run(sockets=[sock])
