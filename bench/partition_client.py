#!/usr/bin/env python3
"""The clients of bench/partition.sh: mixed load on two aiocr nodes during one round, then the
round's checks. Standard library only (it runs inside the bench's client namespace).

    partition_client.py setup STATE A_URL B_URL A_ADMIN_PASSWORD B_ADMIN_USER B_ADMIN_PASSWORD
    partition_client.py round STATE ROUND SECONDS SETTLE_SECONDS

`setup` creates one user per node (user-a on node A, user-b on node B) and stores their
tokens. `round` runs for SECONDS: async uploads of user-a through node A, sync uploads
(wait=1) of user-b through node B, uploads of user-a through node B (forwarded), logins of
user-a through node B, polls, reports of some done results, and new usernames created on
both nodes at once. Then it waits up to SETTLE_SECONDS for every acknowledged upload to end
and prints one JSON line: acknowledged, lost (an acknowledged id its node does not know, or
fewer points charged than done results), double-charged (more charged than done results,
less refunds), stuck (still pending at the bound), and the usernames' verdict.
"""

import base64
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse

START_POINTS = 1_000_000
IMAGE = None  # base64 of the fixture, read at start


def call(url, method, path, token=None, body=None, timeout=30):
    """(status, json or None); (0, None) when the connection failed or timed out."""
    parts = urllib.parse.urlsplit(url)
    try:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        conn.close()
        try:
            return answer.status, json.loads(data)
        except ValueError:
            return answer.status, None
    except (OSError, http.client.HTTPException):
        return 0, None


def login(url, username, password):
    status, data = call(url, "POST", "/v2/user/login", body={"username": username, "password": password})
    if status != 200:
        raise SystemExit(f"login {username} at {url}: {status} {data}")
    return data["data"]["token"]


def setup(state_path, a_url, b_url, a_admin_password, b_admin_user, b_admin_password):
    admin_a = login(a_url, "admin", a_admin_password)
    admin_b = login(b_url, b_admin_user, b_admin_password)
    for url, admin, name in ((a_url, admin_a, "user-a"), (b_url, admin_b, "user-b")):
        body = {"username": name, "password": f"password-{name}", "points": START_POINTS}
        status, data = call(url, "POST", "/v2/admin/users", admin, body)
        if status != 200:
            raise SystemExit(f"creating {name}: {status} {data}")
    state = {
        "a": a_url,
        "b": b_url,
        "admin_a": admin_a,
        "admin_b": admin_b,
        "user_a": login(a_url, "user-a", "password-user-a"),
        "user_b": login(b_url, "user-b", "password-user-b"),
    }
    with open(state_path, "w") as out:
        json.dump(state, out)


