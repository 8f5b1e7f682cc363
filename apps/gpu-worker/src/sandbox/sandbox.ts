/**
 * The OS sandbox every job process runs in (ffmpeg and catalog types alike), built on bubblewrap (`bwrap`). See
 * docs/gpu.md ("Job sandbox") for why bubblewrap and what each property rests on. In short, a job process:
 * - runs as its own unprivileged uid: a worker running as root drops to a per-slot uid (`JOB_SANDBOX_UID_BASE` + slot)
 *   with `setpriv` before bwrap runs, so bwrap itself is unprivileged (root running `bwrap --uid` would stay host root);
 *   a worker that is not root cannot hand out host uids, and its jobs run as its own uid inside a user namespace;
 * - is in new user, mount, pid, ipc, uts, cgroup and network namespaces (`--unshare-all`; an empty network namespace
 *   unless its catalog type says `network: true`), cannot create more user namespaces, dies with the worker, and has
 *   its own session (no terminal injection);
 * - sees a read-only root built from `/usr` (and the merged-/usr symlinks), the few `/etc` files the dynamic loader and
 *   media libraries read, the catalog directory (read-only), its own `/proc`, a minimal read-only `/dev` (plus the
 *   NVIDIA device nodes of the GPUs it was given, `/sys` read-only for CUDA) and, writable, only its scratch directory
 *   (at the same path as on the host, so no bound path can shadow another; its `$HOME`, `$TMPDIR` and `/tmp`);
 * - is spawned with an empty environment (bwrap is pid 1 of the namespace and its `/proc/1/environ` is visible) and
 *   gets only the variables the job needs through `--setenv`;
 * - has rlimits set inside the sandbox (open files, processes, file size) and is the preferred OOM victim.
 */
import { spawn } from 'node:child_process';
import { constants as fsConstants, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { access, chmod, chown, lstat, mkdir, mkdtemp, readdir, readlink, rm, stat } from 'node:fs/promises';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { lstatIfExists } from '../executors/lstat';

/** PATH inside the sandbox. */
export const SANDBOX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** `/etc` entries bound read-only when present: the dynamic loader, Debian's alternatives, fonts, time zones. */
const ETC_READ_ONLY = [
  '/etc/alternatives',
  '/etc/ld.so.cache',
  '/etc/ld.so.conf',
  '/etc/ld.so.conf.d',
  '/etc/fonts',
  '/etc/localtime',
  '/etc/mime.types',
];
/** Added for a type with `network: true`: name resolution and CA certificates. */
const ETC_NETWORK = [
  '/etc/resolv.conf',
  '/etc/hosts',
  '/etc/nsswitch.conf',
  '/etc/host.conf',
  '/etc/gai.conf',
  '/etc/ssl',
  '/etc/ca-certificates',
  '/etc/pki',
];
/** Top-level directories of the merged /usr (symlinks on Debian 12, directories elsewhere). */
const ROOT_LINKS = ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];
/**
 * Variables of the worker's own environment a job inherits: where the loader, CUDA and the locale look. Never
 * credentials (everything else of the worker's environment stays out).
 */
const INHERITED_ENV = ['LD_LIBRARY_PATH', 'CUDA_HOME', 'NVIDIA_DRIVER_CAPABILITIES', 'LC_ALL', 'TZ'];

/** The worker's PATH entries the sandbox can see (under /usr, /bin, /sbin), then the standard ones. */
function sandboxPath(): string {
  const seen = (process.env['PATH'] ?? '')
    .split(delimiter)
    .filter((d) => ['/usr', '/bin', '/sbin'].some((root) => under(d, root)));
  return [...new Set([...seen, ...SANDBOX_PATH.split(delimiter)])].join(delimiter);
}

/** NVIDIA control nodes every CUDA process opens; `/dev/nvidia<N>` is added per assigned GPU. */
const NVIDIA_CONTROL = ['/dev/nvidiactl', '/dev/nvidia-uvm', '/dev/nvidia-uvm-tools', '/dev/nvidia-modeset'];

