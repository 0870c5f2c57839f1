// lgi.js: the .lgi decoder for web pages (docs/web.md). An ES module with no dependencies.
//
//   import { decode, parse, LgiError } from "./lgi.js";
//   const image = decode(await (await fetch("photo.lgi")).arrayBuffer(), { width: 1536 });  // ImageData
//   <lgi-img src="photo.lgi" alt="..."></lgi-img>   (the custom element, registered on import)
//
// It reads the file exactly as the Python decoder does (lgi_dictco.gauss: the container, its CRCs, the
// header's limits, the entropy models' integer frequencies and compressai's 64-bit rANS), so the decoded
// integers are the same bits; it prices every request with the Python decoder's budget
// (lgi_dictco.gauss.DecodeBudget: Gaussians per pixel, output pixels, Gaussian-tile work) before anything is
// drawn, refusing with the same one-line messages; and it draws the Gaussians as lgi-gsplat2d does (the same
// projection, 3-sigma pixel boxes, 16-pixel tiles, per-pixel top-K blend with ties to the lower index), with
// WebGL2 where the page has it and on the CPU otherwise.

export const VERSION = "0.1.0";
export const FORMAT_VERSION = [2, 1];

// --- errors ---------------------------------------------------------------------------------------

/** Every refusal: a malformed file (kind "format") or a request beyond a budget (kind "limit"). */
export class LgiError extends Error {
  constructor(message, kind = "format", option = null) {
    super(message);
    this.name = "LgiError";
    this.kind = kind;
    this.option = option;
  }
}

const fail = (msg) => { throw new LgiError(msg); };
const check = (cond, msg) => { if (!cond) fail(msg); };

// --- limits: lgi_dictco.gauss.format and decoder --------------------------------------------------

const MAGIC = [0x89, 0x4c, 0x47, 0x49, 0x0d, 0x0a, 0x1a, 0x0a];
const MAX_PIXELS = 2 ** 27;
const MAX_SIDE = 2 ** 16;
const MAX_GAUSSIANS = 2 ** 21;
const MAX_CHANNELS = 4;
const MAX_POS_BITS = 20;
const MAX_ALPHABET = 4096;
const MAX_LEVELS = MAX_ALPHABET;
const MAX_TOPK = 32;
const MAX_CLASSES = 8;
const MAX_CLASS_EXP = 16;
const MAX_CHUNK = 2 ** 30;
const MAX_SYMBOLS = 2 ** 24;
const MAX_BIT_LENGTH = 48;
const MAX_CODE = 63;
const TOTAL = 65536;
export const RENDER_MODES = { 0: "topk-hard", 1: "sum", 2: "topk" };
export const COLOR_SPACES = { 0: "rgb", 1: "gray", 2: "opp" };
const KNOWN_CHUNKS = new Set(["HEAD", "POSN", "CLAS", "PREF", "SHAP", "COLR"]);

export const TILE = 16;
const MAX_RADIUS = 2 ** 30;
/** The decode budget's defaults (lgi_dictco.gauss.DecodeBudget; docs/reliability.md). */
export const BUDGET = Object.freeze({
  maxOutputPixels: 2 ** 28,
  gaussiansPerPixel: 0.125,
  minGaussians: 2 ** 16,
  workPerTile: 1536,
  workPerGaussian: 16,
});
const MAX_ABS_COLOR = 2 ** 20;
const CUTOFF = 9.0;
const TOPK_FLOOR = 0.011108996538242306; // exp(-4.5)
const TOPK_EPS = 0.01;
const TOPK_HARD_EPS = 1e-4;

// --- bytes ----------------------------------------------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError("decode takes an ArrayBuffer or a Uint8Array");
}

function readVarint(data, pos, what, limit = 2 ** 40) {
  let value = 0;
  let scale = 1;
  for (;;) {
    if (pos >= data.length) fail(`${what}: truncated while reading a number`);
    const byte = data[pos++];
    value += (byte & 0x7f) * scale;
    if (value > limit) fail(`${what}: value ${value} exceeds the limit ${limit}`);
    if (!(byte & 0x80)) return [value, pos];
    scale *= 128;
    if (scale > 2 ** 63) fail(`${what}: malformed number (too long)`);
  }
}

/** MSB-first bit reader over bytes; never reads past the end (lgi_dictco.bitio.BitReader). */
class BitReader {
  constructor(bytes, what) {
    this.b = bytes;
    this.pos = 0;
    this.n = bytes.length * 8;
    this.what = what;
  }
  get remaining() { return this.n - this.pos; }
  need(n) {
    if (n > this.remaining) fail(`${this.what} is truncated: needed ${n} more bits, ${this.remaining} left`);
  }
  bits(n) { // n <= 48 and already checked: exact in a double
    let v = 0;
    let p = this.pos;
    while (n > 0) {
      const byte = this.b[p >> 3];
      const off = p & 7;
      const take = Math.min(8 - off, n);
      const chunk = (byte >> (8 - off - take)) & ((1 << take) - 1);
      v = v * (1 << take) + chunk;
      p += take;
      n -= take;
    }
    this.pos = p;
    return v;
  }
  read(n) {
    if (n === 0) return 0;
    this.need(n);
    return this.bits(n);
  }
  readArray(nbits) { // nbits: array of bit counts; returns Float64Array (values < 2^48)
    let total = 0;
    let most = 0;
    for (let i = 0; i < nbits.length; i++) { total += nbits[i]; if (nbits[i] > most) most = nbits[i]; }
    if (most > 62) fail(`${this.what}: a field of ${most} bits does not fit in 62 bits`);
    this.need(total);
    const out = new Float64Array(nbits.length);
    for (let i = 0; i < nbits.length; i++) if (nbits[i]) out[i] = this.bits(nbits[i]);
    return out;
  }
  readUe(maxBits = 40) {
    let zeros = 0;
    for (;;) {
      if (this.pos >= this.n) {
        fail(`${this.what} is truncated: an Exp-Golomb code runs past the end`);
      }
      if ((this.b[this.pos >> 3] >> (7 - (this.pos & 7))) & 1) break;
      zeros++;
      this.pos++;
      if (zeros > maxBits) fail(`${this.what}: Exp-Golomb code longer than ${maxBits} bits`);
    }
    if (zeros + 1 > this.remaining) {
      fail(`${this.what} is truncated: needed ${zeros + 1} more bits, ${this.remaining} left`);
    }
    return this.bits(zeros + 1) - 1;
  }
  readSe() {
    const u = this.readUe();
    return u % 2 ? (u + 1) / 2 : -(u / 2);
  }
}

// --- entropy streams (lgi_dictco.entropy) ---------------------------------------------------------

function isqrt(n) { // BigInt floor square root
  if (n < 2n) return n;
  let x = BigInt(Math.floor(Math.sqrt(Number(n))));
  while (x * x > n) x -= 1n;
  while ((x + 1n) * (x + 1n) <= n) x += 1n;
  return x;
}

const WEIGHTS = Array.from({ length: MAX_CODE + 1 }, (_, c) => (c > 0 ? isqrt(1n << BigInt(c - 1 + 32)) : 0n));

/** Integer frequencies summing to 2^16 - 1, as FrequencyTable.frequencies (exact: BigInt). */
function frequencies(codes) {
  const w = codes.map((c) => WEIGHTS[c]);
  let totalW = 0n;
  let present = 0;
  let heaviest = 0;
  for (let i = 0; i < w.length; i++) {
    totalW += w[i];
    if (w[i] > 0n) present++;
    if (w[i] > w[heaviest]) heaviest = i;
  }
  if (totalW === 0n) fail("entropy model has no symbol with a non-zero count");
  const budget = BigInt(TOTAL - 1 - present);
  const freqs = new Int32Array(w.length);
  let sum = 0;
  for (let i = 0; i < w.length; i++) {
    if (w[i] > 0n) {
      freqs[i] = 1 + Number((w[i] * budget) / totalW);
      sum += freqs[i];
    }
  }
  freqs[heaviest] += TOTAL - 1 - sum;
  return freqs;
}

function readModel(br) {
  const size = br.readUe() + 1;
  if (size > MAX_ALPHABET) fail(`entropy model alphabet ${size} exceeds the limit ${MAX_ALPHABET}`);
  const codes = new Array(size);
  codes[0] = br.read(6);
  for (let i = 1; i < size; i++) codes[i] = codes[i - 1] + br.readSe();
  for (const c of codes) if (!(c >= 0 && c <= MAX_CODE)) fail(`entropy model code ${c} outside 0..${MAX_CODE}`);
  return codes;
}

const TWO32 = 4294967296;

/** compressai's RansDecoder (ryg_rans Rans64, 16-bit precision) over ``payload``, zero-padded like the
 * Python decoder: the 64-bit state is kept as two 32-bit halves in doubles, every step exact. */
