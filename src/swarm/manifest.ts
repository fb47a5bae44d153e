/**
 * Manifests: the BitTorrent v1 single-file info dictionary that describes a shared file
 * (BEP 3), marked private (BEP 27). `parseManifest` validates one received from a remote;
 * `buildManifest` hashes a local file into one.
 *
 * The info dict we produce has exactly these keys, in this (sorted) order:
 *   length, name, piece length, pieces, private (= 1)
 * which is byte for byte what `mktorrent -p -l <log2> <file>` puts in `info` for the same file.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync } from 'node:fs';
import { basename } from 'node:path';
import { CoterieError } from '../common/errors.js';
import { fileNameProblem } from '../common/names.js';
import { BencodeError, decode, encode, Raw, type BDict } from '../protocol/bencode.js';
import type { Manifest } from './api.js';
import { hashFile, type HashOptions } from './manifest-hash.js';

/** Smallest piece length a received manifest may use (BitTorrent's block size). */
export const MIN_PIECE_LENGTH = 16 * 1024;
/** Largest piece length a received manifest may use: bounds the memory one piece takes. */
export const MAX_PIECE_LENGTH = 16 * 1024 * 1024;
/** Most pieces a manifest may have (20 MB of hashes; bitfields of 125 KB). */
export const MAX_PIECES = 1_000_000;
/** Largest encoded info dict accepted: the pieces at their cap plus room for name and extra keys. */
export const MAX_INFO_BYTES = MAX_PIECES * 20 + 64 * 1024;

/** Range of piece lengths `buildManifest` picks from by default (see choosePieceLength). */
export const DEFAULT_MIN_PIECE_LENGTH = 256 * 1024;
export const DEFAULT_MAX_PIECE_LENGTH = 4 * 1024 * 1024;
/** `buildManifest` aims for at most this many pieces (and so, by doubling, more than half as many). */
export const TARGET_MAX_PIECES = 2000;

/**
 * The piece length `buildManifest` uses for a file of `length` bytes: the smallest power of two
 * from 256 KiB to 4 MiB that gives at most 2,000 pieces, so files from 500 MiB to 8,000 MiB get
 * 1,001 to 2,000 pieces; smaller files get 256 KiB pieces (fewer pieces), larger ones 4 MiB pieces
 * (more pieces), except that the length keeps doubling up to 16 MiB if 4 MiB pieces would exceed
 * MAX_PIECES (files over 4 TiB).
 */
export function choosePieceLength(length: number): number {
  let p = DEFAULT_MIN_PIECE_LENGTH;
  while (p < DEFAULT_MAX_PIECE_LENGTH && Math.ceil(length / p) > TARGET_MAX_PIECES) p *= 2;
  while (p < MAX_PIECE_LENGTH && Math.ceil(length / p) > MAX_PIECES) p *= 2;
  return p;
}

/** Thrown for an info dict that is malformed or breaks a rule. Code BAD_MANIFEST. */
export class ManifestError extends CoterieError {
  override name = 'ManifestError';
  constructor(message: string, options?: { cause?: unknown }) { super('BAD_MANIFEST', message, options); }
}

function isPow2(n: number): boolean { return n > 0 && (n & (n - 1)) === 0; }

/**
 * Validates a received info dict (hostile input) and returns it as a Manifest. The bytes are
 * copied, so the caller may reuse its buffer. Rules: strict canonical bencode; `name` a UTF-8
 * string passing fileNameProblem; `length` a safe integer >= 0; `piece length` a power of two in
 * 16 KiB..16 MiB; `pieces` exactly 20 * ceil(length / piece length) bytes, at most MAX_PIECES;
 * `private` = 1; no `files` (single-file only). Other keys are allowed and kept (they are part of
 * the hash), within small structural caps (256 keys, nesting 8, 4,096 values in all), and the
 * whole dict is at most MAX_INFO_BYTES. A zero-length file has zero pieces. Throws
 * {@link ManifestError} (code BAD_MANIFEST) and nothing else, whatever the input.
 */
