/**
 * Getting CRIU: Debian 12's 3.17 cannot run on this kernel line (it fails on the `[vvar_vclock]` vDSO area) and
 * 4.1 fails on SO_PASSCRED since kernel 6.16; 4.2.1 works (shared/research §1). It is only in Debian sid, whose
 * libc is newer than bookworm's, so `fetchCriu` downloads the pinned sid packages straight from the archive's
 * pool, checks each sha256 against the pin (from sid's Packages index), extracts them with `dpkg-deb -x` into a
 * cache folder and writes a wrapper that runs criu with sid's own loader and libraries: the host's libc is never
 * touched. `criuStatus` says whether it is usable (`criu check`). docs/snapshots.md.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { wrapperScript } from './criu-wrapper.ts';

export const CRIU_VERSION = '4.2.1';
const MIRROR = process.env.TENEMENT_DEBIAN_MIRROR || 'http://deb.debian.org/debian';

/** criu, libcompel1 and the libraries they need at sid's versions (gcc-16-base and gconv modules hold no code it loads). */
const PACKAGES: ReadonlyArray<{ file: string; sha256: string }> = [
  { file: 'pool/main/c/criu/criu_4.2.1-1_amd64.deb', sha256: '4039578de7dd6480964754c1348416f0f0658fba3eadaa918bfe43e9a5fb9b04' },
  { file: 'pool/main/c/criu/libcompel1_4.2.1-1_amd64.deb', sha256: 'c41087440d28973c9abc04dcd31674a28969e5dc0cefde5023a89aaf07ef357d' },
  { file: 'pool/main/g/glibc/libc6_2.43-7_amd64.deb', sha256: '5c71715c51103beb4fbba9fe9f8dff604af6610dfa71c70bff342f54a7860803' },
  { file: 'pool/main/g/gcc-16/libgcc-s1_16.2.0-4_amd64.deb', sha256: 'd251ea642c3795e8723ac2b9eeebe511467ca04590ba70f3d555a7616787d7e3' },
  { file: 'pool/main/libb/libbsd/libbsd0_0.12.2-3_amd64.deb', sha256: '0383e47d704a5e58080606cbcafd2f2aa725702767ccf8b877fb224d04ff38c5' },
  { file: 'pool/main/libm/libmd/libmd0_1.3.0-1_amd64.deb', sha256: 'b93615e08319799bedd98a68643d607b06a7713365f829fb3cae131f8a3b81b1' },
  { file: 'pool/main/libf/libffi/libffi8_3.8.0-2_amd64.deb', sha256: '8f52979b2f3831088c419aae858f10fd3ad7e42cc6c1d28967bae996a98223a4' },
  { file: 'pool/main/g/gmp/libgmp10_6.3.0+dfsg-5+b2_amd64.deb', sha256: '032743c787f0e1e644e4dcfbdb38f01be8cb150cb9633f8be5e79aba6938f349' },
  { file: 'pool/main/g/gnutls28/libgnutls30t64_3.8.13-1_amd64.deb', sha256: '81f7f28a3968228293cabf6a92f7d6b2a8807f64ccf57469f2ce9a06b7b226af' },
  { file: 'pool/main/n/nettle/libhogweed6t64_3.10.2-1+b1_amd64.deb', sha256: 'd5872392a9d3b9b6e06f3dbd07a3f954346226d9fa2f318c4a3b5732b060fc44' },
  { file: 'pool/main/n/nettle/libnettle8t64_3.10.2-1+b1_amd64.deb', sha256: '213f9f0119cd63efc2529401547bad5f6d2cea4cae5d05cffdef22f19aabb30e' },
  { file: 'pool/main/libi/libidn2/libidn2-0_2.3.8-5_amd64.deb', sha256: '25a38f7d9ba5bb3daf47a21ad5d348303e602f3c9037a48d621683fe87e7ce28' },
  { file: 'pool/main/j/jansson/libjansson4_2.15.1-1_amd64.deb', sha256: '024a1537ca17a8215c7b03c6e84ea961ae96d3ecce9cd1db6a5226c180568419' },
  { file: 'pool/main/libm/libmnl/libmnl0_1.0.5-3+b2_amd64.deb', sha256: '5c058833d7f95cea335627f8ae48dbac38749493867ed3151113150e1612b264' },
  { file: 'pool/main/libn/libnet/libnet9_1.3+dfsg-3+b2_amd64.deb', sha256: '2a27e79bb376a1052a77b6373e17b3c2e71b2b2d15bc05d899f2a6318e5d36ea' },
  { file: 'pool/main/n/nftables/libnftables1_1.1.7-3_amd64.deb', sha256: 'a9fe852108aa99288b9305534203869e406aedaebeb833a48a32c48e50affd75' },
  { file: 'pool/main/libn/libnftnl/libnftnl11_1.3.2-1_amd64.deb', sha256: '409b62c0d383ae181e3550d0ec9279359856d98a449d8bce9983f69e1995dbc6' },
  { file: 'pool/main/libn/libnl3/libnl-3-200_3.12.0-2+b1_amd64.deb', sha256: 'a5ca78bbb9d5cc067b78952c5d38b7caac831d42e94b85b91edf1f6f00dfd48a' },
  { file: 'pool/main/p/p11-kit/libp11-kit0_0.26.5-1_amd64.deb', sha256: '7f6187247766dca57582c4fa327928fb612de3cd17a13786c1762c57357b4930' },
  { file: 'pool/main/p/protobuf-c/libprotobuf-c1_1.5.1-1+b2_amd64.deb', sha256: '8f0f2c76c4574b986aec4d3ed53e5b5939a8ce26c21294adf9020ebed9d2b3da' },
  { file: 'pool/main/libt/libtasn1-6/libtasn1-6_4.21.0-2+b1_amd64.deb', sha256: '097059368c29f6bac5253cc9a4ee3b8c2f449326de016feddf5a00b896fabe49' },
  { file: 'pool/main/libu/libunistring/libunistring5_1.4.2-1_amd64.deb', sha256: '509fb596f6b4de34f1d9cb5a0001abc3c6c51f4800e908ef888262ebdaaefa3b' },
  { file: 'pool/main/u/util-linux/libuuid1_2.42.4-1_amd64.deb', sha256: 'bdef15911ca5748219f5257bf4f1e81444fb40966499c02b1176bfbbcd9a2d08' },
  { file: 'pool/main/i/iptables/libxtables12_1.8.13-1_amd64.deb', sha256: '08ca0b50ecc24b84faf75716b4a7a279a5e5fb01d7a5c602fe3f473b6d9ffcb9' },
];

