"""The tensor arena per kernel set (reference; CMSIS-NN) for a 32-bit Cortex-M, derived from the model's layers.

No 32-bit TFLite Micro runs here (no TFLM source; the Python interpreter is a 64-bit host build with the
reference kernels), so the figures are derived from that measurement and the model's own layers:

    reference (32-bit)  = host_min
    cmsis_nn  (32-bit)  = host_min + sum over FULLY_CONNECTED layers of
                          align16(4 * out_channels)   int8 input, int8 filter: the int32 kernel-sum buffer
                                                      (persistent; a scratch buffer if the filter is not constant)
                          + 32                        CMSIS-NN's larger per-node OpData
    recommended         = figure * (1 + ARENA_HEADROOM), rounded up to a whole KiB (the bundle's rule)

Why each term (tensorflow/lite/micro/kernels/cmsis_nn/fully_connected.cc, CMSIS-NN's
arm_fully_connected_get_buffer_sizes_*.c):
- 4-byte pointers: every TFLM struct that holds pointers (eval tensors, nodes, allocations) is smaller on a 32-bit
  target and persistent buffers are 16-byte aligned on both, so the 64-bit host minimum only overstates the 32-bit
  one; it is kept as an upper bound (nothing subtracted). The CMSIS-NN terms are counted at 32-bit sizes.
- Kernel sums: with Helium (ARM_MATH_MVEI, the M55) arm_fully_connected_s8_get_buffer_size is out_channels * 4
  bytes; TFLM's Prepare allocates it persistently (AllocatePersistentBuffer, 16-byte aligned) and fills it with
  the filter's column sums. int16 (16x8) FC: arm_fully_connected_s16_get_buffer_size is 0.
- OpData: CMSIS-NN's FC OpData adds 7 four-byte fields to the reference one (per-channel multiplier and shift
  pointers, buffer index, kernel-sum pointer, batches, accum depth, output depth): 28 bytes, 32 once aligned.
- ADD and MUL have CMSIS-NN kernels that share the reference OpData, Init and Prepare (no buffers); the other ops
  these models use have no CMSIS-NN kernel (the reference one is built). Ops with CMSIS-NN buffers this rule
  does not model (below) leave the CMSIS-NN figure underived rather than guessed.
Checked on the demo model (issue 15, measured outside this repository on the M55): the CMSIS-NN terms come to
8,976 bytes, exactly the difference of the two measured minimums (33,520 - 24,544).
"""

from __future__ import annotations

import math
from typing import Any

from sepipe.bundle.model_ops import ModelOps

ALIGN = 16                 # MicroArenaBufferAlignment(): persistent buffers start on 16 bytes
FC_OPDATA_EXTRA = 32       # 7 x 4 bytes of CMSIS-NN's FC OpData beyond the reference one, aligned to 16
# ops whose CMSIS-NN kernel asks for buffers (convolution scratch, LSTM/SVDF sums, softmax LUTs, ...) that the
# rule above does not model
UNMODELLED_CMSIS_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "SVDF", "UNIDIRECTIONAL_SEQUENCE_LSTM",
                        "BATCH_MATMUL", "SOFTMAX", "AVERAGE_POOL_2D", "MAX_POOL_2D", "PAD", "MAXIMUM", "MINIMUM",
                        "TRANSPOSE")
RULE = ("reference (32-bit) = the 64-bit host minimum (an upper bound: 4-byte pointers only shrink TFLM's structs; "
        "nothing subtracted); CMSIS-NN (32-bit, Helium) = that + per FULLY_CONNECTED layer align16(4 * out_channels) "
        "for an int8 layer (the persistent int32 kernel-sum buffer; 0 for int16/16x8) + 32 bytes (CMSIS-NN's larger "
        "OpData); recommended = figure * 1.10 rounded up to a whole KiB")


def align(n: int, to: int = ALIGN) -> int:
    return -(-n // to) * to


def recommend(n: int, headroom: float, round_to: int) -> int:
    return int(math.ceil(n * (1 + headroom) / round_to) * round_to)


def fc_cmsis_bytes(fc) -> int:
    """CMSIS-NN's extra arena bytes for one FULLY_CONNECTED layer on a 32-bit Cortex-M with Helium."""
    sums = align(4 * fc.out_channels) if fc.input_type == "int8" and fc.filter_type == "int8" else 0
    return sums + FC_OPDATA_EXTRA


def kernel_set_arenas(host_min: int, ops: ModelOps, headroom: float, round_to: int) -> dict[str, Any]:
    """The manifest's per-kernel-set arena figures for a 32-bit target (see the module docstring)."""
    layers = [{"output": fc.output, "types": f"{fc.input_type}x{fc.filter_type}", "out_channels": fc.out_channels,
               "bytes": fc_cmsis_bytes(fc)} for fc in ops.fully_connected]
    reference = {"bytes": host_min, "recommended_bytes": recommend(host_min, headroom, round_to), "derived": True,
                 "how": "the 64-bit host minimum, kept as an upper bound for 4-byte pointers"}
    unmodelled = [op for op in ops.op_types if op in UNMODELLED_CMSIS_OPS]
    if unmodelled:
        cmsis = {"bytes": None, "recommended_bytes": None, "derived": False,
                 "why_not": (f"op types {unmodelled} have CMSIS-NN kernels with buffers this rule does not model; "
                             "measure MicroInterpreter::arena_used_bytes() on the device")}
    else:
        extra = sum(layer["bytes"] for layer in layers)
        cmsis = {"bytes": host_min + extra, "recommended_bytes": recommend(host_min + extra, headroom, round_to),
                 "derived": True, "cmsis_nn_extra_bytes": extra, "fully_connected": layers,
                 "how": "reference + per FULLY_CONNECTED layer: kernel sums align16(4 * out_channels) (int8) + 32"}
    return {"target": "32-bit Cortex-M (Cortex-M55 with Helium for CMSIS-NN)", "rule": RULE,
            "reference": reference, "cmsis_nn": cmsis,
            "use": ("size the arena with the figure of the kernels your firmware links (Cortex-M builds use CMSIS-NN "
                    "by default: OPTIMIZED_KERNEL_DIR=cmsis_nn); an arena too small for CMSIS-NN can corrupt memory "
                    "instead of failing AllocateTensors")}
