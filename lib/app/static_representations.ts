/**
 * The forms one file version is sent in (RFC 9110 §3.2, representations):
 * its media type and validators (ETag, Last-Modified), the codings on offer
 * (a precompressed sidecar `x.br` / `x.gz` beside `x`, or a form compressed
 * on the fly in a worker), and where the bytes come from: memory for small
 * files and compressed forms (caches bounded in bytes, keyed by version),
 * the file itself for larger ones.
 */
import { basename } from "node:path";
import { FileBody, type Reply } from "../http/handler.ts";
import { batchNow } from "../http/clock.ts";
import { ByteLru } from "./static_cache.ts";
import {
  type Coding,
  CompressionFailed,
  type Compressor,
  ON_THE_FLY,
} from "./compress.ts";
import type { Validators } from "./conditional.ts";
import { negotiateEncoding } from "./encoding.ts";
import {
  type FileVersion,
  type OnDisk,
  openChecked,
  readWhole,
  sameVersion,
  versionOf,
} from "./file_version.ts";
import { contentTypeOf, isCompressible, mediaTypeOf } from "./media_types.ts";
import { lookBeneath } from "./open_beneath.ts";
import type { Found } from "./static_lookup.ts";

/**
 * Sizes and thresholds of the representations; tests shrink them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { RepresentationTuning } from "@spindle/server";
 *
 * const memory: Partial<RepresentationTuning> = {
 *   fileCacheBytes: 16 * 1024 * 1024,
 *   compressedCacheBytes: 8 * 1024 * 1024,
 * };
 * assert.ok(memory.fileCacheBytes! > memory.compressedCacheBytes!);
 * ```
 */
export interface RepresentationTuning {
  /** Files up to this size are served from memory. Larger ones stream. */
  readonly maxCachedFileBytes: number;
  /** Total bytes of file contents kept in memory. */
  readonly fileCacheBytes: number;
  /** Smaller files are not compressed on the fly: the headers outweigh the gain. */
  readonly minCompressBytes: number;
  /** Larger files are not compressed on the fly (sidecars still count). */
  readonly maxCompressBytes: number;
  /** Total bytes of compressed forms kept in memory. */
  readonly compressedCacheBytes: number;
  /** How long a look for `x.br` / `x.gz` beside `x` is trusted. */
  readonly sidecarTtlMs: number;
}

/** What every reply for one file version shares, worked out once. */
export interface FileMeta {
  /** Base name of the real path: its extension picks the type. */
  readonly name: string;
  /** Its extension is in the allowed list. */
  readonly allowed: boolean;
  /** Media type, without parameters. */
  readonly type: string;
  readonly contentType: string;
  readonly compressible: boolean;
  /** Validators of each form made from this version. */
  readonly validators: Readonly<Record<Coding | "identity", Validators>>;
}

/** One way of sending the file: which coding, its bytes or a file to stream. */
export interface Representation {
  readonly coding: Coding | "identity";
  readonly validators: Validators;
  readonly size: number;
  readonly source: Uint8Array | OnDisk;
}

/** A precompressed file beside the original, with its own validators. */
interface Sidecar extends OnDisk {
  readonly validators: Validators;
}

/** Sidecars of a file, by coding. */
export type Sidecars = Partial<Record<Coding, Sidecar>>;

/** The codings a request may be sent, and the sidecars behind some of them. */
export interface Offer {
  readonly codings: readonly Coding[];
  readonly sidecars: Sidecars;
}

/** A found file, with what its replies share kept on it. */
interface WithMeta extends Found {
  meta?: FileMeta;
}

/** Something made from one version of a file: its contents, a compressed form. */
interface Cached<T> extends FileVersion {
  readonly bytes: T;
}

/** A small file's contents, and its identity form once asked for. */
interface CachedFile extends Cached<Uint8Array> {
  identity?: Representation;
}

/** Precompressed files beside an original, as last looked for. */
interface SidecarLook {
  readonly checkedAt: number;
  readonly found: Sidecars;
  /** The version of the original `fresh` was picked for. */
  forFile: OnDisk;
  /** Those not older than that version. */
  fresh: Sidecars;
}

