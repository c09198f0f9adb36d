"""`vclip-run caption` against local HTTP servers (loopback only) that speak the OpenAI chat-completions protocol
and check every request: the frame requests carry the captioning prompt and a JPEG data URL of the right size
(decoded with Pillow), the LLM requests carry the paper's system and user prompts with the frame captions in
order, the model names, and the API key as a Bearer token (which never appears in the output).  No llama.cpp
server can be installed here (no registry package ships its binary; building it from source is out of CI's
budget), so these servers stand in for the image captioner and the LLM: their answers are a function of what
they were sent, so the output can be checked line by line.

Faults: a 429 before success, an answer that hangs past --timeout, a connection dropped mid-answer, a server
that refuses every summary (reported per video, run finishes), an unreadable video, and a run killed halfway
then restarted (every video exactly once, no torn line).  The output feeds `vclip-run train --captions`."""
import base64
import hashlib
import io
import json
import os
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from conftest import BUILDS, CACHE_DIR, ROOT, Fixture, assert_clean_exit, run_tool

VIDEOS = os.path.join(ROOT, "tests", "fixtures", "videos")
CLIPS = ["arm_wrestling.mp4", "cleaning_pool.mp4", "apply_eye_makeup.avi", "flipping_pancake.mkv"]
SYSTEM = "Always answer in one sentence."
HEAD = "Input: These are captions of the frames in a sequential order within the same video: "
TAIL = ". Please summarize the whole video according to the frame captions in short. Output: The video shows"
KEY = "sk-test-0123456789"