class Round:
    """What one round's clients saw: every acknowledged upload with the node to ask about
    it, and the refunds that reports were granted."""

    def __init__(self, state):
        self.state = state
        self.lock = threading.Lock()
        self.uploads = []  # (user key, upload id)
        self.reported = {"user_a": 0, "user_b": 0}
        self.refused = 0
        self.ambiguous = {"user_a": 0, "user_b": 0}  # answers that did not say
        self.refusals = set()  # a few of the refusals' texts
        self.logins = [0, 0]  # (ok, refused) of user-a's logins through node B
        self.stop = threading.Event()

    def note_upload(self, user, status, data):
        if status == 200 and data and data.get("code") == 0:
            with self.lock:
                self.uploads.append((user, data["data"]["id"]))
            return data["data"]
        with self.lock:
            # No answer at all (the client's own timeout, a connection cut): the node may have
            # taken the upload (and charged it) all the same. A 5001 is a refusal, also from a
            # forwarding node that got no answer from the owner in time: the owner gives back
            # what such a request charged (docs/cluster.md, "Forwarded writes").
            message = (data or {}).get("msg", "") if isinstance(data, dict) else ""
            if status == 0:
                self.ambiguous[user] += 1
            else:
                self.refused += 1
            if len(self.refusals) < 5:
                self.refusals.add(f"{user} {status} {(data or {}).get('code') if isinstance(data, dict) else ''} {message[:90]}")
        return None

    def async_uploads(self):
        """user-a through its own node, without waiting."""
        while not self.stop.is_set():
            status, data = call(self.state["a"], "POST", "/v2/decode/upload-base64",
                                self.state["user_a"], {"file": IMAGE})
            self.note_upload("user_a", status, data)
            time.sleep(0.05)

    def sync_uploads(self):
        """user-b through its own node, waiting for the answer; some done ones reported."""
        while not self.stop.is_set():
            status, data = call(self.state["b"], "POST", "/v2/decode/upload-base64?wait=1",
                                self.state["user_b"], {"file": IMAGE})
            done = self.note_upload("user_b", status, data)
            if done and done.get("status") == "done" and random.random() < 0.2:
                status, answer = call(self.state["b"], "POST", f"/v2/report?id={done['id']}",
                                      self.state["user_b"])
                if status == 200 and answer and answer.get("code") == 0:
                    with self.lock:
                        self.reported["user_b"] += 1
            time.sleep(0.05)

    def forwarded(self):
        """user-a through the other node: uploads, polls and logins forwarded over NATS."""
        while not self.stop.is_set():
            status, data = call(self.state["b"], "POST", "/v2/decode/upload-base64",
                                self.state["user_a"], {"file": IMAGE})
            upload = self.note_upload("user_a", status, data)
            if upload:
                call(self.state["b"], "GET", f"/v2/result?id={upload['id']}", self.state["user_a"])
            status, _ = call(self.state["b"], "POST", "/v2/user/login",
                             body={"username": "user-a", "password": "password-user-a"})
            with self.lock:
                self.logins[0 if status == 200 else 1] += 1
            # Paced below the login limiter's budget for one account from one address.
            time.sleep(1.0)

    def claim_names(self, round_number):
        """The same new usernames created on both nodes at once."""
        created = {}
        for k in range(3):
            name = f"r{round_number}-{k}"
            outcomes = {}

            def create(node):
                url, admin = self.state[node], self.state[f"admin_{node}"]
                body = {"username": name, "password": f"password-{name}", "points": 0}
                status, data = call(url, "POST", "/v2/admin/users", admin, body)
                outcomes[node] = (status, data.get("code") if data else None)

            threads = [threading.Thread(target=create, args=(node,)) for node in "ab"]
            [t.start() for t in threads]
            [t.join() for t in threads]
            created[name] = outcomes
        return created


def balance(state, key):
    url = state["a"] if key == "user_a" else state["b"]
    status, data = call(url, "GET", "/v2/user/point", state[key])
    if status != 200:
        return None
    return data["data"]["points"], data["data"]["reserved"]


def wait_balance(state, key, bound):
    deadline = time.time() + bound
    while time.time() < deadline:
        found = balance(state, key)
        if found is not None:
            return found
        time.sleep(0.5)
    raise SystemExit(f"no balance of {key} within {bound} s")


def settle(state, uploads, bound):
    """The final status of each acknowledged upload, asked of its owner node until it is no
    longer pending or the bound passes: done, refunded (done, then given back: reported, or
    its forwarded answer not acknowledged), failed, lost (not known) or stuck."""
    deadline = time.time() + bound
    final = {}
    pending = list(uploads)
    while pending and time.time() < deadline:
        still = []
        for user, upload_id in pending:
            url = state["a"] if user == "user_a" else state["b"]
            # A short timeout: one poll left unanswered must not use up the whole bound.
            status, data = call(url, "GET", f"/v2/result?id={upload_id}", state[user], timeout=5)
            if status == 200 and data and data["data"]["status"] in ("done", "failed"):
                refunded = data["data"]["status"] == "done" and data["data"].get("reported")
                final[(user, upload_id)] = "refunded" if refunded else data["data"]["status"]
            elif status == 404 or (data and data.get("code") == 3001):
                final[(user, upload_id)] = "lost"
            else:
                still.append((user, upload_id))
        pending = still
        if pending:
            time.sleep(0.5)
    for key in pending:
        final[key] = "stuck"
    return final


def forwards_awaiting(url):
    """aiocr_forward_unacknowledged_pending of a node's /metrics, None when not answered."""
    parts = urllib.parse.urlsplit(url)
    try:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
    except (OSError, http.client.HTTPException):
        return None
    for line in text.splitlines():
        if line.startswith("aiocr_forward_unacknowledged_pending "):
            return float(line.split()[1])
    return None


