/**
 * The program of a compression worker ({@link Compressor} in
 * compress.ts), as source text for a blob: URL. A worker loaded from
 * a file would need read permission for that file, which `deno task serve`
 * and the compiled binary do not grant (`--allow-read=resources`).
 */

/** A job posted to a compression worker. */
export interface CompressJob {
  readonly coding: "br" | "gzip";
  readonly bytes: Uint8Array;
  /** Brotli quality, 0-11. */
  readonly brotliQuality: number;
  /** How long the worker waits for the next job before offering to stop. */
  readonly idleMs: number;
}

/** What a compression worker posts back. */
export type CompressReply =
  | { readonly type: "done"; readonly bytes: Uint8Array }
  | { readonly type: "failed"; readonly message: string }
  | { readonly type: "idle" };

/**
 * Runs inside the worker: compresses one job at a time and offers to stop
 * when idle. Sent as text, so it may use nothing from this module's scope.
 */
function compressWorker(): void {
  const scope = globalThis as unknown as {
    onmessage: ((e: MessageEvent<CompressJob>) => void) | null;
    postMessage(message: CompressReply, transfer?: Transferable[]): void;
  };
  const zlib = import("node:zlib");
  let idleTimer: ReturnType<typeof setTimeout> | undefined;
  scope.onmessage = async (e) => {
    clearTimeout(idleTimer);
    const job = e.data;
    try {
      const { brotliCompressSync, constants, gzipSync } = await zlib;
      const out = job.coding === "gzip"
        ? gzipSync(job.bytes)
        : brotliCompressSync(job.bytes, {
          params: {
            [constants.BROTLI_PARAM_QUALITY]: job.brotliQuality,
            [constants.BROTLI_PARAM_SIZE_HINT]: job.bytes.length,
          },
        });
      // A Buffer may be a view of a larger pooled one: hand over exact bytes.
      const bytes = out.byteOffset === 0 &&
          out.byteLength === out.buffer.byteLength
        ? new Uint8Array(out.buffer as ArrayBuffer)
        : new Uint8Array(out);
      scope.postMessage({ type: "done", bytes }, [bytes.buffer as ArrayBuffer]);
    } catch (err) {
      scope.postMessage({ type: "failed", message: String(err) });
    }
    // The main thread decides: it lets this worker go only if no job was
    // posted to it meanwhile (then this message crossed that job).
    idleTimer = setTimeout(
      () => scope.postMessage({ type: "idle" }),
      job.idleMs,
    );
  };
}

/** The worker's program as JavaScript: the runtime hands back the transpiled text. */
export const WORKER_SOURCE = `(${compressWorker.toString()})();\n`;
