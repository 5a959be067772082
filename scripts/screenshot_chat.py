"""Screenshot of the chat page of a running `lowrank serve`, mid-conversation, in headless Chromium
(Debian's `chromium`), driven over the DevTools protocol (pip `websocket-client`). It types a first
message, waits for the streamed reply, sends a second one and captures the page while that reply
is still streaming. A documentation tool, not part of the product or its tests.
Usage: screenshot_chat.py BASE_URL OUT.png [first message] [second message]"""
import json, subprocess, sys, tempfile, time, urllib.request
import websocket

base, out = sys.argv[1], sys.argv[2]
first = sys.argv[3] if len(sys.argv) > 3 else "What is a lighthouse for?"
second = sys.argv[4] if len(sys.argv) > 4 else "Write a short poem about one."
port = 9333
profile = tempfile.mkdtemp()
browser = subprocess.Popen(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", f"--remote-debugging-port={port}",
                            f"--user-data-dir={profile}", "--window-size=1100,800", "about:blank"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
            page = next(t for t in targets if t["type"] == "page")
            break
        except Exception:  # noqa: BLE001 - the browser is still starting
            time.sleep(0.2)
    ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=120)
    counter = [0]

    def call(method, **params):
        counter[0] += 1
        ws.send(json.dumps({"id": counter[0], "method": method, "params": params}))
        while True:
            message = json.loads(ws.recv())
            if message.get("id") == counter[0]:
                return message.get("result", {})

    def evaluate(expression):
        return call("Runtime.evaluate", expression=expression, returnByValue=True).get("result", {}).get("value")

    call("Emulation.setDeviceMetricsOverride", width=1100, height=800, deviceScaleFactor=1, mobile=False)
    call("Page.navigate", url=base + "/")
    time.sleep(2)

    def send(text):
        evaluate(f"document.getElementById('input').value = {json.dumps(text)}; document.getElementById('form').requestSubmit();")

    send(first)
    for _ in range(600):  # the first reply finishes (the send button comes back)
        time.sleep(0.2)
        if evaluate("!document.getElementById('send').disabled && document.querySelectorAll('.assistant').length == 1"):
            break
    send(second)
    for _ in range(300):  # mid-reply: some text streamed, not finished
        time.sleep(0.1)
        if evaluate("(document.querySelector('.assistant.pending') || {textContent: ''}).textContent.length > 60"):
            break
    shot = call("Page.captureScreenshot", format="png")
    import base64
    with open(out, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    print(f"wrote {out}")
finally:
    browser.terminate()
