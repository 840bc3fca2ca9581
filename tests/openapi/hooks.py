"""Schemathesis hooks of aiocr's run of its API description (tests/api_description.rs).

Three things a JSON schema cannot say, and what the run does about them:

1. Which bytes are an image. Generated image fields are random bytes, which the server
   refuses (3003), so without help no upload would ever run. `map_case` puts a real
   captcha (a fixture) into every image field of the schema-valid requests; schema-violating
   requests keep what was generated (they must still be refused).

2. Refusals that depend on the server's state or an image's content, not on the request's
   shape: a user that does not exist, a name already taken, a balance, the models installed,
   the pixels. `filter_failure` drops a "schema-valid request rejected" finding (ST202) only
   when the answer is one of those, recognised by its contract code (and message where the
   code is shared with malformed requests). Every other finding stays a failure.

3. Which MCP session exists. `POST /mcp` needs `Mcp-Session-Id` on every message but
   `initialize` (a header required or not by the body's `method`), naming a session the
   server holds, and a `MCP-Protocol-Version` that is that session's. `map_case` gives the
   schema-valid requests the run's own session (opened before the run, passed in
   `AIOCR_ST_MCP_SESSION`) and its version; schema-violating requests keep what was
   generated. A schema-valid `DELETE /mcp` ends a session opened for it just before
   (`initialize` at `AIOCR_ST_MCP_URL` with `AIOCR_ST_MCP_TOKEN`, the run's credential), not
   the run's: the run's session must outlive it.
"""

import base64
import json
import os
import pathlib
import urllib.request

import schemathesis

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures"
TEXT_CAPTCHA = (FIXTURES / "captcha" / "0001.png").read_bytes()
CLICK_CAPTCHA = (FIXTURES / "ddddocr-more" / "det" / "0000.jpg").read_bytes()
# A pair of the same size, so that every slide mode (match, simple, comparison) can run.
SLIDE_GAP = (FIXTURES / "ddddocr-more" / "slide" / "0002_gap.png").read_bytes()
SLIDE_FULL = (FIXTURES / "ddddocr-more" / "slide" / "0002_full.png").read_bytes()
# A click-in-order captcha and the image of its hint.
CLICK_IN_ORDER = (FIXTURES / "beyond" / "click" / "0002.jpg").read_bytes()
CLICK_HINT = (FIXTURES / "beyond" / "click" / "0002_hint.png").read_bytes()



class Images:
    """An operation's image fields, the image each gets, and how its multipart form carries
    them (file parts, or base64 text like the other encodings)."""

    def __init__(self, fields, raw_body=None, multipart_files=True):
        self.fields = fields
        self.raw_body = raw_body
        self.multipart_files = multipart_files


IMAGES = {
    "POST /v2/decode/upload-base64": Images(
        {"file": TEXT_CAPTCHA, "image": TEXT_CAPTCHA}, multipart_files=False
    ),
    "POST /v2/decode/upload": Images(
        {"file": TEXT_CAPTCHA, "image": TEXT_CAPTCHA}, raw_body=TEXT_CAPTCHA
    ),
    "POST /v2/decode/detect": Images(
        {"file": CLICK_CAPTCHA, "image": CLICK_CAPTCHA}, raw_body=CLICK_CAPTCHA
    ),
    "POST /v2/decode/slide": Images({"target": SLIDE_GAP, "background": SLIDE_FULL}),
    "POST /v2/decode/click": Images(
        {"file": CLICK_IN_ORDER, "image": CLICK_IN_ORDER, "hint_image": CLICK_HINT},
        raw_body=CLICK_IN_ORDER,
    ),
}

