"""Call the page's `classify` API over plain HTTP, with all pictures in one upload.

gradio_client uploads each file in a request of its own (a new connection each): 40 pictures cost about
3 s before any work starts. Gradio's upload route takes many files at once, so this client sends them
all in one request, then calls the endpoint with the server's paths (Gradio's HTTP API:
`POST /gradio_api/call/classify`, then the answer's event stream).

    python scripts/api_client.py http://127.0.0.1:7860/ --support a.png b.png --labels A,B --query c.png
"""
from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack
from pathlib import Path

import httpx


def upload(http: httpx.Client, paths: list[str]) -> list[str]:
    """All files in one request; their paths on the server, in order."""
    if not paths:
        return []
    with ExitStack() as stack:
        files = [("files", (Path(p).name, stack.enter_context(open(p, "rb")))) for p in paths]
        response = http.post("gradio_api/upload", files=files)
    response.raise_for_status()
    return response.json()


def classify(url: str, supports: list[str], labels: str, queries: list[str], steps: int = 5, maps: bool = False,
             http: httpx.Client | None = None) -> dict:
    """The API's JSON answer (classes, predictions, skipped, maps); raises RuntimeError with the server's message."""
    own = http is None
    http = http or httpx.Client(base_url=url, timeout=httpx.Timeout(10.0, read=300.0))
    try:
        server = upload(http, supports + queries)
        as_files = lambda paths: [{"path": p, "meta": {"_type": "gradio.FileData"}} for p in paths]
        call = http.post("gradio_api/call/classify", json={"data": [as_files(server[:len(supports)]), labels,
                                                                     as_files(server[len(supports):]), steps, maps]})
        call.raise_for_status()
        event, answer = None, None
        with http.stream("GET", f"gradio_api/call/classify/{call.json()['event_id']}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    answer = line[5:].strip()
                    break
        if event != "complete" or answer is None:
            raise RuntimeError(f"the server answered: {answer or event}")
        return json.loads(answer)[0]
    finally:
        if own:
            http.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--support", nargs="+", required=True, help="support pictures")
    parser.add_argument("--labels", required=True, help="one class name per support picture, comma-separated")
    parser.add_argument("--query", nargs="+", required=True, help="pictures to classify")
    parser.add_argument("--steps", type=int, default=5, help="fine-tuning steps of the student")
    parser.add_argument("--maps", action="store_true", help="also the maps' points")
    args = parser.parse_args()
    try:
        print(json.dumps(classify(args.url, args.support, args.labels, args.query, args.steps, args.maps), indent=1))
    except (RuntimeError, httpx.HTTPError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