/** The wrapper for the packages extracted under `extracted`, keeping its cache under `dir` (criu-wrapper.ts). */
export function wrapperFor(dir: string, extracted = dir): string {
  const libs = [path.join(extracted, 'root/usr/lib/x86_64-linux-gnu'), path.join(extracted, 'root/lib/x86_64-linux-gnu')].join(':');
  const loader = path.join(extracted, 'root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2');
  return wrapperScript(dir, CRIU_VERSION, loader, libs, path.join(extracted, 'root/usr/sbin/criu'));
}

/** Where CRIU lives: `$TENEMENT_CRIU_DIR`, else `~/.cache/tenement/criu-4.2.1`. */
export function criuDir(): string {
  const chosen = process.env.TENEMENT_CRIU_DIR;
  if (chosen) return path.resolve(chosen);
  const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(cache, 'tenement', `criu-${CRIU_VERSION}`);
}

/** The wrapper script that runs criu with its own loader and libraries. */
export const criuPath = (): string => path.join(criuDir(), 'criu');

const run = promisify(execFile);

export type CriuStatus =
  | { usable: true; version: string; path: string; check: string; probeCache: string }
  | { usable: false; version: string; path: string; reason: string };

/** Whether CRIU runs here: fetched, and `criu check` says so (needs root). */
export async function criuStatus(): Promise<CriuStatus> {
  const wrapper = criuPath();
  const base = { version: CRIU_VERSION, path: wrapper };
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    return { usable: false, ...base, reason: `CRIU ${CRIU_VERSION} is fetched for linux x64 only (this is ${process.platform} ${process.arch})` };
  }
  if (!existsSync(wrapper)) {
    return { usable: false, ...base, reason: `CRIU is not at ${wrapper}: run \`ten doctor --fix criu\` or \`npm run fetch:criu\`` };
  }
  if (process.getuid?.() !== 0) return { usable: false, ...base, reason: 'CRIU dumps and restores other processes: Tenement must run as root' };
  try {
    const { stdout, stderr } = await run(wrapper, ['check'], { timeout: 30_000 });
    const said = `${stdout}${stderr}`;
    const verdict = said.split('\n').find((line) => /looks good/i.test(line))?.trim();
    if (verdict) return { usable: true, ...base, check: verdict, probeCache: probeCacheState() };
    return { usable: false, ...base, reason: `criu check: ${lastLines(said)}` };
  } catch (error) {
    const said = `${(error as { stdout?: string }).stdout ?? ''}${(error as { stderr?: string }).stderr ?? ''}`;
    return { usable: false, ...base, reason: `criu check failed: ${lastLines(said) || (error as Error).message}` };
  }
}

