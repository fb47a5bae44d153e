/**
 * Bencode (BEP 3), hand-written rather than taken from npm because we need three things the
 * common packages do not give together:
 *  - byte-exact re-encoding and the raw byte span of a value inside a document (the info-hash is
 *    the SHA-1 of the exact bytes of the `info` value inside a .torrent, whatever order or form
 *    the rest of the file uses);
 *  - strict canonical-form checks (sorted unique keys, no leading zeros, no `-0`), so that one
 *    value has exactly one encoding and a re-encoded manifest hashes the same;
 *  - hard caps against hostile input (total size, nesting depth, entries per container, total
 *    values), checked before anything is allocated or sliced.
 * Pure: no sockets, timers or fs.
 *
 * Data model: byte strings decode to `Buffer` (views into the input, not copies: copy them if the
 * input buffer is reused), integers to `number` (safe integers only), lists to arrays, dicts to
 * null-prototype objects whose keys are "binary" strings (latin1: one char per byte, lossless, and
 * JS string order equals bytewise order). The encoder takes the same key convention.
 */
import { CoterieError } from '../common/errors.js';

/** A decoded bencode value. */
export type BValue = Buffer | number | BValue[] | BDict;
/** A decoded dict: null prototype, keys are latin1 ("binary") strings. */
export interface BDict { [key: string]: BValue }

/**
 * A value the encoder accepts: strings are written as UTF-8, `Raw` verbatim, dict entries whose
 * value is `undefined` are skipped (handy for optional fields); `null` and booleans are refused.
 */
export type BEncodable =
  | Uint8Array | string | number | Raw | readonly BEncodable[]
  | { readonly [key: string]: BEncodable | undefined }
  | ReadonlyMap<string, BEncodable>;

/** Malformed, non-canonical or over-limit bencode. `offset` is where the decoder gave up. */
export class BencodeError extends CoterieError {
  override name = 'BencodeError';
  constructor(message: string, readonly offset = -1) {
    super('BAD_BENCODE', offset >= 0 ? `bad bencode at byte ${offset}: ${message}` : `bad bencode: ${message}`);
  }
}

/**
 * Already-encoded bencode, written verbatim by {@link encode}. This is how an `info` dict is
 * embedded byte for byte in a .torrent file. The caller vouches that `bytes` is one valid value.
 */
export class Raw {
  constructor(readonly bytes: Uint8Array) {}
}

/** Decoder limits. Every one is enforced before the corresponding allocation. */
export interface DecodeOptions {
  /** Largest input accepted, bytes. Default 32 MiB (a 1,000,000-piece manifest is ~20 MB). */
  maxBytes?: number;
  /** Deepest nesting of lists/dicts. Default 32. */
  maxDepth?: number;
  /** Most entries in one list or dict. Default 100,000. */
  maxEntries?: number;
  /** Most values in the whole document (each string, integer, list and dict counts). Default 1,000,000. */
  maxValues?: number;
  /**
   * Accept dicts whose keys are not in ascending order (foreign .torrent files made by sloppy
   * encoders). Duplicate keys are refused either way: they make the meaning ambiguous.
   */
  lenient?: boolean;
}

/** Defaults of {@link DecodeOptions}; callers decoding small messages should pass tighter caps. */
export const DEFAULT_MAX_BYTES = 32 * 1024 * 1024;
export const DEFAULT_MAX_DEPTH = 32;
export const DEFAULT_MAX_ENTRIES = 100_000;
export const DEFAULT_MAX_VALUES = 1_000_000;

/** Byte range `[start, end)` of a value inside the input. */
export interface Span { start: number; end: number }

const I = 0x69, L = 0x6c, D = 0x64, E = 0x65, COLON = 0x3a, MINUS = 0x2d, ZERO = 0x30, NINE = 0x39;
// MAX_SAFE_INTEGER has 16 digits: anything longer cannot be a safe integer, so we stop reading
// digits there instead of scanning an arbitrarily long run.
const MAX_INT_DIGITS = 16;

type EntryHook = (key: string, span: Span) => void;

class Decoder {
  pos = 0;
  private values = 0;
  private readonly maxDepth: number;
  private readonly maxEntries: number;
  private readonly maxValues: number;
  private readonly lenient: boolean;

  constructor(private readonly buf: Uint8Array, opts: DecodeOptions) {
    const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    if (buf.length > maxBytes) throw new BencodeError(`input of ${buf.length} bytes exceeds the cap of ${maxBytes}`);
    if (buf.length === 0) throw new BencodeError('empty input', 0);
    this.maxDepth = opts.maxDepth ?? DEFAULT_MAX_DEPTH;
    this.maxEntries = opts.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.maxValues = opts.maxValues ?? DEFAULT_MAX_VALUES;
    this.lenient = opts.lenient ?? false;
  }

