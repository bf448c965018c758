"""``rnnkit serve RUN``: a run's model over a local HTTP JSON API, and one page to try it.

Routes: ``GET /`` the page (``serve.html``, plain HTML and JavaScript, no
network); ``GET /api`` the run's task and its endpoints with their fields;
``POST /api/NAME`` an endpoint of the run's task
(:meth:`rnnkit.tasks.base.Task.endpoints`), a JSON object in, a JSON object
out, or for a streamed endpoint one JSON object a line as each is made
(``application/x-ndjson``, chunked transfer). This module knows no task: it
checks a request against its endpoint's fields and calls it.

Limits: a body over ``--max-body`` bytes is refused (413) before it is read;
``--max-concurrent`` requests run at once and the next ones wait up to
``--wait`` seconds for a place, then get 503. Every refusal is a 4xx/5xx
with ``{"error": "one line"}``. The server binds to 127.0.0.1 unless
``--host`` says otherwise and reads no file a request names (requests carry
data). Ctrl-C stops it: requests still running are cut, and it exits with
130, as `rnnkit train` does.

Ctrl-C ends every request's thread before the interpreter's own exit
(:func:`stop`): the server stops accepting, streams are cut between two
tokens, idle keep-alive connections are shut for reading (their threads wait
for a next request), and each thread is joined. Connections are accepted in a
thread of their own (:func:`serve_until_interrupted`): the KeyboardInterrupt,
raised in the main thread, must not land inside ``socketserver``'s handling
of a new connection, whose clean-up closes that connection under the thread
just started for it (benchmarks/NOTEBOOK.md, 2026-12-07, "serve's Ctrl-C
race"). A thread still alive when the interpreter
finalizes is ended by Python 3.11-3.13 with ``pthread_exit`` as soon as it
takes the GIL again; if that happens inside one of torch's C++ frames, such
as the deallocation of a tensor (``THPVariable_clear`` gives the GIL up and
takes it back), the forced unwinding meets a ``noexcept`` frame and the C++
runtime aborts the process ("terminate called without an active
exception"; benchmarks/NOTEBOOK.md, 2026-12-07, "serve's abort at exit").
Only when a request outlives the grace period does the server leave by
``os._exit`` (everything written first), since its thread cannot be stopped
from outside.

Built on the standard library's ``http.server.ThreadingHTTPServer``: a local
server for one user needs no framework, and this one brings no dependency to
keep up to date; a request's thread runs the model (PyTorch releases the GIL
in its kernels), bounded by a semaphore.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

from rnnkit.errors import RnnkitError

EXIT_INTERRUPTED = 130  # as `rnnkit train` exits on Ctrl-C
from rnnkit.tasks import load_run, named
from rnnkit.tasks.serving import Limits, RequestError, check_request


class Server(ThreadingHTTPServer):
    """The HTTP server of one run: its ``endpoints``, a semaphore of ``max_concurrent`` places,
    ``wait`` seconds a request waits for one, bodies of at most ``max_body`` bytes. It keeps the
    thread and socket of each connection open, for :func:`stop` to end them."""

    daemon_threads = True  # the interpreter's exit does not wait for them: stop() joins them, with a time-out
    request_timeout = 30.0  # seconds a client may stall while sending (then 408) or between requests

    def __init__(self, address, endpoints: dict, about: dict, max_concurrent: int = 2, wait: float = 5.0,
                 max_body: int = 1_000_000):
        super().__init__(address, Handler)
        self.endpoints, self.about, self.wait, self.max_body = endpoints, about, wait, max_body
        self.max_concurrent, self.verbose, self.stopping = max_concurrent, False, False
        self.places = threading.BoundedSemaphore(max_concurrent)
        self.open: dict[socket.socket, threading.Thread] = {}  # each connection's socket and its thread
        self.open_lock = threading.Lock()

    def process_request(self, request, client_address):
        """A thread for the connection, as ThreadingMixIn's, remembered until the connection closes."""
        thread = threading.Thread(target=self.process_request_thread, args=(request, client_address), daemon=True)
        with self.open_lock:
            self.open[request] = thread
        thread.start()

    def shutdown_request(self, request):
        """Close the connection, and forget its thread: :func:`stop` has nothing left to end for it."""
        with self.open_lock:
            self.open.pop(request, None)
        super().shutdown_request(request)

    @property
    def url(self) -> str:
        """The address the server listens at, ``http://HOST:PORT/``."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


def make_server(run: str, host: str = "127.0.0.1", port: int = 8000, limits: Limits = Limits(),
                device: str = "cpu", engine: str | None = None, **settings) -> Server:
    """A :class:`Server` of the run folder ``run`` bound to ``host``:``port`` (0: a free port),
    not yet serving (``serve_forever()``); ``settings``: max_concurrent, wait, max_body."""
    model, _, doc = load_run(run, device, engine=engine)
    task = named(doc.data.task)
    endpoints = task.endpoints(model, doc, limits)
    if not endpoints:
        raise RnnkitError(f"{run} is a {task.name} run, which has nothing to serve yet")
    about = {"run": str(run), "task": task.name, "endpoints": {n: e.describe() for n, e in endpoints.items()}}
    return Server((host, port), endpoints, about, **settings)


class Handler(BaseHTTPRequestHandler):
    """One request: GET the page or /api's description, POST /api/NAME to an endpoint; other methods get 405."""

    server: Server
    protocol_version = "HTTP/1.1"  # chunked replies need it

    def setup(self):
        """Give the connection the server's timeout, so a stalled client cannot hold a thread."""
        self.timeout = self.server.request_timeout  # a client that stalls cannot hold a thread for ever
        super().setup()

    def log_message(self, format, *args):  # one line a request on stderr, as http.server does, but quieter
        """A line a request on stderr, only when the server is verbose."""
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self):
        """The page (``/``) or the run's description (``/api``); 404 for anything else."""
        if self.path == "/":
            page = resources.files("rnnkit.cli").joinpath("serve.html").read_bytes()
            return self._send(200, page, "text/html; charset=utf-8")
        if self.path == "/api":
            return self._json(200, self.server.about)
        self._error(404, f"no page {self.path}; GET / or /api, POST /api/NAME")

    def do_PUT(self):
        """405: only GET and POST are served."""
        self._error(405, f"{self.command} is not served; GET / or /api, POST /api/NAME")

    do_DELETE = do_PATCH = do_PUT

    def do_POST(self):
        """A JSON request to the endpoint ``/api/NAME``: checked, run within the concurrency limit, answered (streamed
        for sampling)."""
        name = self.path.removeprefix("/api/") if self.path.startswith("/api/") else None
        if name not in self.server.endpoints:
            self.close_connection = True  # its body is not read
            return self._error(404, f"no endpoint {self.path}; this run serves "
                                    f"{', '.join('/api/' + n for n in self.server.endpoints)}")
        try:
            body = self._body()
        except RequestError as e:
            self.close_connection = True  # the unread body would be taken for the next request
            return self._error(e.status, str(e))
        if not self.server.places.acquire(timeout=self.server.wait):
            return self._error(503, f"busy: {self.server.max_concurrent} requests are running; try again")
        try:
            endpoint = self.server.endpoints[name]
            reply = endpoint.handle(check_request(endpoint, body))
            if endpoint.stream:
                self._stream(reply)
            else:
                self._json(200, reply)
        except RequestError as e:
            self._error(e.status, str(e))
        except RnnkitError as e:  # the run cannot take this request (a label it has not, a character unseen)
            self._error(422, str(e))
        except Exception as e:  # a bug: said in one line, and the server goes on
            self._error(500, f"{type(e).__name__}: {e}")
        finally:
            self.server.places.release()

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise RequestError("send the body with a Content-Length, not chunked", 411)
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise RequestError("a POST needs a Content-Length header", 411) from None
        if length < 0:
            raise RequestError(f"Content-Length must be >= 0; got {length}")
        if length > self.server.max_body:
            raise RequestError(f"the body holds {length:,} bytes; the limit is {self.server.max_body:,}", 413)
        try:
            data = self.rfile.read(length)
        except TimeoutError:
            raise RequestError(f"the body did not arrive within {self.server.request_timeout:g} s", 408) from None
        try:
            return json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RequestError(f"the body is not JSON: {e}") from None

    def _stream(self, reply):
        pieces = iter(reply)
        first = next(pieces, None)  # a bad request fails here, before the 200 goes out
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        try:
            if first is not None:
                self._chunk(first)
                for piece in pieces:
                    if self.server.stopping:  # Ctrl-C: the stream is cut between two tokens
                        break
                    self._chunk(piece)
            self._chunk({"error": "the server is stopping"} if self.server.stopping else {"done": True})
        except (BrokenPipeError, ConnectionResetError):  # the client left: stop generating
            self.close_connection = True
            return
        except Exception as e:  # after the 200: the stream ends with the reason, and the server goes on
            self._chunk({"error": f"{type(e).__name__}: {e}".splitlines()[0]})
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, obj):
        data = (json.dumps(obj) + "\n").encode()
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, status: int, obj):
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _error(self, status: int, message: str):
        self._json(status, {"error": message.splitlines()[0] if message else HTTPStatus(status).phrase})

    def _send(self, status: int, data: bytes, kind: str):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def run_serve(args) -> int:
    """``rnnkit serve RUN``: serve until Ctrl-C, which cuts the streams still running, waits a
    few seconds for the other requests and exits with code 130."""
    from rnnkit.errors import ConfigError
    from rnnkit.training import resolve_device

    for name in ("max_concurrent", "max_length", "max_body", "max_text", "max_items"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    if args.wait < 0 or not 0 <= args.port <= 65535:
        raise ConfigError(f"--wait must be >= 0 and --port in 0..65535; got {args.wait} and {args.port}")
    limits = Limits(max_length=args.max_length, max_text=args.max_text, max_items=args.max_items)
    try:
        server = make_server(args.run, args.host, args.port, limits, resolve_device(args.device), args.engine,
                             max_concurrent=args.max_concurrent, wait=args.wait, max_body=args.max_body)
    except OSError as e:
        raise ConfigError(f"cannot listen on {args.host}:{args.port} ({e.strerror}); pick another --port") from None
    server.verbose = args.verbose
    print(f"serving {args.run} ({server.about['task']}) at {server.url} ; Ctrl-C stops", flush=True)
    if not serve_until_interrupted(server):
        server.server_close()
        return 0
    finished = stop(server)
    server.server_close()
    print("\ninterrupted" + ("" if finished else "; a request still running was cut"), file=sys.stderr)
    if not finished:  # its thread, still in torch, would abort the interpreter's exit (module docstring)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
    return EXIT_INTERRUPTED


def serve_until_interrupted(server: Server) -> bool:
    """Accept connections in a thread of their own until Ctrl-C (True) or until the loop ends by
    itself (False; its error, if any, raised here). The main thread only waits, so the
    KeyboardInterrupt cannot land inside ``socketserver``'s handling of a new connection, whose
    clean-up would close that connection under its running thread (module docstring)."""
    ended, failure = threading.Event(), []

    def accept():
        try:
            server.serve_forever()
        except BaseException as e:  # a bug in the loop: raised in the main thread
            failure.append(e)
        finally:
            ended.set()

    threading.Thread(target=accept, name="accept", daemon=True).start()  # stop() waits for its loop to end
    try:
        ended.wait()
    except KeyboardInterrupt:
        return True
    if failure:
        raise failure[0]
    return False


def stop(server: Server, grace: float = 5.0) -> bool:
    """End every connection's thread: stop accepting (``serve_forever``, in another thread, finishes
    starting the connection it is at, whose thread is then in ``server.open``), cut the streams
    still running (between two tokens), shut each connection for reading (a thread waiting for a
    client's next request wakes to its end, and replies still being written are not cut), and join
    the threads for up to ``grace`` seconds; whether they all ended."""
    server.stopping = True
    server.shutdown()  # returns once serve_forever has
    with server.open_lock:
        connections = list(server.open.items())
    for connection, _ in connections:
        try:
            connection.shutdown(socket.SHUT_RD)
        except OSError:  # closed meanwhile
            pass
    deadline = time.monotonic() + grace
    for _, thread in connections:
        thread.join(timeout=max(deadline - time.monotonic(), 0))
    return not any(thread.is_alive() for _, thread in connections)
