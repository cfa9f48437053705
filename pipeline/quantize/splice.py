"""One mixed-precision flatbuffer from conversions of the same model at each precision.

The TFLite converter has no per-op precision (mixed int8/16x8 post-training quantization is not
supported; its selective quantization only leaves ops in float: tensorflow/tensorflow#61720). But
the int8, 16x8 and float conversions of one Keras model have the SAME operators in the same order
(same op codes, same activation tensors), only other types and scales. So the mixed model is the
int8 graph with each operator taken from the conversion of its declared precision (its weights,
bias and constants too), and a QUANTIZE (int<->int requantisation, or float->int) or DEQUANTIZE
(int->float) operator wherever a value crosses from one precision to another. Every version of a
value keeps the scale its own conversion calibrated, so a region computes exactly what the uniform
model of its precision computes from the same inputs.

Graph inputs and outputs take the precision of their consumer / producer: a state input takes its
layer's (the state output feeding it back has the same type, so firmware copies it back as before).

Runs where TensorFlow is imported (the conversion worker); `splice(models, precisions)` takes the
flatbuffers by precision name and one precision per operator of the int8 graph.
"""

from __future__ import annotations

import copy

import numpy as np

FLOAT = "float"


def _schema():
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    return schema, flatbuffer_utils


class SpliceError(ValueError):
    pass


def op_code(model, op) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(int(code.builtinCode), int(code.deprecatedBuiltinCode))


def operator_names(tflite_bytes: bytes) -> list[tuple[str, list[str], list[str]]]:
    """(op code name, input tensor names, output tensor names) of each operator of the first subgraph,
    constants left out of the inputs: what precision resolution reads layer names from."""
    schema, fu = _schema()
    model = fu.convert_bytearray_to_object(bytearray(tflite_bytes))
    graph, names = model.subgraphs[0], {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    rows = []
    for op in graph.operators:
        ins = [_name(graph.tensors[i]) for i in op.inputs if i >= 0 and not _is_const(model, graph.tensors[i])]
        rows.append((names.get(op_code(model, op), "?"), ins, [_name(graph.tensors[i]) for i in op.outputs]))
    return rows


def signature_tensor_names(tflite_bytes: bytes) -> dict[str, str]:
    """Signature (Keras) name -> tensor name of every input and output (`StatefulPartitionedCall:k`...)."""
    _, fu = _schema()
    model = fu.convert_bytearray_to_object(bytearray(tflite_bytes))
    graph = model.subgraphs[0]
    return {_name(t): _name(graph.tensors[t.tensorIndex]) for sig in model.signatureDefs or []
            for t in list(sig.inputs) + list(sig.outputs)}


def _name(tensor) -> str:
    return tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)


def _is_const(model, tensor) -> bool:
    buffer = model.buffers[tensor.buffer] if 0 <= tensor.buffer < len(model.buffers) else None
    return buffer is not None and buffer.data is not None and len(buffer.data) > 0


