#!/usr/bin/env python3
"""Creates COUNT users through the admin API and writes one login token a line to OUT
(for aiocr-loadgen --api-keys-file). Logins and creations hash passwords with argon2id on
purpose, so this runs a few at a time.

Usage: bench/cache_users.py PORT ADMIN_TOKEN COUNT POINTS PREFIX OUT
"""
import concurrent.futures
import json
import sys
import urllib.request


def call(port, path, body, token=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=60) as answer:
        data = json.load(answer)
    if data["code"] != 0:
        raise RuntimeError(f"{path}: {data}")
    return data["data"]


def user_token(port, admin, name, points):
    password = f"pw-{name}"
    body = {"username": name, "password": password, "role": "user", "points": points}
    call(port, "/v2/admin/users", body, admin)
    return call(port, "/v2/user/login", {"username": name, "password": password})["token"]


def main():
    port, admin, count, points, prefix, out = sys.argv[1:7]
    names = [f"{prefix}{i}" for i in range(int(count))]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        tokens = list(pool.map(lambda name: user_token(port, admin, name, int(points)), names))
    with open(out, "w") as file:
        file.write("".join(token + "\n" for token in tokens))


if __name__ == "__main__":
    main()