export function parseManifest(infoBytes: Uint8Array): Manifest {
  if (infoBytes.length > MAX_INFO_BYTES) throw new ManifestError(`info dict of ${infoBytes.length} bytes exceeds the cap of ${MAX_INFO_BYTES}`);
  const bytes = Buffer.from(infoBytes); // own copy: the caller's buffer may be pooled
  let v;
  try {
    // Small structural caps: a legitimate info dict is a handful of keys; only `pieces` is big.
    v = decode(bytes, { maxBytes: MAX_INFO_BYTES, maxDepth: 8, maxEntries: 256, maxValues: 4096 });
  } catch (e) {
    if (e instanceof BencodeError) throw new ManifestError(`info dict is not valid bencode: ${e.message}`, { cause: e });
    throw e;
  }
  if (!isDict(v)) throw new ManifestError('info is not a dict');
  if ('files' in v) throw new ManifestError('multi-file torrents are not supported');

  const length = v['length'];
  if (typeof length !== 'number' || length < 0) throw new ManifestError('length must be a non-negative integer');
  const pieceLength = v['piece length'];
  if (typeof pieceLength !== 'number' || !isPow2(pieceLength) || pieceLength < MIN_PIECE_LENGTH || pieceLength > MAX_PIECE_LENGTH) {
    throw new ManifestError(`piece length must be a power of two from ${MIN_PIECE_LENGTH} to ${MAX_PIECE_LENGTH}`);
  }
  const pieceCount = Math.ceil(length / pieceLength);
  if (pieceCount > MAX_PIECES) throw new ManifestError(`${pieceCount} pieces exceed the cap of ${MAX_PIECES}`);
  const pieces = v['pieces'];
  if (!Buffer.isBuffer(pieces)) throw new ManifestError('pieces must be a byte string');
  if (pieces.length !== pieceCount * 20) throw new ManifestError(`pieces has ${pieces.length} bytes, expected ${pieceCount * 20}`);

  const nameBytes = v['name'];
  if (!Buffer.isBuffer(nameBytes)) throw new ManifestError('name must be a byte string');
  const name = nameBytes.toString('utf8');
  if (!Buffer.from(name, 'utf8').equals(nameBytes)) throw new ManifestError('name is not valid UTF-8');
  const problem = fileNameProblem(name);
  if (problem) throw new ManifestError(`file name ${JSON.stringify(name)} ${problem}`);

  if (v['private'] !== 1) throw new ManifestError('not a private torrent (private must be 1)');

  const infoHash = createHash('sha1').update(bytes).digest();
  return {
    infoHash, infoHashHex: infoHash.toString('hex'), infoBytes: bytes,
    name, length, pieceLength, pieceCount, pieces,
  };
}

function isDict(v: unknown): v is BDict {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);
}

/**
 * Encodes the info dict for a file and returns it as a Manifest (the inverse of parseManifest,
 * which it runs on the result so that whatever we build we would also accept).
 */
export function manifestFromHashes(name: string, length: number, pieceLength: number, pieces: Buffer): Manifest {
  const info = encode({ length, name, 'piece length': pieceLength, pieces, private: 1 });
  return parseManifest(info);
}

/** Size in bytes of piece `index` (the last one may be short). Throws RangeError outside 0..pieceCount-1. */
export function pieceSize(m: Pick<Manifest, 'length' | 'pieceLength' | 'pieceCount'>, index: number): number {
  if (!Number.isInteger(index) || index < 0 || index >= m.pieceCount) throw new RangeError(`piece ${index} out of range 0..${m.pieceCount - 1}`);
  if (index < m.pieceCount - 1) return m.pieceLength;
  return m.length - (m.pieceCount - 1) * m.pieceLength;
}