  fail(msg: string, at = this.pos): never { throw new BencodeError(msg, at); }

  private peek(): number {
    if (this.pos >= this.buf.length) this.fail('unexpected end of input');
    return this.buf[this.pos]!;
  }

  private count(): void {
    if (++this.values > this.maxValues) this.fail(`more than ${this.maxValues} values`);
  }

  /** Decodes one value at `pos`. `depth` is the number of containers already open. */
  value(depth: number, hook?: EntryHook): BValue {
    const c = this.peek();
    this.count();
    if (c === I) return this.int();
    if (c >= ZERO && c <= NINE) return this.bytes();
    if (c === L || c === D) {
      if (depth >= this.maxDepth) this.fail(`nesting deeper than ${this.maxDepth}`);
      return c === L ? this.list(depth + 1) : this.dict(depth + 1, hook);
    }
    return this.fail(`unexpected byte 0x${c.toString(16).padStart(2, '0')}`);
  }

  /** Reads canonical decimal digits up to `end` (exclusive terminator byte). */
  private digits(term: number, what: string): number {
    const start = this.pos;
    let n = 0;
    for (;;) {
      const c = this.peek();
      if (c === term) break;
      if (c < ZERO || c > NINE) this.fail(`non-digit in ${what}`);
      if (this.pos - start >= MAX_INT_DIGITS) this.fail(`${what} too large`);
      n = n * 10 + (c - ZERO);
      this.pos++;
    }
    const len = this.pos - start;
    if (len === 0) this.fail(`empty ${what}`);
    if (len > 1 && this.buf[start] === ZERO) this.fail(`leading zero in ${what}`, start);
    // Up to 16 digits the running product is exact below 2^53 + a little; anything not a safe
    // integer is refused rather than silently rounded.
    if (!Number.isSafeInteger(n)) this.fail(`${what} exceeds the safe integer range`, start);
    this.pos++; // terminator
    return n;
  }

  private int(): number {
    this.pos++; // 'i'
    let neg = false;
    if (this.peek() === MINUS) { neg = true; this.pos++; }
    const at = this.pos;
    const n = this.digits(E, 'integer');
    if (neg && n === 0) this.fail('negative zero', at);
    return neg ? -n : n;
  }

  private bytes(): Buffer {
    const len = this.digits(COLON, 'string length');
    // The length is checked against what is actually left before any slice is taken.
    if (len > this.buf.length - this.pos) this.fail(`string of ${len} bytes runs past the end of input`);
    const start = this.pos;
    this.pos += len;
    const b = this.buf;
    return Buffer.from(b.buffer, b.byteOffset + start, len);
  }

  private list(depth: number): BValue[] {
    this.pos++; // 'l'
    const out: BValue[] = [];
    while (this.peek() !== E) {
      if (out.length >= this.maxEntries) this.fail(`list with more than ${this.maxEntries} entries`);
      out.push(this.value(depth));
    }
    this.pos++;
    return out;
  }

  private dict(depth: number, hook?: EntryHook): BDict {
    this.pos++; // 'd'
    const out = Object.create(null) as BDict;
    let prev: Buffer | null = null;
    let n = 0;
    while (this.peek() !== E) {
      if (n >= this.maxEntries) this.fail(`dict with more than ${this.maxEntries} entries`);
      const keyAt = this.pos;
      const c = this.peek();
      if (c < ZERO || c > NINE) this.fail('dict key is not a byte string');
      this.count();
      const kb = this.bytes();
      const key = kb.toString('latin1');
      if (prev !== null) {
        const cmp = Buffer.compare(prev, kb);
        if (cmp === 0) this.fail(`duplicate dict key "${printable(key)}"`, keyAt);
        if (cmp > 0 && !this.lenient) this.fail(`dict key "${printable(key)}" out of order`, keyAt);
      }
      // Lenient mode can meet a duplicate that is not adjacent to its twin.
      if (this.lenient && Object.prototype.hasOwnProperty.call(out, key)) this.fail(`duplicate dict key "${printable(key)}"`, keyAt);
      const start = this.pos;
      out[key] = this.value(depth);
      hook?.(key, { start, end: this.pos });
      prev = kb;
      n++;
    }
    this.pos++;
    return out;
  }

  finish(): void {
    if (this.pos !== this.buf.length) this.fail(`${this.buf.length - this.pos} trailing bytes`);
  }
}

function printable(s: string): string {
  const short = s.length > 40 ? s.slice(0, 40) + '...' : s;
  // eslint-disable-next-line no-control-regex
  return short.replace(/[^\x20-\x7e]/g, '?');
}

