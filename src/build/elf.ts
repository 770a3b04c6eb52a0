/**
 * What a 64-bit little-endian ELF executable or library asks the dynamic loader for: its interpreter
 * (`PT_INTERP`, the loader itself) and the libraries it names (`DT_NEEDED`). Read from the file rather than
 * from `ldd`, which runs the binary's loader and cannot read another architecture's binary.
 *
 * @module
 */
import { readFileSync } from "node:fs";

/** What {@linkcode readElf} finds. */
export interface ElfDeps {
  /** `e_machine`: 62 x86-64, 183 AArch64. */
  machine: number;
  /** The loader's path (`PT_INTERP`), for an executable. */
  interpreter?: string;
  /** The sonames of `DT_NEEDED`, in order. */
  needed: string[];
}

const PT_LOAD = 1, PT_DYNAMIC = 2, PT_INTERP = 3, DT_NEEDED = 1n, DT_STRTAB = 5n;

function cString(bytes: Uint8Array, at: number): string {
  const end = bytes.indexOf(0, at);
  return new TextDecoder().decode(bytes.subarray(at, end < 0 ? bytes.length : end));
}

/**
 * Reads the interpreter and needed libraries of the ELF file at `path`; throws a `TypeError` naming the
 * file when it is not a 64-bit little-endian ELF file.
 *
 * @example
 * ```ts
 * import { readElf } from "./elf.ts";
 * import process from "node:process";
 * console.log(readElf(process.execPath).needed.includes("libc.so.6")); // true
 * ```
 */
export function readElf(path: string): ElfDeps {
  const bytes = readFileSync(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0) !== 0x7f454c46 || bytes[4] !== 2 || bytes[5] !== 1) {
    throw new TypeError(`Cannot read ${path}: not a 64-bit little-endian ELF file`);
  }
  const phoff = Number(view.getBigUint64(32, true)),
    phentsize = view.getUint16(54, true),
    phnum = view.getUint16(56, true);
  const headers = Array.from({ length: phnum }, (_, i) => {
    const at = phoff + i * phentsize;
    return {
      type: view.getUint32(at, true),
      offset: Number(view.getBigUint64(at + 8, true)),
      vaddr: Number(view.getBigUint64(at + 16, true)),
      filesz: Number(view.getBigUint64(at + 32, true)),
    };
  });
  const interp = headers.find((h) => h.type === PT_INTERP);
  const deps: ElfDeps = {
    machine: view.getUint16(18, true),
    interpreter: interp && cString(bytes, interp.offset),
    needed: [],
  };
  const dynamic = headers.find((h) => h.type === PT_DYNAMIC);
  if (!dynamic) return deps; // statically linked
  const names: bigint[] = [];
  let strtab = 0n;
  for (let at = dynamic.offset; at < dynamic.offset + dynamic.filesz; at += 16) {
    const tag = view.getBigInt64(at, true), value = view.getBigUint64(at + 8, true);
    if (tag === 0n) break;
    if (tag === DT_NEEDED) names.push(value);
    if (tag === DT_STRTAB) strtab = value;
  }
  // DT_STRTAB is an address: the loadable segment holding it says where it is in the file.
  const segment = headers.find((h) =>
    h.type === PT_LOAD && h.vaddr <= Number(strtab) && Number(strtab) < h.vaddr + h.filesz
  );
  if (!segment) throw new TypeError(`Cannot read ${path}: its string table is outside every loadable segment`);
  const base = Number(strtab) - segment.vaddr + segment.offset;
  deps.needed = names.map((offset) => cString(bytes, base + Number(offset)));
  return deps;
}
