// One streamed Anthropic messages call with Bun's own fetch (BoringSSL inside Bun).
const base = process.env.ANTHROPIC_BASE_URL;
const res = await fetch(`${base}/v1/messages`, {
  method: "POST",
  headers: {
    "content-type": "application/json",
    "x-api-key": process.env.ANTHROPIC_API_KEY,
    "anthropic-version": "2023-06-01",
  },
  body: JSON.stringify({
    model: "claude-sonnet-4-5",
    max_tokens: 64,
    stream: true,
    messages: [{ role: "user", content: "say hello in six words" }],
  }),
});
const text = await res.text();
const deltas = text.split("\n").filter((l) => l.startsWith("data: ")).length;
console.log(JSON.stringify({ status: res.status, events: deltas }));
