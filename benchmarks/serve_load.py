"""Load test of `lowrank serve` on loopback (issue 15): N concurrent streaming clients, each
sending R chat requests one after another (greedy, fixed max_tokens, ignoring nothing: a reply may
end early at a stop token), bounded by count and by a timeout. Reports, per N: aggregate generated
tokens/s over the wall time of the run, time to first token p50/p99 (from sending the request to the
first content chunk), and failed requests. Prints one JSON object per N, then a Markdown table.
Usage: serve_load.py BASE_URL [--clients 1,2,4,8] [--requests 3] [--max-tokens 64]"""
import argparse, http.client, json, statistics, threading, time, urllib.parse

parser = argparse.ArgumentParser()
parser.add_argument("base")
parser.add_argument("--clients", default="1,2,4,8")
parser.add_argument("--requests", type=int, default=3)
parser.add_argument("--max-tokens", type=int, default=64)
parser.add_argument("--timeout", type=float, default=600)
parser.add_argument("--endpoint", choices=["chat", "completions"], default="chat",
                    help="completions: plain-text prompts (a compressed instruct model may end a chat reply at once)")
args = parser.parse_args()
url = urllib.parse.urlparse(args.base)
PROMPTS = ["Tell me about the history of lighthouses.", "Explain how a bicycle works.", "Write a short poem about rain.",
           "What should I pack for a hiking trip?", "Describe a busy market in the morning.", "How do bees make honey?",
           "Give me three tips for learning a language.", "What is the water cycle?"]


def one_request(prompt, results):
    started = time.perf_counter()
    first, tokens, ok = None, 0, False
    try:
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=args.timeout)
        body = {"max_tokens": args.max_tokens, "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
        if args.endpoint == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt + "\n"
        path = "/v1/chat/completions" if args.endpoint == "chat" else "/v1/completions"
        connection.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        if response.status == 200:
            for raw in response:
                line = raw.decode().strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    ok = ok or line == "data: [DONE]"
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
                piece = (chunk["choices"][0].get("delta", {}).get("content") or chunk["choices"][0].get("text")) if chunk["choices"] else None
                if piece and first is None:
                    first = time.perf_counter() - started
        connection.close()
    except Exception as error:  # noqa: BLE001 - counted as a failed request
        print(f"request failed: {error}", flush=True)
    results.append({"ok": ok, "tokens": tokens, "ttft": first, "seconds": time.perf_counter() - started})


def run(clients):
    results = []
    def client(index):
        for r in range(args.requests):
            one_request(PROMPTS[(index + r) % len(PROMPTS)], results)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads: t.start()
    for t in threads: t.join()
    wall = time.perf_counter() - started
    ttfts = sorted(r["ttft"] for r in results if r["ttft"] is not None)
    def percentile(p):
        return ttfts[min(len(ttfts) - 1, int(round(p / 100 * (len(ttfts) - 1))))] if ttfts else float("nan")
    return {"clients": clients, "requests": len(results), "failed": sum(not r["ok"] for r in results),
            "generated_tokens": sum(r["tokens"] for r in results), "wall_seconds": round(wall, 2),
            "aggregate_tokens_per_second": round(sum(r["tokens"] for r in results) / wall, 2),
            "ttft_p50": round(percentile(50), 3), "ttft_p99": round(percentile(99), 3)}


rows = []
for n in [int(x) for x in args.clients.split(",")]:
    row = run(n)
    rows.append(row)
    print(json.dumps(row), flush=True)
base = rows[0]["aggregate_tokens_per_second"]
print("| clients | requests | failed | generated tokens | aggregate tokens/s | × one client | TTFT p50 | TTFT p99 |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    print(f"| {r['clients']} | {r['requests']} | {r['failed']} | {r['generated_tokens']} | {r['aggregate_tokens_per_second']:.1f} | "
          f"{r['aggregate_tokens_per_second'] / base:.2f} | {r['ttft_p50']:.2f} s | {r['ttft_p99']:.2f} s |")
