"""How soon a model added over the API answers, under load, on both shards (the issue's
"within 1 s"): with uploads of `old` running from users on every shard, an admin adds a
public model (ddddocr's common_old.onnx with the permuted-charset charsets.json of
tests/fixtures/custom-models), then each user uploads with model=NAME until it answers.

Prints the time the add took (the checks: load, blank run) and, per user, the time from
the add's answer to that user's first answer with the model; every failed upload of the load
is counted. Usage: model_ready.py PORT ADMIN_PASSWORD [load_threads=4] [rounds=3]
"""
import base64
import json
import pathlib
import sys
import threading
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
PORT, ADMIN_PASSWORD = sys.argv[1], sys.argv[2]
LOAD_THREADS = int(sys.argv[3]) if len(sys.argv) > 3 else 4
ROUNDS = int(sys.argv[4]) if len(sys.argv) > 4 else 3
BASE = f"http://127.0.0.1:{PORT}"


def call(path, token=None, body=None, content_type="application/json"):
    headers = {"Content-Type": content_type} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as error:
        return json.load(error)


def token_of(username, password):
    return call("/v2/user/login", body={"username": username, "password": password})["data"]["token"]


def multipart(fields, files):
    boundary = "benchModelBoundary"
    body = b""
    for name, value in fields.items():
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    for name, data in files.items():
        body += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


admin = token_of("admin", ADMIN_PASSWORD)
def shard_of(user_id):
    """src/store/ids.rs: 12 sequence bits, then 4 shard bits."""
    return (user_id >> 12) & 15


by_shard = {}
for n in range(32):
    name = f"bench{n}-{int(time.time() * 1000)}"
    created = call("/v2/admin/users", admin, {"username": name, "password": f"password-{name}",
                                              "role": "user", "points": 10_000_000})
    user_id = int(created["data"]["user_id"])
    by_shard.setdefault(shard_of(user_id), (user_id, token_of(name, f"password-{name}")))
    if len(by_shard) == 2:
        break
assert len(by_shard) == 2, "users on both shards"
users = [by_shard[0], by_shard[1]]
image = base64.b64encode((ROOT / "tests/fixtures/captcha/0000.bmp").read_bytes()).decode()
onnx = (ROOT / "models/common_old.onnx").read_bytes()
charsets = (ROOT / "tests/fixtures/custom-models/permuted-charset/charsets.json").read_bytes()

stop = threading.Event()
counts = {"ok": 0, "failed": 0}
lock = threading.Lock()


def load(token):
    while not stop.is_set():
        answer = call("/v2/decode/upload-base64", token, {"image": image, "wait": True})
        with lock:
            counts["ok" if answer.get("code") == 0 else "failed"] += 1


loaders = [threading.Thread(target=load, args=(users[i % 2][1],)) for i in range(LOAD_THREADS)]
for loader in loaders:
    loader.start()
time.sleep(2)
for round_ in range(ROUNDS):
    name = f"ready{round_}-{int(time.time())}"
    body, content_type = multipart({"name": name, "public": "1"}, {"onnx": onnx, "charsets": charsets})
    started = time.monotonic()
    added = call("/v2/models", admin, body, content_type)
    added_at = time.monotonic()
    assert added.get("code") == 0, added
    firsts = []
    for user_id, token in users:
        while True:
            answer = call("/v2/decode/upload-base64", token, {"image": image, "wait": True, "model": name})
            if answer.get("code") == 0:
                break
            with lock:
                counts["failed"] += 1
        firsts.append(time.monotonic() - added_at)
    print(f"round {round_}: add took {added_at - started:.3f} s; first answers after it: "
          + ", ".join(f"shard {shard_of(uid)}'s user {t:.3f} s" for (uid, _), t in zip(users, firsts)),
          flush=True)
stop.set()
for loader in loaders:
    loader.join()
print(f"load uploads: {counts['ok']} answered, {counts['failed']} failed")
