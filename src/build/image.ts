/**
 * `daemonic build ENTRY --image NAME:TAG -o FILE.tar`: the built executable as a container image archive
 * in `docker save`'s format (`podman load` and `docker load` take it), written here without a container
 * engine, as `ko` and `jib` do. One layer: the executable as `/app` (the entrypoint), the libraries it
 * needs (its ELF `DT_NEEDED`, recursively, and the loader: what `ldd` names), `/etc/passwd` and
 * `/etc/group` naming `nonroot` (65532), a `/tmp`; no shell, no package manager. It runs as 65532:65532
 * unless `--image-user` says otherwise. Every byte is fixed by the input (see image_tar.ts), so the same
 * input gives the same image ID.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import process from "node:process";
import { readElf } from "./elf.ts";
import { DaemonError } from "../errors.ts";
import { tarArchive, type TarEntry } from "./image_tar.ts";
import { VERSION } from "../version.ts";

/** An image's platform: its OCI architecture, the ELF machine, where its libraries are here and in the image. */
export interface Platform {
  architecture: "amd64" | "arm64";
  variant?: string;
  machine: number;
  triplet: string;
  /** Where this machine keeps that platform's libraries (Debian's multiarch directories). */
  searched: string[];
}

const PLATFORMS: Record<"amd64" | "arm64", Platform> = {
  amd64: {
    architecture: "amd64",
    machine: 62,
    triplet: "x86_64-linux-gnu",
    searched: ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64"],
  },
  arm64: {
    architecture: "arm64",
    variant: "v8",
    machine: 183,
    triplet: "aarch64-linux-gnu",
    searched: ["/usr/lib/aarch64-linux-gnu", "/lib/aarch64-linux-gnu"],
  },
};

/** The user an image runs as by default: distroless's `nonroot`. */
export const IMAGE_USER = "65532:65532";

/**
 * The platform of an image for `target` (`undefined`: this machine); a musl target is refused.
 *
 * @example
 * ```ts
 * import { imagePlatform } from "./image.ts";
 * console.log(imagePlatform("linux-arm64").architecture); // arm64
 * ```
 */
export function imagePlatform(target?: string): Platform {
  if (target === undefined) return PLATFORMS[process.arch === "arm64" ? "arm64" : "amd64"];
  if (target.endsWith("-musl")) {
    throw new DaemonError(
      "USAGE",
      `Invalid --target ${target} with --image: the image holds glibc's libraries: use linux-x64, ` +
        `linux-x64-baseline or linux-arm64`,
    );
  }
  return PLATFORMS[target === "linux-arm64" ? "arm64" : "amd64"];
}