function ransDecode(payload, n, freqs) {
  const L = freqs.length;
  const cdf = new Int32Array(L + 3); // L symbols, the guard (frequency 1), the zero-width escape
  for (let i = 0; i < L; i++) cdf[i + 1] = cdf[i] + freqs[i];
  cdf[L + 1] = cdf[L] + 1;
  cdf[L + 2] = cdf[L + 1];
  const words = payload.length;
  let wp = 0;
  const word = () => {
    const p = wp;
    wp += 4;
    const b0 = p < words ? payload[p] : 0;
    const b1 = p + 1 < words ? payload[p + 1] : 0;
    const b2 = p + 2 < words ? payload[p + 2] : 0;
    const b3 = p + 3 < words ? payload[p + 3] : 0;
    return (b0 | (b1 << 8) | (b2 << 16) | (b3 << 24)) >>> 0;
  };
  let lo = word();
  let hi = word();
  const coded = n === 1 ? 2 : n;
  const out = new Int32Array(n);
  for (let i = 0; i < coded; i++) {
    const cum = lo & 0xffff;
    let a = 0;
    let b = L + 2; // upper_bound: the first index whose cdf exceeds cum, minus one
    while (a < b) {
      const m = (a + b + 1) >> 1;
      if (cdf[m] <= cum) a = m; else b = m - 1;
    }
    const s = a;
    const start = cdf[s];
    const freq = cdf[s + 1] - start;
    // x = freq * (x >> 16) + (x & 0xffff) - start
    const qh = hi >>> 16;
    const ql = (((hi & 0xffff) << 16) | (lo >>> 16)) >>> 0;
    const p = freq * ql + cum - start;
    const carry = Math.floor(p / TWO32);
    lo = p - carry * TWO32;
    hi = freq * qh + carry;
    if (hi === 0 && lo < 2147483648) { // renormalize: x < 2^31
      hi = lo;
      lo = word();
    }
    if (i < n) out[i] = s;
  }
  return out;
}

/** lgi_dictco.entropy.decode_stream: ``n`` values (a Float64Array: values < 2^48 are exact). */
function decodeStream(data, n, what = "stream", maxValue = 2 ** 48) {
  if (n > MAX_SYMBOLS) fail(`${what}: ${n} symbols exceed the limit ${MAX_SYMBOLS}`);
  if (data.length < 1 || (data[0] !== 0 && data[0] !== 1)) {
    fail(`${what}: unknown stream kind ${data.length ? data[0] : "none (empty)"}`);
  }
  const kind = data[0];
  let [modelLen, pos] = readVarint(data, 1, what, data.length);
  if (modelLen === 0) {
    if (n) fail(`${what}: empty stream but ${n} symbols expected`);
    return new Float64Array(0);
  }
  if (pos + modelLen > data.length) fail(`${what}: model is truncated`);
  const codes = readModel(new BitReader(data.subarray(pos, pos + modelLen), `${what} model`));
  pos += modelLen;
  let payloadLen;
  [payloadLen, pos] = readVarint(data, pos, what, data.length);
  if (pos + payloadLen > data.length) {
    fail(`${what}: payload is truncated (${payloadLen} bytes announced, ${data.length - pos} present)`);
  }
  const freqs = frequencies(codes);
  const coded = ransDecode(data.subarray(pos, pos + payloadLen), n, freqs);
  pos += payloadLen;
  for (let i = 0; i < n; i++) {
    const s = coded[i];
    if (s >= freqs.length || freqs[s] === 0) {
      fail(`${what}: payload decodes to symbols the model says never occur (corrupt data)`);
    }
  }
  const values = new Float64Array(n);
  if (kind === 0) {
    for (let i = 0; i < n; i++) values[i] = coded[i];
  } else {
    let most = 0;
    for (let i = 0; i < n; i++) if (coded[i] > most) most = coded[i];
    if (most > MAX_BIT_LENGTH) {
      fail(`${what}: a value claims ${most} bits, the format allows at most ${MAX_BIT_LENGTH} (corrupt or forged data)`);
    }
    const nbits = new Int32Array(n);
    for (let i = 0; i < n; i++) nbits[i] = Math.max(coded[i] - 1, 0);
    const low = new BitReader(data.subarray(pos), `${what} raw bits`).readArray(nbits);
    for (let i = 0; i < n; i++) values[i] = coded[i] > 0 ? 2 ** nbits[i] + low[i] : 0;
  }
  let top = -1;
  for (let i = 0; i < n; i++) if (values[i] > top) top = values[i];
  if (top > maxValue) fail(`${what}: value ${top} exceeds the limit ${maxValue}`);
  return values;
}

// --- float32 quantizers (lgi_dictco.gauss.quant) -------------------------------------------------

const f32 = Math.fround;
const SQRT2 = f32(Math.SQRT2);

function classMultiplier(e) {
  const base = e % 2 ? SQRT2 : 1;
  return f32(base * 2 ** Math.floor(e / 2));
}

function classSteps(step, exps) {
  return exps.map((e) => step.map((s) => f32(s * classMultiplier(e))));
}

const OPPONENT = [
  [1 / Math.sqrt(3), 1 / Math.sqrt(3), 1 / Math.sqrt(3)],
  [1 / Math.sqrt(2), 0, -1 / Math.sqrt(2)],
  [1 / Math.sqrt(6), -2 / Math.sqrt(6), 1 / Math.sqrt(6)],
].map((row) => row.map(f32));

// --- the container and the header (lgi_dictco.gauss.format) --------------------------------------

function chunkName(bytes, p) {
  let s = "";
  for (let i = 0; i < 4; i++) {
    const c = bytes[p + i];
    s += c < 128 ? String.fromCharCode(c) : "\ufffd";
  }
  return s;
}

function readContainer(data) {
  const what = ".lgi";
  const m = MAGIC.length;
  if (data.length >= m + 2 && MAGIC.every((v, i) => data[i] === v) && data[m] < FORMAT_VERSION[0]) {
    fail(`.lgi format version ${data[m]}.${data[m + 1]} is an older format that this decoder (version `
      + `${FORMAT_VERSION[0]}.x) no longer reads; encode the image again`);
  }
  if (data.length < m + 2) fail(`not a ${what} file: only ${data.length} bytes`);
  if (!MAGIC.every((v, i) => data[i] === v)) fail(`not a ${what} file: the magic bytes are wrong`);
  if (data[m] !== FORMAT_VERSION[0]) {
    fail(`${what} format version ${data[m]}.${data[m + 1]} is not supported by this decoder (it reads `
      + `${FORMAT_VERSION[0]}.x); upgrade lgi.js`);
  }
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let pos = m + 2;
  const chunks = new Map();
  const sizes = [];
  for (;;) {
    if (pos + 8 > data.length) {
      fail(`${what} file is truncated at byte ${pos}: a chunk header is incomplete (the END chunk was never reached)`);
    }
    const name = chunkName(data, pos);
    const length = dv.getUint32(pos + 4, true);
    if (length > MAX_CHUNK) fail(`${what} chunk '${name}' at byte ${pos} claims ${length} bytes, above the limit ${MAX_CHUNK}`);
    const end = pos + 8 + length;
    if (end + 4 > data.length) {
      fail(`${what} file is truncated: chunk '${name}' at byte ${pos} needs ${length} bytes, `
        + `${Math.max(0, data.length - pos - 12)} remain`);
    }
    const crc = crc32Concat(data, pos, end);
    if (dv.getUint32(end, true) !== crc) fail(`${what} file is corrupted: CRC mismatch in chunk '${name}' at byte ${pos}`);
    const start = pos;
    pos = end + 4;
    sizes.push([name, length]);
    if (name === "END ") break;
    if (chunks.has(name)) fail(`${what} file has chunk '${name}' twice`);
    if (KNOWN_CHUNKS.has(name)) chunks.set(name, data.subarray(start + 8, end));
    else if (data[start] >= 65 && data[start] <= 90) {
      fail(`${what} file has an unknown critical chunk '${name}': it was written by a newer encoder; upgrade lgi.js`);
    }
  }
  if (pos !== data.length) fail(`${what} file has ${data.length - pos} unexpected bytes after the END chunk`);
  return { chunks, sizes };
}