/** Sidecar suffix of each coding. */
const SIDECAR_SUFFIX: Record<Coding, string> = { br: ".br", gzip: ".gz" };
const ALL_CODINGS: readonly Coding[] = ["br", "gzip"];
const NO_OFFER: Offer = Object.freeze({
  codings: Object.freeze([]),
  sidecars: Object.freeze({}),
});
/** Sidecar looks remembered; past it they start afresh (cheap to refill). */
const MAX_SIDECAR_LOOKS = 4096;

/** Strong ETag from size and mtime; a coding or the live-reload form gets its own tag. */
export function etagOf(
  size: number,
  mtimeMs: number,
  form?: Coding | "live",
): string {
  const suffix = form === undefined ? "" : `-${form}`;
  return `"${size.toString(16)}-${mtimeMs.toString(16)}${suffix}"`;
}

/** The representations of the files of one static handler, and their caches. */
export class Representations {
  readonly #tuning: RepresentationTuning;
  /** True when the extension policy serves a file of this (real) name. */
  readonly #serves: (name: string) => boolean;
  readonly #compressor: Compressor;
  readonly #files: ByteLru<CachedFile>;
  /** Compressed forms; null marks "compression did not make it smaller". */
  readonly #compressed: ByteLru<Cached<Uint8Array | null>>;
  readonly #compressing = new Map<
    string,
    Cached<Promise<Uint8Array | null>>
  >();
  readonly #sidecars = new Map<string, SidecarLook>();

  constructor(
    tuning: RepresentationTuning,
    serves: (name: string) => boolean,
    compressor: Compressor,
  ) {
    this.#tuning = tuning;
    this.#serves = serves;
    this.#compressor = compressor;
    this.#files = new ByteLru(tuning.fileCacheBytes);
    this.#compressed = new ByteLru(tuning.compressedCacheBytes);
  }

  /** Type, validators and policy of a file version: worked out once per version. */
  meta(found: Found): FileMeta {
    const file = found as WithMeta; // kept on the lookup, which is per version
    if (file.meta !== undefined) return file.meta;
    const name = basename(file.path);
    const type = mediaTypeOf(name);
    const compressible = isCompressible(type);
    const { size, mtimeMs } = file;
    const identity = { etag: etagOf(size, mtimeMs), lastModifiedMs: mtimeMs };
    return file.meta = {
      name,
      allowed: this.#serves(name),
      type,
      contentType: contentTypeOf(type),
      compressible,
      validators: {
        identity,
        br: { etag: etagOf(size, mtimeMs, "br"), lastModifiedMs: mtimeMs },
        gzip: { etag: etagOf(size, mtimeMs, "gzip"), lastModifiedMs: mtimeMs },
      },
    };
  }

  /**
   * The codings `file` could be sent in, each made on the fly or read from a
   * sidecar. Only looked for when the client takes one: most requests get
   * the empty offer at once.
   */
  offer(
    file: Found,
    meta: FileMeta,
    acceptEncoding: string | undefined,
  ): Offer | Promise<Offer> {
    if (
      !meta.compressible ||
      negotiateEncoding(acceptEncoding, ALL_CODINGS) === "identity"
    ) return NO_OFFER;
    const sidecars = this.#findSidecars(file);
    return sidecars instanceof Promise
      ? sidecars.then((s) => this.#offerWith(file, s))
      : this.#offerWith(file, sidecars);
  }

  #offerWith(file: Found, sidecars: Sidecars): Offer {
    const { minCompressBytes, maxCompressBytes } = this.#tuning;
    const onTheFly = file.size >= minCompressBytes &&
      file.size <= maxCompressBytes;
    const codings = onTheFly && ON_THE_FLY.length === ALL_CODINGS.length
      ? ALL_CODINGS
      : ALL_CODINGS.filter((c) =>
        sidecars[c] !== undefined || (onTheFly && ON_THE_FLY.includes(c))
      );
    return { codings, sidecars };
  }

