#!/usr/bin/env python3
"""test_fslib — the port helpers every integration test starts its servers
with (tests/integration/fslib.py): a server whose port another process took
after free_port() chose it is started again on another port, and a server is
only taken as ready on a port it holds itself, even when whoever took the
port answers the readiness check. The stand-in server is Python's own
http.server, which exits with "Address already in use" as the Go servers do.
"""
import os
import socket
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleet  # noqa: E402
import fslib  # noqa: E402
from fslib import check, run_tests  # noqa: E402


class Impostor:
    """Another process's server on a port: answers every GET with 200."""

    def __init__(self):
        self.server = fleet.serve_in_thread(fleet.OkHandler)
        self.port = self.server.server_address[1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def http_server(ports):
    return [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(ports[0])]


def with_taken_first(port, fn):
    """fn() while free_port() answers `port` first (as if another process took
    it right after it was chosen), then real free ports."""
    real = fslib.free_port
    given = []

    def fake():
        if not given:
            given.append(port)
            return port
        return real()
    fslib.free_port = fake
    try:
        return fn()
    finally:
        fslib.free_port = real


def test_taken_port_retried():
    """The port is taken and answers the readiness check: the server exits on
    "address already in use" and is started again on another port."""
    imp = Impostor()
    tmp = tempfile.mkdtemp(prefix="foreshock-it-fslib-")
    procs = []
    try:
        p, ports = with_taken_first(imp.port, lambda: fslib.start_server(
            "httpserver", tmp, procs, http_server, "/", timeout=60))
        check(ports[0] != imp.port, "started again on another port: %r" % ports)
        check(p.proc.poll() is None and procs == [p], "one server runs, the failed try is gone: %r" % procs)
        check(ports[0] in fslib.listening_ports([p.proc.pid]), "the server holds its port")
        check(imp.port not in fslib.listening_ports([p.proc.pid]), "not the taken one")
        check(os.path.exists(os.path.join(tmp, "httpserver.log")) and
              "already in use" in open(os.path.join(tmp, "httpserver.log")).read(),
              "the first try's log says why it stopped")
    finally:
        for p in procs:
            p.stop()
        imp.close()


def test_ready_only_on_own_port():
    """A server that never binds its port (it sleeps) is not taken as ready
    while another process answers on that port: start_server times out."""
    imp = Impostor()
    tmp = tempfile.mkdtemp(prefix="foreshock-it-fslib-")
    procs = []
    try:
        try:
            with_taken_first(imp.port, lambda: fslib.start_server(
                "sleeper", tmp, procs, lambda ports: ["sleep", "30"], "/", timeout=2))
            raise AssertionError("a server that holds no port was taken as ready")
        except fslib.Failed as e:
            check("timed out" in str(e) and isinstance(e, fslib.Failed) and not isinstance(e, fslib.PortTaken),
                  "times out waiting: %s" % e)
    finally:
        for p in procs:
            p.stop()
        imp.close()


def test_reserved_port_refuses_then_serves():
    sock, port = fslib.reserve_port()
    try:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            raise AssertionError("a reserved port accepted a connection before listen()")
        except ConnectionRefusedError:
            pass
        other = socket.socket()
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's listeners do
        try:
            other.bind(("127.0.0.1", port))
            raise AssertionError("another socket could bind the reserved port %d" % port)
        except OSError:
            pass
        finally:
            other.close()
        sock.listen(1)
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        sock.close()


if __name__ == "__main__":
    run_tests([test_taken_port_retried, test_ready_only_on_own_port, test_reserved_port_refuses_then_serves])