/** The expected SHA-1 of piece `index` (a view into `pieces`). */
export function pieceHash(m: Pick<Manifest, 'pieces' | 'pieceCount'>, index: number): Buffer {
  if (!Number.isInteger(index) || index < 0 || index >= m.pieceCount) throw new RangeError(`piece ${index} out of range 0..${m.pieceCount - 1}`);
  return m.pieces.subarray(index * 20, index * 20 + 20);
}

/**
 * A .torrent file for the manifest, for interop with standard clients (libtorrent and others):
 * `{announce?, info}` with the info bytes embedded exactly, so its info-hash is ours.
 */
export function torrentFile(m: Pick<Manifest, 'infoBytes'>, announce?: string): Buffer {
  return encode({ announce, info: new Raw(m.infoBytes) });
}

/** Options of {@link buildManifest}. */
export interface BuildOptions {
  /** Piece length override (a power of two, 16 KiB..16 MiB); default {@link choosePieceLength}. */
  pieceLength?: number;
  /** Name in the manifest; default the file's basename. Must pass fileNameProblem. */
  name?: string;
  /** Hash with a worker thread on the second core (default: for files of 64 MiB or more). */
  parallel?: boolean;
}

/** What {@link buildManifest} returns: the manifest and the whole-file SHA-256 (lower-case hex). */
export interface BuildResult { manifest: Manifest; sha256: string }

/**
 * Hashes a local file into a manifest: SHA-1 per piece and SHA-256 over the whole file, streaming
 * through a fixed set of reused buffers so memory stays flat in file size (see manifest-hash.ts
 * for the two-thread pipeline and its figures). A zero-length file is allowed and gets zero
 * pieces: the downloader has nothing to fetch and just creates an empty file. `onProgress(done,
 * total)` is called after every 4 MiB chunk. Throws CoterieError INVALID_NAME for a bad name,
 * BAD_MANIFEST for a bad piece length or a file too large (over MAX_PIECES pieces), IO for read
 * errors, a non-regular file, or a file that changes size while being hashed.
 */
export async function buildManifest(path: string, opts: BuildOptions = {}, onProgress?: (done: number, total: number) => void): Promise<BuildResult> {
  const name = opts.name ?? basename(path);
  const problem = fileNameProblem(name);
  if (problem) throw new CoterieError('INVALID_NAME', `file name ${JSON.stringify(name)} ${problem}`);
  let fd: number;
  try { fd = openSync(path, 'r'); } catch (e) { throw ioError(`cannot open ${path}`, e); }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new CoterieError('IO', `${path} is not a regular file`);
    const length = st.size;
    const pieceLength = opts.pieceLength ?? choosePieceLength(length);
    if (!isPow2(pieceLength) || pieceLength < MIN_PIECE_LENGTH || pieceLength > MAX_PIECE_LENGTH) {
      throw new CoterieError('BAD_MANIFEST', `piece length must be a power of two from ${MIN_PIECE_LENGTH} to ${MAX_PIECE_LENGTH}`);
    }
    const pieceCount = Math.ceil(length / pieceLength);
    if (pieceCount > MAX_PIECES) throw new CoterieError('BAD_MANIFEST', `file too large: ${pieceCount} pieces exceed ${MAX_PIECES}`);
    const hashOpts: HashOptions = {};
    if (onProgress) hashOpts.onProgress = onProgress;
    if (opts.parallel !== undefined) hashOpts.parallel = opts.parallel;
    const { pieces, sha256 } = await hashFile(fd, length, pieceLength, hashOpts);
    if (fstatSync(fd).size !== length) throw new CoterieError('IO', `${path} changed size while it was being hashed`);
    return { manifest: manifestFromHashes(name, length, pieceLength, pieces), sha256 };
  } finally {
    closeSync(fd);
  }
}

function ioError(what: string, e: unknown): CoterieError {
  const code = (e as { code?: string })?.code;
  return new CoterieError('IO', `${what}${code ? ` (${code})` : ''}`, { cause: e });
}
