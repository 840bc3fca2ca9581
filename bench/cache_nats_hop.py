#!/usr/bin/env python3
"""What asking another node's answer cache over NATS request/reply would cost, on loopback.

aiocr does not share cache entries between nodes (docs/server.md, "The answer cache"); this
measures the hop such sharing would add, so the choice rests on a number. A requester asks
a responder through a local nats-server (NATS core request/reply: the requester publishes
to a subject with a reply inbox, the responder publishes its answer to that inbox), and the
same request/answer bytes go over one direct loopback TCP connection as the reference, in
the same run. Payloads: one lookup (a 64-character hash and options, ~120 bytes; a hit's
answer ~200 bytes) and a batch of 100. Both ends speak the NATS text protocol over plain
sockets (no client library), each end a Python process of its own, so the absolute numbers
include Python's own cost on both sides; the difference between the two columns is the
broker's.

Usage: bench/cache_nats_hop.py [rounds=2000] [nats-server binary=nats-server]
"""
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import time

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
NATS_SERVER = sys.argv[2] if len(sys.argv) > 2 else "nats-server"
SIZES = {"1 lookup": (120, 200), "100 lookups": (12_000, 20_000)}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Conn:
    """A NATS connection: buffered reads of the text protocol, PING/PONG handled."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.line()  # INFO
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
        while self.line() != b"PONG":
            pass

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("nats-server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, count):
        while len(self.buf) < count + 2:
            self.buf += self.sock.recv(65536)
        data, self.buf = self.buf[:count], self.buf[count + 2 :]
        return data

    def message(self):
        """The next MSG: (subject, reply or None, payload)."""
        while True:
            line = self.line()
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
                continue
            if line.startswith(b"MSG "):
                parts = line.split()
                reply = parts[3] if len(parts) == 5 else None
                return parts[1], reply, self.exact(int(parts[-1]))

    def publish(self, subject, payload, reply=b""):
        head = b"PUB " + subject + (b" " + reply if reply else b"")
        self.sock.sendall(head + b" %d\r\n" % len(payload) + payload + b"\r\n")


def responder(port, answers, ready):
    conn = Conn(port)
    conn.sock.sendall(b"SUB cache.lookup 1\r\nPING\r\n")
    while conn.line() != b"PONG":
        pass
    ready.set()
    while True:
        _, reply, payload = conn.message()
        conn.publish(reply, answers[len(payload)])


def via_nats(port, request, rounds):
    conn = Conn(port)
    conn.sock.sendall(b"SUB _INBOX.bench.* 1\r\n")
    took_us = []
    for n in range(rounds):
        began = time.perf_counter()
        conn.publish(b"cache.lookup", request, b"_INBOX.bench.%d" % n)
        conn.message()
        took_us.append((time.perf_counter() - began) * 1e6)
    return took_us


def serve_direct(listener, request_bytes, answer):
    peer, _ = listener.accept()
    peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pending = b""
    while True:
        while len(pending) < 4 + request_bytes:
            chunk = peer.recv(65536)
            if not chunk:
                return
            pending += chunk
        pending = pending[4 + request_bytes :]
        peer.sendall(len(answer).to_bytes(4, "big") + answer)


def direct(request, answer, rounds):
    """The same exchange over one loopback TCP connection (length-prefixed), with a server
    process of its own as the responder has."""
    listener = socket.create_server(("127.0.0.1", 0))
    server = multiprocessing.Process(
        target=serve_direct, args=(listener, len(request), answer), daemon=True
    )
    server.start()
    sock = socket.create_connection(listener.getsockname())
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    took_us = []
    for _ in range(rounds):
        began = time.perf_counter()
        sock.sendall(len(request).to_bytes(4, "big") + request)
        got = b""
        while len(got) < 4 + len(answer):
            got += sock.recv(65536)
        took_us.append((time.perf_counter() - began) * 1e6)
    sock.close()
    server.join(10)
    listener.close()
    return took_us


def quantiles(values):
    ordered = sorted(values)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99)]


def main():
    port = free_port()
    server = subprocess.Popen(
        [NATS_SERVER, "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        answers = {}
        for request_bytes, answer_bytes in SIZES.values():
            answers[request_bytes] = os.urandom(answer_bytes // 2).hex().encode()
        ready = multiprocessing.Event()
        answering = multiprocessing.Process(
            target=responder, args=(port, answers, ready), daemon=True
        )
        answering.start()
        if not ready.wait(10):
            raise RuntimeError("the responder did not subscribe")
        print(f"round trips on loopback, {ROUNDS} each, microseconds (p50 / p99):")
        print("| exchange | via nats-server | direct TCP | added by the broker, p50 |")
        print("|---|---|---|---|")
        for name, (request_bytes, _) in SIZES.items():
            request = os.urandom(request_bytes // 2).hex().encode()
            answer = answers[request_bytes]
            via_nats(port, request, 100)  # warm-up
            nats = quantiles(via_nats(port, request, ROUNDS))
            tcp = quantiles(direct(request, answer, ROUNDS))
            print(
                f"| {name} | {nats[0]:.0f} / {nats[1]:.0f} | {tcp[0]:.0f} / {tcp[1]:.0f} "
                f"| {nats[0] - tcp[0]:.0f} |"
            )
        answering.terminate()
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
