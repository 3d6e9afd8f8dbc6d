"""Open pages of the built site in headless Chromium and check what a reader would see.

    python docs/check_site.py                        # docs/_build/html: the index, a tutorial, a paper page
    python docs/check_site.py BUILD_DIR --pages index.html comparison.html

For each page, served from a local HTTP server with every other host unreachable (so a CDN dependency fails here as
it would offline), it checks:

* math is rendered: MathJax was loaded from the site itself, every ``.math`` element holds an ``mjx-container``, no
  ``mjx-merror``, and no raw ``$$``, ``\\(`` or ``\\[`` is left in the visible text (code blocks excepted);
* every image loaded (``complete`` and ``naturalWidth > 0``);
* no console error, uncaught exception, failed request or request to another host.

It writes a full-page screenshot of each page to ``BUILD_DIR/_screenshots/`` (inside the build folder, never
committed) and ``report.json`` beside them, prints one line per page, and exits 1 if any check failed.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``): the standard library is all
it needs, no chromedriver and no browser download.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent
DEFAULT_BUILD = DOCS / "_build" / "html"
DEFAULT_PAGES = ("index.html", "tutorials/vae.html", "papers/ugvae.html")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # needed as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--mute-audio",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # nothing but the local server resolves
)
WIDTH, HEIGHT, MAX_SHOT_HEIGHT = 1280, 900, 16000

# Runs in the page after its load event; resolves to a JSON string of what it found.
PAGE_CHECKS = r"""
(async () => {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) { await mj.startup.promise; }
  const scripts = [...document.querySelectorAll('script[src]')].map(s => s.src);
  const mathjaxScripts = scripts.filter(s => /mathjax/i.test(s));
  const mathNodes = [...document.querySelectorAll('.math')];
  const untypeset = mathNodes.filter(n => !n.querySelector('mjx-container'))
                             .map(n => n.textContent.trim().slice(0, 80));
  const body = document.body.cloneNode(true);
  body.querySelectorAll('pre, code, script, style, mjx-container, .highlight').forEach(n => n.remove());
  const text = body.textContent;
  const raw = ['$$', '\\(', '\\[', '\\begin{'].filter(t => text.includes(t));
  const images = [...document.images].map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0,
                                                 naturalWidth: i.naturalWidth}));
  return JSON.stringify({
    title: document.title,
    mathjaxLoaded: typeof mj !== 'undefined' && !!(mj && mj.version),
    mathjaxVersion: mj && mj.version ? mj.version : null,
    mathjaxScripts, mathNodes: mathNodes.length,
    mjxContainers: document.querySelectorAll('mjx-container').length,
    mjxErrors: document.querySelectorAll('mjx-merror').length,
    untypeset, raw, images,
    height: Math.ceil(document.documentElement.scrollHeight),
  });
})()
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``root`` on an ephemeral port of 127.0.0.1 in a daemon thread; returns the server and its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (fd 3: commands in, fd 4: replies out)."""

    def __init__(self, executable: str, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="check-site-profile-")  # a fresh --user-data-dir
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire_pipes() -> None:  # in the child, before exec: its fd 3 reads our commands, fd 4 writes replies
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=wire_pipes,
            close_fds=False,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.stderr_tail: list[str] = []
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()
        self._messages: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._next_id = 0
        self.events: list[dict] = []

    def _drain_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr_tail = (self.stderr_tail + [line.decode(errors="replace").rstrip()])[-20:]

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                self._messages.put(None)
                return
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for m in messages:
                self._messages.put(json.loads(m))

    def _next(self, deadline: float) -> dict:
        try:
            msg = self._messages.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError("Chromium did not answer in time") from None
        if msg is None:
            raise RuntimeError("Chromium exited: " + " | ".join(self.stderr_tail[-5:]))
        return msg

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """One command; events that arrive meanwhile are kept in ``events``."""
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._next(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str) -> dict:
        """The first event ``method`` of ``session`` (already received or still to come)."""
        deadline = time.monotonic() + self.timeout
        for i, e in enumerate(self.events):
            if e.get("method") == method and e.get("sessionId") == session:
                return self.events.pop(i)
        while True:
            e = self._next(deadline)
            if e.get("method") == method and e.get("sessionId") == session:
                return e
            self.events.append(e)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        self._stderr_thread.join(timeout=5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)


def problems_in(events: list[dict], session: str, base: str) -> list[str]:
    """Console errors, exceptions, failed requests and requests to other hosts among a page's events."""
    found, urls = [], {}
    for e in events:
        if e.get("sessionId") != session:
            continue
        m, p = e.get("method"), e.get("params", {})
        if m == "Network.requestWillBeSent":
            url = p["request"]["url"]
            urls[p["requestId"]] = url
            if not url.startswith((base, "data:", "blob:", "about:")):
                found.append(f"request to another host: {url}")
        elif m == "Network.responseReceived" and p["response"]["status"] >= 400:
            if not p["response"]["url"].endswith("/favicon.ico"):
                found.append(f"HTTP {p['response']['status']}: {p['response']['url']}")
        elif m == "Network.loadingFailed" and not p.get("canceled"):
            url = urls.get(p["requestId"], "?")
            if not url.endswith("/favicon.ico"):
                found.append(f"request failed ({p.get('errorText')}): {url}")
        elif m == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            found.append("uncaught exception: " + d.get("exception", {}).get("description", d.get("text", "?")))
        elif m == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
            found.append(
                "console."
                + p["type"]
                + ": "
                + " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
            )
        elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
            if not p["entry"].get("url", "").endswith("/favicon.ico"):
                found.append(f"console error ({p['entry']['source']}): {p['entry']['text']}")
    return found


