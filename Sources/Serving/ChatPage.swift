/// The chat page served at `/`: one self-contained document (no external assets) that streams
/// replies from `/v1/chat/completions` and shows the model, its compression recipe and the live
/// tokens/s.
enum ChatPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lowrank chat</title>
<style>
  :root { --bg: #f6f7f9; --panel: #ffffff; --ink: #1d2330; --muted: #6b7280; --accent: #2f6fed; --user: #e8effd; --line: #e3e6eb; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--ink);
         display: flex; flex-direction: column; height: 100vh; }
  header { background: var(--panel); border-bottom: 1px solid var(--line); padding: 12px 20px; display: flex; gap: 16px; align-items: baseline; flex-wrap: wrap; }
  header h1 { font-size: 17px; margin: 0; }
  header .model { font-weight: 600; }
  header .meta { color: var(--muted); font-size: 13px; }
  #speed { margin-left: auto; font-variant-numeric: tabular-nums; color: var(--accent); font-weight: 600; font-size: 13px; }
  main { flex: 1; overflow-y: auto; padding: 20px; }
  .thread { max-width: 780px; margin: 0 auto; display: flex; flex-direction: column; gap: 12px; }
  .message { padding: 10px 14px; border-radius: 12px; white-space: pre-wrap; word-wrap: break-word; max-width: 85%; box-shadow: 0 1px 2px rgba(0,0,0,.04); }
  .user { background: var(--user); align-self: flex-end; }
  .assistant { background: var(--panel); border: 1px solid var(--line); align-self: flex-start; }
  .assistant.pending::after { content: "▍"; color: var(--accent); animation: blink 1s steps(2) infinite; }
  .stats { color: var(--muted); font-size: 12px; margin-top: 4px; }
  .error { color: #b42318; }
  @keyframes blink { 50% { opacity: 0; } }
  form { background: var(--panel); border-top: 1px solid var(--line); padding: 12px 20px; }
  .composer { max-width: 780px; margin: 0 auto; display: flex; gap: 8px; align-items: flex-end; }
  textarea { flex: 1; resize: none; border: 1px solid var(--line); border-radius: 10px; padding: 10px 12px; font: inherit; min-height: 44px; max-height: 160px; }
  textarea:focus { outline: 2px solid var(--accent); border-color: transparent; }
  button { background: var(--accent); color: white; border: 0; border-radius: 10px; padding: 10px 16px; font: inherit; font-weight: 600; cursor: pointer; }
  button:disabled { opacity: .5; cursor: default; }
  .settings { max-width: 780px; margin: 6px auto 0; color: var(--muted); font-size: 12px; display: flex; gap: 14px; }
  .settings input { width: 64px; }
  details { font-size: 12px; color: var(--muted); }
  details pre { white-space: pre-wrap; background: var(--bg); padding: 8px; border-radius: 8px; max-height: 240px; overflow: auto; }
</style>
</head>
<body>
<header>
  <h1>lowrank</h1>
  <span class="model" id="model">…</span>
  <span class="meta" id="recipe"></span>
  <span id="speed"></span>
</header>
<main id="scroller"><div class="thread" id="thread"></div></main>
<form id="form">
  <div class="composer">
    <textarea id="input" rows="1" placeholder="Ask something…" autofocus></textarea>
    <button id="send" type="submit">Send</button>
  </div>
  <div class="settings">
    <label>temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="0.7"></label>
    <label>max tokens <input id="maxTokens" type="number" min="1" step="1" value="256"></label>
    <a href="#" id="clear">new chat</a>
  </div>
</form>
<script>
const thread = document.getElementById("thread"), scroller = document.getElementById("scroller");
const input = document.getElementById("input"), send = document.getElementById("send"), speed = document.getElementById("speed");
const history = [];
function describe(info) {
  document.getElementById("model").textContent = info.model;
  const r = info.recipe;
  let text = r ? `${r.method} · ${(100 * r.removedFraction).toFixed(0)}% of projection parameters removed · ${r.allocation} allocation`
               : "dense (uncompressed)";
  text += ` · ${info.weights} weights · context ${info.context}`;
  if (info.rank_schedule) text += ` · rank schedule ${info.rank_schedule}`;
  document.getElementById("recipe").textContent = text;
}
fetch("/lowrank/info").then(r => r.json()).then(describe).catch(() => {});
function bubble(role, text) {
  const div = document.createElement("div");
  div.className = "message " + role;
  div.textContent = text;
  thread.appendChild(div);
  scroller.scrollTop = scroller.scrollHeight;
  return div;
}
input.addEventListener("keydown", e => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); document.getElementById("form").requestSubmit(); } });
input.addEventListener("input", () => { input.style.height = "auto"; input.style.height = input.scrollHeight + "px"; });
document.getElementById("clear").addEventListener("click", e => { e.preventDefault(); history.length = 0; thread.innerHTML = ""; speed.textContent = ""; });
document.getElementById("form").addEventListener("submit", async e => {
  e.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  input.value = ""; input.style.height = "auto";
  history.push({ role: "user", content: text });
  bubble("user", text);
  const out = bubble("assistant pending", "");
  send.disabled = true;
  let reply = "", tokens = 0, first = null;
  try {
    const response = await fetch("/v1/chat/completions", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ messages: history, stream: true, stream_options: { include_usage: true },
                             temperature: Number(document.getElementById("temperature").value),
                             max_tokens: Number(document.getElementById("maxTokens").value) }) });
    if (!response.ok) { const body = await response.json(); throw new Error(body.error ? body.error.message : response.statusText); }
    const reader = response.body.getReader(), decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const line = buffer.slice(0, cut).trim(); buffer = buffer.slice(cut + 2);
        if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
        const chunk = JSON.parse(line.slice(6));
        if (chunk.usage) tokens = chunk.usage.completion_tokens;
        const piece = chunk.choices.length ? (chunk.choices[0].delta.content || "") : "";
        if (piece) {
          if (first === null) first = performance.now();
          reply += piece;
          out.textContent = reply;
          const seconds = (performance.now() - first) / 1000;
          const pieces = reply.length ? (out.dataset.pieces = (Number(out.dataset.pieces || 0) + 1)) : 0;
          if (seconds > 0.2) speed.textContent = `${(pieces / seconds).toFixed(1)} tokens/s`;
          scroller.scrollTop = scroller.scrollHeight;
        }
      }
    }
    history.push({ role: "assistant", content: reply });
    const seconds = first === null ? 0 : (performance.now() - first) / 1000;
    const rate = tokens > 1 && seconds > 0 ? (tokens - 1) / seconds : 0;
    if (rate) speed.textContent = `${rate.toFixed(1)} tokens/s`;
    const stats = document.createElement("div");
    stats.className = "stats";
    stats.textContent = `${tokens} tokens` + (rate ? ` · ${rate.toFixed(1)} tokens/s` : "");
    out.appendChild(stats);
  } catch (error) {
    out.classList.add("error");
    out.textContent = "Error: " + error.message;
    history.pop();
  } finally {
    out.classList.remove("pending");
    send.disabled = false;
    input.focus();
  }
});
</script>
</body>
</html>
"""#
}