/**
 * Decodes exactly one bencoded value filling all of `buf`. Throws {@link BencodeError}
 * (code BAD_BENCODE) on anything malformed, non-canonical, over a limit or followed by trailing
 * bytes; never anything else.
 */
export function decode(buf: Uint8Array, opts: DecodeOptions = {}): BValue {
  const d = new Decoder(buf, opts);
  const v = d.value(0);
  d.finish();
  return v;
}

/**
 * Decodes a document whose top level must be a dict, also returning the byte span of every
 * top-level value. `buf.subarray(spans.get('info').start, ...end)` is the exact `info` dict of a
 * .torrent file, whatever the rest of the file looks like (use `lenient` for foreign files).
 */
export function decodeDictWithSpans(buf: Uint8Array, opts: DecodeOptions = {}): { dict: BDict; spans: Map<string, Span> } {
  const d = new Decoder(buf, opts);
  if (buf[0] !== D) d.fail('top-level value is not a dict', 0);
  const spans = new Map<string, Span>();
  const dict = d.value(0, (key, span) => { spans.set(key, span); }) as BDict;
  d.finish();
  return { dict, spans };
}

/**
 * The exact bytes of the value under `key` in the top-level dict of `buf` (a view, not a copy),
 * or undefined when the key is absent. The whole document is validated first.
 */
export function dictValueBytes(buf: Uint8Array, key: string, opts: DecodeOptions = {}): Buffer | undefined {
  const { spans } = decodeDictWithSpans(buf, opts);
  const s = spans.get(key);
  if (!s) return undefined;
  return Buffer.from(buf.buffer, buf.byteOffset + s.start, s.end - s.start);
}

/**
 * Encodes a value canonically: dict keys sorted bytewise (keys are latin1 strings, see the module
 * comment), integers as safe integers, strings as UTF-8. Throws BencodeError for values bencode
 * cannot represent (non-integers, unsafe integers, null, booleans, keys with chars above 0xff,
 * nesting deeper than `maxDepth`, cycles included).
 */
export function encode(value: BEncodable, maxDepth = 64): Buffer {
  const parts: Uint8Array[] = [];
  encodeInto(value, parts, maxDepth);
  return Buffer.concat(parts);
}

const ASCII = (s: string): Buffer => Buffer.from(s, 'latin1');
const B_E = ASCII('e'), B_L = ASCII('l'), B_D = ASCII('d');

function encodeBytes(b: Uint8Array, parts: Uint8Array[]): void {
  parts.push(ASCII(`${b.length}:`), b);
}

function encodeKey(k: string, parts: Uint8Array[]): void {
  // eslint-disable-next-line no-control-regex
  if (/[^\u0000-\u00ff]/.test(k)) throw new BencodeError(`dict key "${printable(k)}" has a character above 0xff (keys are binary strings)`);
  encodeBytes(ASCII(k), parts);
}

function encodeInto(v: unknown, parts: Uint8Array[], depth: number): void {
  if (depth < 0) throw new BencodeError('value nested too deeply (or cyclic)');
  if (v instanceof Uint8Array) return encodeBytes(v, parts);
  if (typeof v === 'string') return encodeBytes(Buffer.from(v, 'utf8'), parts);
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new BencodeError(`cannot encode ${v}: only safe integers`);
    // `${-0}` is "0", so negative zero cannot leak out.
    parts.push(ASCII(`i${v}e`));
    return;
  }
  if (v instanceof Raw) { parts.push(v.bytes); return; }
  if (Array.isArray(v)) {
    parts.push(B_L);
    for (const x of v) encodeInto(x, parts, depth - 1);
    parts.push(B_E);
    return;
  }
  if (v instanceof Map) {
    const keys = [...v.keys()];
    for (const k of keys) if (typeof k !== 'string') throw new BencodeError('Map keys must be strings');
    (keys as string[]).sort(cmpKeys);
    parts.push(B_D);
    for (const k of keys as string[]) { encodeKey(k, parts); encodeInto(v.get(k), parts, depth - 1); }
    parts.push(B_E);
    return;
  }
  if (typeof v === 'object' && v !== null) {
    const proto = Object.getPrototypeOf(v);
    if (proto !== null && proto !== Object.prototype) throw new BencodeError('cannot encode a non-plain object');
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort(cmpKeys);
    parts.push(B_D);
    for (const k of keys) { encodeKey(k, parts); encodeInto(o[k], parts, depth - 1); }
    parts.push(B_E);
    return;
  }
  throw new BencodeError(`cannot encode a value of type ${v === null ? 'null' : typeof v}`);
}

// Keys are latin1 strings, so UTF-16 code-unit order is bytewise order (no localeCompare).
function cmpKeys(a: string, b: string): number { return a < b ? -1 : a > b ? 1 : 0; }
