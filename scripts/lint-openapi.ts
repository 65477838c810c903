// Lints the OpenAPI document the api serves: generated here (as GET /openapi.json builds it),
// written to a temp file, then `redocly lint` (recommended rules, redocly.yaml) and `spectral
// lint` (spectral:oas, .spectral.yaml). Fails on any error, and on any warning that is not one
// redocly.yaml explains (EXPLAINED below lists them, by rule and where).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildDocument } from '../services/api/src/openapi';

const root = path.resolve(__dirname, '..');
/** Warnings redocly.yaml explains: rule → the JSON pointers it may name. */
const EXPLAINED: Record<string, string[]> = {
  'operation-2xx-response': ['#/paths/~1click/get/responses'],
};

const dir = mkdtempSync(path.join(tmpdir(), 'trackway-openapi-'));
const file = path.join(dir, 'openapi.json');
const problems: string[] = [];
try {
  writeFileSync(file, JSON.stringify(buildDocument({ ingestUrl: 'http://127.0.0.1:3000' }), null, 2));
  const bin = (name: string) => path.join(root, 'node_modules', '.bin', name);
  const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' };

  const redocly = spawnSync(bin('redocly'), ['lint', file, '--config', path.join(root, 'redocly.yaml'), '--format', 'json'], { encoding: 'utf8', env });
  const found = JSON.parse(redocly.stdout.slice(redocly.stdout.indexOf('{'))) as {
    problems: { ruleId: string; severity: string; message: string; location: { pointer: string }[] }[];
  };
  for (const p of found.problems) {
    const where = p.location[0]?.pointer ?? '?';
    const explained = p.severity === 'warn' && EXPLAINED[p.ruleId]?.includes(where);
    console.log(`redocly ${p.severity} ${p.ruleId} ${where}: ${p.message}${explained ? ' (explained in redocly.yaml)' : ''}`);
    if (!explained) problems.push(`redocly ${p.severity} ${p.ruleId} at ${where}`);
  }

  const spectral = spawnSync(bin('spectral'), ['lint', file, '--ruleset', path.join(root, '.spectral.yaml'), '--format', 'json', '--quiet'], {
    encoding: 'utf8',
    env,
  });
  const results = JSON.parse(spectral.stdout || '[]') as { code: string; severity: number; message: string; path: string[] }[];
  for (const r of results) {
    console.log(`spectral ${['error', 'warn', 'info', 'hint'][r.severity]} ${r.code} ${r.path.join('.')}: ${r.message}`);
    if (r.severity <= 1) problems.push(`spectral ${r.code} at ${r.path.join('.')}`);
  }
  if (spectral.status !== 0 && results.length === 0) problems.push(`spectral failed: ${spectral.stderr}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
if (problems.length > 0) {
  console.error(`The OpenAPI document does not lint clean:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log('OpenAPI document: redocly (recommended) and spectral (spectral:oas) lint clean, but for the warnings redocly.yaml explains.');