export interface SandboxSettings {
  /** `bwrap` (the default) or `off` (JOB_SANDBOX=off: job processes run as the worker, unconfined). */
  mode: 'bwrap' | 'off';
  /** bubblewrap binary. */
  bwrap: string;
  /** First uid/gid handed to job processes when the worker runs as root (one per slot). */
  uidBase: number;
  /** How many uids the pool holds (the worker's slots). */
  slots: number;
  /** RLIMIT_NOFILE inside the sandbox. */
  maxOpenFiles: number;
  /** RLIMIT_NPROC inside the sandbox (counted per uid: per attempt when the worker is root). */
  maxProcesses: number;
  /** RLIMIT_FSIZE inside the sandbox: no single file may grow past this (MAX_SCRATCH_BYTES). */
  maxFileBytes: number;
  /** Size of the job's `/dev/shm` (a RAM tmpfs). */
  shmBytes: number;
}

/** What one job process needs from its sandbox. */
export interface SandboxRequest {
  command: string;
  args: readonly string[];
  /** The attempt's scratch directory on the host (bound writable at the same path). */
  scratchDir: string;
  /** The job's whole environment (nothing of the worker's is added). */
  env: Readonly<Record<string, string>>;
  /** NVIDIA minor numbers of the GPUs the attempt was given. */
  gpuIndices: readonly number[];
  /** Keep the host's network (a catalog type's `network: true`). */
  network: boolean;
  /** Extra host paths bound read-only at the same place (the catalog directory). */
  readOnly: readonly string[];
}

/** The command line that runs a request inside the sandbox, and the environment to spawn it with. */
export interface WrappedCommand {
  command: string;
  args: string[];
  env: Record<string, string>;
}

/** The sandbox cannot be used on this host (bwrap missing, user namespaces refused, …). */
export class SandboxUnavailableError extends Error {
  override readonly name = 'SandboxUnavailableError';
  readonly code = 'SANDBOX_UNAVAILABLE';
}

async function isExecutable(path: string): Promise<boolean> {
  return access(path, fsConstants.X_OK).then(
    () => true,
    () => false,
  );
}

/** `name` looked up on a PATH (absolute paths are returned as they are). */
export async function resolveOnPath(name: string, path = process.env['PATH'] ?? ''): Promise<string | undefined> {
  if (name.includes('/')) return (await isExecutable(name)) ? name : undefined;
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function under(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith('/') ? root : `${root}/`);
}

/** One job's slot in the sandbox: its uid (when the worker is root) and the scratch directory made ready for it. */
export interface SandboxSlot {
  /** The uid/gid the job runs as (undefined: the worker's own, inside a user namespace). */
  readonly uid: number | undefined;
  /** Gives the slot back (once the attempt's processes are gone). */
  release(): void;
}

/**
 * Kills (SIGKILL) what is left of one attempt's sandbox: the processes that run as its uid and either carry its scratch
 * directory on their command line (the outer and inner bwrap) or live in a pid namespace of such a process (the job's
 * whole tree; killing a namespace's init ends the namespace too). Looks again until none is left (bounded).
 *
 * Why: bubblewrap sets the inner process's parent-death signal after its clone, so an outer bwrap killed in that window
 * (an attempt aborted while its sandbox starts) leaves the job running in its own session and pid namespace, out of reach
 * of the guard's process group and holding the attempt's output pipes — seen under load: a cordon 0.3 s after an
 * attempt's start left it running for its whole length, and the attempt never ended. The uid alone is not enough (two
 * workers on one host hand out the same uids), the scratch directory is unique to the attempt.
 */
export function killAttemptProcesses(uid: number, scratchDir: string, rounds = 20): number {
  const hostNs = readlinkOr('/proc/self/ns/pid');
  let signalled = 0;
  for (let round = 0; round < rounds; round++) {
    const candidates: { pid: number; ns: string | undefined; marked: boolean }[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let status: string;
      let cmdline: string;
      try {
        status = readFileSync(`/proc/${entry}/status`, 'utf8');
        if (/^State:\s+Z/m.test(status)) continue; // already dead, waiting to be reaped
        const ids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
        if (!ids || (Number(ids[1]) !== uid && Number(ids[2]) !== uid)) continue;
        cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      } catch {
        continue; // gone since the listing
      }
      const marked = cmdline.split('\0').includes(scratchDir);
      candidates.push({ pid: Number(entry), ns: readlinkOr(`/proc/${entry}/ns/pid`), marked });
    }
    const namespaces = new Set(candidates.filter((c) => c.marked && c.ns && c.ns !== hostNs).map((c) => c.ns));
    const doomed = candidates.filter((c) => c.marked || (c.ns !== undefined && namespaces.has(c.ns)));
    if (doomed.length === 0) break;
    for (const c of doomed) {
      try {
        process.kill(c.pid, 'SIGKILL');
        signalled++;
      } catch {
        // gone meanwhile
      }
    }
  }
  return signalled;
}

