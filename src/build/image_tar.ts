/**
 * A tar archive written the same way every time (ustar, as `docker save` and `podman save` write): entries
 * in the order given, every mtime, uid and gid fixed, no user or group names, so the same files give the
 * same bytes and the same image digest.
 *
 * @module
 */

/** One entry: a directory (no `data`) or a regular file. */
export interface TarEntry {
  /** Path inside the archive, without a leading `/`; a directory's ends with `/`. */
  path: string;
  mode: number;
  data?: Uint8Array;
}

const BLOCK = 512;
const encoder = new TextEncoder();

function field(header: Uint8Array, at: number, width: number, text: string): void {
  const bytes = encoder.encode(text);
  if (bytes.length > width) throw new RangeError(`Cannot write a tar header: '${text}' is longer than ${width} bytes`);
  header.set(bytes, at);
}

/** An octal number, zero-padded to `width - 1` digits and a NUL, as ustar has them. */
function octal(header: Uint8Array, at: number, width: number, value: number): void {
  field(header, at, width, `${value.toString(8).padStart(width - 1, "0")}\0`);
}

function header(entry: TarEntry, mtime: number): Uint8Array {
  const h = new Uint8Array(BLOCK);
  // long paths: ustar's prefix field
  const cut = entry.path.length > 100 ? entry.path.lastIndexOf("/", entry.path.length - 2) : -1;
  field(h, 0, 100, cut < 0 ? entry.path : entry.path.slice(cut + 1));
  if (cut >= 0) field(h, 345, 155, entry.path.slice(0, cut));
  octal(h, 100, 8, entry.mode & 0o7777);
  octal(h, 108, 8, 0); // uid
  octal(h, 116, 8, 0); // gid
  octal(h, 124, 12, entry.data?.length ?? 0);
  octal(h, 136, 12, mtime);
  field(h, 156, 1, entry.data ? "0" : "5");
  field(h, 257, 8, "ustar\x0000");
  h.fill(0x20, 148, 156); // the checksum counts its own field as spaces
  octal(h, 148, 7, h.reduce((sum, b) => sum + b, 0));
  return h;
}

/**
 * The tar archive of `entries`, in their order, each with modification time `mtime` (seconds since the epoch).
 *
 * @example
 * ```ts
 * import { tarArchive } from "./image_tar.ts";
 * const tar = tarArchive([
 *   { path: "tmp/", mode: 0o1777 },
 *   { path: "hello", mode: 0o644, data: new TextEncoder().encode("hi\n") },
 * ]);
 * console.log(tar.length); // 2560: two headers, one data block, two end blocks
 * ```
 */
export function tarArchive(entries: readonly TarEntry[], mtime = 0): Uint8Array {
  const size = entries.reduce((n, e) => n + BLOCK + Math.ceil((e.data?.length ?? 0) / BLOCK) * BLOCK, 2 * BLOCK);
  const out = new Uint8Array(size);
  let at = 0;
  for (const entry of entries) {
    out.set(header(entry, mtime), at);
    at += BLOCK;
    if (entry.data) {
      out.set(entry.data, at);
      at += Math.ceil(entry.data.length / BLOCK) * BLOCK;
    }
  }
  return out; // the rest is zeros: the padding and the two end blocks
}
