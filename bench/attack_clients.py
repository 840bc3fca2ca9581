#!/usr/bin/env python3
"""The attackers and the acknowledgement checker of bench/attacks.sh (issue 14).

  stalled PORT COUNT SECONDS ADDRESSES...   connections that send a request head announcing a
      1 MiB body, a few hundred bytes of it, then nothing: a third are /v2 uploads without a
      token, a third 2captcha /in.php multipart uploads (the key is in the body, so the server
      must read it), a third logins (the password is in the body). Each connection the server
      closes is opened again, until SECONDS pass. Spread over the source ADDRESSES (any
      127.x.y.z works on loopback), so the per-address limit does not cap them.
  idle PORT COUNT SECONDS ADDRESS           connections from one ADDRESS that send nothing;
      closed ones are opened again at once, so the address stays at its limit.
  uploads PORT TOKEN IMAGE ACKS SECONDS THREADS   uploads (async) and polls until SECONDS pass
      or the server dies; appends the id of every acknowledged upload to ACKS.
  check PORT TOKEN ACKS                      every id in ACKS must be known to the server
      (done, failed or pending); prints "acknowledged N lost M".
Each prints one summary line on stdout.
"""
import http.client
import json
import selectors
import socket
import sys
import threading
import time
import uuid


def stalled_head(kind, port):
    """A request head for a 1 MiB body and its first bytes (the body never completes)."""
    declared = 1024 * 1024
    if kind == 0:
        head = "POST /v2/decode/upload HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port
        head += "Content-Type: image/png\r\nContent-Length: %d\r\n\r\n" % declared
        return (head.encode() + b"\x89PNG\r\n\x1a\n" + b"\0" * 200)
    if kind == 1:
        boundary = uuid.uuid4().hex
        part = ("--%s\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\n%s\r\n"
                "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
                "Content-Type: image/png\r\n\r\n" % (boundary, "0" * 32, boundary))
        head = "POST /in.php HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port
        head += "Content-Type: multipart/form-data; boundary=%s\r\n" % boundary
        head += "Content-Length: %d\r\n\r\n" % declared
        return head.encode() + part.encode() + b"\0" * 200
    head = "POST /v2/user/login HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port
    head += "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % declared
    return head.encode() + b'{"username":"demo","password":"' + b"x" * 200


def open_connection(port, source, payload):
    """A connected non-blocking socket that has sent `payload` (None when refused)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((source, 0))
        sock.settimeout(2)
        sock.connect(("127.0.0.1", port))
        if payload:
            sock.sendall(payload)
        sock.setblocking(False)
        return sock
    except OSError:
        sock.close()
        return None


def hold(port, count, seconds, sources, payload_of):
    """Keeps `count` connections open (re-opening what the server closes) for `seconds`."""
    selector = selectors.DefaultSelector()
    opened = refused = closed_by_server = 0
    deadline = time.monotonic() + seconds

    opened_at = {}
    # (time, index) of connections to open again: at once after a connection lived a while,
    # 100 ms later after one the server closed at once (refused), so the attacker holds its
    # connections instead of measuring a connect flood.
    reopen = []

    def open_one(index):
        nonlocal opened, refused
        sock = open_connection(port, sources[index % len(sources)], payload_of(index))
        if sock is None:
            refused += 1
            reopen.append((time.monotonic() + 0.1, index))
            return
        opened += 1
        opened_at[index] = time.monotonic()
        selector.register(sock, selectors.EVENT_READ, index)

    for index in range(count):
        if time.monotonic() >= deadline:
            break
        open_one(index)
    while time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.05):
            try:
                data = key.fileobj.recv(65536)
            except OSError:
                data = b""
            if not data:  # closed by the server (answered, timed out or refused)
                selector.unregister(key.fileobj)
                key.fileobj.close()
                closed_by_server += 1
                now = time.monotonic()
                lived = now - opened_at[key.data]
                reopen.append((now + (0.1 if lived < 0.2 else 0.0), key.data))
        now = time.monotonic()
        due = [entry for entry in reopen if entry[0] <= now]
        reopen[:] = [entry for entry in reopen if entry[0] > now]
        for _, index in due:
            open_one(index)
    still_open = len(selector.get_map())
    for key in list(selector.get_map().values()):
        key.fileobj.close()
    print(json.dumps({"opened": opened, "refused": refused,
                      "closed_by_server": closed_by_server, "open_at_end": still_open}))


def multipart_upload(image):
    boundary = uuid.uuid4().hex
    body = (("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.png\"\r\n"
             "Content-Type: application/octet-stream\r\n\r\n" % boundary).encode()
            + image + ("\r\n--%s--\r\n" % boundary).encode())
    return body, "multipart/form-data; boundary=%s" % boundary


def uploads(port, token, image_path, acks_path, seconds, threads):
    image = open(image_path, "rb").read()
    deadline = time.monotonic() + seconds
    acknowledged = [0]
    lock = threading.Lock()
    acks = open(acks_path, "a")

    def client():
        connection = None
        while time.monotonic() < deadline:
            try:
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                body, content_type = multipart_upload(image)
                connection.request("POST", "/v2/decode/upload", body,
                                   {"Authorization": "Bearer " + token,
                                    "Content-Type": content_type})
                answer = connection.getresponse()
                text = answer.read()
                if answer.status != 200:
                    continue
                upload_id = json.loads(text)["data"]["id"]
                with lock:  # written before anything else happens: it was acknowledged
                    acks.write(upload_id + "\n")
                    acks.flush()
                    acknowledged[0] += 1
                connection.request("GET", "/v2/user/point",
                                   headers={"Authorization": "Bearer " + token})
                connection.getresponse().read()
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                connection = None  # the server died or restarts: keep trying until the end
                time.sleep(0.05)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(json.dumps({"acknowledged": acknowledged[0]}))


def check(port, token, acks_path):
    ids = [line.strip() for line in open(acks_path) if line.strip()]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    lost = []
    statuses = {}
    for upload_id in ids:
        connection.request("GET", "/v2/result?id=" + upload_id,
                           headers={"Authorization": "Bearer " + token})
        answer = connection.getresponse()
        text = answer.read()
        if answer.status != 200:
            lost.append(upload_id)
            continue
        status = json.loads(text)["data"]["status"]
        statuses[status] = statuses.get(status, 0) + 1
    print(json.dumps({"acknowledged": len(ids), "lost": len(lost), "statuses": statuses,
                      "first_lost": lost[:5]}))


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "stalled":
        count, seconds, sources = int(sys.argv[3]), float(sys.argv[4]), sys.argv[5:]
        heads = [stalled_head(kind, port) for kind in range(3)]
        hold(port, count, seconds, sources, lambda index: heads[index % 3])
    elif mode == "idle":
        count, seconds, source = int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
        hold(port, count, seconds, [source], lambda index: None)
    elif mode == "uploads":
        uploads(port, sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6]),
                int(sys.argv[7]))
    elif mode == "check":
        check(port, sys.argv[3], sys.argv[4])
    else:
        raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    main()
