// What each command needs of the tools in tools/ (FerretDB, HAProxy, Chaos
// Toolkit, ...), and a way for a command to make sure they are there before it
// runs, whether it was started by npm (scripts/bootstrap.mjs) or directly
// (`npm run flatline -- chaos run`). Plain JavaScript with no dependencies:
// bootstrap.mjs imports it before npm ci. Types: ensure-tools.d.mts.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TOOLS_DIR = join(ROOT, 'tools');
const INSTALL = join(TOOLS_DIR, 'install.sh');

/**
 * The tools each command runs, by installer name (tools/install-<name>.sh).
 * test/bootstrap-tools.test.ts checks them against the binaries the code
 * spawns and against package.json's scripts.
 */
export const TOOLS_FOR = Object.freeze({
  /** `flatline up` (npm start): the database (FerretDB, on PostgreSQL with --db postgresql), the balancer, the TCP fault proxy and Istio's control plane (istiod; --mesh local runs without it) of the local stack; grpcurl is the user's, not the stack's. */
  up: Object.freeze(['ferretdb', 'haproxy', 'toxiproxy', 'postgresql', 'istiod']),
  /** `flatline chaos run`: the stack it starts when none runs, and Chaos Toolkit (with the report's Python). */
  chaos: Object.freeze(['ferretdb', 'haproxy', 'toxiproxy', 'postgresql', 'istiod', 'chaostoolkit']),
  /** `flatline bench`: the stacks its suites start, and the peers and load generators they measure with. */
  bench: Object.freeze(['ferretdb', 'haproxy', 'toxiproxy', 'postgresql', 'istiod', 'prometheus', 'victoria-metrics', 'wrk', 'ghz']),
  /** `synth --validate` and test/manifests.test.ts. */
  manifests: Object.freeze(['istioctl', 'kubeconform']),
  /** test/tiltfile.test.ts: the real Tilt (it loads both modes, cluster mode too, without a cluster). */
  tiltfile: Object.freeze(['tilt']),
});

/** Raised when tools cannot be installed; the message says which and why. */
export class ToolsError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ToolsError';
  }
}

/** Every tool there is an installer for (tools/install-<tool>.sh), sorted. */
export function availableTools() {
  return readdirSync(TOOLS_DIR)
    .map((f) => /^install-(.+)\.sh$/.exec(f)?.[1])
    .filter((t) => t !== undefined)
    .sort();
}

/** The tools tools/install.sh installs when named none (npm test): those whose installer does not say "# default: no". */
export function defaultTools() {
  return availableTools().filter((t) => !/^# default: no$/m.test(readFileSync(join(TOOLS_DIR, `install-${t}.sh`), 'utf8')));
}

/** Throws a ToolsError naming the first unknown tool and the tools there are. */
export function checkToolNames(names) {
  const known = availableTools();
  const unknown = names.filter((n) => !known.includes(n));
  if (unknown.length > 0) throw new ToolsError(`unknown tool: ${unknown.join(', ')} (tools: ${known.join(' ')})`);
}

/**
 * What installing these tools would build, with the rough time of each
 * ("# cold:" header), in seconds; empty when all are cached. Links what is
 * cached as a side effect, and builds nothing.
 */
export function toolsPlan(names) {
  checkToolNames(names);
  const run = spawnSync('bash', [INSTALL, '--plan', ...names], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (run.error !== undefined) throw new ToolsError(`cannot run ${INSTALL}: ${run.error.message}`);
  if (run.status !== 0) throw new ToolsError(`tools/install.sh --plan ${names.join(' ')} failed (${exitText(run)})`);
  return run.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [tool, seconds] = line.split('\t');
      return { tool, seconds: Number(seconds) };
    });
}

/**
 * Makes sure the tools are in .tools/bin, building what is not cached
 * (tools/install.sh: one line saying what it builds and how long that takes,
 * then one progress line per tool, on stderr). Warm, it prints one line, or
 * nothing with quiet. Synchronous: meant for the start of a command. Throws a
 * ToolsError when a name is unknown or a build fails (its log's end is on
 * stderr then).
 */
export function ensureTools(names, { quiet = false, planned = false } = {}) {
  checkToolNames(names);
  if (names.length === 0) return;
  const args = [INSTALL, ...(quiet ? ['--quiet'] : []), ...(planned ? ['--planned'] : []), ...names];
  const run = spawnSync('bash', args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (run.error !== undefined) throw new ToolsError(`cannot run ${INSTALL}: ${run.error.message}`);
  if (run.status !== 0) throw new ToolsError(`tools/install.sh ${names.join(' ')} failed (${exitText(run)}): see the [tools] lines above`);
}

/** A rough duration for a person: "~40 s", "~3 min". */
export function roughDuration(seconds) {
  return seconds < 60 ? `~${Math.round(seconds)} s` : `~${Math.round(seconds / 60)} min`;
}

function exitText(run) {
  return run.signal !== null ? `killed by ${run.signal}` : `exit ${run.status}`;
}
