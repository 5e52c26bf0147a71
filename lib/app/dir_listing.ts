/**
 * A folder's listing for `listDirs`: an HTML page (breadcrumbs, sort by
 * name, size or date in the URL, a filter that works with and without
 * JavaScript, icons by type, light and dark themes, a phone layout) or JSON
 * for scripts. No I/O: the static handler reads the folder and proves it.
 */
import { HttpError, STATUS } from "../http/errors.ts";
import { escapeHtml } from "../http/errors.ts";
import { extensionOf } from "./media_types.ts";

/** One row of a listing. */
export interface ListingEntry {
  readonly name: string;
  readonly isDirectory: boolean;
  /** Bytes; null for folders and entries that could not be stat'ed. */
  readonly size: number | null;
  /** ms since the epoch; null when unknown. */
  readonly mtimeMs: number | null;
}

export type SortKey = "name" | "size" | "date";
export type SortOrder = "asc" | "desc";

/** How a listing is asked for: from its query string, so a link keeps it. */
export interface ListingView {
  readonly sort: SortKey;
  readonly order: SortOrder;
  /** Case-insensitive part of a name; "" shows every entry. */
  readonly filter: string;
  readonly format: "html" | "json";
}

/** What the page offers besides the rows. */
export interface ListingOptions {
  /** Offer the folder as a `.zip` (`?download=zip`). */
  readonly archive: boolean;
  /** Rows left out past the listing limit. */
  readonly truncated: boolean;
  /** Offer an upload form: the folder takes uploads (`--upload-files`). */
  readonly upload?: {
    /** Largest form, in bytes. */
    readonly maxBytes: number;
    /** A file of the same name is replaced (else refused). */
    readonly overwrite: boolean;
  };
}

const SORT_KEYS: readonly string[] = ["name", "size", "date"];
/** Longest filter taken: a name is at most 255 bytes on most file systems. */
const MAX_FILTER_CHARS = 255;

function badQuery(message: string): HttpError {
  return new HttpError(STATUS.BadRequest, message, { expose: message });
}

/**
 * The view a listing's query asks for: `sort=name|size|date`,
 * `order=asc|desc`, `q=part of a name`, `format=json|html`. `Accept:
 * application/json` without `text/html` asks for JSON too. An unknown
 * value is 400, so a typo does not quietly show another order.
 */
export function parseView(
  query: string,
  accept: string | undefined,
): ListingView {
  const params = new URLSearchParams(query);
  const sort = params.get("sort") ?? "name";
  if (!SORT_KEYS.includes(sort)) {
    throw badQuery(`Unknown sort "${sort}": use name, size or date`);
  }
  const order = params.get("order") ?? (sort === "name" ? "asc" : "desc");
  if (order !== "asc" && order !== "desc") {
    throw badQuery(`Unknown order "${order}": use asc or desc`);
  }
  const filter = params.get("q") ?? "";
  if (filter.length > MAX_FILTER_CHARS) {
    throw badQuery(`Filter longer than ${MAX_FILTER_CHARS} characters`);
  }
  let format = params.get("format");
  if (format === null) {
    const wantsJson = accept !== undefined &&
      accept.includes("application/json") && !accept.includes("text/html");
    format = wantsJson ? "json" : "html";
  }
  if (format !== "html" && format !== "json") {
    throw badQuery(`Unknown format "${format}": use html or json`);
  }
  return { sort: sort as SortKey, order, filter, format };
}

// Made at the first listing, not at start: building it loads ICU's
// collation data, ~10 ms on the start path of every server.
let collator: Intl.Collator | undefined;

function byName(a: ListingEntry, b: ListingEntry): number {
  collator ??= new Intl.Collator("en", { numeric: true, sensitivity: "base" });
  return collator.compare(a.name, b.name) ||
    (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/**
 * Sorts in place: folders first whatever the key (as file managers do),
 * then by the view's key, names in natural order ("a2" before "a10")
 * breaking ties. Unknown sizes and dates sort as the smallest.
 */
export function sortEntries(
  entries: ListingEntry[],
  view: Pick<ListingView, "sort" | "order"> = { sort: "name", order: "asc" },
): ListingEntry[] {
  const sign = view.order === "asc" ? 1 : -1;
  const key = view.sort === "size"
    ? (e: ListingEntry) => e.size ?? -1
    : (e: ListingEntry) => e.mtimeMs ?? -1;
  return entries.sort((a, b) =>
    Number(b.isDirectory) - Number(a.isDirectory) ||
    sign * (view.sort === "name" ? byName(a, b) : key(a) - key(b)) ||
    byName(a, b)
  );
}

/** The entries whose name holds `filter`, ignoring case. */
export function filterEntries(
  entries: ListingEntry[],
  filter: string,
): ListingEntry[] {
  if (filter === "") return entries;
  const part = filter.toLowerCase();
  return entries.filter((e) => e.name.toLowerCase().includes(part));
}

/** "1.5 KiB" style sizes. */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes;
  let unit = -1;
  do {
    value /= 1024;
    unit++;
  } while (value >= 1024 && unit < units.length - 1);
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

function formatDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 16).replace("T", " ");
}

