/**
 * Static reply bodies that are more than one slice of a file: several byte
 * ranges as multipart/byteranges (RFC 9110 §14.6), joined in memory or
 * streamed from the file, and a whole file followed by a tail (the live
 * reload script). A streamed body opens its file, checked as every static
 * read is, only when the engine starts reading, and closes it when it
 * stops, however it stops.
 */
import { type OnDisk, openChecked, readPieces } from "./file_version.ts";
import type { ByteRange, MultipartLayout } from "./ranges.ts";

/** A multipart/byteranges body from bytes in memory. */
export function joinParts(
  bytes: Uint8Array,
  ranges: readonly ByteRange[],
  layout: MultipartLayout,
): Uint8Array {
  const out = new Uint8Array(layout.length);
  let off = 0;
  ranges.forEach((r, i) => {
    out.set(layout.heads[i], off);
    off += layout.heads[i].length;
    out.set(bytes.subarray(r.start, r.end + 1), off);
    off += r.end - r.start + 1;
  });
  out.set(layout.tail, off);
  return out;
}

/** A multipart/byteranges body read from a file. */
export async function* streamParts(
  source: OnDisk,
  ranges: readonly ByteRange[],
  layout: MultipartLayout,
  chunkBytes: number,
): AsyncGenerator<Uint8Array> {
  // Checked like every other read; a change found here cuts the reply short.
  using file = await openChecked(source);
  for (let i = 0; i < ranges.length; i++) {
    yield layout.heads[i];
    await file.seek(ranges[i].start, Deno.SeekMode.Start);
    const length = ranges[i].end - ranges[i].start + 1;
    yield* exactly(file, length, chunkBytes, source.path);
  }
  yield layout.tail;
}

/** A whole file read from disk, then `tail`. */
export async function* streamThenTail(
  source: OnDisk,
  chunkBytes: number,
  tail: Uint8Array,
): AsyncGenerator<Uint8Array> {
  using file = await openChecked(source);
  yield* exactly(file, source.size, chunkBytes, source.path);
  yield tail;
}

/** `length` bytes of an open file in pieces, each the caller's to keep. */
async function* exactly(
  file: Deno.FsFile,
  length: number,
  chunkBytes: number,
  path: string,
): AsyncGenerator<Uint8Array> {
  const read = yield* readPieces(file, length, chunkBytes);
  // Shorter than its Content-Length promised: fail so the engine closes.
  if (read < length) throw new Error(`File shrank while being sent: ${path}`);
}
