/**
 * Issue #9's compression attack, as a report: 100 uploads of ~1 MB JSON,
 * then 8 clients cycling `Accept-Encoding: br` / `gzip` over them while one
 * normal client fetches a small file, one request at a time. Prints the
 * normal client's latency alone and under attack, and the attackers' rate.
 *
 * deno run --allow-run --allow-read --allow-write --allow-net \
 *   bench/compression_attack.ts [--seconds 10] [--repo DIR]
 *
 * `--repo` runs another checkout's main.ts (e.g. the commit before the fix).
 */
import { join } from "node:path";
import { parseArgs } from "node:util";

const flags = parseArgs({
  args: Deno.args,
  options: { seconds: { type: "string" }, repo: { type: "string" } },
});
const SECONDS = Number(flags.values.seconds ?? "10");
const REPO = flags.values.repo ?? new URL("..", import.meta.url).pathname;
const DOCS = 100;
const ATTACKERS = 8;
/** Under the default --upload-max of 1 MiB. */
const DOC_BYTES = 990_000;
/** The engine closes a connection after 10,000 requests: reconnect first. */
const REQUESTS_PER_CONN = 5_000;

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** JSON that compresses about 3.7x, as real records do: no cache holds all 200 forms. */
function document(seed: number): string {
  const words = ["alpha", "beta", "gamma", "delta", "spindle", "server"];
  const items: string[] = [];
  for (let length = 0, x = seed; length < DOC_BYTES;) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const item = JSON.stringify({
      id: x % 100_000,
      name: `${words[x % words.length]}${x % 977}`,
      token: `${x.toString(36)}${((x * 7919) & 0xffffff).toString(16)}`,
    });
    items.push(item);
    length += item.length + 1;
  }
  return `[${items.join(",")}]`;
}

/** One keep-alive connection that sends a GET and reads its whole reply. */
class Client {
  #conn: Deno.TcpConn | undefined;
  #buf = new Uint8Array(1 << 21);
  #len = 0;
  #sent = 0;
  readonly #port: number;

  constructor(port: number) {
    this.#port = port;
  }

  async get(path: string, acceptEncoding?: string): Promise<void> {
    if (this.#conn === undefined || ++this.#sent % REQUESTS_PER_CONN === 0) {
      this.#conn?.close();
      this.#conn = await Deno.connect({ port: this.#port });
      this.#len = 0;
    }
    const ae = acceptEncoding ? `Accept-Encoding: ${acceptEncoding}\r\n` : "";
    await this.#conn.write(
      encoder.encode(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n${ae}\r\n`),
    );
    for (;;) {
      const head = latin1.decode(
        this.#buf.subarray(0, Math.min(this.#len, 4096)),
      );
      const end = head.indexOf("\r\n\r\n");
      if (end !== -1) {
        const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        const total = end + 4 + length;
        while (this.#len < total) await this.#fill();
        this.#buf.copyWithin(0, total, this.#len);
        this.#len -= total;
        return;
      }
      await this.#fill();
    }
  }

  async #fill(): Promise<void> {
    if (this.#buf.length - this.#len < 65_536) {
      const bigger = new Uint8Array(this.#buf.length * 2);
      bigger.set(this.#buf.subarray(0, this.#len));
      this.#buf = bigger;
    }
    const n = await this.#conn!.read(this.#buf.subarray(this.#len));
    if (n === null) throw new Error("Server closed the connection");
    this.#len += n;
  }

  close(): void {
    this.#conn?.close();
  }
}

/** Latencies in ms of back-to-back small requests for `ms`. */
async function normalClient(port: number, ms: number): Promise<number[]> {
  const client = new Client(port);
  const latencies: number[] = [];
  for (const until = performance.now() + ms; performance.now() < until;) {
    const t0 = performance.now();
    await client.get("/hello.txt");
    latencies.push(performance.now() - t0);
  }
  client.close();
  return latencies;
}

function summary(latencies: number[]): string {
  const sorted = latencies.toSorted((a, b) => a - b);
  const at = (p: number) =>
    sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
      .toFixed(2);
  return `${sorted.length} requests, p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, ` +
    `max ${sorted.at(-1)!.toFixed(1)} ms`;
}

const dir = await Deno.makeTempDir({ prefix: "spindle-attack-" });
const uploads = join(dir, "uploads");
await Deno.mkdir(uploads);
await Deno.writeTextFile(join(dir, "hello.txt"), "hello world\n");
const server = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "--unstable-net",
    "--allow-net",
    `--allow-read=${dir}`,
    `--allow-write=${uploads}`,
    join(REPO, "main.ts"),
    ...["--port", "0", "--root", dir, "--uploads", uploads, "--quiet"],
    ...["--upload-quota", "500m"],
  ],
  stdout: "piped",
}).spawn();
try {
  const lines = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let port = 0;
  for (let text = ""; port === 0;) {
    const { value, done } = await lines.read();
    if (done) throw new Error(`Server did not start: ${text}`);
    text += value;
    port = Number(/Listening on http:\/\/[^:]+:(\d+)\//.exec(text)?.[1] ?? 0);
  }
  (async () => {
    while (!(await lines.read()).done);
  })();

  const names: string[] = [];
  for (let i = 0; i < DOCS; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/upload`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: document(i + 1),
    });
    if (res.status !== 201) throw new Error(`Upload: ${res.status}`);
    names.push((await res.json()).file);
  }
  console.log(`${DOCS} uploads of ~${DOC_BYTES} bytes`);
  console.log(
    `normal client alone: ${summary(await normalClient(port, 5000))}`,
  );

  let stop = false;
  let served = 0;
  const attackers = Array.from({ length: ATTACKERS }, async (_, k) => {
    const client = new Client(port);
    // Each pass over the files flips the coding, so every file is asked
    // for in both: 200 forms, more than the compressed-form cache holds.
    for (let n = k * 13; !stop; n++) {
      const coding = (n + Math.floor(n / DOCS)) % 2 === 0 ? "br" : "gzip";
      await client.get(`/uploads/${names[n % DOCS]}`, coding);
      served++;
    }
    client.close();
  });
  const t0 = performance.now();
  const loaded = await normalClient(port, SECONDS * 1000);
  stop = true;
  await Promise.all(attackers);
  const rate = served / ((performance.now() - t0) / 1000);
  console.log(
    `${ATTACKERS} clients cycling br/gzip: ${rate.toFixed(0)} req/s served`,
  );
  console.log(`normal client under attack: ${summary(loaded)}`);
} finally {
  server.kill("SIGTERM");
  await server.status;
  await Deno.remove(dir, { recursive: true });
}