/**
 * A name as one URL path segment. encodeURIComponent leaves !'()* alone;
 * they are quoted too, so a name can never close an attribute or read as
 * anything but a relative path.
 */
export function encodeSegment(name: string): string {
  return encodeURIComponent(name).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** The query that keeps a view's order ("" for the default). */
function orderQuery(view: Pick<ListingView, "sort" | "order">): string {
  const byDefault = view.sort === "name" ? "asc" : "desc";
  if (view.sort === "name" && view.order === "asc") return "";
  if (view.order === byDefault) return `?sort=${view.sort}`;
  return `?sort=${view.sort}&order=${view.order}`;
}

/** The listing as JSON: path, then each entry with its link (absolute, encoded). */
export function renderListingJson(
  urlPath: string,
  entries: readonly ListingEntry[],
  truncated: boolean,
): string {
  const base = urlPath.split("/").map(encodeSegment).join("/");
  return JSON.stringify({
    path: urlPath,
    truncated,
    entries: entries.map((e) => ({
      name: e.name,
      type: e.isDirectory ? "directory" : "file",
      size: e.isDirectory ? null : e.size,
      modified: e.mtimeMs === null ? null : new Date(e.mtimeMs).toISOString(),
      href: `${base}${encodeSegment(e.name)}${e.isDirectory ? "/" : ""}`,
    })),
  }) + "\n";
}

// One symbol per kind of file, drawn once per page and used by each row.
const ICONS: Record<string, string> = {
  folder:
    '<path d="M3 6.5A1.5 1.5 0 0 1 4.5 5h4l2 2h9A1.5 1.5 0 0 1 21 8.5v9a1.5 1.5 0 0 1-1.5 1.5h-15A1.5 1.5 0 0 1 3 17.5z"/>',
  file:
    '<path d="M6 3h8l5 5v12a1 1 0 0 1-1 1H6a1 1 0 0 1-1-1V4a1 1 0 0 1 1-1z"/><path d="M14 3v5h5" fill="none"/>',
  image:
    '<rect x="3" y="4" width="18" height="16" rx="2"/><circle cx="9" cy="10" r="2" fill="none"/><path d="M4 19l6-6 4 4 2-2 4 4" fill="none"/>',
  audio:
    '<path d="M9 18V6l10-2v12" fill="none"/><circle cx="7" cy="18" r="2.5"/><circle cx="17" cy="16" r="2.5"/>',
  video:
    '<rect x="3" y="5" width="14" height="14" rx="2"/><path d="M17 10l4-3v10l-4-3z"/>',
  archive:
    '<rect x="4" y="3" width="16" height="18" rx="2"/><path d="M12 3v2m0 2v2m0 2v2" fill="none"/><rect x="10.5" y="13" width="3" height="4" fill="none"/>',
  code: '<path d="M9 7l-5 5 5 5M15 7l5 5-5 5" fill="none"/>',
  upload:
    '<path d="M12 16V4M7 9l5-5 5 5M4 15v4a1 1 0 0 0 1 1h14a1 1 0 0 0 1-1v-4" fill="none"/>',
  text:
    '<path d="M6 3h8l5 5v12a1 1 0 0 1-1 1H6a1 1 0 0 1-1-1V4a1 1 0 0 1 1-1z"/><path d="M8 12h8M8 15h8M8 18h5" fill="none"/>',
};

const KIND_BY_EXTENSION: Record<string, string> = {};
for (
  const [kind, exts] of Object.entries({
    image: "png jpg jpeg gif webp avif svg bmp ico heic heif tif tiff",
    audio: "mp3 wav flac ogg oga m4a aac opus",
    video: "mp4 mkv webm mov avi ogv m4v wmv",
    archive: "zip gz tgz tar bz2 xz 7z rar zst iso dmg deb rpm apk",
    code:
      "js mjs cjs ts tsx jsx json html htm css xml py rb go rs c h cpp java sh wasm",
    text: "txt md csv tsv log pdf epub rtf doc docx odt",
  })
) {
  for (const ext of exts.split(" ")) KIND_BY_EXTENSION[ext] = kind;
}

function iconOf(e: ListingEntry): string {
  const kind = e.isDirectory
    ? "folder"
    : KIND_BY_EXTENSION[extensionOf(e.name)] ?? "file";
  return `<svg class="i" aria-hidden="true"><use href="#i-${kind}"/></svg>`;
}

const SPRITE = `<svg width="0" height="0" style="position:absolute">${
  Object.entries(ICONS).map(([k, d]) =>
    `<symbol id="i-${k}" viewBox="0 0 24 24">${d}</symbol>`
  ).join("")
}</svg>`;

const STYLE = `
:root{color-scheme:light dark;--ink:#1d2330;--muted:#5b6475;--paper:#fff;--wash:#f3f5f9;--line:#dde2ea;--link:#2456c7;--icon:#7a869a;--folder:#e0a31a}
@media (prefers-color-scheme:dark){:root{--ink:#e7eaf1;--muted:#a3abbb;--paper:#12151c;--wash:#1b2029;--line:#2a303b;--link:#8fb0ff;--icon:#8c96a8;--folder:#f0b93a}}
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;color:var(--ink);background:var(--paper)}
h1{font-size:1.25rem;font-weight:600;margin:.5rem 0 1rem;overflow-wrap:anywhere}
h1 a{color:var(--link);text-decoration:none}h1 .sep{color:var(--muted);margin:0 .25rem}
.bar{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;margin-bottom:.75rem}
.bar form{display:flex;gap:.5rem;flex:1 1 16rem}
input[type=search]{flex:1;min-width:0;font:inherit;padding:.4rem .6rem;border:1px solid var(--line);border-radius:6px;background:var(--paper);color:var(--ink)}
button,.btn{font:inherit;padding:.4rem .8rem;border:1px solid var(--line);border-radius:6px;background:var(--wash);color:var(--ink);text-decoration:none;cursor:pointer;white-space:nowrap}
.count{color:var(--muted);font-size:.9rem}
table{border-collapse:collapse;width:100%;table-layout:auto}
th,td{padding:.4rem .6rem;text-align:left;border-bottom:1px solid var(--line)}
th a{color:var(--muted);text-decoration:none;font-weight:600}th a:hover{color:var(--ink)}
tbody tr:hover{background:var(--wash)}
td.name{overflow-wrap:anywhere;width:100%}
td.name a{color:var(--link);text-decoration:none;display:inline-flex;gap:.5rem;align-items:flex-start}
td.name a:hover{text-decoration:underline}
.size,.date{white-space:nowrap;color:var(--muted)}.size{text-align:right}
.i{width:1.25em;height:1.25em;flex:none;fill:var(--icon);stroke:var(--paper);stroke-width:1.5;stroke-linejoin:round;stroke-linecap:round}
.dir .i{fill:var(--folder)}
.note{color:var(--muted)}
.upload{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;margin:0 0 1rem;padding:.75rem;border:2px dashed var(--line);border-radius:8px}
.upload.dragging{border-color:var(--link);background:var(--wash)}
.upload .i{fill:none;stroke:var(--icon);stroke-width:2}
.upload label{flex:1 1 16rem;display:flex;gap:.5rem;align-items:center;cursor:pointer}
.upload input[type=file]{font:inherit;min-width:0;max-width:100%}
.upload progress{flex:1 1 10rem;height:.75rem}
.upload output{flex:1 1 100%;color:var(--muted);font-size:.9rem;overflow-wrap:anywhere}
.upload output.error{color:#c62828}
@media (max-width:36rem){body{padding:.5rem}.date{display:none}th,td{padding:.55rem .4rem}}
`;

// Live filtering as one types; the form (?q=) does the same without JavaScript.
const SCRIPT = `
const f=document.querySelector("#filter"),rows=[...document.querySelectorAll("tbody tr[data-name]")],c=document.querySelector("#shown");
f.addEventListener("input",()=>{const q=f.value.toLowerCase();let n=0;for(const r of rows){const s=r.dataset.name.includes(q);r.hidden=!s;n+=s}c.textContent=n;const u=new URL(location.href);q?u.searchParams.set("q",f.value):u.searchParams.delete("q");history.replaceState(null,"",u)});
`;

// Uploads with a progress bar, and files dropped anywhere on the page. The
// form alone posts the same files without JavaScript (303 back here).
const UPLOAD_SCRIPT = `
const up=document.querySelector("#upload");
if(up){const input=up.querySelector("#files"),bar=up.querySelector("progress"),out=up.querySelector("output"),max=Number(up.dataset.max);
const size=(n)=>{if(n<1024)return n+" B";const u=["KiB","MiB","GiB","TiB"];let i=-1;do{n/=1024;i++}while(n>=1024&&i<3);return(n<10?n.toFixed(1):Math.round(n))+" "+u[i]};
const say=(t,bad)=>{out.textContent=t;out.classList.toggle("error",!!bad)};
const send=(files)=>{if(!files||files.length===0)return say("Choose or drop files first",true);let total=0;const form=new FormData();for(const file of files){total+=file.size;form.append("file",file,file.name)}
if(total>max)return say("Too large: "+size(total)+"; at most "+size(max)+" at once",true);
const x=new XMLHttpRequest();x.open("POST",location.href);x.setRequestHeader("Accept","application/json");bar.hidden=false;bar.value=0;up.setAttribute("aria-busy","true");
x.upload.onprogress=(e)=>{if(e.lengthComputable){bar.value=e.loaded/e.total;say("Uploading "+files.length+" file"+(files.length===1?"":"s")+": "+size(e.loaded)+" of "+size(e.total))}};
const done=(t,bad)=>{bar.hidden=true;up.removeAttribute("aria-busy");say(t,bad)};
x.onload=()=>{let r={};try{r=JSON.parse(x.responseText)}catch{}if(x.status>=200&&x.status<300){done("Stored "+r.files.map((f)=>f.name).join(", "));location.reload()}else done(r.error||"Upload failed: "+x.status,true)};
x.onerror=()=>done("Upload failed: the connection was lost",true);x.send(form)};
up.addEventListener("submit",(e)=>{e.preventDefault();send(input.files)});
let depth=0;const drag=(on)=>up.classList.toggle("dragging",on);
addEventListener("dragenter",(e)=>{if(e.dataTransfer.types.includes("Files")){depth++;drag(true)}});
addEventListener("dragleave",()=>{if(--depth<=0){depth=0;drag(false)}});
addEventListener("dragover",(e)=>{if(e.dataTransfer.types.includes("Files"))e.preventDefault()});
addEventListener("drop",(e)=>{if(!e.dataTransfer.files.length)return;e.preventDefault();depth=0;drag(false);send(e.dataTransfer.files)})}
`;

/** The upload form: a plain multipart form, driven by UPLOAD_SCRIPT when it runs. */
function uploadForm(upload: NonNullable<ListingOptions["upload"]>): string {
  const rule = upload.overwrite
    ? "a file of the same name is replaced"
    : "a name already here is refused";
  // No action: the form posts to this very URL, the folder's.
  return `<form id="upload" class="upload" method="post" enctype="multipart/form-data" data-max="${upload.maxBytes}">` +
    `<label><svg class="i" aria-hidden="true"><use href="#i-upload"/></svg><span>Drop files here or choose them:</span>` +
    `<input id="files" type="file" name="file" multiple required></label>` +
    `<button>Upload</button><progress max="1" value="0" hidden></progress>` +
    `<output role="status" aria-live="polite">Up to ${
      formatSize(upload.maxBytes)
    } at once; ${rule}.</output></form>`;
}

/**
 * The HTML page listing the folder at `urlPath` (decoded, ending in "/").
 * `entries` must already be filtered and sorted for `view`. Names are
 * HTML-escaped and links percent-encoded relative to the folder, so no name
 * can inject markup. Works without JavaScript; the script only filters live.
 */
export function renderListing(
  urlPath: string,
  entries: readonly ListingEntry[],
  view: ListingView,
  opts: ListingOptions,
): string {
  const title = escapeHtml(`Index of ${urlPath}`);
  const keep = orderQuery(view);
  const keepAttr = escapeHtml(keep);
  // Breadcrumbs: each ancestor as a relative link, so the page works under a proxy prefix too.
  const parts = urlPath.split("/").slice(1, -1);
  const crumbs = [
    parts.length === 0
      ? "<span>/</span>"
      : `<a href="${"../".repeat(parts.length)}${keepAttr}">/</a>`,
  ];
  parts.forEach((part, i) => {
    const up = parts.length - 1 - i;
    crumbs.push(
      i === parts.length - 1
        ? `<span>${escapeHtml(part)}</span>`
        : `<a href="${"../".repeat(up)}${keepAttr}">${escapeHtml(part)}</a>`,
    );
  });
  const rows: string[] = [];
  if (urlPath !== "/") {
    rows.push(
      `<tr class="dir"><td class="name"><a href="../${keepAttr}">${
        iconOf({ name: "..", isDirectory: true, size: null, mtimeMs: null })
      }<span>../</span></a></td><td class="size"></td><td class="date"></td></tr>`,
    );
  }
  let files = 0;
  let folders = 0;
  let bytes = 0;
  for (const e of entries) {
    const slash = e.isDirectory ? "/" : "";
    if (e.isDirectory) folders++;
    else {
      files++;
      bytes += e.size ?? 0;
    }
    const size = e.size === null || e.isDirectory
      ? "-"
      : `<span title="${e.size} bytes">${formatSize(e.size)}</span>`;
    const date = e.mtimeMs === null
      ? ""
      : `<time datetime="${new Date(e.mtimeMs).toISOString()}">${
        formatDate(e.mtimeMs)
      }</time>`;
    rows.push(
      `<tr${e.isDirectory ? ' class="dir"' : ""} data-name="${
        escapeHtml(e.name.toLowerCase())
      }"><td class="name"><a href="./${encodeSegment(e.name)}${slash}${
        e.isDirectory ? keepAttr : ""
      }">${iconOf(e)}<span>${escapeHtml(e.name)}${slash}</span></a></td>` +
        `<td class="size">${size}</td><td class="date">${date}</td></tr>`,
    );
  }
  const head = (key: SortKey, label: string, cls: string) => {
    const current = view.sort === key;
    const order: SortOrder = current
      ? (view.order === "asc" ? "desc" : "asc")
      : (key === "name" ? "asc" : "desc");
    const q = view.filter === ""
      ? ""
      : `&amp;q=${escapeHtml(encodeURIComponent(view.filter))}`;
    const arrow = current ? (view.order === "asc" ? " ▲" : " ▼") : "";
    const sorted = current
      ? ` aria-sort="${view.order === "asc" ? "ascending" : "descending"}"`
      : "";
    return `<th class="${cls}"${sorted}><a href="?sort=${key}&amp;order=${order}${q}">${label}${arrow}</a></th>`;
  };
  const hidden = [
    view.sort === "name"
      ? ""
      : `<input type="hidden" name="sort" value="${view.sort}">`,
    keep.includes("order=")
      ? `<input type="hidden" name="order" value="${view.order}">`
      : "",
  ].join("");
  const download = opts.archive
    ? `<a class="btn" href="?download=zip" download>Download .zip</a>`
    : "";
  const note = opts.truncated
    ? `<p class="note">Only the first entries are shown: this folder holds more.</p>`
    : "";
  const filtered = view.filter === ""
    ? ""
    : ` matching “${
      escapeHtml(view.filter)
    }” (<a href="./${keepAttr}">show all</a>)`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>${STYLE}</style></head>
<body>${SPRITE}
<h1>${crumbs.join('<span class="sep">›</span>')}</h1>
<div class="bar"><form method="get" role="search"><input id="filter" type="search" name="q" value="${
    escapeHtml(view.filter)
  }" placeholder="Filter names" aria-label="Filter names">${hidden}<button>Filter</button></form>${download}
<span class="count"><span id="shown">${folders + files}</span> shown: ${
    plural(folders, "folder")
  }, ${plural(files, "file")}, ${
    formatSize(bytes)
  }${filtered}</span></div>${note}${
    opts.upload === undefined ? "" : uploadForm(opts.upload)
  }
<table><thead><tr>${head("name", "Name", "name")}${
    head("size", "Size", "size")
  }${head("date", "Modified (UTC)", "date")}</tr></thead>
<tbody>
${rows.join("\n")}
</tbody></table>
<script>${SCRIPT}${opts.upload === undefined ? "" : UPLOAD_SCRIPT}</script>
</body></html>
`;
}