def splice(models: dict[str, bytes], precisions: list[str], base: str = "int8") -> bytes:
    """The mixed flatbuffer: operator i from `models[precisions[i]]`, the others' values requantised at
    each boundary. SpliceError when the conversions do not have the same operators."""
    schema, fu = _schema()
    objs = {p: fu.convert_bytearray_to_object(bytearray(b)) for p, b in models.items()}
    out = fu.convert_bytearray_to_object(bytearray(models[base]))   # edited; objs[base] stays the source
    graph = out.subgraphs[0]
    if len(precisions) != len(graph.operators):
        raise SpliceError(f"{len(precisions)} precisions for {len(graph.operators)} operators")
    value_maps = {p: _value_map(out, m) for p, m in objs.items()}          # base activation -> index in p
    for p in set(precisions) - set(objs):
        raise SpliceError(f"no conversion at precision '{p}'")
    wanted = _consumer_precision(out, precisions)
    # the precision each value's original tensor holds: its producer's; a graph input its first consumer's;
    # never float at the graph's inputs and outputs (firmware feeds and reads integers: a float region
    # is entered and left through DEQUANTIZE / QUANTIZE inside the graph)
    holder = _produced_precision(out, precisions)
    for index in graph.inputs:
        holder[index] = (wanted.get(index) or [base])[0]
    for index in list(graph.inputs) + list(graph.outputs):
        if holder.get(index) == FLOAT:
            holder[index] = base
    versions: dict[tuple[int, str], int] = {}       # (base value, precision) -> tensor index in out

    def version(value: int, precision: str) -> int:
        if holder.get(value, base) == precision:
            return value
        key = (value, precision)
        if key not in versions:
            versions[key] = _add_tensor(out, objs[precision], value_maps[precision][value], suffix=f"/{precision}")
        return versions[key]

    for value, precision in holder.items():
        if precision != base:
            src = objs[precision].subgraphs[0].tensors[value_maps[precision][value]]
            graph.tensors[value] = _tensor_copy(src, graph.tensors[value].buffer)

    def conversions(value: int, source: str) -> list:
        """Operators making every other version of `value` that is read (or held) from its `source` one."""
        targets = dict.fromkeys([holder.get(value, source), *wanted.get(value, [])])
        return [_convert_op(schema, out, version(value, source), version(value, p), source, p)
                for p in targets if p != source]

    new_ops = [op for index in graph.inputs for op in conversions(index, holder[index])]
    for i, op in enumerate(graph.operators):
        precision = precisions[i]
        if precision != base:
            op = _import_op(out, objs[precision], objs[precision].subgraphs[0].operators[i], value_maps[precision])
        else:
            op = copy.copy(op)
        values = list(op.outputs)
        op.inputs = [version(x, precision) if x >= 0 and _activation(out, graph, x) else x for x in op.inputs]
        op.outputs = [version(x, precision) for x in values]
        new_ops.append(op)
        for x in values:
            new_ops.extend(conversions(x, precision))
    graph.operators = new_ops
    _compact(out)
    return bytes(fu.convert_object_to_bytearray(out))


def _activation(model, graph, index: int) -> bool:
    return not _is_const(model, graph.tensors[index])


def _value_map(base, other) -> dict[int, int]:
    """Base activation tensor index -> the same value's index in `other` (graph inputs by signature name,
    operator outputs by position); SpliceError when the operators differ."""
    g, h = base.subgraphs[0], other.subgraphs[0]
    if len(g.operators) != len(h.operators):
        raise SpliceError(f"the conversions have {len(g.operators)} and {len(h.operators)} operators")
    mapping = {}
    for sig_b, sig_o in zip(base.signatureDefs, other.signatureDefs):
        by_name = {_name(t): t.tensorIndex for t in sig_o.inputs + sig_o.outputs}
        for t in sig_b.inputs + sig_b.outputs:
            mapping[t.tensorIndex] = by_name[_name(t)]
    for i, (a, b) in enumerate(zip(g.operators, h.operators)):
        if op_code(base, a) != op_code(other, b) or len(a.outputs) != len(b.outputs):
            raise SpliceError(f"operator {i} differs between the conversions ({op_code(base, a)} / {op_code(other, b)})")
        for x, y in zip(a.outputs, b.outputs):
            mapping[x] = y
        for x, y in zip(a.inputs, b.inputs):     # activations read by the op (graph inputs, earlier outputs)
            if x >= 0 and not _is_const(base, g.tensors[x]):
                mapping.setdefault(x, y)
    return mapping


def _produced_precision(model, precisions) -> dict[int, str]:
    graph = model.subgraphs[0]
    return {x: precisions[i] for i, op in enumerate(graph.operators) for x in op.outputs}


def _consumer_precision(model, precisions) -> dict[int, list[str]]:
    graph, wanted = model.subgraphs[0], {}
    for i, op in enumerate(graph.operators):
        for x in op.inputs:
            if x >= 0 and not _is_const(model, graph.tensors[x]):
                wanted.setdefault(x, []).append(precisions[i])
    return wanted


def _tensor_copy(src, buffer: int):
    tensor = copy.deepcopy(src)
    tensor.buffer = buffer
    return tensor


