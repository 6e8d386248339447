// bench/overhead.py's client inside Bun (static, stripped BoringSSL): times batches
// of socket.write calls (one SSL_write each) and a bulk download (SSL_read per record).
// Commands arrive as JSON lines on stdin; each answer is one JSON line on stdout.
import net from "node:net";
import fs from "node:fs";
import readline from "node:readline";

const [tlsPort, ctlPort, caPath] = process.argv.slice(2);
const ca = fs.readFileSync(caPath);
const HEALTH = (name) => `GET /health?conn=${name} HTTP/1.1\r\nHost: files.example.com\r\n\r\n`;
const conns = {};
const received = {};
const waiters = {};

const ctl = net.connect({ host: "127.0.0.1", port: Number(ctlPort) });
let ctlBuf = "";
let ctlWaiter = null;
ctl.on("data", (d) => {
  ctlBuf += d.toString();
  const nl = ctlBuf.indexOf("\n");
  if (nl >= 0 && ctlWaiter) {
    const line = ctlBuf.slice(0, nl);
    ctlBuf = ctlBuf.slice(nl + 1);
    const w = ctlWaiter;
    ctlWaiter = null;
    w(line);
  }
});

// Bun's own socket API: socket.write() is one SSL_write, synchronous, returning the
// bytes taken (node:tls's write buffers in JS first, which would time nothing).
function open(name) {
  return new Promise((resolve) => {
    let head = "";
    received[name] = 0;
    Bun.connect({
      hostname: "127.0.0.1",
      port: Number(tlsPort),
      tls: { ca, serverName: "localhost" },
      socket: {
        open(s) {
          s.setNoDelay?.(true);
          s.write(HEALTH(name));
        },
        data(s, d) {
          if (head !== null) {
            head += Buffer.from(d).toString("latin1");
            if (head.endsWith("ok")) {
              head = null;
              conns[name] = s;
              resolve();
            }
            return;
          }
          received[name] += d.length;
          const w = waiters[name];
          if (w && received[name] >= w.total) {
            delete waiters[name];
            w.resolve();
          }
        },
        drain(s) {
          const w = drains.get(s);
          if (w) {
            drains.delete(s);
            w();
          }
        },
      },
    });
  });
}

const drains = new Map();

async function writeBatch(size) {
  const s = conns[`sink-${size}`];
  const data = Buffer.alloc(size, 7);
  const n = Math.min(2000, Math.floor((8 << 20) / size));
  let short = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    if (s.write(data) < size) short++; // backpressure: the rest is buffered by Bun
  }
  const ns = Number(process.hrtime.bigint() - t0) / n;
  if (short) await new Promise((r) => drains.set(s, r));
  return ns;
}

async function bulk(mib) {
  const name = "src-bulk";
  const total = mib << 20;
  received[name] = 0;
  const done = new Promise((resolve) => (waiters[name] = { total, resolve }));
  ctl.write(JSON.stringify({ conn: name, records: total / 16384, size: 16384 }) + "\n");
  await new Promise((r) => (ctlWaiter = r)); // encrypted; the ciphertext follows at once
  const t0 = process.hrtime.bigint();
  await done;
  return mib / (Number(process.hrtime.bigint() - t0) / 1e9);
}

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  const cmd = JSON.parse(line);
  let out = null;
  if (cmd.op === "ping") out = `Bun ${Bun.version}`;
  else if (cmd.op === "open") {
    for (const name of cmd.names) await open(name);
    out = Object.keys(conns).length;
  } else if (cmd.op === "run") {
    out = {};
    for (const work of cmd.work) {
      const [kind, size] = work.split(" ");
      if (kind !== "write") continue;
      out[work] = [];
      for (let b = 0; b < cmd.batches; b++) out[work].push(await writeBatch(Number(size)));
    }
    out["bulk MiB/s"] = [await bulk(cmd.bulk_mib)];
  }
  console.log(JSON.stringify(out));
}
process.exit(0);
