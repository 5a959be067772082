"""Integration check of `lowrank serve` with the official `openai` client and curl (run by the
Swift test `ServeTests`, which starts the server). Usage:
    check_server.py BASE_URL MODEL_NAME EXPECTED_CHAT EXPECTED_COMPLETION CONTEXT
EXPECTED_CHAT is `lowrank generate MODEL --chat --prompt "Say something." --max-tokens 16` (greedy);
EXPECTED_COMPLETION is `lowrank generate MODEL --prompt "Once upon" --max-tokens 8`. Exits non-zero
with a message on the first failed check; prints one line per check."""
import http.client, json, subprocess, sys, urllib.parse
import openai

base, model_name, expected_chat, expected_completion, context = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
host = urllib.parse.urlparse(base)
client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=120)
failures = []


def check(name, condition, detail=""):
    print(("ok   " if condition else "FAIL ") + name + ("" if condition else f": {detail}"), flush=True)
    if not condition:
        failures.append(name)


# The official client, non-streamed and streamed, against `lowrank generate`'s greedy output.
chat = client.chat.completions.create(model=model_name, messages=[{"role": "user", "content": "Say something."}], max_tokens=16, temperature=0)
check("chat: greedy reply equals lowrank generate", chat.choices[0].message.content == expected_chat,
      f"{chat.choices[0].message.content!r} != {expected_chat!r}")
check("chat: usage and finish_reason", chat.usage.completion_tokens >= 1 and chat.usage.total_tokens == chat.usage.prompt_tokens
      + chat.usage.completion_tokens and chat.choices[0].finish_reason in ("stop", "length") and chat.object == "chat.completion", str(chat))
pieces, finish, usage = [], None, None
for chunk in client.chat.completions.create(model=model_name, messages=[{"role": "user", "content": "Say something."}], max_tokens=16,
                                            temperature=0, stream=True, stream_options={"include_usage": True}):
    if chunk.usage:
        usage = chunk.usage
    for choice in chunk.choices:
        pieces.append(choice.delta.content or "")
        finish = choice.finish_reason or finish
check("chat stream: deltas join to the same reply", "".join(pieces) == expected_chat, f"{''.join(pieces)!r} != {expected_chat!r}")
check("chat stream: finish_reason and usage chunk", finish in ("stop", "length") and usage is not None
      and usage.completion_tokens == chat.usage.completion_tokens, f"{finish} {usage}")
completion = client.completions.create(model=model_name, prompt="Once upon", max_tokens=8, temperature=0)
check("completions: greedy text equals lowrank generate", completion.choices[0].text == expected_completion,
      f"{completion.choices[0].text!r} != {expected_completion!r}")
models = client.models.list()
check("models: lists the served model", [m.id for m in models.data] == [model_name], str(models))

# curl, as a shell user would.
out = subprocess.run(["curl", "-s", base + "/v1/chat/completions", "-H", "Content-Type: application/json", "-d",
                      json.dumps({"messages": [{"role": "user", "content": "Say something."}], "max_tokens": 16, "temperature": 0})],
                     capture_output=True, text=True, check=True).stdout
check("curl: chat completion", json.loads(out)["choices"][0]["message"]["content"] == expected_chat, out[:300])
out = subprocess.run(["curl", "-sN", base + "/v1/chat/completions", "-H", "Content-Type: application/json", "-d",
                      json.dumps({"messages": [{"role": "user", "content": "Say something."}], "max_tokens": 4, "stream": True})],
                     capture_output=True, text=True, check=True).stdout
events = [line for line in out.split("\n") if line.startswith("data: ")]
check("curl: server-sent events end with [DONE]", len(events) >= 2 and events[-1] == "data: [DONE]", out[-300:])
health = subprocess.run(["curl", "-s", base + "/health"], capture_output=True, text=True, check=True).stdout
check("curl: health", json.loads(health)["status"] == "ok", health)


def raw(path, body, content_type="application/json"):
    connection = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
    connection.request("POST", path, body=body, headers={"Content-Type": content_type})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def expect_error(name, path, body, status, fragment, param=None):
    code, data = raw(path, body)
    try:
        error = json.loads(data)["error"]
        shaped = isinstance(error["message"], str) and "type" in error and "param" in error and "code" in error
    except Exception as exc:  # noqa: BLE001 - reported as the failure
        error, shaped = {"message": f"unreadable body {data[:200]!r} ({exc})"}, False
    ok = code == status and shaped and fragment in error["message"] and (param is None or error.get("param") == param)
    check(f"bad input: {name} -> {status}", ok, f"{code} {error}")
    # The server keeps serving.
    connection = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
    connection.request("GET", "/health")
    check(f"bad input: {name}: /health still answers", connection.getresponse().status == 200)
    connection.close()


user = [{"role": "user", "content": "hi"}]
expect_error("malformed JSON", "/v1/chat/completions", b'{"messages": [', 400, "not valid JSON")
expect_error("wrong type", "/v1/chat/completions", json.dumps({"messages": user, "max_tokens": "ten"}), 400, "max_tokens must be an integer", "max_tokens")
expect_error("unknown role", "/v1/chat/completions", json.dumps({"messages": [{"role": "wizard", "content": "x"}]}), 400, "'wizard'", "messages[0].role")
expect_error("empty messages", "/v1/chat/completions", json.dumps({"messages": []}), 400, "must not be empty", "messages")
expect_error("prompt longer than the context", "/v1/chat/completions",
             json.dumps({"messages": [{"role": "user", "content": "word " * (2 * context)}]}), 400, f"context is {context} tokens")
expect_error("over-large body", "/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "x" * (2 << 20)}]}), 413, "larger than")
expect_error("completion without a prompt", "/v1/completions", json.dumps({"max_tokens": 3}), 400, "prompt is required", "prompt")

if failures:
    print(f"{len(failures)} check(s) failed: {failures}", file=sys.stderr)
    sys.exit(1)
print("all checks passed")