/** CRC32 of a chunk's type and payload: bytes [pos, pos + 4) then [pos + 8, end). */
function crc32Concat(data, pos, end) {
  let c = 0xffffffff;
  for (let i = pos; i < pos + 4; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  for (let i = pos + 8; i < end; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const unzz = (u) => (u % 2 === 0 ? u / 2 : -(u + 1) / 2);

function decodeHeader(data) {
  let pos = 0;
  const vals = [];
  for (const name of ["width", "height", "channels", "colour space", "render mode", "top-k", "Gaussian count",
    "x position bits", "y position bits", "precision classes"]) {
    let v;
    [v, pos] = readVarint(data, pos, `.lgi header (${name})`, 2 ** 32);
    vals.push(v);
  }
  const [w, h, c, cs, rm, k, n, bx, by, nk] = vals;
  check(w >= 1 && w <= MAX_SIDE && h >= 1 && h <= MAX_SIDE && w * h <= MAX_PIXELS,
    `.lgi header: image size ${w}x${h} is outside the decoder limits (sides 1..${MAX_SIDE}, at most ${MAX_PIXELS} pixels)`);
  check(c >= 1 && c <= MAX_CHANNELS, `.lgi header: ${c} channels (1..${MAX_CHANNELS} supported)`);
  check(cs in COLOR_SPACES, `.lgi header: unknown colour space id ${cs}`);
  check(COLOR_SPACES[cs] !== "opp" || c === 3, ".lgi header: the opponent colour space needs 3 channels");
  check(rm in RENDER_MODES, `.lgi header: unknown render mode id ${rm}`);
  check(k >= 1 && k <= MAX_TOPK, `.lgi header: top-k ${k} outside 1..${MAX_TOPK}`);
  check(n <= MAX_GAUSSIANS, `.lgi header: ${n} Gaussians exceed the decoder limit ${MAX_GAUSSIANS}`);
  check(bx >= 1 && bx <= MAX_POS_BITS && by >= 1 && by <= MAX_POS_BITS,
    `.lgi header: position bits ${bx}x${by} outside 1..${MAX_POS_BITS}`);
  check(nk >= 1 && nk <= MAX_CLASSES, `.lgi header: ${nk} precision classes (1..${MAX_CLASSES} supported)`);
  const drops = [];
  for (let i = 0; i < nk; i++) {
    let d;
    [d, pos] = readVarint(data, pos, ".lgi header (class position drop)", 2 ** 8);
    check(d < Math.min(bx, by), `.lgi header: a class drops ${d} position bits of ${Math.min(bx, by)}`);
    drops.push(d);
  }
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const groups = [];
  for (const [gname, dims] of [["shape", 3], ["colour", c]]) {
    let kcb;
    [kcb, pos] = readVarint(data, pos, `.lgi header (${gname} codebook size)`, MAX_ALPHABET - 1);
    const lo = [];
    const step = [];
    for (let d = 0; d < dims; d++) {
      check(pos + 8 <= data.length, `.lgi header is truncated in the ${gname} group`);
      lo.push(dv.getFloat32(pos, true));
      step.push(dv.getFloat32(pos + 4, true));
      pos += 8;
    }
    const exps = [];
    const levels = [];
    for (let i = 0; i < nk; i++) {
      let e;
      [e, pos] = readVarint(data, pos, `.lgi header (${gname} class exponent)`, 2 * MAX_CLASS_EXP);
      exps.push(unzz(e));
      const row = [];
      for (let d = 0; d < dims; d++) {
        let lv;
        [lv, pos] = readVarint(data, pos, `.lgi header (${gname} levels)`, MAX_LEVELS);
        check(lv >= 1, `.lgi header: ${gname} levels must be >= 1`);
        row.push(lv);
      }
      levels.push(row);
    }
    check(lo.every(Number.isFinite) && step.every(Number.isFinite) && step.every((s) => s > 0),
      `.lgi header: ${gname} quantizer is not finite or has a step <= 0`);
    const steps = classSteps(step, exps);
    let ok = true;
    steps.forEach((row, i) => row.forEach((s, d) => {
      const top = f32(lo[d] + f32(s * levels[i][d]));
      if (!(Number.isFinite(s) && s > 0 && Number.isFinite(top))) ok = false;
    }));
    check(ok, `.lgi header: ${gname} quantizer range overflows float32`);
    groups.push({ k: kcb, dims, lo, step, levels, exps, steps });
  }
  check(pos === data.length, `.lgi header has ${data.length - pos} unexpected trailing bytes`);
  const header = {
    width: w, height: h, channels: c, colorSpace: COLOR_SPACES[cs], renderMode: RENDER_MODES[rm], topk: k,
    gaussians: n, posBits: [bx, by], classDrop: drops,
  };
  return { header, groups };
}

function unframe(data, count, what) {
  const parts = [];
  let pos = 0;
  for (let i = 0; i < count; i++) {
    let len;
    [len, pos] = readVarint(data, pos, what, data.length);
    check(pos + len <= data.length, `${what} is truncated`);
    parts.push(data.subarray(pos, pos + len));
    pos += len;
  }
  check(pos === data.length, `${what} has ${data.length - pos} unexpected trailing bytes`);
  return parts;
}

const bitLength = (v) => (v <= 0 ? 0 : 32 - Math.clz32(v));

function decodeGroup(data, spec, classes, what) {
  const { k, dims, levels } = spec;
  const nk = levels.length;
  const n = classes.length;
  const parts = unframe(data, 1 + (k ? 1 : 0) + dims * nk, what);
  const cbBits = [];
  for (let i = 0; i < k; i++) for (let d = 0; d < dims; d++) cbBits.push(bitLength(levels[0][d] - 1));
  const codebook = Int32Array.from(new BitReader(parts[0], `${what} codebook`).readArray(cbBits));
  for (let i = 0; i < codebook.length; i++) {
    check(codebook[i] < levels[0][i % dims], `${what} codebook has values beyond its levels`);
  }
  let indices = null;
  const own = new Uint8Array(n);
  if (k) {
    indices = Int32Array.from(decodeStream(parts[1], n, `${what} indices`, k));
    for (let i = 0; i < n; i++) own[i] = indices[i] === k ? 1 : 0;
  } else own.fill(1);
  const rows = Array.from({ length: nk }, () => []); // each class's rows among the own-valued Gaussians
  let e = 0;
  for (let i = 0; i < n; i++) if (own[i]) rows[classes[i]].push(e++);
  const scalars = new Int32Array(e * dims);
  const streams = parts.slice(parts.length - dims * nk);
  let s = 0;
  for (let d = 0; d < dims; d++) {
    for (let c = 0; c < nk; c++) {
      const v = decodeStream(streams[s++], rows[c].length, `${what} values`, levels[c][d] - 1);
      const r = rows[c];
      for (let i = 0; i < r.length; i++) scalars[r[i] * dims + d] = v[i];
    }
  }
  return { ...spec, codebook, indices, scalars, own };
}

/** Morton decode of codes < 2^40 (lgi_dictco.gauss.format.morton_decode). */
function mortonDecode(code, bx, by) {
  const common = Math.min(bx, by);
  const lo = code % TWO32;
  const hi = Math.floor(code / TWO32);
  let qx = 0;
  let qy = 0;
  for (let b = 0; b < common; b++) {
    const i = 2 * b;
    const bitX = i < 32 ? (lo >>> i) & 1 : (hi >>> (i - 32)) & 1;
    const bitY = i + 1 < 32 ? (lo >>> (i + 1)) & 1 : (hi >>> (i + 1 - 32)) & 1;
    qx |= bitX << b;
    qy |= bitY << b;
  }
  const top = Math.floor(code / 2 ** (2 * common));
  if (bx > by) qx += top * 2 ** common; else qy += top * 2 ** common;
  return [qx, qy];
}

/**
 * A .lgi file whose container (CRCs) and header are verified. Its streams are decoded on first use and kept,
 * so a page that draws one file at several sizes decodes it once: every function below takes one (``load``)
 * as well as bytes. The bytes are not copied: do not change them while the file is in use.
 */
export class LgiFile {
  constructor(data) {
    const { chunks, sizes } = readContainer(data);
    check(chunks.has("HEAD"), ".lgi file lacks its HEAD chunk");
    const { header, groups } = decodeHeader(chunks.get("HEAD"));
    Object.assign(this, { chunks, sizes, header, groups, _payload: null, _params: null });
  }

  /** The quantized integers (Morton order), exactly as lgi_dictco.gauss.decode_lgi reads them. */
  payload() {
    if (this._payload === null) {
      for (const need of ["POSN", "SHAP", "COLR"]) check(this.chunks.has(need), `.lgi file lacks its ${need} chunk`);
      this._payload = parseStreams(this.chunks, this.header, this.groups, this.sizes);
    }
    return this._payload;
  }

  /** The float32 parameters (``dequantize``). */
  params() {
    if (this._params === null) this._params = dequantize(this.payload());
    return this._params;
  }
}

/** ``buffer`` (an ArrayBuffer, a typed array, or an LgiFile, returned as it is) as an LgiFile. */
export function load(buffer) {
  return buffer instanceof LgiFile ? buffer : new LgiFile(asBytes(buffer));
}

/**
 * Parse a .lgi file into its quantized integers (Morton order), exactly as lgi_dictco.gauss.decode_lgi.
 * @returns {{header, positions: Int32Array, classes: Int32Array, shape, color, chunkBytes}}
 * @throws {LgiError} anything wrong with the file, in one line.
 */
export function parse(buffer) {
  return load(buffer).payload();
}

/** The header alone (size, channels, Gaussian count...) after the container's CRCs are verified. */
export function readHeader(buffer) {
  return load(buffer).header;
}

function parseStreams(chunks, header, groups, sizes) {
  const n = header.gaussians;
  const nk = header.classDrop.length;
  const [bx, by] = header.posBits;
  const dmax = Math.max(...header.classDrop);
  const cbits = bx + by - 2 * dmax;
  const deltas = decodeStream(chunks.get("POSN"), n, ".lgi positions", 2 ** cbits - 1);
  const codes = new Float64Array(n);
  let acc = 0;
  for (let i = 0; i < n; i++) { acc += deltas[i]; codes[i] = acc; }
  check(!n || codes[n - 1] < 2 ** cbits, ".lgi positions run past the position grid");
  let classes = new Int32Array(n);
  if (nk > 1) {
    check(chunks.has("CLAS"), ".lgi file lacks its CLAS chunk");
    classes = Int32Array.from(decodeStream(chunks.get("CLAS"), n, ".lgi precision classes", nk - 1));
  }
  const refine = new Int32Array(n);
  for (let i = 0; i < n; i++) refine[i] = dmax - header.classDrop[classes[i]];
  let low = null;
  if (dmax) {
    check(chunks.has("PREF"), ".lgi file lacks its PREF chunk");
    const nb = new Int32Array(2 * n);
    for (let i = 0; i < n; i++) { nb[2 * i] = refine[i]; nb[2 * i + 1] = refine[i]; }
    low = new BitReader(chunks.get("PREF"), ".lgi position refinement").readArray(nb);
  }
  const positions = new Int32Array(2 * n);
  for (let i = 0; i < n; i++) {
    const [cx, cy] = mortonDecode(codes[i], bx - dmax, by - dmax);
    const r = 2 ** refine[i];
    positions[2 * i] = cx * r + (low ? low[2 * i] : 0);
    positions[2 * i + 1] = cy * r + (low ? low[2 * i + 1] : 0);
  }
  const shape = decodeGroup(chunks.get("SHAP"), groups[0], classes, ".lgi shape");
  const color = decodeGroup(chunks.get("COLR"), groups[1], classes, ".lgi colour");
  return { header, positions, classes, shape, color, chunkBytes: Object.fromEntries(sizes) };
}

// --- dequantization (lgi_dictco.gauss.decoder.dequantize) -----------------------------------------

function groupValues(g, classes) {
  const n = classes.length;
  const { dims, lo, steps, codebook, indices, scalars, own } = g;
  const out = new Float32Array(n * dims);
  let e = 0;
  for (let i = 0; i < n; i++) {
    if (own[i]) {
      const st = steps[classes[i]];
      for (let d = 0; d < dims; d++) out[i * dims + d] = f32(lo[d] + f32(scalars[e * dims + d] * st[d]));
      e++;
    } else {
      const j = indices[i];
      for (let d = 0; d < dims; d++) out[i * dims + d] = f32(lo[d] + f32(codebook[j * dims + d] * steps[0][d]));
    }
  }
  return out;
}

/** Float32 Gaussian parameters in the unit square: means [2N], scales [2N], rotations [N], colors [C·N]. */
export function dequantize(p) {
  const h = p.header;
  const n = h.gaussians;
  const [bx, by] = h.posBits;
  const means = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    const d = h.classDrop[p.classes[i]];
    means[2 * i] = (p.positions[2 * i] + 0.5) * 2 ** -(bx - d);
    means[2 * i + 1] = (p.positions[2 * i + 1] + 0.5) * 2 ** -(by - d);
  }
  const feat = groupValues(p.shape, p.classes);
  const scales = new Float32Array(2 * n);
  const rotations = new Float32Array(n);
  let ok = true;
  for (let i = 0; i < n; i++) {
    const m = feat[3 * i];
    const u = feat[3 * i + 1];
    const v = feat[3 * i + 2];
    const a = f32(Math.hypot(u, v));
    const s1 = f32(Math.exp(f32(f32(m + a) * 0.5)));
    const s2 = f32(Math.exp(f32(f32(m - a) * 0.5)));
    const th = f32(f32(Math.atan2(v, u)) * 0.5);
    scales[2 * i] = s1;
    scales[2 * i + 1] = s2;
    rotations[i] = th;
    if (!(Number.isFinite(s1) && Number.isFinite(s2) && s1 > 0 && s2 > 0 && Number.isFinite(th))) ok = false;
  }
  check(ok, ".lgi shape values decode to non-finite or zero scales (corrupt or hostile file)");
  let colors = groupValues(p.color, p.classes);
  const C = h.channels;
  if (h.colorSpace === "opp") {
    const rgb = new Float32Array(3 * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < 3; j++) {
        let s = 0;
        for (let k = 0; k < 3; k++) s = f32(s + f32(colors[3 * i + k] * OPPONENT[k][j]));
        rgb[3 * i + j] = s;
      }
    }
    colors = rgb;
  }
  let most = 0;
  for (let i = 0; i < colors.length; i++) {
    const v = colors[i];
    if (!Number.isFinite(v)) fail(".lgi colour values are not finite (corrupt or hostile file)");
    if (Math.abs(v) > most) most = Math.abs(v);
  }
  if (most > MAX_ABS_COLOR) {
    fail(`.lgi colour values reach ${most.toPrecision(3)}, beyond the decoder limit of ±${MAX_ABS_COLOR} (corrupt or hostile file)`);
  }
  return { n, channels: C, means, scales, rotations, colors };
}

// --- projection and the price of a request (lgi_dictco.gauss.decoder.decode_cost) -----------------

/** The largest eigenvalue of a Gaussian's pixel covariance (float64, as csrc/common.h's project_one). */
function lambdaMax(cs, sn, s1, s2, width, height) {
  const v1 = s1 * s1;
  const v2 = s2 * s2;
  const sxx = width * width * (cs * cs * v1 + sn * sn * v2);
  const syy = height * height * (sn * sn * v1 + cs * cs * v2);
  const sxy = width * height * cs * sn * (v1 - v2);
  const half = 0.5 * (sxx - syy);
  return 0.5 * (sxx + syy) + Math.sqrt(half * half + sxy * sxy);
}

/** Per Gaussian: pixel centre, conic and the rasterizer's pixel box (empty boxes culled), as
 * lgi-gsplat2d's project_one + pixel_box (csrc/common.h). */
function project(params, width, height) {
  const { n, means, scales, rotations } = params;
  const W = f32(width);
  const H = f32(height);
  const geo = new Float32Array(5 * n); // px, py, a, b, c
  const box = new Int32Array(4 * n);   // j0, j1, i0, i1 (j0 > j1: culled)
  for (let i = 0; i < n; i++) {
    const px = f32(means[2 * i] * W);
    const py = f32(means[2 * i + 1] * H);
    const s1 = scales[2 * i];
    const s2 = scales[2 * i + 1];
    const th = rotations[i];
    const cs = f32(Math.cos(th));
    const sn = f32(Math.sin(th));
    const i1 = f32(1 / f32(s1 * s1));
    const i2 = f32(1 / f32(s2 * s2));
    const m00 = f32(f32(f32(cs * cs) * i1) + f32(f32(sn * sn) * i2));
    const m01 = f32(f32(cs * sn) * f32(i1 - i2));
    const m11 = f32(f32(f32(sn * sn) * i1) + f32(f32(cs * cs) * i2));
    const a = f32(m00 / f32(W * W));
    const b = f32(m01 / f32(W * H));
    const c = f32(m11 / f32(H * H));
    geo.set([px, py, a, b, c], 5 * i);
    box[4 * i] = 0;
    box[4 * i + 1] = -1;
    if (!(Number.isFinite(a) && Number.isFinite(b) && Number.isFinite(c) && Number.isFinite(px)
      && Number.isFinite(py)) || s1 === 0 || s2 === 0) continue;
    const lmax = lambdaMax(cs, sn, s1, s2, width, height);
    let r = Math.ceil(3 * Math.sqrt(lmax > 0 ? lmax : 0));
    if (!(r <= MAX_RADIUS)) r = MAX_RADIUS;
    if (r < 1) r = 1;
    const bj0 = Math.max(Math.ceil(px - r - 0.5), 0);
    const bj1 = Math.min(Math.floor(px + r - 0.5), width - 1);
    const bi0 = Math.max(Math.ceil(py - r - 0.5), 0);
    const bi1 = Math.min(Math.floor(py + r - 0.5), height - 1);
    if (!(bj0 <= bj1 && bi0 <= bi1)) continue;  // also NaN
    box[4 * i] = bj0;
    box[4 * i + 1] = bj1;
    box[4 * i + 2] = bi0;
    box[4 * i + 3] = bi1;
  }
  return { geo, box };
}

/** An upper bound on the rasterizer's Gaussian-tile intersections at width x height (float64, numpy's
 * decode_cost rule: one pixel of margin), and the priced work (x 4 for top-K blends). */
export function decodeCost(params, header, width, height) {
  const { n, means, scales, rotations } = params;
  let intersections = 0;
  const W = f32(width);
  const H = f32(height);
  for (let i = 0; i < n; i++) {
    const px = f32(means[2 * i] * W);
    const py = f32(means[2 * i + 1] * H);
    const s1 = scales[2 * i];
    const s2 = scales[2 * i + 1];
    const lmax = lambdaMax(Math.cos(rotations[i]), Math.sin(rotations[i]), s1, s2, width, height);
    let r = Math.ceil(3 * Math.sqrt(Math.max(lmax, 0)) * (1 + 1e-6)) + 1;
    if (!(r <= MAX_RADIUS)) r = MAX_RADIUS + 1;
    const j0 = Math.max(Math.ceil(px - r - 0.5), 0);
    const j1 = Math.min(Math.floor(px + r - 0.5), width - 1);
    const i0 = Math.max(Math.ceil(py - r - 0.5), 0);
    const i1 = Math.min(Math.floor(py + r - 0.5), height - 1);
    if (!(j0 <= j1 && i0 <= i1)) continue;
    intersections += (Math.floor(j1 / TILE) - Math.floor(j0 / TILE) + 1) * (Math.floor(i1 / TILE) - Math.floor(i0 / TILE) + 1);
  }
  const slots = header.renderMode !== "sum" ? header.topk : 0;
  return { intersections, work: intersections * (slots ? 4 : 1), slots };
}

function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function limitError(msg, option) { return new LgiError(msg, "limit", option); }

/** The output size of a request (lgi.decoding.output_size; ``height`` alone or with ``width`` is
 * this module's addition: both given draw the unit square into exactly that box). */
export function outputSize(header, { width, height, scale, maxPixels = BUDGET.maxOutputPixels } = {}) {
  const W = header.width;
  const H = header.height;
  if (scale != null && (width != null || height != null)) throw limitError("give `scale` or `width`/`height`, not both", "scale");
  for (const [name, v] of [["width", width], ["height", height]]) {
    if (v != null && !(Number.isInteger(v) && v >= 1)) throw limitError(`\`${name}\` must be a whole number >= 1, got ${v}`, name);
  }
  if (width != null && height != null) {
    if (width * height > maxPixels) {
      throw limitError(`output ${width}x${height} exceeds the decoder limit of ${maxPixels} pixels (\`maxPixels\`)`, "maxPixels");
    }
    return [width, height];
  }
  let s = scale ?? 1;
  if (width != null) s = width / W;
  if (height != null) s = height / H;
  if (!(s > 0) || s === Infinity) throw limitError(`\`scale\` must be > 0 and finite, got ${scale}`, "scale");
  if (W * s * H * s > 4 * maxPixels + 4) {
    throw limitError(`output at scale ${s} of ${W}x${H} exceeds the decoder limit of ${maxPixels} pixels (\`maxPixels\`)`, "maxPixels");
  }
  const w = width ?? Math.max(1, roundHalfEven(W * s));
  const h = height ?? Math.max(1, roundHalfEven(H * s));
  if (w * h > maxPixels) throw limitError(`output ${w}x${h} exceeds the decoder limit of ${maxPixels} pixels (\`maxPixels\`)`, "maxPixels");
  return [w, h];
}

/**
 * Parse, dequantize and price a request; refuses before anything is drawn (lgi.decoding.prepare). ``buffer``:
 * bytes or an LgiFile (whose decoded streams are reused).
 * @param options {width, height, scale, maxPixels, maxGaussians, maxWork}
 * @returns {{header, params, width, height, cost, limits, payload}}
 */
export function prepare(buffer, options = {}) {
  const { maxPixels = BUDGET.maxOutputPixels, maxGaussians = null, maxWork = null } = options;
  for (const [name, v] of [["maxPixels", maxPixels], ["maxGaussians", maxGaussians], ["maxWork", maxWork]]) {
    if (v != null && !(Number.isInteger(v) && v >= 1)) throw limitError(`\`${name}\` must be a whole number >= 1, got ${v}`, name);
  }
  const file = load(buffer);
  const { header } = file;
  const [w, h] = outputSize(header, { ...options, maxPixels });
  const most = maxGaussians ?? Math.max(BUDGET.minGaussians, Math.floor(BUDGET.gaussiansPerPixel * Math.max(header.width * header.height, w * h)));
  if (header.gaussians > most) {
    throw limitError(`the file holds ${header.gaussians} Gaussians, more than the limit of ${most} for a `
      + `${header.width}x${header.height} image drawn at ${w}x${h} (\`maxGaussians\`; raise it to decode this file anyway)`, "maxGaussians");
  }
  const params = file.params(); // the count is checked from the header first, before any stream is decoded
  const cost = decodeCost(params, header, w, h);
  const tiles = Math.ceil(w / TILE) * Math.ceil(h / TILE);
  const limit = maxWork ?? BUDGET.workPerTile * tiles + BUDGET.workPerGaussian * header.gaussians;
  if (cost.work > limit) {
    throw limitError(`drawing ${w}x${h} from ${header.gaussians} Gaussians needs up to ${cost.work} units of work `
      + `(${cost.intersections} Gaussian-tile intersections), more than the work limit of ${limit} (\`maxWork\`; raise it `
      + "to decode this file anyway)", "maxWork");
  }
  return { header, params, width: w, height: h, cost, limits: [most, limit], payload: file.payload() };
}

// --- tile lists -----------------------------------------------------------------------------------

/** Whether a Gaussian's q <= 9 ellipse can reach a pixel centre in [xa, xb] x [ya, yb] (inclusive pixel
 * indices): the minimum of q over that rectangle of centres, found on its edges when the centre is outside,
 * with a margin for rounding. Tiles its box touches but its ellipse misses draw nothing of it. */
function reaches(geo, g, xa, xb, ya, yb) {
  const gx = geo[5 * g];
  const gy = geo[5 * g + 1];
  const x0 = xa + 0.5 - gx;
  const x1 = xb + 0.5 - gx;
  const y0 = ya + 0.5 - gy;
  const y1 = yb + 0.5 - gy;
  if (x0 <= 0 && x1 >= 0 && y0 <= 0 && y1 >= 0) return true;
  const a = geo[5 * g + 2];
  const b = geo[5 * g + 3];
  const c = geo[5 * g + 4];
  const best = Math.min(edgeMin(a, b, c, y0, x0, x1), edgeMin(a, b, c, y1, x0, x1),
    edgeMin(c, b, a, x0, y0, y1), edgeMin(c, b, a, x1, y0, y1));
  return !(best > CUTOFF * (1 + 1e-6) + 1e-6); // NaN (degenerate conics) keeps the tile
}

/** The least a u^2 + 2 b u v + c v^2 along the segment v = ``v``, ``u`` in [u0, u1]. */
function edgeMin(a, b, c, v, u0, u1) {
  let u = -b * v / a;
  u = u < u0 ? u0 : u > u1 ? u1 : u;
  return a * u * u + 2 * b * u * v + c * v * v;
}

/** For the tiles of the region [tx0, tx1) x [ty0, ty1): ascending Gaussian ids of every tile whose pixels a
 * Gaussian's box and ellipse reach (CSR: offsets [tiles + 1], ids); tiles of ``bin`` x ``bin`` pixels. */
function binTiles(box, geo, n, tx0, ty0, tx1, ty1, bin = TILE) {
  const nx = tx1 - tx0;
  const count = new Uint32Array(nx * (ty1 - ty0) + 1);
  // The pairs (tile, Gaussian) in ascending Gaussian order, each tested once, then sorted by tile (a counting
  // sort keeps each tile's Gaussians ascending).
  let tiles = new Uint32Array(Math.max(1024, 4 * n));
  let gauss = new Uint32Array(tiles.length);
  let pairs = 0;
  for (let i = 0; i < n; i++) {
    if (box[4 * i] > box[4 * i + 1]) continue;
    const a = Math.max(Math.floor(box[4 * i] / bin), tx0);
    const b = Math.min(Math.floor(box[4 * i + 1] / bin), tx1 - 1);
    const c = Math.max(Math.floor(box[4 * i + 2] / bin), ty0);
    const d = Math.min(Math.floor(box[4 * i + 3] / bin), ty1 - 1);
    const whole = a === b && c === d; // one tile: the box is inside it
    for (let ty = c; ty <= d; ty++) {
      const ya = Math.max(ty * bin, box[4 * i + 2]);
      const yb = Math.min(ty * bin + bin - 1, box[4 * i + 3]);
      for (let tx = a; tx <= b; tx++) {
        if (!whole && !reaches(geo, i, Math.max(tx * bin, box[4 * i]), Math.min(tx * bin + bin - 1, box[4 * i + 1]), ya, yb)) {
          continue;
        }
        if (pairs === tiles.length) { // grow both by half
          const t2 = new Uint32Array(pairs + (pairs >> 1));
          const g2 = new Uint32Array(t2.length);
          t2.set(tiles);
          g2.set(gauss);
          tiles = t2;
          gauss = g2;
        }
        const t = (ty - ty0) * nx + (tx - tx0);
        tiles[pairs] = t;
        gauss[pairs++] = i;
        count[t + 1]++;
      }
    }
  }
  for (let t = 1; t < count.length; t++) count[t] += count[t - 1];
  const offsets = count;
  const ids = new Uint32Array(pairs);
  const fill = offsets.slice(0, -1);
  for (let p = 0; p < pairs; p++) ids[fill[tiles[p]]++] = gauss[p];
  return { offsets, ids };
}

// --- the CPU renderer -----------------------------------------------------------------------------

/** Draw ``plan`` on the CPU into RGBA bytes (rows top to bottom). Tile by tile, each Gaussian of the tile's
 * list (ascending ids) visits only the pixels of its box inside the tile, so ties keep the lower id as in
 * lgi-gsplat2d; arithmetic is float64 (the native renderer's float32 differs by far less than 1/255). */
export function renderCpu(plan) {
  return renderCpuRows(plan, 0, Math.ceil(plan.height / TILE));
}

/** The pixels of the tile rows [ty0, ty1) of ``plan`` (RGBA bytes, rows from ty0 * 16 down). */
function renderCpuRows(plan, ty0, ty1) {
  const { params, header, width, height } = plan;
  const { n, colors } = params;
  const C = header.channels;
  const sum = header.renderMode === "sum";
  const K = header.topk;
  const { geo, box } = project(params, width, height);
  const top = ty0 * TILE;
  const out = new Uint8ClampedArray(width * (Math.min(ty1 * TILE, height) - top) * 4);
  const ntx = Math.ceil(width / TILE);
  const { offsets, ids } = binTiles(box, geo, n, 0, ty0, ntx, ty1);
  const eps = header.renderMode === "topk" ? TOPK_EPS : TOPK_HARD_EPS;
  const floor = header.renderMode === "topk" ? TOPK_FLOOR : 0;
  const P = TILE * TILE;
  const kq = new Float64Array(P * K);   // per pixel of the tile: the kept q ...
  const kg = new Int32Array(P * K);     // ... and their Gaussians
  const cnt = new Int32Array(P);        // (a pixel's K kept form a max-heap once full: the root is the worst)
  const acc = new Float64Array(P * 4);
  for (let ty = ty0; ty < ty1; ty++) {
    for (let tx = 0; tx < ntx; tx++) {
      const t = (ty - ty0) * ntx + tx;
      const x0 = tx * TILE;
      const y0 = ty * TILE;
      const xe = Math.min(x0 + TILE, width) - 1;
      const ye = Math.min(y0 + TILE, height) - 1;
      cnt.fill(0);
      acc.fill(0);
      for (let e = offsets[t]; e < offsets[t + 1]; e++) {
        const g = ids[e];
        const gx = geo[5 * g];
        const gy = geo[5 * g + 1];
        const a = geo[5 * g + 2];
        const b2 = 2 * geo[5 * g + 3];
        const c = geo[5 * g + 4];
        const xa = Math.max(box[4 * g], x0);
        const xb = Math.min(box[4 * g + 1], xe);
        const ya = Math.max(box[4 * g + 2], y0);
        const yb = Math.min(box[4 * g + 3], ye);
        const inv2a = 0.5 / a;
        for (let y = ya; y <= yb; y++) {
          const dy = y + 0.5 - gy;
          const b2dy = b2 * dy;
          const cdy2 = c * dy * dy;
          // The row's pixels with q <= 9 lie between the roots of a dx^2 + b2dy dx + cdy2 - 9 (one pixel of
          // margin for rounding); q itself decides below.
          const disc = b2dy * b2dy - 4 * a * (cdy2 - CUTOFF);
          if (disc < 0) continue;
          const root = Math.sqrt(disc);
          const xl = Math.max(xa, Math.floor(gx - 0.5 - (b2dy + root) * inv2a) - 1);
          const xr = Math.min(xb, Math.ceil(gx - 0.5 + (root - b2dy) * inv2a) + 1);
          const row = (y - y0) * TILE - x0;
          for (let x = xl; x <= xr; x++) {
            const dx = x + 0.5 - gx;
            const q = (a * dx * dx + b2dy * dx) + cdy2;
            if (!(q <= CUTOFF)) continue;
            const p = row + x;
            if (sum) {
              const w = expHalf(q);
              for (let ch = 0; ch < C; ch++) acc[4 * p + ch] += w * colors[g * C + ch];
              continue;
            }
            const base = p * K;
            const m = cnt[p];
            if (m < K) {
              kq[base + m] = q;
              kg[base + m] = g;
              cnt[p] = m + 1;
              if (m + 1 === K) for (let i = (K >> 1) - 1; i >= 0; i--) siftDown(kq, kg, base, K, i);
            } else if (q < kq[base]) { // full: a max-heap whose root is the worst kept
              kq[base] = q;
              kg[base] = g;
              siftDown(kq, kg, base, K, 0);
            }
          }
        }
      }
      blendTile(out, width, top, x0, y0, xe, ye, sum ? 0 : K, C, cnt, kq, kg, acc, colors, floor, eps);
    }
  }
  return out;
}

/** One tile's output pixels: the top-K blend of each pixel's kept Gaussians (``K`` = 0: the sums as they are). */
function blendTile(out, width, top, x0, y0, xe, ye, K, C, cnt, kq, kg, acc, colors, floor, eps) {
  for (let y = y0; y <= ye; y++) {
    for (let x = x0; x <= xe; x++) {
      const p = (y - y0) * TILE + (x - x0);
      const a = 4 * p;
      if (K) {
        let wsum = 0;
        let c0 = 0;
        let c1 = 0;
        let c2 = 0;
        let c3 = 0;
        for (let s = p * K, end = p * K + cnt[p]; s < end; s++) {
          const ev = expHalf(kq[s]);
          const w = ev > floor ? ev - floor : 0;
          const g = kg[s] * C;
          wsum += w;
          c0 += w * colors[g];
          if (C > 1) c1 += w * colors[g + 1];
          if (C > 2) c2 += w * colors[g + 2];
          if (C > 3) c3 += w * colors[g + 3];
        }
        const d = wsum + eps;
        acc[a] = c0 / d;
        acc[a + 1] = c1 / d;
        acc[a + 2] = c2 / d;
        acc[a + 3] = c3 / d;
      }
      writePixel(out, ((y - top) * width + x) * 4, acc, a, C);
    }
  }
}

// exp(-q/2) for 0 <= q <= 9 from a table at steps of 1/512 and a cubic of the remainder: relative error
// below 1e-12, several times faster than Math.exp in the blend's inner loop. A q below 0 (rounding, for a
// Gaussian whose axes differ by more than ~10^3.5) counts as 0, as in every renderer: the weight is at most 1.
const EXP_STEPS = 512;
const EXP_TABLE = Float64Array.from({ length: 9 * EXP_STEPS + 2 }, (_, i) => Math.exp(-0.5 * (i / EXP_STEPS)));

function expHalf(q) {
  if (!(q > 0)) q = 0;
  const i = (q * EXP_STEPS) | 0;
  const r = 0.5 * (q - i / EXP_STEPS);
  return EXP_TABLE[i] * (1 - r * (1 - r * (0.5 - r / 6)));
}

/** Restore the max-heap of a pixel's K kept entries below slot ``i``; an entry is worse when its q is larger,
 * or equal and its Gaussian later (the rasterizer keeps the lower id of equal q). */
function siftDown(kq, kg, base, K, i) {
  for (;;) {
    const l = 2 * i + 1;
    if (l >= K) return;
    let c = l;
    const r = l + 1;
    if (r < K && (kq[base + r] > kq[base + l] || (kq[base + r] === kq[base + l] && kg[base + r] > kg[base + l]))) c = r;
    const a = base + i;
    const b = base + c;
    if (kq[b] > kq[a] || (kq[b] === kq[a] && kg[b] > kg[a])) {
      const tq = kq[a]; kq[a] = kq[b]; kq[b] = tq;
      const tg = kg[a]; kg[a] = kg[b]; kg[b] = tg;
      i = c;
    } else return;
  }
}

function toByte(v) { // lgi_dictco.pixels.to_uint8: clipped to [0, 1], times 255, rounded
  return v <= 0 ? 0 : v >= 1 ? 255 : Math.round(v * 255);
}

function writePixel(out, o, acc, i, C) {
  if (C >= 3) {
    out[o] = toByte(acc[i]);
    out[o + 1] = toByte(acc[i + 1]);
    out[o + 2] = toByte(acc[i + 2]);
    out[o + 3] = C === 4 ? toByte(acc[i + 3]) : 255;
  } else {
    const g = toByte(acc[i]);
    out[o] = g;
    out[o + 1] = g;
    out[o + 2] = g;
    out[o + 3] = C === 2 ? toByte(acc[i + 1]) : 255;
  }
}

// --- the WebGL2 renderer --------------------------------------------------------------------------

// The shader's tiles: each fragment walks its tile's list, so smaller tiles mean shorter walks (8: about 1.3x
// faster than 16 in SwiftShader on a Kodak file, 4 no faster than 8) for more list entries.
const GL_BIN = 8;
// Texels per row of the data textures (the shader indexes them with the same width).
const TEX_W = 4096;

const VERTEX_SHADER = `#version 300 es
void main() {
  vec2 p = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));
  gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}`;

// One fragment per output pixel: the tile's list of Gaussians (ascending ids), the rasterizer's box and
// cutoff tests, the K smallest q (ties to the lower id) and the blend of csrc/rasterize_cpu.cpp. K is a
// constant of the program (one program per K): the kept lists hold K entries, not 32 (no measurable change in
// SwiftShader; fewer registers on a GPU).
const fragmentSource = (k) => `#version 300 es
precision highp float;
precision highp int;
precision highp usampler2D;
precision highp isampler2D;
uniform sampler2D uGeo;      // 2 texels per Gaussian: (px, py, a, b), (c, 0, 0, 0)
uniform sampler2D uColor;    // 1 texel per Gaussian: up to 4 channels
uniform isampler2D uBox;     // (j0, j1, i0, i1)
uniform usampler2D uTiles;   // per tile of the region: (first entry, entry count)
uniform usampler2D uIds;     // the region's lists of Gaussian ids
uniform ivec2 uOrigin;       // the region's first pixel (x, y) in the image
uniform int uTilesX;         // tiles per row of the region
uniform int uMode;           // 0 sum, 1 top-K, 2 top-K with the hard cutoff
const int K = ${k};
uniform int uChannels;
out vec4 outColor;
const int TEX_W = ${TEX_W};
ivec2 at(int i, int per) { int j = i * per; return ivec2(j % TEX_W, j / TEX_W); }
ivec2 at2(uint e) { return ivec2(int(e % ${TEX_W}u), int(e / ${TEX_W}u)); }
void main() {
  ivec2 local = ivec2(gl_FragCoord.xy);
  int x = uOrigin.x + local.x;
  int y = uOrigin.y + local.y;
  ivec2 tile = local / ${GL_BIN};
  uvec2 span = texelFetch(uTiles, ivec2(tile.x, tile.y), 0).xy;
  float px = float(x) + 0.5;
  float py = float(y) + 0.5;
  float kq[K];
  int kg[K];
  int cnt = 0;
  int worst = 0;
  vec4 acc = vec4(0.0);
  for (uint e = span.x; e < span.x + span.y; ++e) {
    int g = int(texelFetch(uIds, at2(e), 0).x);
    ivec4 b = texelFetch(uBox, at(g, 1), 0);
    if (x < b.x || x > b.y || y < b.z || y > b.w) continue;
    ivec2 t0 = at(g, 2);
    vec4 g0 = texelFetch(uGeo, t0, 0);
    float c = texelFetch(uGeo, ivec2(t0.x + 1, t0.y), 0).x;
    float dx = px - g0.x;
    float dy = py - g0.y;
    float q = (g0.z * dx * dx + (2.0 * g0.w) * dy * dx) + (c * dy) * dy;
    if (!(q <= 9.0)) continue;
    if (uMode == 0) {
      acc += exp(-0.5 * max(q, 0.0)) * texelFetch(uColor, at(g, 1), 0);
      continue;
    }
    if (cnt < K) {
      kq[cnt] = q; kg[cnt] = g; cnt++;
      if (cnt == K) {
        worst = 0;
        for (int s = 1; s < K; ++s) if (kq[s] > kq[worst] || (kq[s] == kq[worst] && kg[s] > kg[worst])) worst = s;
      }
    } else if (q < kq[worst]) {
      kq[worst] = q; kg[worst] = g;
      worst = 0;
      for (int s = 1; s < K; ++s) if (kq[s] > kq[worst] || (kq[s] == kq[worst] && kg[s] > kg[worst])) worst = s;
    }
  }
  if (uMode != 0) {
    float floorv = uMode == 1 ? 0.011108996538242306 : 0.0;
    float eps = uMode == 1 ? 0.01 : 1e-4;
    float wsum = 0.0;
    for (int s = 0; s < cnt; ++s) {
      float ev = exp(-0.5 * max(kq[s], 0.0));
      float w = ev > floorv ? ev - floorv : 0.0;
      wsum += w;
      acc += w * texelFetch(uColor, at(kg[s], 1), 0);
    }
    acc /= wsum + eps;
  }
  acc = clamp(acc, 0.0, 1.0);
  if (uChannels == 1) outColor = vec4(acc.xxx, 1.0);
  else if (uChannels == 2) outColor = vec4(acc.xxx, acc.y);
  else if (uChannels == 3) outColor = vec4(acc.xyz, 1.0);
  else outColor = acc;
}`;

let glState = null;

function makeGl() {
  if (glState !== null) return glState;
  glState = false;
  let canvas = null;
  if (typeof OffscreenCanvas !== "undefined") canvas = new OffscreenCanvas(1, 1);
  else if (typeof document !== "undefined") canvas = document.createElement("canvas");
  const gl = canvas && canvas.getContext("webgl2", { antialias: false, depth: false, stencil: false, preserveDrawingBuffer: true });
  if (!gl) return glState;
  const shader = (type, src) => {
    const s = gl.createShader(type);
    gl.shaderSource(s, src);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(`lgi.js shader: ${gl.getShaderInfoLog(s)}`);
    return s;
  };
  const vertex = shader(gl.VERTEX_SHADER, VERTEX_SHADER);
  const programs = new Map();
  const program = (k) => { // linked once per K, with its uniforms' locations
    if (!programs.has(k)) {
      const prog = gl.createProgram();
      gl.attachShader(prog, vertex);
      gl.attachShader(prog, shader(gl.FRAGMENT_SHADER, fragmentSource(k)));
      gl.linkProgram(prog);
      if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(`lgi.js shader: ${gl.getProgramInfoLog(prog)}`);
      const loc = Object.fromEntries(["uGeo", "uColor", "uBox", "uTiles", "uIds", "uOrigin", "uTilesX", "uMode", "uChannels"]
        .map((u) => [u, gl.getUniformLocation(prog, u)]));
      programs.set(k, { prog, loc });
    }
    return programs.get(k);
  };
  const dbg = gl.getExtension("WEBGL_debug_renderer_info");
  glState = {
    gl, program, canvas,
    maxTex: gl.getParameter(gl.MAX_TEXTURE_SIZE),
    maxRb: Math.min(gl.getParameter(gl.MAX_RENDERBUFFER_SIZE), gl.getParameter(gl.MAX_VIEWPORT_DIMS)[0]),
    renderer: dbg ? gl.getParameter(dbg.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER),
  };
  return glState;
}

/** Whether the page's WebGL2 is a software rasterizer (or missing): ``decode``'s "auto" then draws on the CPU. */
export function softwareWebgl() {
  const name = webglRenderer();
  return name === null || /swiftshader|llvmpipe|softpipe|software/i.test(name);
}

/** The WebGL2 renderer's name (e.g. SwiftShader's), or null where the page has no WebGL2. */
export function webglRenderer() {
  const s = makeGl();
  return s ? s.renderer : null;
}

function texture(gl, unit, internal, format, type, width, height, data) {
  const t = gl.createTexture();
  gl.activeTexture(gl.TEXTURE0 + unit);
  gl.bindTexture(gl.TEXTURE_2D, t);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
  gl.texImage2D(gl.TEXTURE_2D, 0, internal, width, height, 0, format, type, data);
  return t;
}

function padded(array, texelsPer, comps, count) { // rows of TEX_W texels
  const texels = Math.max(1, count * texelsPer);
  const rows = Math.ceil(texels / TEX_W);
  const out = new array.constructor(rows * TEX_W * comps);
  out.set(array.subarray(0, Math.min(array.length, out.length)));
  return [out, rows];
}

/** Draw ``plan`` with WebGL2 into RGBA bytes (rows top to bottom); null where WebGL2 is missing or where the
 * Gaussians or a region's lists exceed what its textures hold (the caller then draws on the CPU). */
export function renderWebgl(plan) {
  const s = makeGl();
  if (!s) return null;
  const { params, header, width, height } = plan;
  const { gl } = s;
  const { prog, loc } = s.program(header.renderMode === "sum" ? 1 : header.topk);
  const { n } = params;
  const C = header.channels;
  const { geo, box } = project(params, width, height);
  const g2 = new Float32Array(Math.max(1, n) * 8);
  for (let i = 0; i < n; i++) g2.set([geo[5 * i], geo[5 * i + 1], geo[5 * i + 2], geo[5 * i + 3], geo[5 * i + 4], 0, 0, 0], 8 * i);
  const col = new Float32Array(Math.max(1, n) * 4);
  for (let i = 0; i < n; i++) for (let ch = 0; ch < C; ch++) col[4 * i + ch] = params.colors[i * C + ch];
  if (n * 2 > TEX_W * s.maxTex) return null;
  const textures = [];
  const [geoData, geoRows] = padded(g2, 2, 4, n);
  const [colData, colRows] = padded(col, 1, 4, n);
  const [boxData, boxRows] = padded(box, 1, 4, n);
  textures.push(texture(gl, 0, gl.RGBA32F, gl.RGBA, gl.FLOAT, TEX_W, geoRows, geoData));
  textures.push(texture(gl, 1, gl.RGBA32F, gl.RGBA, gl.FLOAT, TEX_W, colRows, colData));
  textures.push(texture(gl, 2, gl.RGBA32I, gl.RGBA_INTEGER, gl.INT, TEX_W, boxRows, boxData));
  gl.useProgram(prog);
  gl.uniform1i(loc.uGeo, 0);
  gl.uniform1i(loc.uColor, 1);
  gl.uniform1i(loc.uBox, 2);
  gl.uniform1i(loc.uTiles, 3);
  gl.uniform1i(loc.uIds, 4);
  gl.uniform1i(loc.uMode, header.renderMode === "sum" ? 0 : header.renderMode === "topk" ? 1 : 2);
  gl.uniform1i(loc.uChannels, C);
  const out = new Uint8ClampedArray(width * height * 4);
  // Regions of whole tiles, each within the framebuffer limit and with its lists inside one texture.
  const side = Math.max(TILE, Math.floor(Math.min(2048, s.maxRb) / TILE) * TILE);
  const fb = gl.createFramebuffer();
  const rb = gl.createRenderbuffer();
  gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
  gl.bindRenderbuffer(gl.RENDERBUFFER, rb);
  gl.renderbufferStorage(gl.RENDERBUFFER, gl.RGBA8, Math.min(side, width), Math.min(side, height));
  gl.framebufferRenderbuffer(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.RENDERBUFFER, rb);
  try {
    for (let y0 = 0; y0 < height; y0 += side) {
      for (let x0 = 0; x0 < width; x0 += side) {
        const rw = Math.min(side, width - x0);
        const rh = Math.min(side, height - y0);
        const tx0 = x0 / GL_BIN;
        const ty0 = y0 / GL_BIN;
        const tx1 = Math.ceil((x0 + rw) / GL_BIN);
        const ty1 = Math.ceil((y0 + rh) / GL_BIN);
        const { offsets, ids } = binTiles(box, geo, n, tx0, ty0, tx1, ty1, GL_BIN);
        if (ids.length > TEX_W * s.maxTex) return null;
        const nx = tx1 - tx0;
        const ny = ty1 - ty0;
        const spans = new Uint32Array(nx * ny * 2);
        for (let t = 0; t < nx * ny; t++) { spans[2 * t] = offsets[t]; spans[2 * t + 1] = offsets[t + 1] - offsets[t]; }
        const [idData, idRows] = padded(ids, 1, 1, ids.length);
        const tt = texture(gl, 3, gl.RG32UI, gl.RG_INTEGER, gl.UNSIGNED_INT, nx, ny, spans);
        const ti = texture(gl, 4, gl.R32UI, gl.RED_INTEGER, gl.UNSIGNED_INT, TEX_W, idRows, idData);
        gl.uniform2i(loc.uOrigin, x0, y0);
        gl.uniform1i(loc.uTilesX, nx);
        gl.viewport(0, 0, rw, rh);
        gl.drawArrays(gl.TRIANGLES, 0, 3);
        const px = new Uint8Array(rw * rh * 4);
        gl.readPixels(0, 0, rw, rh, gl.RGBA, gl.UNSIGNED_BYTE, px);
        for (let r = 0; r < rh; r++) out.set(px.subarray(r * rw * 4, (r + 1) * rw * 4), ((y0 + r) * width + x0) * 4);
        gl.deleteTexture(tt);
        gl.deleteTexture(ti);
      }
    }
  } finally {
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    gl.deleteFramebuffer(fb);
    gl.deleteRenderbuffer(rb);
    for (const t of textures) gl.deleteTexture(t);
  }
  return out;
}

// --- the public decode ----------------------------------------------------------------------------

function imageData(pixels, width, height) {
  if (typeof ImageData !== "undefined") return new ImageData(pixels, width, height);
  return { data: pixels, width, height, colorSpace: "srgb" };
}

/**
 * Decode a .lgi file to an ImageData at any size.
 * @param buffer ArrayBuffer or Uint8Array of the file, or an LgiFile (``load``: decoded once for many draws).
 * @param options {width, height, scale, backend: "auto" | "webgl" | "cpu", maxPixels, maxGaussians, maxWork}:
 *   no size draws the stored size; ``width`` or ``height`` alone keeps the aspect ratio; both draw exactly
 *   that box. The budget's defaults are the Python decoder's.
 * @returns {ImageData} with ``.backend`` ("webgl" or "cpu") and ``.header``.
 * @throws {LgiError} a malformed file (kind "format") or a request beyond a budget (kind "limit").
 */
export function decode(buffer, options = {}) {
  const backend = checkBackend(options.backend ?? "auto");
  return finish({ ...prepare(buffer, options), backend }, null);
}

function checkBackend(backend) {
  if (!["auto", "webgl", "cpu"].includes(backend)) {
    throw new LgiError(`\`backend\` must be auto, webgl or cpu, got ${backend}`, "limit", "backend");
  }
  return backend;
}

/** Whether ``backend`` draws with WebGL2: "auto" does on a GPU; a software WebGL (SwiftShader, llvmpipe) is
 * slower than the CPU path. */
function usesWebgl(backend) {
  return backend === "webgl" || (backend === "auto" && !softwareWebgl());
}

/** ``plan`` drawn on this thread, as an ImageData with ``.backend`` and ``.header``; ``pixels`` already drawn
 * on the CPU (by workers) when given. */
function finish(plan, pixels) {
  let used = "cpu";
  if (pixels === null && plan.params.n) {
    if (usesWebgl(plan.backend)) {
      pixels = renderWebgl(plan);
      if (pixels) used = "webgl";
      else if (plan.backend === "webgl") {
        throw new LgiError(makeGl() ? "this draw needs more list entries than the page's WebGL2 textures hold (use "
          + "`backend` auto or cpu)" : "WebGL2 is not available in this page", "limit", "backend");
      }
    }
    if (!pixels) pixels = renderCpu(plan);
  }
  if (pixels === null) pixels = blank(plan);
  const img = imageData(pixels, plan.width, plan.height);
  try { Object.assign(img, { backend: used, header: plan.header }); } catch { /* a frozen ImageData */ }
  return img;
}

function blank(plan) {
  const px = new Uint8ClampedArray(plan.width * plan.height * 4);
  const opaque = plan.header.channels !== 2 && plan.header.channels !== 4;
  if (opaque) for (let i = 3; i < px.length; i += 4) px[i] = 255;
  return px;
}

// --- drawing on several cores: workers running this module --------------------------------------

const IN_WORKER = typeof WorkerGlobalScope !== "undefined" && globalThis instanceof WorkerGlobalScope;
if (IN_WORKER) {
  globalThis.onmessage = (e) => {
    const { id, plan, rows } = e.data;
    const px = renderCpuRows(plan, rows[0], rows[1]);
    globalThis.postMessage({ id, rows, px }, [px.buffer]);
  };
}

let pool = null; // [Worker] or false where module workers cannot start

function workers() {
  if (pool !== null) return pool;
  pool = false;
  const cores = Math.min(8, (globalThis.navigator && navigator.hardwareConcurrency) || 1);
  if (IN_WORKER || cores < 2 || typeof Worker === "undefined") return pool;
  try {
    pool = Array.from({ length: cores }, () => new Worker(import.meta.url, { type: "module" }));
  } catch {
    pool = false; // a page whose policy forbids workers: draw on the page's thread
  }
  return pool;
}

let jobs = 0;

/** The CPU draw of ``plan`` split into bands of tile rows, shared out to one worker per core. */
function renderCpuParallel(plan, ws) {
  const nty = Math.ceil(plan.height / TILE);
  const band = Math.max(1, Math.ceil(nty / (4 * ws.length))); // 4 bands a worker: the busy parts even out
  const queue = [];
  for (let t = 0; t < nty; t += band) queue.push([t, Math.min(t + band, nty)]);
  const out = new Uint8ClampedArray(plan.width * plan.height * 4);
  const id = ++jobs;
  const lean = { params: plan.params, header: plan.header, width: plan.width, height: plan.height };
  return new Promise((resolve, reject) => {
    let left = queue.length;
    const next = (w) => { if (queue.length) w.postMessage({ id, plan: lean, rows: queue.shift() }); };
    for (const w of ws) {
      w.onmessage = (e) => {
        if (e.data.id !== id) return;
        out.set(e.data.px, e.data.rows[0] * TILE * plan.width * 4);
        if (--left === 0) resolve(out); else next(w);
      };
      w.onerror = (e) => { pool = false; reject(new Error(`lgi.js worker: ${e.message}`)); };
      next(w);
    }
  });
}

/**
 * ``decode`` without blocking the page: the CPU draw runs in one worker per core (the module starts them
 * itself); the parse and the budget run first, on the calling thread, and refuse as ``decode`` does.
 * @returns {Promise<ImageData>}
 */
export async function decodeAsync(buffer, options = {}) {
  const backend = checkBackend(options.backend ?? "auto");
  const plan = { ...prepare(buffer, options), backend };
  // WebGL2 on a GPU, a thumbnail (not worth a worker's message) or an empty file: drawn here.
  const ws = usesWebgl(backend) || plan.width * plan.height < 65536 || !plan.params.n ? false : workers();
  if (!ws) return finish(plan, null);
  try {
    return finish(plan, await renderCpuParallel(plan, ws));
  } catch {
    return finish({ ...plan, backend: "cpu" }, null); // the workers failed: draw here
  }
}

// --- <lgi-img> ------------------------------------------------------------------------------------

const Base = typeof HTMLElement !== "undefined" ? HTMLElement : class {};

/**
 * <lgi-img src="photo.lgi" alt="..." [width] [height]>: sizes like <img> (the attributes, else CSS, else the
 * file's own size), draws at its size x devicePixelRatio, draws again when that changes, and fires ``load``
 * or ``error`` (``event.detail.message``; also ``element.error``).
 */
export class LgiImageElement extends Base {
  static get observedAttributes() { return ["src", "alt", "width", "height"]; }

  constructor() {
    super();
    this.data = null;
    this.header = null;
    this.error = null;
    this.backend = null;
    this.drawn = null; // [w, h] of the last draw
    this._token = 0;
    const root = this.attachShadow({ mode: "open" });
    root.innerHTML = "<style>:host{display:inline-block;overflow:hidden;line-height:0}"
      + "canvas{width:100%;height:100%;display:block}span{line-height:normal}span[hidden]{display:none}</style>"
      + "<canvas part=\"canvas\"></canvas><span part=\"alt\" hidden></span>";
    this.canvas = root.querySelector("canvas");
    this.altText = root.querySelector("span"); // shown instead of the picture when it cannot be drawn, as <img> does
    this._observer = typeof ResizeObserver !== "undefined" ? new ResizeObserver(() => this._resized()) : null;
  }

  connectedCallback() {
    this.setAttribute("role", "img");
    if (this._observer) {
      try { this._observer.observe(this, { box: "device-pixel-content-box" }); } catch { this._observer.observe(this); }
    }
    if (!this.data && this.getAttribute("src")) this._load();
  }

  disconnectedCallback() { if (this._observer) this._observer.disconnect(); }

  attributeChangedCallback(name, old, value) {
    if (name === "alt") this.setAttribute("aria-label", value ?? "");
    else if (name === "src" && old !== value && this.isConnected) this._load();
    else if (name === "width" || name === "height") this._size();
  }

  get src() { return this.getAttribute("src"); }
  set src(v) { this.setAttribute("src", v); }

  async _load() {
    const token = ++this._token;
    this.data = null;
    this.header = null;
    this.error = null;
    this.drawn = null;
    this._drawing = null;
    try {
      const resp = await fetch(this.getAttribute("src"));
      if (!resp.ok) throw new LgiError(`could not fetch ${this.getAttribute("src")}: HTTP ${resp.status}`);
      const data = new Uint8Array(await resp.arrayBuffer());
      if (token !== this._token) return;
      this.data = load(data); // the streams are decoded on the first draw and kept for the later ones
      this.header = this.data.header;
      this._size();
      this._draw();
    } catch (err) {
      if (token === this._token) this._fail(err);
    }
  }

  _fail(err) {
    const message = String(err && err.message ? err.message : err).split("\n")[0];
    this.error = message;
    this.canvas.hidden = true;
    this.altText.hidden = false;
    this.altText.textContent = this.getAttribute("alt") ?? "";
    this.dispatchEvent(new CustomEvent("error", { detail: { message } }));
  }

  _size() { // like <img>: the attributes, else the file's size; CSS on the element wins over both
    if (!this.header) return;
    const w = this.getAttribute("width");
    const h = this.getAttribute("height");
    const ratio = this.header.width / this.header.height;
    this.style.aspectRatio = `${this.header.width} / ${this.header.height}`;
    this.style.width = this.style.width || (w ? `${w}px` : h ? `${Math.round(h * ratio)}px` : `${this.header.width}px`);
    if (h && w) this.style.height = this.style.height || `${h}px`;
  }

  _resized() { // the box or (with device-pixel-content-box) the pixel ratio changed: draw again, once a frame
    if (this._pending) return;
    this._pending = true;
    requestAnimationFrame(() => { this._pending = false; this._draw(); });
  }

  /** The size in device pixels at which the element draws now: its CSS box times devicePixelRatio. */
  targetSize() {
    const dpr = globalThis.devicePixelRatio || 1;
    const r = this.getBoundingClientRect();
    return [Math.max(1, Math.round(r.width * dpr)), Math.max(1, Math.round(r.height * dpr))];
  }

  async _draw() {
    if (!this.data) return;
    const [w, h] = this.targetSize();
    if ((this.drawn && this.drawn[0] === w && this.drawn[1] === h) || (this._drawing && this._drawing[0] === w
      && this._drawing[1] === h)) return;
    const token = this._token;
    this._drawing = [w, h];
    try {
      const img = await decodeAsync(this.data, { width: w, height: h });
      if (token !== this._token || !this._drawing || this._drawing[0] !== w || this._drawing[1] !== h) return; // superseded
      this._drawing = null;
      this.canvas.width = w;
      this.canvas.height = h;
      this.canvas.hidden = false;
      this.altText.hidden = true;
      this.canvas.getContext("2d").putImageData(img, 0, 0);
      this.backend = img.backend;
      const first = this.drawn === null;
      this.drawn = [w, h];
      this.dispatchEvent(new Event(first ? "load" : "render"));
    } catch (err) {
      if (token === this._token) { this._drawing = null; this._fail(err); }
    }
  }
}

if (typeof customElements !== "undefined" && !customElements.get("lgi-img")) {
  customElements.define("lgi-img", LgiImageElement);
}
