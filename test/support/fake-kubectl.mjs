#!/usr/bin/env node
// A stand-in for kubectl in tests (there is no cluster here): `apply -f -`
// stores the objects of a List by kind/namespace/name in $FAKE_KUBE_STATE,
// `get virtualservices… -n NS -l k=v -o json` lists the stored ones that match.
// Only what `flatline fault --kube` runs is understood; anything else exits 1.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const file = process.env.FAKE_KUBE_STATE;
const state = file && existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
const args = process.argv.slice(2);
if (args[0] === 'apply' && args[1] === '-f' && args[2] === '-') {
  const input = JSON.parse(readFileSync(0, 'utf8'));
  for (const o of input.kind === 'List' ? input.items : [input]) {
    const key = `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`;
    state[key] = o;
    process.stdout.write(`${o.kind.toLowerCase()}.${o.apiVersion.split('/')[0]}/${o.metadata.name} configured\n`);
  }
  writeFileSync(file, JSON.stringify(state));
} else if (args[0] === 'get' && args[1].startsWith('virtualservices')) {
  const ns = args[args.indexOf('-n') + 1];
  const [k, v] = args[args.indexOf('-l') + 1].split('=');
  const items = Object.values(state).filter((o) => o.kind === 'VirtualService' && o.metadata.namespace === ns && o.metadata.labels?.[k] === v);
  process.stdout.write(JSON.stringify({ kind: 'List', items }));
} else {
  process.stderr.write(`fake kubectl: unsupported: ${args.join(' ')}\n`);
  process.exit(1);
}