def check_page(browser: Chromium, base: str, page: str, shots: Path) -> dict:
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.send(f"{domain}.enable", session=session)
    browser.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
        session=session,
    )
    nav = browser.send("Page.navigate", {"url": base + page}, session=session)
    if nav.get("errorText"):
        raise RuntimeError(f"{page}: {nav['errorText']}")
    browser.wait_for("Page.loadEventFired", session)
    res = browser.send(
        "Runtime.evaluate", {"expression": PAGE_CHECKS, "awaitPromise": True, "returnByValue": True}, session=session
    )
    if "exceptionDetails" in res:
        raise RuntimeError(f"{page}: the checks themselves failed: {res['exceptionDetails']}")
    found = json.loads(res["result"]["value"])
    time.sleep(0.3)  # late console messages (fonts, MathJax's own loads)
    browser.send("Runtime.evaluate", {"expression": "1"}, session=session)  # flush pending events

    failures = problems_in(browser.events, session, base)
    if found["mathNodes"]:
        local = [s for s in found["mathjaxScripts"] if s.startswith(base)]
        if not found["mathjaxLoaded"] or not local:
            failures.append(f"MathJax not loaded from the site (scripts: {found['mathjaxScripts']})")
        if found["untypeset"]:
            failures.append(f"{len(found['untypeset'])} math element(s) not typeset, e.g. {found['untypeset'][0]!r}")
        if found["mjxErrors"]:
            failures.append(f"{found['mjxErrors']} MathJax error(s) (mjx-merror)")
    if found["raw"]:
        failures.append(f"raw TeX delimiters left in the text: {found['raw']}")
    failures += [f"image not loaded: {i['src']}" for i in found["images"] if not i["ok"]]

    height = min(max(found["height"], HEIGHT), MAX_SHOT_HEIGHT)
    browser.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False},
        session=session,
    )
    shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)
    png = shots / (page.replace("/", "_").removesuffix(".html") + ".png")
    png.write_bytes(base64.b64decode(shot["data"]))
    browser.send("Target.closeTarget", {"targetId": target})
    browser.events = [e for e in browser.events if e.get("sessionId") != session]
    return {
        "page": page,
        "title": found["title"],
        "math_elements": found["mathNodes"],
        "mjx_containers": found["mjxContainers"],
        "mathjax_version": found["mathjaxVersion"],
        "mathjax_scripts": found["mathjaxScripts"],
        "images": len(found["images"]),
        "images_loaded": sum(i["ok"] for i in found["images"]),
        "screenshot": str(png),
        "page_height": found["height"],
        "failures": failures,
    }


def find_chromium() -> str | None:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def check_site(build: Path, pages=DEFAULT_PAGES, chromium: str | None = None) -> list[dict]:
    """Check ``pages`` of the site built in ``build``; returns one result per page (see the module docstring)."""
    build = Path(build)
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("no Chromium found (looked for /usr/bin/chromium, chromium, chromium-browser)")
    missing = [p for p in pages if not (build / p).is_file()]
    if missing:
        raise FileNotFoundError(f"not in {build}: {', '.join(missing)} (build the site first)")
    shots = build / "_screenshots"
    shots.mkdir(exist_ok=True)
    server, base = serve(build)
    browser = Chromium(chromium)
    try:
        results = [check_page(browser, base, p, shots) for p in pages]
    finally:
        browser.close()
        server.shutdown()
        server.server_close()
    (shots / "report.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", nargs="?", type=Path, default=DEFAULT_BUILD, help="the built site (index.html)")
    parser.add_argument("--pages", nargs="+", default=list(DEFAULT_PAGES), help="pages, relative to BUILD")
    parser.add_argument("--chromium", default=None, help="the browser (default: /usr/bin/chromium)")
    args = parser.parse_args()
    results = check_site(args.build, args.pages, args.chromium)
    for r in results:
        status = "ok" if not r["failures"] else "FAILED"
        print(
            f"{status:6} {r['page']}: {r['mjx_containers']} typeset math / {r['math_elements']} math elements, "
            f"{r['images_loaded']}/{r['images']} images loaded, screenshot {r['screenshot']}"
        )
        for f in r["failures"]:
            print(f"       - {f}")
    return 1 if any(r["failures"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
