#!/usr/bin/env node
// Generates proto/gen from proto/ (ts-proto through buf, plus buf's own
// descriptor set for gRPC reflection). With --check, generates into a
// temporary folder and fails if proto/gen differs: the committed output must
// match its sources.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, cpSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const protoDir = join(root, 'proto');
const buf = join(root, 'node_modules', '.bin', 'buf');

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log(`usage: npm run gen [-- --check]

Lints proto/ with buf, generates TypeScript into proto/gen with ts-proto and
writes buf's descriptor sets proto/gen/flatline.binpb and grpc-health.binpb
(served by gRPC reflection).
  --check   generate into a temporary folder and fail if proto/gen differs`);
  process.exit(0);
}
const check = args.includes('--check');

function run(cmdArgs) {
  execFileSync(buf, cmdArgs, { cwd: protoDir, stdio: 'inherit' });
}

function listFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => relative(dir, join(d.parentPath, d.name)))
    .sort();
}

const out = mkdtempSync(join(tmpdir(), 'flatline-gen-'));
try {
  console.error('[gen] buf lint');
  run(['lint']);
  console.error('[gen] buf generate (ts-proto)');
  run(['generate', '-o', out]);
  console.error('[gen] buf build (descriptor set)');
  run(['build', '-o', join(out, 'gen', 'flatline.binpb')]);
  // grpc.health.v1 as compiled by buf, for reflection: proto-loader's rebuilt
  // descriptor of it has a map entry grpcurl refuses.
  console.error('[gen] buf build (grpc.health.v1 descriptor set)');
  run(['build', join(root, 'node_modules', 'grpc-health-check', 'proto', 'health', 'v1', 'health.proto'), '-o', join(out, 'gen', 'grpc-health.binpb')]);
  const fresh = join(out, 'gen');
  const committed = join(protoDir, 'gen');
  if (check) {
    const a = listFiles(fresh);
    const b = listFiles(committed);
    const drift = [
      ...a.filter((f) => !b.includes(f)).map((f) => `missing in proto/gen: ${f}`),
      ...b.filter((f) => !a.includes(f)).map((f) => `not generated, but in proto/gen: ${f}`),
      ...a
        .filter((f) => b.includes(f))
        .filter((f) => !readFileSync(join(fresh, f)).equals(readFileSync(join(committed, f))))
        .map((f) => `differs: proto/gen/${f}`),
    ];
    if (drift.length > 0) {
      console.error(`[gen] proto/gen is out of date with proto/ (run \`npm run gen\` and commit):\n  ${drift.join('\n  ')}`);
      process.exit(1);
    }
    console.error(`[gen] proto/gen matches proto/ (${a.length} files)`);
  } else {
    rmSync(committed, { recursive: true, force: true });
    cpSync(fresh, committed, { recursive: true });
    console.error(`[gen] wrote ${listFiles(committed).length} files to proto/gen`);
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}