function readlinkOr(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

export class Sandbox {
  private readonly freeUids: number[] = [];
  private rootLayout: string[] = [];

  private constructor(
    readonly settings: SandboxSettings,
    /** Whether the worker is root (and so hands out per-slot uids). */
    readonly privileged: boolean,
  ) {
    for (let i = 0; i < settings.slots; i++) this.freeUids.push(settings.uidBase + i);
  }

  get enabled(): boolean {
    return this.settings.mode === 'bwrap';
  }

  /**
   * Checks that this host can run the sandbox (a real job-shaped run of `true` inside it) and returns it. Throws
   * SandboxUnavailableError with the reason when it cannot; with `mode: off` nothing is checked.
   */
  static async create(settings: SandboxSettings, scratchRoot: string): Promise<Sandbox> {
    const privileged = typeof process.getuid === 'function' && process.getuid() === 0;
    const sandbox = new Sandbox(settings, privileged);
    if (!sandbox.enabled) return sandbox;
    const bwrap = await resolveOnPath(settings.bwrap);
    if (!bwrap) {
      throw new SandboxUnavailableError(
        `bubblewrap (${settings.bwrap}) is not installed or not executable; install it (Debian/Ubuntu: apt-get ` +
          'install bubblewrap) or set JOB_SANDBOX=off to run job processes unconfined (not for shared workers)',
      );
    }
    sandbox.settings.bwrap = bwrap;
    sandbox.rootLayout = await rootLayoutArgs();
    // Job uids must reach their own directory without listing the others: the worker's directory is 0711, and its
    // parent (WORKER_SCRATCH_DIR) gets the search bit for others if it lacks it.
    await chmod(scratchRoot, 0o711);
    const parent = dirname(scratchRoot);
    const mode = (await stat(parent)).mode & 0o7777;
    if ((mode & 0o001) === 0) await chmod(parent, mode | 0o001);
    const probeDir = await mkdtemp(join(scratchRoot, 'sandbox-probe-'));
    const slot = sandbox.acquire();
    try {
      await sandbox.prepareScratch(probeDir, slot);
      const wrapped = await sandbox.wrap(
        {
          command: 'sh',
          args: ['-c', 'echo ok > probe && cat probe'],
          scratchDir: probeDir,
          env: {},
          gpuIndices: [],
          network: false,
          readOnly: [],
        },
        slot,
      );
      const r = await runQuick(wrapped);
      if (r.code !== 0 || r.stdout.trim() !== 'ok') {
        throw new SandboxUnavailableError(
          `bubblewrap cannot start a job sandbox on this host (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}` +
            ' — every directory above the scratch directory must be searchable by other users (chmod o+x), and' +
            ' user namespaces may be disabled (sysctl user.max_user_namespaces, ' +
            'kernel.apparmor_restrict_unprivileged_userns) or refused by seccomp/AppArmor; see docs/gpu.md, or set ' +
            'JOB_SANDBOX=off to run job processes unconfined (not for shared workers)',
        );
      }
    } finally {
      slot.release();
      // Best-effort: the probe directory lives in this worker's scratch root, removed at stop.
      await rm(probeDir, { recursive: true, force: true }).catch(() => undefined);
    }
    return sandbox;
  }

  /** Takes a uid for one attempt (per-slot uids only when the worker is root). */
  acquire(): SandboxSlot {
    if (!this.enabled || !this.privileged) return { uid: undefined, release: () => undefined };
    // More attempts than slots never run at once (the dispatch consumer's MaxAckPending is the slot count); the
    // fallback keeps a uid distinct from every pooled one should that ever change.
    const uid = this.freeUids.shift() ?? this.settings.uidBase + this.settings.slots;
    let released = false;
    return {
      uid,
      release: () => {
        if (released || uid >= this.settings.uidBase + this.settings.slots) return;
        released = true;
        this.freeUids.push(uid);
      },
    };
  }

  /** Makes an attempt's scratch directory the job's own: owned by its uid, mode 0700. */
  async prepareScratch(dir: string, slot: SandboxSlot): Promise<void> {
    await mkdir(dir, { recursive: true });
    if (slot.uid !== undefined) await chown(dir, slot.uid, slot.uid);
    await chmod(dir, 0o700);
  }

  /** The command line and environment that run `req` in the sandbox (or as it is, with the sandbox off). */
  async wrap(req: SandboxRequest, slot: SandboxSlot): Promise<WrappedCommand> {
    if (!this.enabled) {
      return {
        command: req.command,
        args: [...req.args],
        env: { PATH: process.env['PATH'] ?? SANDBOX_PATH, ...req.env },
      };
    }
    const s = this.settings;
    const a: string[] = [];
    if (slot.uid !== undefined) {
      // Drop to the slot's uid first; bwrap then runs unprivileged and everything it creates is that uid's.
      a.push('--reuid', String(slot.uid), '--regid', String(slot.uid), '--clear-groups', '--', s.bwrap);
    }
    a.push(
      '--unshare-all',
      '--unshare-user',
      '--disable-userns',
      '--die-with-parent',
      '--new-session',
      '--hostname',
      'gantry-job',
    );
    if (req.network) a.push('--share-net');
    a.push('--clearenv');
    const inherited: Record<string, string> = {};
    for (const k of INHERITED_ENV) if (process.env[k] !== undefined) inherited[k] = process.env[k]!;
    const env: Record<string, string> = {
      ...inherited,
      PATH: sandboxPath(),
      HOME: req.scratchDir,
      TMPDIR: req.scratchDir,
      LANG: 'C.UTF-8',
      ...req.env,
    };
    for (const [k, v] of Object.entries(env)) a.push('--setenv', k, v);
    a.push('--ro-bind', '/usr', '/usr', ...this.rootLayout);
    for (const p of ETC_READ_ONLY) a.push('--ro-bind-try', p, p);
    if (req.network) for (const p of ETC_NETWORK) a.push('--ro-bind-try', p, p);
    const extra = new Set<string>(req.readOnly.filter((p) => isAbsolute(p)));
    // A command given by absolute path outside what is bound (FFMPEG=/opt/ffmpeg/bin/ffmpeg) brings its directory.
    if (isAbsolute(req.command) && !under(req.command, '/usr') && ![...extra].some((p) => under(req.command, p))) {
      extra.add(dirname(req.command));
    }
    for (const p of extra) a.push('--ro-bind', p, p);
    a.push('--proc', '/proc', '--dev', '/dev');
    a.push('--size', String(s.shmBytes), '--tmpfs', '/dev/shm');
    if (req.gpuIndices.length > 0) {
      for (const p of NVIDIA_CONTROL) a.push('--dev-bind-try', p, p);
      for (const i of req.gpuIndices) a.push('--dev-bind-try', `/dev/nvidia${i}`, `/dev/nvidia${i}`);
      a.push('--dev-bind-try', '/dev/nvidia-caps', '/dev/nvidia-caps');
      // cuInit reads the PCI topology from /sys.
      a.push('--ro-bind', '/sys', '/sys');
    }
    a.push('--remount-ro', '/dev');
    a.push('--bind', req.scratchDir, req.scratchDir);
    // /tmp is the scratch directory too (a scratch directory under the host's /tmp leaves /tmp read-only around it;
    // TMPDIR points at the scratch directory either way). No writable space escapes the disk cap.
    if (!under(req.scratchDir, '/tmp')) a.push('--symlink', req.scratchDir, '/tmp');
    a.push('--chdir', req.scratchDir, '--remount-ro', '/');
    // Inside: the job is the OOM killer's first choice, then its rlimits, then the program.
    a.push(
      '--',
      '/usr/bin/choom',
      '-n',
      '1000',
      '--',
      '/usr/bin/prlimit',
      `--nofile=${s.maxOpenFiles}`,
      `--nproc=${s.maxProcesses}`,
      `--fsize=${s.maxFileBytes}`,
      '--core=0',
      '--',
      req.command,
      ...req.args,
    );
    // Spawned with (almost) nothing: bwrap is pid 1 inside, and its environment is readable there.
    const spawnEnv = { PATH: SANDBOX_PATH };
    return slot.uid !== undefined
      ? { command: '/usr/bin/setpriv', args: a, env: spawnEnv }
      : { command: s.bwrap, args: a, env: spawnEnv };
  }
}

/** `--symlink`/`--ro-bind` for the top-level library and binary directories, as the host has them. */
async function rootLayoutArgs(): Promise<string[]> {
  const out: string[] = [];
  for (const p of ROOT_LINKS) {
    const st = await lstatIfExists(p);
    if (!st) continue;
    if (st.isSymbolicLink()) out.push('--symlink', await readlink(p), p);
    else if (st.isDirectory()) out.push('--ro-bind', p, p);
  }
  return out;
}

/** Runs a short command to completion (the boot probe and the bench). */
export function runQuick(
  w: WrappedCommand,
  cwd = '/',
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(w.command, w.args, { env: w.env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', (err) => resolve({ code: null, stdout, stderr: stderr + err.message }));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Lines bubblewrap, setpriv or choom print when they, not the job, fail. (prlimit's own "failed to execute" is the
 * job's program missing: exit 126/127, SPAWN_FAILED.)
 */
export function sandboxFailureLine(stderrTail: readonly string[]): string | undefined {
  return stderrTail.find((l) => /^(bwrap|setpriv|choom): /.test(l.trim()));
}

/** Total bytes under `dir` (apparent size or allocated blocks, whichever is larger; symlinks not followed). */
export async function directoryBytes(dir: string, maxEntries = 100_000): Promise<{ bytes: number; entries: number }> {
  let bytes = 0;
  let entries = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    const names = await readdir(d).catch(() => [] as string[]);
    for (const name of names) {
      entries++;
      if (entries > maxEntries) return { bytes, entries };
      const p = join(d, name);
      // The job keeps writing while this walks: an entry it removed (or made unreadable) meanwhile is skipped, and
      // its directory's own size is still counted.
      const st = await lstat(p).catch(() => undefined);
      if (!st) continue;
      bytes += Math.max(st.size, st.blocks * 512);
      if (st.isDirectory()) stack.push(p);
    }
  }
  return { bytes, entries };
}

/** Disk caps of one attempt (MAX_INPUT_BYTES, MAX_SCRATCH_BYTES). */
export interface DiskLimits {
  maxInputBytes: number;
  maxScratchBytes: number;
  /** Files and directories an attempt may hold in its scratch directory. */
  maxScratchEntries: number;
}

/** One attempt's view of the sandbox: its slot, its scratch directory, its GPUs and its disk caps. */
export class AttemptSandbox {
  constructor(
    private readonly sandbox: Sandbox,
    private readonly slot: SandboxSlot,
    /** The attempt's scratch directory on the host. */
    readonly scratchDir: string,
    private readonly gpuIndices: readonly number[],
    private readonly limits: DiskLimits,
  ) {}

  /** False with JOB_SANDBOX=off: the job runs unconfined (the disk caps still hold). */
  get enabled(): boolean {
    return this.sandbox.enabled;
  }

  /** The scratch directory as the job sees it (the same path as on the host). */
  get workDir(): string {
    return this.scratchDir;
  }

  get maxScratchBytes(): number {
    return this.limits.maxScratchBytes;
  }

  get maxInputBytes(): number {
    return this.limits.maxInputBytes;
  }

  /**
   * Kills what is left of this attempt's sandbox (see {@link killAttemptProcesses}); 0 without a per-slot uid (an
   * unprivileged worker runs every sandbox as its own uid: see docs/gpu.md for what that leaves).
   */
  killStragglers(): number {
    if (!this.sandbox.enabled || this.slot.uid === undefined) return 0;
    return killAttemptProcesses(this.slot.uid, this.scratchDir);
  }

  get maxScratchEntries(): number {
    return this.limits.maxScratchEntries;
  }

  wrap(
    command: string,
    args: readonly string[],
    env: Readonly<Record<string, string>>,
    o: { network: boolean; readOnly: readonly string[] },
  ): Promise<WrappedCommand> {
    return this.sandbox.wrap(
      {
        command,
        args,
        env,
        scratchDir: this.scratchDir,
        gpuIndices: this.gpuIndices,
        network: o.network,
        readOnly: o.readOnly,
      },
      this.slot,
    );
  }
}
