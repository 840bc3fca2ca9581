"""Solves captcha images against aiocr with one of the official client libraries, exactly as
their users would (only the server address differs), and prints one line per image:
``FILE<TAB>TEXT``; then ``balance<TAB>AMOUNT`` as the library reads it, then, after reporting
the first answer as wrong through the library, ``reported<TAB>OK``.

Usage: solve.py CLIENT URL KEY FILE...
CLIENT: anticaptcha | capmonster | capsolver | 2captcha (the last needs an https URL and the
test CA in REQUESTS_CA_BUNDLE). With AIOCR_MODULE set, capmonster and capsolver ask for that
module (CapMonster's `CapMonsterModule`, CapSolver's `module`): aiocr runs the caller's model
of that name. With AIOCR_MATH=1, anticaptcha and 2captcha say the captchas are arithmetic
(`math=True`, `calc=1`).
"""

import asyncio
import base64
import os
import sys
from urllib.parse import urlparse

MATH = os.environ.get("AIOCR_MATH") == "1"


def anticaptcha(url, key, files):
    from python_anticaptcha import AnticaptchaClient, ImageToTextTask

    parsed = urlparse(url)
    client = AnticaptchaClient(key, host=parsed.netloc, use_ssl=parsed.scheme == "https")
    jobs = []
    for path in files:
        with open(path, "rb") as image:
            job = client.create_task(ImageToTextTask(image.read(), math=MATH or None))
        job.join(maximum_time=60)
        print(f"{path}\t{job.get_captcha_text()}", flush=True)
        jobs.append(job)
    print(f"balance\t{client.getBalance()}", flush=True)
    print(f"reported\t{'OK' if jobs[0].report_incorrect_image() else 'FAILED'}", flush=True)


def capmonster(url, key, files):
    from capmonstercloudclient import CapMonsterClient, ClientOptions
    from capmonstercloudclient.requests import ImageToTextRequest

    client = CapMonsterClient(options=ClientOptions(api_key=key, service_url=url))

    async def run():
        for path in files:
            with open(path, "rb") as image:
                request = ImageToTextRequest(
                    image_bytes=image.read(), module_name=os.environ.get("AIOCR_MODULE")
                )
            solution = await client.solve_captcha(request)
            print(f"{path}\t{solution['text']}", flush=True)
        balance = await client.get_balance()
        print(f"balance\t{balance['balance']}", flush=True)

    asyncio.run(run())
    print("reported\tOK (this library has no report call)", flush=True)


def capsolver_client(url, key, files):
    import capsolver

    capsolver.api_key = key
    capsolver.api_base = url
    for path in files:
        with open(path, "rb") as image:
            body = base64.b64encode(image.read()).decode()
        task = {"type": "ImageToTextTask", "body": body}
        if os.environ.get("AIOCR_MODULE"):
            task["module"] = os.environ["AIOCR_MODULE"]
        solution = capsolver.solve(task)
        print(f"{path}\t{solution['text']}", flush=True)
    print(f"balance\t{capsolver.balance()['balance']}", flush=True)
    print("reported\tOK (this library has no report call)", flush=True)


def twocaptcha(url, key, files):
    from twocaptcha import TwoCaptcha

    solver = TwoCaptcha(key, server=urlparse(url).netloc, pollingInterval=1)
    ids = []
    for path in files:
        result = solver.normal(path, calc=1) if MATH else solver.normal(path)
        print(f"{path}\t{result['code']}", flush=True)
        ids.append(result["captchaId"])
    print(f"balance\t{solver.balance()}", flush=True)
    solver.report(ids[0], False)
    print("reported\tOK", flush=True)


def twocaptcha_coordinates(url, key, pairs):
    """Click captchas: FILE HINT pairs, `coordinates(file, textinstructions=HINT)`; prints
    ``FILE<TAB>CODE`` (2captcha's `coordinates:x=..,y=..;...`)."""
    from twocaptcha import TwoCaptcha

    solver = TwoCaptcha(key, server=urlparse(url).netloc, pollingInterval=1)
    for path, hint in zip(pairs[0::2], pairs[1::2]):
        result = solver.coordinates(path, textinstructions=hint)
        print(f"{path}\t{result['code']}", flush=True)


def anticaptchaofficial_coordinates(url, key, pairs):
    """Click captchas: FILE HINT pairs through anticaptchaofficial's `imagetocoordinates`
    (anti-captcha's ImageToCoordinatesTask), the characters to click in `set_comment`;
    prints ``FILE<TAB>COORDINATES`` (JSON, `points` mode) and, for the first file,
    ``rectangles<TAB>COORDINATES``. The library posts to https://api.anti-captcha.com/<method>
    through its module's `requests` session: a transport adapter mounted on that session for
    that address sends the requests to `url` instead (requests' own way to route a prefix)."""
    import json

    import requests
    from anticaptchaofficial import antinetworking
    from anticaptchaofficial.imagetocoordinates import imagetocoordinates

    class ToThisServer(requests.adapters.HTTPAdapter):
        def send(self, request, **kwargs):
            request.url = request.url.replace("https://api.anti-captcha.com", url, 1)
            return super().send(request, **kwargs)

    antinetworking.session.mount("https://api.anti-captcha.com/", ToThisServer())
    for index, (path, hint) in enumerate(zip(pairs[0::2], pairs[1::2])):
        modes = ["points", "rectangles"] if index == 0 else ["points"]
        for mode in modes:
            solver = imagetocoordinates()
            solver.set_key(key)
            solver.set_mode(mode)
            solver.set_comment(hint)
            coordinates = solver.solve_and_return_solution(path)
            if coordinates == 0:
                raise SystemExit(f"{path}: {solver.err_string}")
            name = path if mode == "points" else "rectangles"
            print(f"{name}\t{json.dumps(coordinates)}", flush=True)


CLIENTS = {
    "anticaptcha": anticaptcha,
    "capmonster": capmonster,
    "capsolver": capsolver_client,
    "2captcha": twocaptcha,
    "2captcha-coordinates": twocaptcha_coordinates,
    "anticaptchaofficial-coordinates": anticaptchaofficial_coordinates,
}

if __name__ == "__main__":
    client, url, key, *files = sys.argv[1:]
    CLIENTS[client](url, key, files)
