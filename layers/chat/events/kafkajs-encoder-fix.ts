// kafkajs 2.2.4 encodes every varint through a fresh array and a `Buffer.from` of it, every varlong (a
// record's timestamp delta) through `Long` objects, starts every encoder (one per record and one per header: six
// per record with our five headers) with a zero-filled 512-byte allocation and grows its buffers with zero-filled
// allocations: per record that is most of the relay's CPU besides the bytes themselves.
// These replacements write the same bytes straight into the encoder's buffer; tests/unit/kafkajs-encoder-fix
// checks them byte for byte against kafkajs's own methods. Remove when kafkajs encodes this way itself.
import Encoder from "kafkajs/src/protocol/encoder.js";

interface EncoderInternals {
  buf: Buffer;
  offset: number;
  ensureAvailable(length: number): void;
  writeUVarInt(value: number): EncoderInternals;
  writeVarInt(value: number): EncoderInternals;
  writeVarLong(value: unknown): EncoderInternals;
}

interface EncoderClass {
  prototype: EncoderInternals;
  nextPowerOfTwo(value: number): number;
  sizeOfVarLong(value: unknown): number;
}

const EncoderClass = Encoder as EncoderClass;
const proto = EncoderClass.prototype;
const nextPowerOfTwo = EncoderClass.nextPowerOfTwo;

/** kafkajs's own methods, for the tests that compare against them. */
export const kafkajsOriginals = {
  ensureAvailable: proto.ensureAvailable,
  writeUVarInt: proto.writeUVarInt,
  writeVarInt: proto.writeVarInt,
  writeVarLong: proto.writeVarLong,
  sizeOfVarLong: EncoderClass.sizeOfVarLong,
  nextPowerOfTwo,
};

// A 64-bit zigzag equals the 32-bit one for values in [-2^30, 2^30): those need no Long.
const smallInt = (v: unknown): v is number =>
  typeof v === "number" && Number.isInteger(v) && v >= -0x40000000 && v < 0x40000000;
const zigZag32 = (v: number) => (v << 1) ^ (v >> 31);

// Only [0, offset) is ever read (kafkajs's `buffer` getter slices to it), so the grown buffer needs no zero fill.
proto.ensureAvailable = function ensureAvailable(this: EncoderInternals, length: number) {
  if (this.offset + length <= this.buf.length) return;
  const grown = Buffer.allocUnsafe(nextPowerOfTwo(this.offset + length));
  this.buf.copy(grown, 0, 0, this.offset);
  this.buf = grown;
};

// kafkajs's constructor is `this.buf = Buffer.alloc(Encoder.nextPowerOfTwo(initialSize = 511))`: 512 unpooled,
// zero-filled bytes (≈ 1.4 µs) for a header of ≈ 50. Nothing in kafkajs passes an initial size, and since
// ensureAvailable above uses its own copy, only the constructor calls nextPowerOfTwo: for the default size an
// encoder now starts empty, and its first write takes a pooled slice (allocUnsafe of under 4 KB) in ensureAvailable.
const DEFAULT_INITIAL_SIZE = 511;
EncoderClass.nextPowerOfTwo = function startEmpty(value: number) {
  return value === DEFAULT_INITIAL_SIZE ? 0 : nextPowerOfTwo(value);
};

// As kafkajs's: the value is taken as an unsigned 32-bit integer, 7 bits per byte, low bits first.
proto.writeUVarInt = function writeUVarInt(this: EncoderInternals, value: number) {
  this.ensureAvailable(5);
  const buf = this.buf;
  let v = value >>> 0;
  let o = this.offset;
  while (v > 0x7f) {
    buf[o++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[o++] = v;
  this.offset = o;
  return this;
};

proto.writeVarInt = function writeVarInt(this: EncoderInternals, value: number) {
  return this.writeUVarInt(zigZag32(value));
};

proto.writeVarLong = function writeVarLong(this: EncoderInternals, value: unknown) {
  return smallInt(value)
    ? this.writeUVarInt(zigZag32(value))
    : kafkajsOriginals.writeVarLong.call(this, value);
};

EncoderClass.sizeOfVarLong = function sizeOfVarLong(value: unknown) {
  if (!smallInt(value)) return kafkajsOriginals.sizeOfVarLong.call(EncoderClass, value);
  let v = zigZag32(value) >>> 0;
  let bytes = 1;
  while (v > 0x7f) {
    bytes++;
    v >>>= 7;
  }
  return bytes;
};
