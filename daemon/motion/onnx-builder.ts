/**
 * A small ONNX graph builder: nodes with attributes, float/int64 initializers and typed graph
 * inputs/outputs, serialised to ModelProto bytes with protobufjs' Writer (the same approach as
 * the influence kernel's MatMul graph). Field numbers follow onnx/onnx.proto.
 */
import protobuf from 'protobufjs';

const { Writer } = protobuf;
type ProtoWriter = protobuf.Writer;

const ONNX_IR_VERSION = 8;
const TENSOR_FLOAT = 1;
const TENSOR_INT64 = 7;
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_INTS = 7;

/** A dimension: a fixed size or a symbolic name (dynamic). */
export type Dim = number | string;

/** An attribute value: a number is an INT, `{ float }` a FLOAT, an array INTS. */
export type AttrValue = number | string | readonly number[] | { readonly float: number };

function len(w: ProtoWriter, field: number): ProtoWriter {
  return w.uint32((field << 3) | 2);
}

function varint(w: ProtoWriter, field: number): ProtoWriter {
  return w.uint32((field << 3) | 0);
}

function attribute(name: string, value: AttrValue): Uint8Array {
  const w = Writer.create();
  len(w, 1).string(name);
  if (typeof value === 'number') {
    varint(w, 3).int64(value);
    varint(w, 20).int32(ATTR_INT);
  } else if (typeof value === 'string') {
    len(w, 4).bytes(Buffer.from(value, 'utf8'));
    varint(w, 20).int32(ATTR_STRING);
  } else if ('float' in value) {
    w.uint32((2 << 3) | 5).float(value.float);
    varint(w, 20).int32(ATTR_FLOAT);
  } else {
    for (const v of value) varint(w, 8).int64(v);
    varint(w, 20).int32(ATTR_INTS);
  }
  return w.finish();
}

function valueInfo(name: string, elemType: number, dims: readonly Dim[]): Uint8Array {
  const shape = Writer.create();
  for (const d of dims) {
    const dw = Writer.create();
    if (typeof d === 'number') varint(dw, 1).int64(d);
    else len(dw, 2).string(d);
    len(shape, 1).bytes(dw.finish());
  }
  const tensor = Writer.create();
  varint(tensor, 1).int32(elemType);
  len(tensor, 2).bytes(shape.finish());
  const type = Writer.create();
  len(type, 1).bytes(tensor.finish());
  const w = Writer.create();
  len(w, 1).string(name);
  len(w, 2).bytes(type.finish());
  return w.finish();
}

/**
 * Accumulates a graph. Each `op` call returns its (first) output's name, generated unless given,
 * so graphs read like expressions: `g.op('Add', [a, b])`.
 */
export class GraphBuilder {
  private readonly nodes: Uint8Array[] = [];
  private readonly initializers: Uint8Array[] = [];
  private readonly inputs: Uint8Array[] = [];
  private readonly outputs: Uint8Array[] = [];
  private counter = 0;

  /** A fresh, unique value name with a readable prefix. */
  fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  input(name: string, dims: readonly Dim[]): string {
    this.inputs.push(valueInfo(name, TENSOR_FLOAT, dims));
    return name;
  }

  output(name: string, dims: readonly Dim[]): void {
    this.outputs.push(valueInfo(name, TENSOR_FLOAT, dims));
  }

  /** A float32 constant tensor (an initializer). */
  floats(values: readonly number[], dims: readonly number[], prefix = 'c'): string {
    const name = this.fresh(prefix);
    const w = Writer.create();
    for (const d of dims) varint(w, 1).int64(d);
    varint(w, 2).int32(TENSOR_FLOAT);
    len(w, 8).string(name);
    const raw = Buffer.alloc(values.length * 4);
    values.forEach((v, i) => raw.writeFloatLE(v, i * 4));
    len(w, 9).bytes(raw);
    this.initializers.push(w.finish());
    return name;
  }

  /** An int64 constant tensor (shapes, axes, pads). */
  ints(values: readonly number[], dims: readonly number[] = [values.length], prefix = 'i'): string {
    const name = this.fresh(prefix);
    const w = Writer.create();
    for (const d of dims) varint(w, 1).int64(d);
    varint(w, 2).int32(TENSOR_INT64);
    len(w, 8).string(name);
    const raw = Buffer.alloc(values.length * 8);
    values.forEach((v, i) => raw.writeBigInt64LE(BigInt(v), i * 8));
    len(w, 9).bytes(raw);
    this.initializers.push(w.finish());
    return name;
  }

  /** Adds a node and returns its first output name. */
  op(opType: string, inputs: readonly string[], attrs: Readonly<Record<string, AttrValue>> = {}, outputs?: readonly string[]): string {
    const outs = outputs ?? [this.fresh(opType.toLowerCase())];
    const w = Writer.create();
    for (const i of inputs) len(w, 1).string(i);
    for (const o of outs) len(w, 2).string(o);
    len(w, 3).string(this.fresh(`n_${opType}`));
    len(w, 4).string(opType);
    for (const [k, v] of Object.entries(attrs)) len(w, 5).bytes(attribute(k, v));
    this.nodes.push(w.finish());
    return outs[0] as string;
  }

  /** Serialises the model: one graph, the default opset at `opset`. */
  model(graphName: string, opset: number, docString: string): Uint8Array {
    const graph = Writer.create();
    for (const n of this.nodes) len(graph, 1).bytes(n);
    len(graph, 2).string(graphName);
    for (const t of this.initializers) len(graph, 5).bytes(t);
    len(graph, 10).string(docString);
    for (const i of this.inputs) len(graph, 11).bytes(i);
    for (const o of this.outputs) len(graph, 12).bytes(o);
    const opsetW = Writer.create();
    len(opsetW, 1).string('');
    varint(opsetW, 2).int64(opset);
    const model = Writer.create();
    varint(model, 1).int64(ONNX_IR_VERSION);
    len(model, 2).string('motive');
    len(model, 7).bytes(graph.finish());
    len(model, 8).bytes(opsetW.finish());
    return model.finish();
  }
}
