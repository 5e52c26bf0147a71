/** The HTML page listing a folder, for `listDirs`. */
import { escapeHtml } from "../http/errors.ts";

/** One row of a listing. */
export interface ListingEntry {
  readonly name: string;
  readonly isDirectory: boolean;
  /** Bytes; null for folders and entries that could not be stat'ed. */
  readonly size: number | null;
  /** ms since the epoch; null when unknown. */
  readonly mtimeMs: number | null;
}

const collator = new Intl.Collator("en", {
  numeric: true,
  sensitivity: "base",
});

/** Folders first, then names in natural order ("a2" before "a10"). */
export function sortEntries(entries: ListingEntry[]): ListingEntry[] {
  return entries.sort((a, b) =>
    Number(b.isDirectory) - Number(a.isDirectory) ||
    collator.compare(a.name, b.name) ||
    (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  );
}

/** "1.5 KiB" style sizes. */
function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = -1;
  do {
    value /= 1024;
    unit++;
  } while (value >= 1024 && unit < units.length - 1);
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

function formatDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 16).replace("T", " ");
}

// encodeURIComponent leaves !'()* alone; quote them too so a name can never
// close the attribute or read as anything but a relative path.
function hrefOf(name: string): string {
  return encodeURIComponent(name).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * Renders a listing of the folder at `urlPath` (decoded, ending in "/").
 * `entries` must already be filtered and sorted. Names are HTML-escaped and
 * links percent-encoded relative to the folder, so no name can inject markup.
 */
export function renderListing(
  urlPath: string,
  entries: readonly ListingEntry[],
): string {
  const title = escapeHtml(`Index of ${urlPath}`);
  const rows: string[] = [];
  if (urlPath !== "/") {
    rows.push(`<tr><td><a href="../">../</a></td><td></td><td></td></tr>`);
  }
  for (const e of entries) {
    const slash = e.isDirectory ? "/" : "";
    const size = e.size === null || e.isDirectory ? "-" : formatSize(e.size);
    const date = e.mtimeMs === null ? "" : formatDate(e.mtimeMs);
    rows.push(
      `<tr><td><a href="./${hrefOf(e.name)}${slash}">${
        escapeHtml(e.name)
      }${slash}</a></td>` +
        `<td class="size">${size}</td><td>${date}</td></tr>`,
    );
  }
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:56rem;padding:0 1rem;color:#1d2330}
table{border-collapse:collapse;width:100%}td,th{padding:.25rem .75rem;text-align:left}
tr:nth-child(even){background:#f3f5f9}.size{text-align:right;white-space:nowrap}
a{color:#2456c7;text-decoration:none}a:hover{text-decoration:underline}
</style></head>
<body><h1>${title}</h1>
<table><thead><tr><th>Name</th><th class="size">Size</th><th>Modified (UTC)</th></tr></thead>
<tbody>
${rows.join("\n")}
</tbody></table></body></html>
`;
}