/** Whether the wrapper made CRIU's kernel probe caches for this boot (criu-wrapper.ts), in a sentence. */
export function probeCacheState(): string {
  const read = (file: string): string => {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch {
      return '';
    }
  };
  const boot = read('/proc/sys/kernel/random/boot_id');
  const kdat = path.join(criuDir(), 'kdat');
  if (boot && read(path.join(kdat, 'boot')) === boot && existsSync(path.join(kdat, 'criu.kdat'))) return 'kernel probe cache made for this boot';
  if (boot && read(path.join(kdat, 'failed')) === boot) return `kernel probe cache could not be made this boot (every CRIU run probes the kernel; remove ${path.join(kdat, 'failed')} to retry)`;
  return 'kernel probe cache not made yet (the next CRIU run as root makes it)';
}

function lastLines(text: string): string {
  // The RLIMIT_NOFILE line appears on every run without CAP_SYS_RESOURCE and is harmless.
  return text.split('\n').filter((line) => line.trim() && !line.includes('RLIMIT_NOFILE')).slice(-3).join(' ').trim();
}

async function download(url: string, expected: string): Promise<Buffer> {
  const response = await fetch(url, { signal: AbortSignal.timeout(120_000) });
  if (!response.ok) {
    throw new Error(`${url}: HTTP ${response.status}${response.status === 404 ? ' (sid moved on: update the pins in plugins/snapshots/criu.ts from its Packages index)' : ''}`);
  }
  const body = Buffer.from(await response.arrayBuffer());
  const digest = createHash('sha256').update(body).digest('hex');
  if (digest !== expected) throw new Error(`${url} has sha256 ${digest}, expected ${expected}: refusing it`);
  return body;
}

/**
 * Downloads, checks and extracts the pinned packages and writes the wrapper. Idempotent: a wrapper already there
 * is kept. The folder is filled under a scratch name and renamed into place, so a half fetch is never used.
 */
export async function fetchCriu(log: (line: string) => void = () => undefined): Promise<string> {
  const wrapper = criuPath();
  const dir = criuDir();
  if (existsSync(wrapper)) {
    // A wrapper written by an older Tenement is brought up to date (the extracted packages are the same pins).
    const current = wrapperFor(dir);
    if (readFileSync(wrapper, 'utf8') !== current) {
      writeFileSync(`${wrapper}.new`, current, { mode: 0o755 });
      renameSync(`${wrapper}.new`, wrapper);
      log(`criu ${CRIU_VERSION} at ${wrapper}: wrapper updated`);
    } else {
      log(`criu ${CRIU_VERSION} already at ${wrapper}`);
    }
    return wrapper;
  }
  mkdirSync(path.dirname(dir), { recursive: true });
  const scratch = mkdtempSync(`${dir}.fetch-`);
  try {
    const root = path.join(scratch, 'root');
    mkdirSync(root);
    for (const pkg of PACKAGES) {
      const name = path.basename(pkg.file);
      log(`fetching ${name}`);
      const deb = path.join(scratch, name);
      writeFileSync(deb, await download(`${MIRROR}/${pkg.file}`, pkg.sha256));
      await run('dpkg-deb', ['-x', deb, root], { timeout: 120_000 });
      rmSync(deb);
    }
    if (!existsSync(path.join(root, 'usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'))) {
      throw new Error(`libc6 extracted no loader (found ${readdirSync(root).join(', ')})`);
    }
    writeFileSync(path.join(scratch, 'criu'), wrapperFor(dir));
    chmodSync(path.join(scratch, 'criu'), 0o755);
    rmSync(dir, { recursive: true, force: true });
    renameSync(scratch, dir);
    const { stdout } = await run(wrapper, ['--version'], { timeout: 30_000 });
    log(`criu ${CRIU_VERSION} installed at ${wrapper}: ${stdout.trim().split('\n')[0]}`);
    return wrapper;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
