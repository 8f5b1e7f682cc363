import { ConfigError, loadConfig, type ConfigOf, type Refinement, type Spec } from './env';

/**
 * Loads a service's configuration at boot. On any bad variable it prints every problem to stderr and exits with 78
 * (EX_CONFIG), so a misconfigured pod fails fast and says why.
 */
export function loadConfigOrExit<S extends Spec>(
  service: string,
  spec: S,
  refinements: readonly Refinement<S>[] = [],
  env: NodeJS.ProcessEnv = process.env,
): ConfigOf<S> {
  try {
    return loadConfig(spec, env, refinements);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${service}: ${err.message}\n`);
      process.exit(78);
    }
    throw err;
  }
}

/**
 * Runs a service's `main`. A failure to start is printed and exits 1. `main` resolves to the service's stop function:
 * the first SIGTERM or SIGINT calls it once (a stop that throws is reported) and then the process exits 0.
 */
export function runService(name: string, main: () => Promise<(signal: string) => Promise<void>>): void {
  const describe = (err: unknown) => (err instanceof Error ? (err.stack ?? err.message) : String(err));
  main().then(
    (stop) => {
      let stopping = false;
      const onSignal = (signal: string) => {
        if (stopping) return;
        stopping = true;
        stop(signal)
          .catch((err: unknown) => process.stderr.write(`${name}: stopping failed: ${describe(err)}\n`))
          .finally(() => process.exit(0));
      };
      process.on('SIGTERM', () => onSignal('SIGTERM'));
      process.on('SIGINT', () => onSignal('SIGINT'));
    },
    (err: unknown) => exitOnBootError(name, err),
  );
}

/**
 * Ends a service that cannot start: prints why and exits 1, or the error's own `exitCode` when it names one (e.g. 69
 * when the NATS server cannot provide what the configuration asks for), so that operators can tell causes apart.
 */
export function exitOnBootError(name: string, err: unknown): never {
  const describe = err instanceof Error ? (err.stack ?? err.message) : String(err);
  process.stderr.write(`${name} failed to start: ${describe}\n`);
  process.exit(bootExitCode(err));
}

/** The exit code for a boot failure: the error's own integer `exitCode` (1–125), else 1. */
export function bootExitCode(err: unknown): number {
  if (typeof err === 'object' && err !== null && 'exitCode' in err) {
    const code = err.exitCode;
    if (typeof code === 'number' && Number.isInteger(code) && code >= 1 && code <= 125) return code;
  }
  return 1;
}