  /**
   * Picks the bytes or file behind a coding; falls back to identity when
   * compression does not pay or is busy making other files.
   */
  represent(
    file: Found,
    meta: FileMeta,
    coding: Coding | "identity",
    sidecars: Sidecars,
  ): Representation | Promise<Representation> {
    if (coding === "identity") {
      // Most requests: the file as it is, from memory once read: no
      // promise, and the one form made for this version (no new object).
      if (file.size <= this.#tuning.maxCachedFileBytes) {
        const hit = this.#files.get(file.path);
        if (hit !== undefined && sameVersion(hit, file)) {
          return hit.identity ??= this.#identity(file, meta, hit.bytes);
        }
      }
      const source = this.source(file);
      if (source instanceof Promise) {
        return source.then((bytes) => this.#identity(file, meta, bytes));
      }
      return this.#identity(file, meta, source);
    }
    return this.#encoded(file, meta, coding, sidecars);
  }

  #identity(
    file: Found,
    meta: FileMeta,
    source: Uint8Array | OnDisk,
  ): Representation {
    return {
      coding: "identity",
      validators: meta.validators.identity,
      size: file.size,
      source,
    };
  }

  /**
   * A compressed form: a sidecar's, or one made on the fly; identity when
   * compression does not pay. No promise when its bytes are in memory.
   */
  #encoded(
    file: Found,
    meta: FileMeta,
    coding: Coding,
    sidecars: Sidecars,
  ): Representation | Promise<Representation> {
    const sidecar = sidecars[coding];
    if (sidecar !== undefined) {
      const source = this.source(sidecar);
      return source instanceof Promise
        ? source.then((bytes) => sidecarForm(coding, sidecar, bytes))
        : sidecarForm(coding, sidecar, source);
    }
    const bytes = this.#compress(file, coding);
    return bytes instanceof Promise
      ? bytes.then((b) => this.#packedOr(file, meta, coding, b))
      : this.#packedOr(file, meta, coding, bytes);
  }

  /** The form compressed with `coding`, or identity when there is none. */
  #packedOr(
    file: Found,
    meta: FileMeta,
    coding: Coding,
    bytes: Uint8Array | null,
  ): Representation | Promise<Representation> {
    if (bytes !== null) {
      return {
        coding,
        validators: meta.validators[coding],
        size: bytes.length,
        source: bytes,
      };
    }
    return this.represent(file, meta, "identity", NO_OFFER.sidecars);
  }

  /** A small file's bytes from memory; a larger file is streamed from disk. */
  source(file: OnDisk): Uint8Array | OnDisk | Promise<Uint8Array> {
    return file.size <= this.#tuning.maxCachedFileBytes
      ? this.readCached(file)
      : file;
  }

  /** The body for `length` bytes from `start` of a representation. */
  body(
    rep: Representation,
    start: number,
    length: number,
  ): Reply["body"] | Promise<Reply["body"]> {
    const source = rep.source;
    if (source instanceof Uint8Array) {
      // From memory: no promise, no turn of the event loop; the whole of
      // it as it is (no new view).
      if (start === 0 && length === source.length) return source;
      return source.subarray(start, start + length);
    }
    // The engine closes the file.
    return openChecked(source).then((f) => new FileBody(f, start, length));
  }

  /** True when memory holds this very version of the file, read through a proven open. */
  holds(file: OnDisk): boolean {
    const hit = this.#files.get(file.path);
    return hit !== undefined && sameVersion(hit, file);
  }

  /** Small file contents from memory, read (once) when missing or stale. */
  readCached(file: OnDisk): Uint8Array | Promise<Uint8Array> {
    const hit = this.#files.get(file.path);
    // A hit is answered at once: no promise, no turn of the event loop.
    if (hit !== undefined && sameVersion(hit, file)) return hit.bytes;
    return readWhole(file).then((bytes) => {
      const { dev, ino, size, mtimeMs } = file;
      const cost = bytes.length + 128;
      this.#files.set(file.path, { dev, ino, size, mtimeMs, bytes }, cost);
      return bytes;
    });
  }

  /** Forgets which sidecars were found: one may be what vanished. */
  forget(): void {
    this.#sidecars.clear();
  }

  /**
   * The file compressed with `coding`, made once per version in a worker
   * thread. Null when that is not smaller, or when every compression slot
   * is taken (identity now; a later request finds a slot). A request for a
   * form being made waits for it: that costs no more work.
   */
  #compress(
    file: OnDisk,
    coding: Coding,
  ): Uint8Array | null | Promise<Uint8Array | null> {
    const key = `${coding}\0${file.path}`;
    const hit = this.#compressed.get(key);
    if (hit !== undefined && sameVersion(hit, file)) return hit.bytes;
    const pending = this.#compressing.get(key);
    if (pending !== undefined && sameVersion(pending, file)) {
      return pending.bytes;
    }
    const { dev, ino, size, mtimeMs } = file;
    const packing = this.#compressor.tryRun(
      coding,
      () =>
        size <= this.#tuning.maxCachedFileBytes
          ? this.readCached(file)
          : readWhole(file),
    );
    if (packing === undefined) return null;
    const job: Cached<Promise<Uint8Array | null>> = {
      dev,
      ino,
      size,
      mtimeMs,
      bytes: packing.then(
        (packed) => {
          const bytes = packed.length < size ? packed : null;
          const cost = (bytes?.length ?? 0) + 128;
          this.#compressed.set(key, { dev, ino, size, mtimeMs, bytes }, cost);
          return bytes;
        },
        (err) => {
          // The worker failed, and said so in the log: identity, not a 500.
          // Anything else (the file changed, EACCES) is the request's to answer.
          if (err instanceof CompressionFailed) return null;
          throw err;
        },
      ).finally(() => {
        // A newer version's job may have taken the key meanwhile.
        if (this.#compressing.get(key) === job) this.#compressing.delete(key);
      }),
    };
    this.#compressing.set(key, job);
    return job.bytes;
  }

  /** `x.br` and `x.gz` beside `x`: regular files (not symlinks), not older than `x`. */
  #findSidecars(file: OnDisk): Sidecars | Promise<Sidecars> {
    const look = this.#sidecars.get(file.path);
    if (
      look === undefined ||
      batchNow() - look.checkedAt >= this.#tuning.sidecarTtlMs
    ) return this.#lookForSidecars(file);
    if (look.forFile !== file) {
      look.forFile = file;
      look.fresh = freshSidecars(look.found, file);
    }
    return look.fresh;
  }

  async #lookForSidecars(file: OnDisk): Promise<Sidecars> {
    const checkedAt = Date.now();
    const found: Sidecars = {};
    let unsettled = false;
    await Promise.all(ALL_CODINGS.map(async (coding) => {
      const path = file.path + SIDECAR_SUFFIX[coding];
      try {
        await Deno.lstat(path); // most files have none: off the main thread
        // Its size and date go out in headers, maybe before any read: prove
        // it lies under the root (a symlink is "changed": not a sidecar).
        const look = lookBeneath(file.root, path, checkedAt, true);
        if (look.kind !== "ok") {
          unsettled ||= look.kind === "unsettled";
          return;
        }
        const info = look.info;
        if (!info.isFile) return;
        if (file.strictLinks && (info.nlink ?? 1) > 1) return;
        const version = versionOf(info);
        found[coding] = {
          path,
          root: file.root,
          strictLinks: file.strictLinks,
          ...version,
          validators: {
            etag: etagOf(version.size, version.mtimeMs, coding),
            lastModifiedMs: version.mtimeMs,
          },
        };
      } catch {
        // none
      }
    }));
    const fresh = freshSidecars(found, file);
    if (unsettled) return fresh; // not remembered: looked for afresh next time
    if (this.#sidecars.size >= MAX_SIDECAR_LOOKS) this.#sidecars.clear();
    this.#sidecars.set(file.path, { checkedAt, found, forFile: file, fresh });
    return fresh;
  }
}

/** A sidecar's representation, its bytes or file as source. */
function sidecarForm(
  coding: Coding,
  sidecar: Sidecar,
  source: Uint8Array | OnDisk,
): Representation {
  return {
    coding,
    validators: sidecar.validators,
    size: sidecar.size,
    source,
  };
}

/** Sidecars not older than `file`: an older one was made from an older file. */
function freshSidecars(found: Sidecars, file: OnDisk): Sidecars {
  const fresh: Sidecars = {};
  for (const coding of ALL_CODINGS) {
    const sidecar = found[coding];
    if (sidecar !== undefined && sidecar.mtimeMs >= file.mtimeMs) {
      fresh[coding] = sidecar;
    }
  }
  return fresh;
}