# Schema-valid requests the server may refuse for reasons outside the request's shape, by
# contract code; for 1001 (shared with malformed requests) only with these messages.
STATE_OR_CONTENT_CODES = {
    2001,  # not enough points: the caller's balance
    3002,  # image larger than max_image_bytes (a server setting)
    3003,  # bytes that are not a decodable image
    3004,  # image dimensions out of bounds (a server setting)
    3005,  # a model that is not installed on this server
    3006,  # colour names and HSV ranges: the descriptions say which, the schemas cannot
    3007,  # slide images whose sizes do not fit the mode
    3101,  # a model's charsets.json that is not dddd_trainer's (its content)
    3102,  # a model's ONNX file that does not load (its content)
    3103,  # a model whose input does not fit its charsets.json (their content)
    3104,  # a model whose output does not fit its charsets.json (their content)
    3105,  # a model that fails on a blank image (its content)
    3106,  # a model name the caller (or a public model) has already
    3107,  # the caller's models at their count or bytes limit
    5005,  # no answer the request allows in the pixels (math, constraints, a click hint)
}
STATE_MESSAGES_1001 = (
    "no such user",
    "username already exists",
    "balance would overflow",
    "the balance would pass",  # the bound on a balance, 2^53 - 1 points
)


# The run's MCP session and the version it was opened at (tests/api_description.rs).
MCP_SESSION = os.environ.get("AIOCR_ST_MCP_SESSION")
MCP_VERSION = os.environ.get("AIOCR_ST_MCP_VERSION")
MCP_URL = os.environ.get("AIOCR_ST_MCP_URL")
MCP_TOKEN = os.environ.get("AIOCR_ST_MCP_TOKEN")


@schemathesis.hook
def map_case(context, case):
    if case.operation.label == "POST /mcp":
        return _in_the_runs_session(case)
    if case.operation.label == "DELETE /mcp":
        return _ending_a_new_session(case)
    images = IMAGES.get(case.operation.label)
    if images is None or case.meta is None or not case.meta.generation.mode.is_positive:
        return case
    if isinstance(case.body, dict):
        as_files = images.multipart_files and case.media_type == "multipart/form-data"
        for field, image in images.fields.items():
            if field in case.body:
                case.body[field] = image if as_files else base64.b64encode(image).decode()
    elif images.raw_body is not None and case.body:
        case.body = images.raw_body
    # The case stays the schema-valid case it was generated as: without this, schemathesis
    # would validate the edited body again, and it takes any bytes for invalid (it cannot
    # validate binary data), so that the case would count as schema-violating.
    case._record_starting_state()
    return case


@schemathesis.hook
def filter_failure(context, failure, case, response):
    if getattr(failure, "code", None) != "ST202":
        return True
    return not _refused_for_state_or_content(response)


def _refused_for_state_or_content(response):
    try:
        answer = json.loads(response.content)
    except ValueError:
        return False
    code = answer.get("code") if isinstance(answer, dict) else None
    if code in STATE_OR_CONTENT_CODES:
        return True
    message = str(answer.get("msg", "")) if isinstance(answer, dict) else ""
    return code == 1001 and message.startswith(STATE_MESSAGES_1001)


def _in_the_runs_session(case):
    if case.meta is None or not case.meta.generation.mode.is_positive or not MCP_SESSION:
        return case
    if case.headers is None:
        case.headers = {}
    case.headers["Mcp-Session-Id"] = MCP_SESSION
    if "MCP-Protocol-Version" in case.headers:
        case.headers["MCP-Protocol-Version"] = MCP_VERSION
    # Still the schema-valid case it was generated as (see map_case).
    case._record_starting_state()
    return case


def _ending_a_new_session(case):
    if case.meta is None or not case.meta.generation.mode.is_positive or not MCP_URL:
        return case
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": MCP_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "schemathesis", "version": "1"},
        },
    }
    request = urllib.request.Request(
        MCP_URL,
        data=json.dumps(initialize).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {MCP_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        session = answer.headers["Mcp-Session-Id"]
    if case.headers is None:
        case.headers = {}
    case.headers["Mcp-Session-Id"] = session
    case._record_starting_state()
    return case