def wait_forwards_settled(state, bound):
    """Until neither node holds charges of forwarded requests awaiting their acknowledgement:
    each is kept or given back within nats_request_timeout_ms + forward_ack_timeout_ms."""
    deadline = time.time() + bound
    while time.time() < deadline:
        if all(forwards_awaiting(state[node]) == 0 for node in "ab"):
            return
        time.sleep(0.5)


def names_verdict(state, created):
    """Each name created on exactly one node at most, and found there through both nodes."""
    wrong = []
    for name, outcomes in created.items():
        made = [node for node, (status, _) in outcomes.items() if status == 200]
        if len(made) > 1:
            wrong.append(f"{name} created on both nodes")
            continue
        if not made:
            # Both refused (the registry away): the name must be free or claimed, never twice.
            continue
        owner = made[0]
        ids = set()
        for node in "ab":
            # Busy (503) or rate limited (429, the load's own logins come from this address
            # too) is asked again, for a while: the check is that the name converges.
            for _ in range(20):
                status, data = call(state[node], "POST", "/v2/user/login",
                                    body={"username": name, "password": f"password-{name}"})
                if status not in (429, 503):
                    break
                time.sleep(1)
            if status != 200:
                wrong.append(f"{name}: login through node {node}: {status}")
            else:
                ids.add(data["data"]["user_id"])
        if len(ids) > 1:
            wrong.append(f"{name}: two users")
    return wrong


def run_round(state_path, round_number, seconds, settle_seconds):
    with open(state_path) as f:
        state = json.load(f)
    before = {key: wait_balance(state, key, settle_seconds) for key in ("user_a", "user_b")}
    load = Round(state)
    threads = [threading.Thread(target=work) for work in
               (load.async_uploads, load.async_uploads, load.sync_uploads, load.forwarded)]
    [t.start() for t in threads]
    time.sleep(seconds / 2)
    created = load.claim_names(round_number)
    time.sleep(seconds / 2)
    load.stop.set()
    [t.join() for t in threads]
    final = settle(state, load.uploads, settle_seconds)
    wait_forwards_settled(state, settle_seconds)
    after = {key: wait_balance(state, key, settle_seconds) for key in ("user_a", "user_b")}
    lost = sum(1 for status in final.values() if status == "lost")
    stuck = sum(1 for status in final.values() if status == "stuck")
    double = 0
    for key in ("user_a", "user_b"):
        # Charged: done and not given back (a report, or an unacknowledged forwarded answer).
        expected = sum(1 for (user, _), status in final.items() if user == key and status == "done")
        spent = before[key][0] - after[key][0]
        if after[key][1] != 0 and stuck == 0:
            stuck += after[key][1]  # points still reserved with nothing pending
        # An upload whose answer never came (or a forward that timed out) may be charged.
        double += max(0, spent - expected - load.ambiguous[key])
        lost += max(0, expected - spent)
    verdict = {
        "acknowledged": len(load.uploads),
        "done": sum(1 for s in final.values() if s in ("done", "refunded")),
        "refunded": sum(1 for s in final.values() if s == "refunded") - sum(load.reported.values()),
        "failed": sum(1 for s in final.values() if s == "failed"),
        "lost": lost,
        "double_charged": double,
        "stuck": stuck,
        "refused": load.refused,
        "ambiguous": sum(load.ambiguous.values()),
        "reported": sum(load.reported.values()),
        "forwarded_logins": load.logins,
        "names": names_verdict(state, created),
        "refusals": sorted(load.refusals),
        "per_user": {key: {"spent": before[key][0] - after[key][0],
                           "done": sum(1 for (u, _), st in final.items() if u == key and st in ("done", "refunded")),
                           "reported": load.reported[key]} for key in ("user_a", "user_b")},
    }
    print(json.dumps(verdict))


def main():
    global IMAGE
    command = sys.argv[1]
    if command == "setup":
        setup(*sys.argv[2:8])
    elif command == "round":
        with open(sys.argv[6] if len(sys.argv) > 6 else "tests/fixtures/captcha/0001.png", "rb") as f:
            IMAGE = base64.b64encode(f.read()).decode()
        run_round(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
