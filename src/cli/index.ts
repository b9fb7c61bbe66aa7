/**
 * The `latchkey` command line: one subcommand per file, each returning an exit code.
 *
 * Exit codes: 0 success; 1 failure at run time (a check failed, a command errored);
 * 2 wrong invocation or invalid configuration.
 */
import { processIo, UsageError, type CliIo } from './io.js';

interface Loaded {
  help: string;
  run(argv: readonly string[], io: CliIo): Promise<number> | number;
}

interface Subcommand {
  summary: string;
  /** Imported on use, so that `latchkey version` does not load the AWS SDK. */
  load(): Promise<Loaded>;
}

const SUBCOMMANDS: Record<string, Subcommand> = {
  run: {
    summary: 'run the agent (the daemon)',
    load: async () => {
      const m = await import('./run.js');
      return { help: m.RUN_HELP, run: m.runCommand };
    },
  },
  check: {
    summary: 'validate config, reach the control plane and every local integration',
    load: async () => {
      const m = await import('./check.js');
      return { help: m.CHECK_HELP, run: m.checkCommand };
    },
  },
  keygen: {
    summary: 'generate an Ed25519 signing pair and an X25519 recipient pair',
    load: async () => {
      const m = await import('./keygen.js');
      return { help: m.KEYGEN_HELP, run: m.keygenCommand };
    },
  },
  exec: {
    summary: 'run one command locally through the dispatcher and drivers (no control plane)',
    load: async () => {
      const m = await import('./exec.js');
      return { help: m.EXEC_HELP, run: m.execCommand };
    },
  },
  version: {
    summary: 'print the version',
    load: async () => {
      const m = await import('./version.js');
      return { help: m.VERSION_HELP, run: (argv, io) => m.versionCommand(argv, io.out) };
    },
  },
  'dev-control-plane': {
    summary: 'run the reference control plane (development, tests), or send it a command',
    load: async () => {
      const m = await import('./dev-control-plane.js');
      return { help: m.DEV_CONTROL_PLANE_HELP, run: m.devControlPlaneCommand };
    },
  },
  demo: {
    summary: 'run the end-to-end demo',
    load: async () => {
      const m = await import('./demo.js');
      return { help: m.DEMO_HELP, run: m.demoCommand };
    },
  },
};

export function usage(): string {
  const width = Math.max(...Object.keys(SUBCOMMANDS).map((k) => k.length));
  const lines = Object.entries(SUBCOMMANDS).map(
    ([name, s]) => `  ${name.padEnd(width)}  ${s.summary}`,
  );
  return [
    'Usage: latchkey <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    "Run 'latchkey <command> --help' for the options of a command.",
  ].join('\n');
}

export async function runCli(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v')
    return (await import('./version.js')).versionCommand([], io.out);
  const sub = Object.prototype.hasOwnProperty.call(SUBCOMMANDS, name)
    ? SUBCOMMANDS[name]
    : undefined;
  if (!sub) {
    io.err(`latchkey: unknown command "${name}"\n`);
    io.err(usage());
    return 2;
  }
  const loaded = await sub.load();
  try {
    return await loaded.run(rest, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`latchkey ${name}: ${err.message}\n`);
      io.err(loaded.help);
      return 2;
    }
    throw err;
  }
}