// A registry host (and port), the path's components, then the tag.
const IMAGE_HOST = /(?:[a-zA-Z0-9.-]+(?::\d+)?\/)?/.source;
const IMAGE_PATH = /[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*/.source;
const IMAGE_REFERENCE = new RegExp(`^${IMAGE_HOST}${IMAGE_PATH}(:[\\w][\\w.-]{0,127})?$`);

/**
 * Checks a `NAME[:TAG]` image reference (a registry host and port may lead); returns it with `:latest`
 * when untagged. A bad one is a usage error naming the form.
 *
 * @example
 * ```ts
 * import { imageReference } from "./image.ts";
 * console.log(imageReference("myapp")); // myapp:latest
 * console.log(imageReference("localhost:5000/team/myapp:1.0")); // localhost:5000/team/myapp:1.0
 * ```
 */
export function imageReference(value: string): string {
  const m = IMAGE_REFERENCE.exec(value);
  if (!m) {
    throw new DaemonError(
      "USAGE",
      `Invalid --image '${value}': give NAME:TAG in lower case, e.g. --image myapp:1.0 or --image ` +
        `registry.example.com/team/myapp:1.0`,
    );
  }
  return m[1] ? value : `${value}:latest`;
}

/** Where `soname` is on this machine for `platform`, or a one-line OS_FILE error naming what to install. */
function findLibrary(soname: string, platform: Platform): string {
  const found = platform.searched.map((dir) => join(dir, soname)).find((path) => existsSync(path));
  if (found) return found;
  const arch = platform.architecture;
  const how = arch === process.arch.replace("x64", "amd64")
    ? "libc6"
    : `libc6:${arch} (dpkg --add-architecture ${arch}, apt-get update, apt-get install libc6:${arch})`;
  throw new DaemonError(
    "OS_FILE",
    `Cannot build the ${arch} image: ${soname} is not in ${platform.searched.join(" or ")}: install Debian's ${how}`,
  );
}

/** Fails before anything is compiled when the platform's libc is not at hand. */
export function checkLibraries(platform: Platform): void {
  findLibrary("libc.so.6", platform);
}

/** The loader and every library `binary` needs, recursively, as [path in the image, path here]. */
export function librariesOf(binary: string, platform: Platform): [string, string][] {
  const elf = readElf(binary);
  if (elf.machine !== platform.machine) {
    throw new DaemonError(
      "BUILD_FAILED",
      `Cannot build the ${platform.architecture} image: ${binary} is built for another machine (ELF machine ` +
        `${elf.machine})`,
    );
  }
  const files = new Map<string, string>();
  if (elf.interpreter) files.set(elf.interpreter.slice(1), findLibrary(basename(elf.interpreter), platform));
  const loader = elf.interpreter && basename(elf.interpreter);
  const pending = [...elf.needed];
  for (let soname; (soname = pending.shift()) !== undefined;) {
    const inImage = `lib/${platform.triplet}/${soname}`;
    if (soname === loader || files.has(inImage)) continue; // the loader is loaded by its path already
    const path = findLibrary(soname, platform);
    files.set(inImage, path);
    pending.push(...readElf(path).needed);
  }
  return [...files];
}

const PASSWD = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
const GROUP = "root:x:0:\nnonroot:x:65532:\n";

/** The layer's entries, parents before children, in sorted order. */
function layerEntries(binary: string, libraries: [string, string][]): TarEntry[] {
  const text = (s: string) => new TextEncoder().encode(s);
  const files: TarEntry[] = [
    { path: "app", mode: 0o755, data: readFileSync(binary) },
    { path: "etc/passwd", mode: 0o644, data: text(PASSWD) },
    { path: "etc/group", mode: 0o644, data: text(GROUP) },
    { path: "tmp/", mode: 0o1777 },
    ...libraries.map(([inImage, here]) => ({
      path: inImage,
      mode: statSync(here).mode & 0o755,
      data: readFileSync(here),
    })),
  ];
  const dirs = new Set(files.flatMap((f) => {
    const parents = [];
    for (let d = dirname(f.path.replace(/\/$/, "")); d !== "."; d = dirname(d)) parents.push(`${d}/`);
    return parents;
  }));
  const all = [
    ...[...dirs].filter((d) => !files.some((f) => f.path === d)).map((path) => ({ path, mode: 0o755 })),
    ...files,
  ];
  return all.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** What {@linkcode writeImage} needs. */
export interface ImageSpec {
  /** The built executable. */
  binary: string;
  /** `NAME:TAG`, checked by {@linkcode imageReference}. */
  reference: string;
  platform: Platform;
  /** `UID[:GID]` the image runs as. */
  user: string;
  /** The archive to write. */
  output: string;
}

/**
 * Writes the image archive (whole or not at all); returns its image ID (`sha256:` of its config).
 * `SOURCE_DATE_EPOCH` sets the time stamped on the files and the image (default: the epoch).
 */
export function writeImage(spec: ImageSpec): string {
  const epoch = Number(process.env.SOURCE_DATE_EPOCH ?? 0) || 0;
  const created = new Date(epoch * 1000).toISOString().replace(".000Z", "Z");
  const layer = tarArchive(layerEntries(spec.binary, librariesOf(spec.binary, spec.platform)), epoch);
  const diffId = sha256(layer);
  const { architecture, variant } = spec.platform;
  const config = new TextEncoder().encode(JSON.stringify({
    architecture,
    ...(variant ? { variant } : {}),
    os: "linux",
    created,
    config: {
      User: spec.user,
      Entrypoint: ["/app"],
      WorkingDir: "/",
      StopSignal: "SIGTERM",
      Labels: {
        "org.opencontainers.image.title": spec.reference.replace(/^.*\//, "").replace(/:[^:]*$/, ""),
        "io.daemonic.version": VERSION,
      },
    },
    rootfs: { type: "layers", diff_ids: [`sha256:${diffId}`] },
    history: [{ created, created_by: `daemonic build --image (daemonic ${VERSION})` }],
  }));
  const id = sha256(config);
  const manifest = new TextEncoder().encode(
    JSON.stringify([{ Config: `${id}.json`, RepoTags: [spec.reference], Layers: [`${diffId}.tar`] }]),
  );
  const archive = tarArchive([
    { path: `${diffId}.tar`, mode: 0o644, data: layer },
    { path: `${id}.json`, mode: 0o644, data: config },
    { path: "manifest.json", mode: 0o644, data: manifest },
  ], epoch);
  const partial = `${spec.output}.partial-${process.pid}`;
  try {
    writeFileSync(partial, archive, { mode: 0o644 });
    renameSync(partial, spec.output);
  } catch (err) {
    rmSync(partial, { force: true });
    throw new DaemonError(
      "CANNOT_CREATE",
      `Cannot write ${spec.output}: ${(err as Error).message}: check the directory exists and is writable`,
    );
  }
  return `sha256:${id}`;
}
