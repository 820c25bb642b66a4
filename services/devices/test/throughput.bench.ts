/**
 * Throughput of one simulator process (not a test: it prints figures and
 * asserts nothing):
 *
 *   node --import tsx services/devices/test/throughput.bench.ts [flats=1000] [requests=20000] [concurrency=16]
 *
 * Starts the real simulator (src/main.ts) as a child process with that many
 * flats and an epoch an hour old (so answers hold a full 60 s window),
 * polls random flats over keep-alive HTTPS from this process, and reports requests/s, the child's CPU time per request and its RSS.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { fileURLToPath } from 'node:url';
import { splitHostPort } from '@flatline/platform';
import { stateDir } from './helpers.ts';

const [flats = 1000, total = 20000, concurrency = 16] = process.argv.slice(2).map(Number);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TICK_S = 0.01; // USER_HZ is 100 on Linux

function procStat(pid: number): { rssMb: number; cpuS: number } {
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return { rssMb: rssKb / 1024, cpuS: (Number(fields[11]) + Number(fields[12])) * TICK_S };
}

const dir = stateDir(flats);
// An epoch an hour ago, so every answer holds a full window (60 readings per device), as in steady state.
const epochMs = Date.now() - 3_600_000;
writeFileSync(
  `${dir.path}/epoch.json`,
  JSON.stringify({ version: 1, epoch: new Date(epochMs).toISOString(), segments: [{ start: new Date(epochMs).toISOString(), start_ms: epochMs, period_ms: 1000 }] }),
);
const child = spawn(process.execPath, ['--import', 'tsx', 'services/devices/src/main.ts'], {
  cwd: ROOT,
  env: {
    PATH: process.env['PATH'] ?? '',
    FLATLINE_DEVICES_STATE_DIR: dir.path,
    FLATLINE_DEVICES_LISTEN: '127.0.0.1:0',
    FLATLINE_DEVICES_CONTROL_LISTEN: '127.0.0.1:0',
    FLATLINE_DEVICES_METRICS_LISTEN: '127.0.0.1:0',
  },
  stdio: ['ignore', 'pipe', 'inherit'],
});
try {
  const listening = await new Promise<{ https: string }>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const line = out.split('\n').find((l) => l.includes('"msg":"listening"'));
      if (line) resolve(JSON.parse(line) as { https: string });
    });
    child.once('exit', (code) => reject(new Error(`simulator exited ${code}`)));
  });
  const { port } = splitHostPort(listening.https);
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency, ca: readFileSync(`${dir.path}/ca.pem`, 'utf8') });
  const ids = [...dir.credentials.keys()];
  const auth = new Map(ids.map((id) => [id, `Basic ${Buffer.from(`${dir.credentials.get(id)!.username}:${dir.credentials.get(id)!.password}`).toString('base64')}`]));
  let bytes = 0;
  const once = (id: string) =>
    new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: `/flat/${id}/measurements/`, agent, headers: { authorization: auth.get(id)! } }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
        res.on('data', (c: Buffer) => (bytes += c.length)).on('end', resolve);
      });
      req.on('error', reject);
      req.end();
    });
  const run = async (n: number) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < n) {
          next++;
          await once(ids[Math.floor(Math.random() * ids.length)]!);
        }
      }),
    );
  };
  await run(Math.min(2000, total)); // warm-up: JIT, TLS sessions
  const before = procStat(child.pid!);
  bytes = 0;
  const t0 = process.hrtime.bigint();
  await run(total);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const after = procStat(child.pid!);
  agent.destroy();
  console.log(
    JSON.stringify({
      flats,
      requests: total,
      concurrency,
      seconds: +seconds.toFixed(2),
      requestsPerSecond: Math.round(total / seconds),
      meanAnswerBytes: Math.round(bytes / total),
      simulatorCpuMsPerRequest: +(((after.cpuS - before.cpuS) * 1000) / total).toFixed(3),
      simulatorRssMb: Math.round(after.rssMb),
    }),
  );
} finally {
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
  dir.cleanup();
}