def _add_buffer(out, src_model, buffer_index: int) -> int:
    buffer = copy.deepcopy(src_model.buffers[buffer_index]) if buffer_index > 0 else None
    if buffer is None or buffer.data is None or len(buffer.data) == 0:
        return 0            # buffer 0: the empty buffer every activation points at
    out.buffers.append(buffer)
    return len(out.buffers) - 1


def _add_tensor(out, src_model, src_index: int, suffix: str = "") -> int:
    src = src_model.subgraphs[0].tensors[src_index]
    tensor = _tensor_copy(src, _add_buffer(out, src_model, src.buffer))
    tensor.name = (_name(src) + suffix).encode()
    out.subgraphs[0].tensors.append(tensor)
    return len(out.subgraphs[0].tensors) - 1


def _opcode_index(out, code: int, version: int) -> int:
    for i, oc in enumerate(out.operatorCodes):
        if max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode)) == code:
            oc.version = max(int(oc.version), int(version))
            return i
    schema, _ = _schema()
    oc = schema.OperatorCodeT()
    oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), version
    out.operatorCodes.append(oc)
    return len(out.operatorCodes) - 1


def _import_op(out, src_model, src_op, value_map: dict[int, int]):
    """`src_op` of another conversion with its constants copied in; its activations are renumbered to
    the base graph's values (the caller then picks each value's version)."""
    back = {v: k for k, v in value_map.items()}
    op = copy.deepcopy(src_op)
    src_graph = src_model.subgraphs[0]
    op.opcodeIndex = _opcode_index(out, op_code(src_model, src_op), src_model.operatorCodes[src_op.opcodeIndex].version)
    op.inputs = [-1 if x < 0 else back[x] if not _is_const(src_model, src_graph.tensors[x])
                 else _add_tensor(out, src_model, x) for x in src_op.inputs]
    op.outputs = [back[x] for x in src_op.outputs]
    return op


def _convert_op(schema, out, src: int, dst: int, src_precision: str, dst_precision: str):
    """QUANTIZE (int->int requantisation, float->int) or DEQUANTIZE (int->float) from `src` to `dst`."""
    op = schema.OperatorT()
    if dst_precision == FLOAT:
        op.opcodeIndex = _opcode_index(out, schema.BuiltinOperator.DEQUANTIZE, 4)
    else:
        op.opcodeIndex = _opcode_index(out, schema.BuiltinOperator.QUANTIZE, 3)
        op.builtinOptionsType = schema.BuiltinOptions.QuantizeOptions
        op.builtinOptions = schema.QuantizeOptionsT()
    op.inputs, op.outputs = [src], [dst]
    return op


def _compact(out) -> None:
    """Drop tensors no operator or signature uses and buffers no tensor uses (the base conversion's
    constants of operators taken from another), renumbering every reference."""
    graph = out.subgraphs[0]
    used = {x for op in graph.operators for x in list(op.inputs) + list(op.outputs) if x >= 0}
    used |= set(graph.inputs) | set(graph.outputs)
    keep = sorted(used)
    remap = {old: new for new, old in enumerate(keep)}
    graph.tensors = [graph.tensors[i] for i in keep]
    for op in graph.operators:
        op.inputs = [remap[x] if x >= 0 else x for x in op.inputs]
        op.outputs = [remap[x] for x in op.outputs]
    graph.inputs = np.array([remap[x] for x in graph.inputs], dtype=np.int32)
    graph.outputs = np.array([remap[x] for x in graph.outputs], dtype=np.int32)
    for sig in out.signatureDefs or []:
        for t in list(sig.inputs) + list(sig.outputs):
            t.tensorIndex = remap[t.tensorIndex]
    used_buffers = {0} | {t.buffer for t in graph.tensors} | {m.buffer for m in (out.metadata or [])}
    buffer_keep = sorted(b for b in used_buffers if b < len(out.buffers))
    buffer_remap = {old: new for new, old in enumerate(buffer_keep)}
    out.buffers = [out.buffers[i] for i in buffer_keep]
    for tensor in graph.tensors:
        tensor.buffer = buffer_remap[tensor.buffer]
    for meta in out.metadata or []:
        meta.buffer = buffer_remap[meta.buffer]
    out.metadataBuffer = [buffer_remap[b] for b in (out.metadataBuffer or []) if b in buffer_remap]