class Server:
    """One server for both roles (told apart by the model name), with a fault mode."""

    def __init__(self, fault=None, delay=0.0):
        self.fault, self.delay, self.lock = fault, delay, threading.Lock()
        self.requests, self.errors, self.seen = [], [], {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def reply(self, h, status, obj, extra=()):
        body = json.dumps(obj).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def check(self, cond, what):
        if not cond:
            self.errors.append(what)

    def handle(self, h):
        body = h.rfile.read(int(h.headers["Content-Length"]))
        req = json.loads(body)
        key = hashlib.sha1(body).hexdigest()
        with self.lock:
            self.requests.append(req)
            first = key not in self.seen
            self.seen[key] = self.seen.get(key, 0) + 1
        self.check(h.path == "/v1/chat/completions", f"path {h.path}")
        self.check(h.headers.get("Authorization") == f"Bearer {KEY}", "no Bearer key")
        self.check(req.get("temperature") == 0 and req.get("max_tokens", 0) > 0, "sampling fields")
        if self.delay:
            time.sleep(self.delay)
        if first and self.fault == "429":
            return self.reply(h, 429, {"error": "slow down"}, [("Retry-After", "0")])
        if first and self.fault == "hang":
            time.sleep(3)  # past the client's --timeout 1
            return self.reply(h, 200, {"choices": [{"message": {"content": "too late"}}]})
        if first and self.fault == "drop":
            h.send_response(200)
            h.send_header("Content-Length", "400")
            h.end_headers()
            h.wfile.write(b'{"choices": [{"mess')
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(2)
            return
        msgs = req["messages"]
        if req["model"] == "captioner":
            self.check(len(msgs) == 1 and msgs[0]["role"] == "user", "frame request shape")
            parts = msgs[0]["content"]
            self.check(parts[0] == {"type": "text", "text": "Write a short caption for this image."}, f"frame prompt {parts[0]}")
            url = parts[1]["image_url"]["url"]
            self.check(parts[1]["type"] == "image_url" and url.startswith("data:image/jpeg;base64,"), "image part")
            img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
            self.check(img.format == "JPEG" and img.size == (64, 64), f"image {img.format} {img.size}")
            mean = float(np.asarray(img.convert("L"), np.float64).mean())
            return self.reply(h, 200, {"choices": [{"message": {"role": "assistant", "content": f" a frame of brightness {mean:.0f}.\n"}}]})
        self.check(req["model"] == "summarizer", f"model {req['model']}")
        self.check(msgs[0] == {"role": "system", "content": SYSTEM}, "system prompt")
        user = msgs[1]["content"]
        self.check(user.startswith(HEAD) and user.endswith(TAIL), "user prompt")
        if self.fault == "refuse":
            return self.reply(h, 400, {"error": {"message": "context length exceeded"}})
        inner = user[len(HEAD):-len(TAIL)]
        return self.reply(h, 200, {"choices": [{"message": {"content": f"the summary of <{inner}>"}}]})


@pytest.fixture
def server(request):
    s = Server(*getattr(request, "param", (None,)))
    yield s
    s.close()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Twelve list entries (links to the four clips) and one unreadable file."""
    d = tmp_path_factory.mktemp("videos")
    rows = []
    for k in range(3):
        for i, c in enumerate(CLIPS):
            name = f"v{k}_{c}"
            os.symlink(os.path.join(VIDEOS, c), d / name)
            rows.append(f"{name},{i}")
    (d / "list.csv").write_text("\n".join(rows) + "\n")
    (d / "broken.mp4").write_bytes(b"not a video at all")
    (d / "with_broken.csv").write_text(f"{rows[0]}\nbroken.mp4,1\n{rows[1]}\n")
    return d


def caption_args(videos, srv, out, *extra, listname="list.csv"):
    return ["caption", "--list", videos / listname, "--root", videos, "--frame-server", srv.url, "--frame-model", "captioner",
            "--llm-server", srv.url + "/chat/completions", "--llm-model", "summarizer", "-o", out, "--frames", "4", "--size", "64",
            "--quiet", *extra]


def run_caption(args, timeout=300):
    return run_tool("opt", "vclip-run", *args, timeout=timeout, env_extra={"OPENAI_API_KEY": KEY})


def lines(path):
    return [json.loads(l) for l in open(path)]


def check_lines(rows, srv, want_videos):
    assert sorted(r["video"] for r in rows) == sorted(want_videos), "every video exactly once"
    for r in rows:
        assert len(r["frame_captions"]) == 4 and all(c.startswith("a frame of brightness ") for c in r["frame_captions"])
        joined = ". ".join(c.rstrip(".") for c in r["frame_captions"])
        assert r["caption"] == f"the summary of <{joined}>", "the LLM got the frame captions in order"
    assert not srv.errors, srv.errors


def test_captions_every_video(videos, server, tmp_path):
    out = tmp_path / "caps.jsonl"
    p = run_caption(caption_args(videos, server, out, "--concurrency", "3"))
    assert p.returncode == 0, p.stderr
    rows = lines(out)
    check_lines(rows, server, [l.split(",")[0] for l in (videos / "list.csv").read_text().split()])
    assert len(server.requests) == 12 * 5
    assert KEY not in p.stdout + p.stderr
    # links to the same clip get the same captions: the answers follow the frames sent
    by_clip = {}
    for r in rows:
        by_clip.setdefault(r["video"].split("_", 1)[1], set()).add(r["caption"])
    assert all(len(v) == 1 for v in by_clip.values()) and len(by_clip) == 4
    # the output trains: vclip-run train --captions reads it
    (tmp_path / "classes.txt").write_text("arm wrestling\ncleaning pool\napply eye makeup\nflipping pancake\n")
    t = run_tool("opt", "vclip-run", "train", "--visual", Fixture("openai_visual_fullvocab").model, "--text-model",
                 Fixture("openai_text_fullvocab").model, "--classes", tmp_path / "classes.txt", "--captions", out, "--train-list",
                 videos / "list.csv", "--root", videos, "--batch", "4", "--epochs", "1", "--out", tmp_path / "run", "--quiet")
    assert t.returncode == 0, t.stderr


@pytest.mark.parametrize("server", [("429",), ("hang",), ("drop",)], indirect=True)
def test_retries_ride_out_faults(videos, server, tmp_path):
    out = tmp_path / "caps.jsonl"
    p = run_caption(caption_args(videos, server, out, "--timeout", "1", "--retries", "3", "--concurrency", "2",
                                 listname="with_broken.csv"))
    assert p.returncode == 1, p.stderr  # the unreadable video, reported; the others done
    assert "1 of 3 videos failed" in p.stderr and "broken.mp4" in p.stderr
    check_lines(lines(out), server, ["v0_arm_wrestling.mp4", "v0_cleaning_pool.mp4"])
    assert max(server.seen.values()) >= 2, "the faulty first answers were retried"


@pytest.mark.parametrize("server", [("refuse",)], indirect=True)
def test_refused_requests_are_reported_and_the_run_goes_on(videos, server, tmp_path):
    out = tmp_path / "caps.jsonl"
    p = run_caption(caption_args(videos, server, out, "--failures", tmp_path / "fail.jsonl"))
    assert_clean_exit(p)
    assert "12 of 12 videos failed" in p.stderr and "HTTP 400" in p.stderr and "context length exceeded" in p.stderr
    fails = lines(tmp_path / "fail.jsonl")
    assert len(fails) == 12 and all("HTTP 400" in f["error"] for f in fails)
    assert out.read_text() == ""
    assert sum(1 for r in server.requests if r["model"] == "summarizer") == 12, "a 400 is not retried"
    assert KEY not in p.stderr


def test_killed_halfway_then_restarted(videos, tmp_path):
    srv = Server(delay=0.02)
    try:
        out = tmp_path / "caps.jsonl"
        args = caption_args(videos, srv, out, "--concurrency", "2")
        proc = subprocess.Popen([os.path.join(BUILDS["opt"], "vclip-run"), *map(str, args)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=dict(os.environ, VCLIP_CACHE_DIR=CACHE_DIR, OPENAI_API_KEY=KEY))
        deadline = time.time() + 120
        while proc.poll() is None and time.time() < deadline:
            if out.exists() and out.read_text().count("\n") >= 3:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, "the run finished before the kill"
        before = lines(out)
        assert 3 <= len(before) < 12
        with open(out, "a") as f:
            f.write('{"video": "v2_flipping_pancake.mkv", "capt')  # as a kill mid-write would leave it
        p = run_caption([*(a for a in args if a != "--quiet"), "--resume"])  # not --quiet: it says what it resumes
        assert p.returncode == 0, p.stderr
        assert "dropping a torn last line" in p.stderr and f"{len(before)} of 12 videos are already in" in p.stderr
        rows = lines(out)
        assert rows[: len(before)] == before
        check_lines(rows, srv, [l.split(",")[0] for l in (videos / "list.csv").read_text().split()])
    finally:
        srv.close()


def test_bad_options_are_refused(videos, tmp_path, server):
    for extra, want in [(["--summary-prompt", "no placeholder"], "exactly one {}"), (["--frames", "0"], "bad value")]:
        p = run_caption(caption_args(videos, server, tmp_path / "o.jsonl", *extra))
        assert_clean_exit(p)
        assert want in p.stderr, p.stderr
    p = run_caption(caption_args(videos, server, tmp_path / "o.jsonl", listname="missing.csv"))
    assert_clean_exit(p)
    assert "missing.csv" in p.stderr


LLAMA_SERVER = os.path.join(ROOT, ".venv", "llama.cpp-0.3.36", "bin", "llama-server")


def test_summaries_from_a_real_llama_cpp_server(videos, server, tmp_path):
    """The text-summary step against llama.cpp's own server (built by tools/install-deps.sh from the llama.cpp that
    PyPI's llama-cpp-python sdist vendors) running a tiny random-weight Llama the test writes with the `gguf`
    package: the request goes through its OpenAI endpoint and chat template for real.  Its text is noise; the test
    checks that every video got the server's answer as its caption and the stand-in's frame captions.  The image
    step stays with the stand-in: a llama.cpp projector cannot be made tiny here."""
    import socket
    import sys
    if not os.path.exists(LLAMA_SERVER):  # install-deps builds it: its absence is a broken setup, not a reason to skip
        raise AssertionError(f"{LLAMA_SERVER} is missing: run tools/install-deps.sh")
    subprocess.run([sys.executable, os.path.join(ROOT, "tests", "make_tiny_gguf.py"), tmp_path / "tiny.gguf"], check=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    llama = subprocess.Popen([LLAMA_SERVER, "-m", tmp_path / "tiny.gguf", "--host", "127.0.0.1", "--port", str(port), "-c", "2048",
                              "-t", "1", "--no-webui"], stdout=subprocess.DEVNULL, stderr=open(tmp_path / "llama.log", "w"))
    try:
        import urllib.request
        deadline = time.time() + 60
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert llama.poll() is None and time.time() < deadline, (tmp_path / "llama.log").read_text()[-2000:]
            time.sleep(0.2)
        out = tmp_path / "caps.jsonl"
        args = caption_args(videos, server, out, "--concurrency", "2", "--max-tokens", "12", listname="with_broken.csv")
        args[args.index("--llm-server") + 1] = f"http://127.0.0.1:{port}/v1"
        p = run_caption(args)
        assert p.returncode == 1 and "1 of 3 videos failed" in p.stderr and "broken.mp4" in p.stderr, p.stderr
        rows = lines(out)
        assert sorted(r["video"] for r in rows) == ["v0_arm_wrestling.mp4", "v0_cleaning_pool.mp4"]
        for r in rows:
            assert r["caption"].strip() and len(r["frame_captions"]) == 4
        assert not server.errors, server.errors
        assert not [r for r in server.requests if r["model"] == "summarizer"], "summaries went to the stand-in, not llama.cpp"
        assert all(not r["caption"].startswith("the summary of <") for r in rows)
    finally:
        llama.terminate()
        llama.wait(timeout=30)
