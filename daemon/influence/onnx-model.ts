/**
 * Builds small ONNX models in code (serialised ModelProto bytes), so the compute kernels need
 * no model files. Field numbers follow onnx/onnx.proto.
 */
import protobuf from 'protobufjs';

const { Writer } = protobuf;

const ONNX_IR_VERSION = 8;
const ONNX_OPSET = 13;
const TENSOR_FLOAT = 1;
const TENSOR_INT8 = 3;

/** A dimension: a fixed size or a symbolic name (dynamic). */
type Dim = number | string;

function dimension(d: Dim): Uint8Array {
  const w = Writer.create();
  if (typeof d === 'number') w.uint32((1 << 3) | 0).int64(d);
  else w.uint32((2 << 3) | 2).string(d);
  return w.finish();
}

function valueInfo(name: string, dims: readonly Dim[], elemType = TENSOR_FLOAT): Uint8Array {
  const shape = Writer.create();
  for (const d of dims) shape.uint32((1 << 3) | 2).bytes(dimension(d));
  const tensor = Writer.create()
    .uint32((1 << 3) | 0)
    .int32(elemType)
    .uint32((2 << 3) | 2)
    .bytes(shape.finish())
    .finish();
  const type = Writer.create()
    .uint32((1 << 3) | 2)
    .bytes(tensor)
    .finish();
  return Writer.create()
    .uint32((1 << 3) | 2)
    .string(name)
    .uint32((2 << 3) | 2)
    .bytes(type)
    .finish();
}

/** An INT attribute (AttributeProto: name = 1, i = 3, type = 20 with INT = 2). */
function intAttribute(name: string, value: number): Uint8Array {
  return Writer.create()
    .uint32((1 << 3) | 2)
    .string(name)
    .uint32((3 << 3) | 0)
    .int64(value)
    .uint32((20 << 3) | 0)
    .int32(2)
    .finish();
}

function node(
  opType: string,
  inputs: readonly string[],
  outputs: readonly string[],
  name: string,
  attributes: readonly Uint8Array[] = [],
): Uint8Array {
  const w = Writer.create();
  for (const i of inputs) w.uint32((1 << 3) | 2).string(i);
  for (const o of outputs) w.uint32((2 << 3) | 2).string(o);
  w.uint32((3 << 3) | 2).string(name);
  w.uint32((4 << 3) | 2).string(opType);
  for (const a of attributes) w.uint32((5 << 3) | 2).bytes(a);
  return w.finish();
}

function model(graphName: string, nodes: readonly Uint8Array[], inputs: readonly Uint8Array[], outputs: readonly Uint8Array[]): Uint8Array {
  const graph = Writer.create();
  for (const n of nodes) graph.uint32((1 << 3) | 2).bytes(n);
  graph.uint32((2 << 3) | 2).string(graphName);
  for (const i of inputs) graph.uint32((11 << 3) | 2).bytes(i);
  for (const o of outputs) graph.uint32((12 << 3) | 2).bytes(o);
  const opset = Writer.create()
    .uint32((1 << 3) | 2)
    .string('')
    .uint32((2 << 3) | 0)
    .int64(ONNX_OPSET)
    .finish();
  const m = Writer.create();
  m.uint32((1 << 3) | 0).int64(ONNX_IR_VERSION);
  m.uint32((2 << 3) | 2).string('motive');
  m.uint32((7 << 3) | 2).bytes(graph.finish());
  m.uint32((8 << 3) | 2).bytes(opset);
  return m.finish();
}

/**
 * `C[n×m] = float(A8[n×k]) · B[k×m]`: int8 rows (a quantised embedding mirror) times float32
 * queries. The caller applies each row's scale to C.
 */
export function int8MatMulModel(): Uint8Array {
  return model(
    'motive_int8_matmul',
    [node('Cast', ['A8'], ['A'], 'dequant', [intAttribute('to', TENSOR_FLOAT)]), node('MatMul', ['A', 'B'], ['C'], 'matmul')],
    [valueInfo('A8', ['n', 'k'], TENSOR_INT8), valueInfo('B', ['k', 'm'])],
    [valueInfo('C', ['n', 'm'])],
  );
}

/** `C[n×m] = A[n×k] · B[k×m]`, float32, every dimension dynamic. */
export function matMulModel(): Uint8Array {
  return model(
    'motive_matmul',
    [node('MatMul', ['A', 'B'], ['C'], 'matmul')],
    [valueInfo('A', ['n', 'k']), valueInfo('B', ['k', 'm'])],
    [valueInfo('C', ['n', 'm'])],
  );
}
