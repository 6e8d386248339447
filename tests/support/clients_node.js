// Node driver for tests/support/clients_raw.py: one call with Node's built-in fetch
// (undici), trusting the stand-in CA through NODE_EXTRA_CA_CERTS.
// usage: node clients_node.js <chat|chat_stream|anthropic_stream> BASE_URL PROMPT HEADERS_JSON KEY
// Prints one JSON line: {node, status, model, usage}.
"use strict";

const [mode, baseUrl, prompt, extraJson, key] = process.argv.slice(2);
const extra = JSON.parse(extraJson || "{}");

function lastUsage(text, pick) {
  let model = null;
  let usage = null;
  for (const line of text.split("\n")) {
    if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
    const obj = JSON.parse(line.slice(6));
    const found = pick(obj);
    if (found.model) model = found.model;
    if (found.usage) usage = Object.assign(usage || {}, found.usage);
  }
  return { model, usage };
}

async function main() {
  let url;
  let headers;
  let body;
  if (mode === "anthropic_stream") {
    url = baseUrl + "/v1/messages";
    headers = { "x-api-key": key, "anthropic-version": "2023-06-01", "content-type": "application/json" };
    body = { model: "claude-sonnet-4-5", max_tokens: 64, stream: true,
             messages: [{ role: "user", content: prompt }] };
  } else {
    url = baseUrl + "/v1/chat/completions";
    headers = { Authorization: "Bearer " + key, "Content-Type": "application/json" };
    body = { model: "gpt-4o-mini", messages: [{ role: "user", content: prompt }] };
    if (mode === "chat_stream") {
      body.stream = true;
      body.stream_options = { include_usage: true };
    }
  }
  Object.assign(headers, extra);
  const res = await fetch(url, { method: "POST", headers, body: JSON.stringify(body) });
  const text = await res.text();
  let out;
  if (mode === "chat") {
    const obj = JSON.parse(text);
    out = { model: obj.model, usage: obj.usage };
  } else if (mode === "chat_stream") {
    out = lastUsage(text, (o) => ({ model: o.model, usage: o.usage }));
  } else {
    // message_start carries input and cache counts, message_delta the final output count.
    out = lastUsage(text, (o) => o.type === "message_start"
      ? { model: o.message.model, usage: o.message.usage }
      : { usage: o.type === "message_delta" ? o.usage : null });
  }
  console.log(JSON.stringify({ node: process.version, status: res.status, ...out }));
}

main().catch((err) => {
  console.error(String(err && err.stack || err));
  process.exit(1);
});
