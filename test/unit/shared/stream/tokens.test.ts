import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TokenStore, TokenStoreFullError } from '../../../../shared/stream/index.ts';

function fakeClock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('TokenStore', () => {
  it('returns the stored value once for a token and then forgets it', () => {
    const store = new TokenStore<string>();
    const token = store.put('m1');
    assert.equal(store.take(token), 'm1');
    assert.equal(store.take(token), undefined);
  });

  it('shows the value under a token on peek without using it up', () => {
    const store = new TokenStore<string>();
    const token = store.put('m1');
    assert.equal(store.peek(token), 'm1');
    assert.equal(store.peek('x'.repeat(43)), undefined);
    assert.equal(store.take(token), 'm1');
    assert.equal(store.peek(token), undefined);
  });

  it('makes 256-bit base64url tokens that differ between calls', () => {
    const store = new TokenStore<number>();
    const tokens = new Set(Array.from({ length: 200 }, (_, i) => store.put(i)));
    assert.equal(tokens.size, 200);
    for (const t of tokens) {
      assert.match(t, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(Buffer.from(t, 'base64url').length, 32);
    }
  });

  it('refuses a token after its ttl and accepts it just before', () => {
    const clock = fakeClock();
    const store = new TokenStore<string>({ ttlMs: 60_000, clock: clock.now });
    const a = store.put('a');
    const b = store.put('b');
    clock.advance(59_999);
    assert.equal(store.take(a), 'a');
    clock.advance(1);
    assert.equal(store.take(b), undefined);
    assert.equal(store.size, 0);
  });

  it('expires each token on time when the clock went back between two puts', () => {
    let t = 1_000_000;
    const store = new TokenStore<string>({ ttlMs: 60_000, clock: () => t });
    const a = store.put('a'); // expires at 1,060,000
    t -= 10_000; // a wall clock stepped back
    const b = store.put('b'); // expires at 1,050,000, behind a in insertion order
    t = 1_055_000;
    assert.equal(store.size, 1, 'b has expired although a, put before it, has not');
    assert.equal(store.take(b), undefined);
    assert.equal(store.take(a), 'a');
  });

  it('accepts only the spelling it handed out (43 characters carry 2 spare bits)', () => {
    const store = new TokenStore<string>();
    const token = store.put('x');
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(token.at(-1)!);
    const other = token.slice(0, -1) + alphabet[last ^ 1]!; // flips one of the spare bits
    assert.deepEqual(Buffer.from(other, 'base64url'), Buffer.from(token, 'base64url'));
    assert.equal(store.take(other), undefined);
    assert.equal(store.take(token), 'x');
  });

  it('rejects unknown, malformed and one-character-off tokens', () => {
    const store = new TokenStore<string>();
    const token = store.put('x');
    const flipped = (token[0] === 'A' ? 'B' : 'A') + token.slice(1);
    assert.equal(store.take(flipped), undefined);
    assert.equal(store.take(''), undefined);
    assert.equal(store.take('../../etc/passwd'), undefined);
    assert.equal(store.take(token + 'A'), undefined);
    assert.equal(store.take(token), 'x');
  });

  it('refuses more than max in flight with a retry hint, and accepts again once one expires', () => {
    const clock = fakeClock();
    const store = new TokenStore<number>({ ttlMs: 1_000, maxInFlight: 3, clock: clock.now });
    store.put(1);
    clock.advance(400);
    store.put(2);
    store.put(3);
    assert.throws(
      () => store.put(4),
      (err: unknown) => err instanceof TokenStoreFullError && err.retryAfterMs === 600,
    );
    clock.advance(600);
    assert.doesNotThrow(() => store.put(4));
    assert.equal(store.size, 3);
  });

  it('frees a slot as soon as a token is taken', () => {
    const store = new TokenStore<number>({ maxInFlight: 1 });
    const t = store.put(1);
    assert.throws(() => store.put(2), TokenStoreFullError);
    store.take(t);
    assert.doesNotThrow(() => store.put(2));
  });
});
