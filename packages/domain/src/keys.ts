import { createHash, randomBytes } from 'node:crypto';

// Postback keys are 192-bit random tokens, so a fast hash is enough to store them safely
// (as with API tokens); the key itself is shown once, at creation.
export function generatePostbackKey(): string {
  return `pk_${randomBytes(24).toString('base64url')}`;
}

export function hashPostbackKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}
