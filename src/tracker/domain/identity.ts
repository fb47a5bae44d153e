/**
 * This tracker's Ed25519 signing identity. The keypair is node-local (store meta, never
 * replicated); the public key is published as a replicated `tkey` row under this origin so every
 * tracker can hand all keys to clients at login (clients check access tickets with them).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import type { Store } from '../store/store.js';
import type { TrackerIdentity } from './types.js';
import { keys } from './types.js';

const META_PRIVATE = 'ed25519.private';

/** Loads the keypair from meta (creating it on first start) and makes sure the `tkey` row exists. */
export function loadIdentity(store: Store): TrackerIdentity {
  let pkcs8 = store.getMeta(META_PRIVATE);
  if (pkcs8 === undefined) {
    const { privateKey } = generateKeyPairSync('ed25519');
    pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64');
    store.setMeta(META_PRIVATE, pkcs8);
  }
  const privateKey = createPrivateKey({ key: Buffer.from(pkcs8, 'base64'), format: 'der', type: 'pkcs8' });
  const publicKeyB64 = createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).toString('base64');
  const row = store.get('tkey', keys.tkey(store.origin));
  if (!row || row.publicKey !== publicKeyB64) {
    store.commitLocal([{ kind: 'tkey', key: keys.tkey(store.origin), value: { publicKey: publicKeyB64, created: { hlc: store.clock.now(), origin: store.origin } } }]);
  }
  return { origin: store.origin, privateKey, publicKeyB64 };
}

/** Every tracker's public key known here (what login hands to clients). */
export function trackerKeys(store: Store): { origin: string; publicKey: string }[] {
  return store.scan('tkey', '').map((r) => ({ origin: r.key, publicKey: r.value.publicKey }));
}
