"""C sources for firmware_stub/: the model's I/O contract as a header, the model as a C array.

`model_io_header` writes `model_io.h`, everything the C frame loop needs to know about one
int8, 16x8 or mixed-precision streaming model: the feature settings, where the features /
mask / every state sit in TFLite Micro's input and output lists, and each tensor's own type
(int8 or int16: a mixed model's differ), scale and zero point. Format 2 (SE_MODEL_IO_FORMAT):
a type per tensor, and the states in one buffer per type; a uniform model's header also keeps
the single-type `se_act_t` of format 1 for code written against it. Scales are written as C99 hexadecimal float literals
(`0x1.0101p-7f`), which denote exactly the float32 the Python runners use
(`np.float32(scale)`): the C quantise / requantise steps then compute bit for bit what
pipeline/interpreters.py computes.

`model_array_source` writes the `.tflite` bytes as a 16-byte aligned `const uint8_t`
array in its own linker section (`.c` and `.h`), the usual way of putting a model in flash.
Both outputs are deterministic: the same inputs give the same text.
"""

from __future__ import annotations

import hashlib
import re
from fractions import Fraction

import numpy as np

from sepipe.config import FeatureConfig
from sepipe.metrics import SAMPLE_RATE
from sepipe.quantize.model_io import ModelIO


def activation_type(io_dtype: str) -> tuple[str, int, int, int]:
    """(C type, bits, QMIN, QMAX) of a scheme's I/O dtype: 'int8' -> ('int8_t', 8, -128, 127)."""
    info = np.iinfo(np.dtype(io_dtype))
    return f"{np.dtype(io_dtype).name}_t", info.bits, int(info.min), int(info.max)


ACTIVATION_TYPES = {name: activation_type(name) for name in ("int8", "int16")}
MODEL_IO_FORMAT = 2   # 2: a type per tensor (SE_<TENSOR>_BITS), states in a buffer per type
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --------------------------------------------------------------------------- float literals

def c_float_hex(value: float) -> str:
    """The float32 nearest `value` as a C99 hex float literal with `f` (e.g. '0x1.010102p-7f'):
    a C compiler reads it back to exactly that float32, with no decimal rounding in between."""
    f = np.float32(value)
    if not np.isfinite(f):
        raise ValueError(f"cannot write a non-finite float ({value}) as a C literal")
    text = float(f).hex()                      # '0x1.0101020000000p-7', '-0x1.8p+1', '0x0.0p+0'
    sign, body = ("-", text[1:]) if text.startswith("-") else ("", text)
    mantissa, exponent = body.split("p")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{sign}{mantissa}p{exponent}f"


def _nearest_float32(exact: Fraction) -> np.float32:
    """Round an exact rational to the nearest float32 (ties to even), as a C compiler does for `1e-07f`."""
    guess = np.float32(float(exact))
    candidates = [np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))]
    def distance(c):
        return abs(Fraction(float(c)) - exact)
    best = min(distance(c) for c in candidates)
    ties = [c for c in candidates if distance(c) == best]
    return ties[0] if len(ties) == 1 else next(c for c in ties if int(c.view(np.int32)) % 2 == 0)


def c_float_decimal(value: float) -> str:
    """`value` as a short decimal C float literal (Python's repr + 'f') when the compiler's direct
    rounding of that decimal gives the same float32 as `np.float32(value)`; else the hex form."""
    text = repr(float(value))
    if _nearest_float32(Fraction(text)) == np.float32(value):
        return text + ("f" if any(ch in text for ch in ".e") else ".0f")
    return c_float_hex(value)


def _c_int(value: int) -> str:
    return f"({value})" if value < 0 else str(value)


def _c_string(text: str) -> str:
    return '"' + "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\?' else f"\\{ord(ch):03o}"
                         for ch in text) + '"'


c_int, c_string = _c_int, _c_string   # for the other C writers (sepipe.c_model_desc)


def _macro_part(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def _comment_safe(text: str) -> str:
    return text.replace("*/", "* /").replace("\n", " ")


# --------------------------------------------------------------------------- model_io.h

def model_io_header(io: ModelIO, features: FeatureConfig, model_name: str, tflite_sha256: str | None = None,
                    sample_rate: int = SAMPLE_RATE) -> str:
    """`model_io.h` of one streaming model (see the module docstring). `tflite_sha256`: the
    sha256 of the .tflite it was made from (recorded in the header; callers with the bytes
    at hand pass hashlib.sha256(data).hexdigest()). `io` must carry its contract (tflite_io gives one):
    SE_FEATURES is the contract's feature input, SE_MASK its primary head; further heads, if any,
    get SE_HEAD_<NAME>_* macros. Every input and output has its own integer type (int8, or int16 for
    16x8): a mixed-precision model's tensors may differ; a uniform model also gets `se_act_t`."""
    if io.contract is None:
        raise ValueError("model_io_header needs the model's contract (read the model with tflite_io)")
    feat, mask = io.feature, io.head
    if not io.integer_io:
        raise ValueError(f"model_io_header needs an int8 or int16 (16x8) model, every input and output an integer "
                         f"type; has { {t.name: t.dtype for t in io.inputs + io.outputs} }")
    bins, mask_values = int(np.prod(feat.shape)), int(np.prod(mask.shape))
    if bins != features.bins or mask_values not in (features.bins, 2 * features.bins):
        raise ValueError(f"model has {bins} feature bins and {mask_values} mask values; the feature config "
                         f"(fft_size {features.fft_size}) has {features.bins} bins (a complex mask: twice as many values)")
    for tensor in io.inputs + io.outputs:
        if not (np.isfinite(tensor.scale) and tensor.scale > 0):
            raise ValueError(f"tensor '{tensor.name}' has scale {tensor.scale}; a quantised tensor needs scale > 0")
    guard = "SE_MODEL_IO_H"
    lines = [
        "/* model_io.h: GENERATED by pipeline/c_export.py (model_io_header); do not edit by hand.",
        f" * Model: {_comment_safe(model_name)}",
        f" * Model sha256: {tflite_sha256 or 'not given'}",
        " * The I/O contract of the streaming model for firmware_stub/: feature settings, each",
        " * tensor's type, its position in TFLite Micro's input/output lists and its quantisation.",
        " * Scales are hex float literals: exactly the float32 Python uses.",
        " */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <stdint.h>",
        "",
        f"#define SE_MODEL_IO_FORMAT {MODEL_IO_FORMAT}",
        f"#define SE_MODEL_NAME {_c_string(model_name)}",
        f"#define SE_MODEL_SHA256 {_c_string(tflite_sha256 or '')}",
        "",
        "/* Features (pipeline/features.py): frames of SE_FFT_SIZE samples every SE_HOP, periodic",
        " * sqrt-Hann window, real FFT, ln(re*re + im*im + SE_LOG_FLOOR) per bin. */",
        f"#define SE_SAMPLE_RATE {int(sample_rate)}",
        f"#define SE_FFT_SIZE {int(features.fft_size)}",
        f"#define SE_HOP {int(features.hop)}",
        f"#define SE_BINS {int(features.bins)}",
        f"#define SE_LOG_FLOOR {c_float_decimal(features.log_floor)}",
        "",
        *_io_type_lines(io.io_type),
        f"#define SE_NUM_INPUTS {len(io.inputs)}",
        f"#define SE_NUM_OUTPUTS {len(io.outputs)}",
        "",
    ]
    extra_heads = [(f"SE_HEAD_{_macro_part(h.name)}", io.output(h.name)) for h in io.contract.heads[1:]]
    if extra_heads:
        lines += [f"#define SE_NUM_HEADS {1 + len(extra_heads)}", ""]
    for macro, tensor in (("SE_FEATURES", feat), ("SE_MASK", mask), *extra_heads):
        lines += _tensor_lines(macro, tensor)
        if macro == "SE_MASK":    # SE_BINS real gains, or 2 x SE_BINS complex ones (sepipe.gain)
            lines.append(f"#define SE_MASK_ELEMENTS {mask_values}")
    lines += _state_lines(io)
    lines += ["", f"#endif /* {guard} */", ""]
    return "\n".join(lines)


def _io_type_lines(io_type: str | None) -> list[str]:
    """SE_IO_DTYPE, and for a model of one I/O type the older single-type macros (se_act_t)."""
    if io_type is None:
        return ["/* I/O: mixed precision, each tensor its own type (SE_<TENSOR>_BITS, se_<tensor>_t) */",
                '#define SE_IO_DTYPE "mixed"', "#define SE_ACT_BITS 0 /* no single activation type */", ""]
    ctype, bits, qmin, qmax = activation_type(io_type)
    return [
        f"/* I/O: {io_type}" + (" (16x8: int16 activations, int8 weights)" if bits == 16 else "")
        + "; every tensor of this one type (each also has its own SE_<TENSOR>_BITS) */",
        f'#define SE_IO_DTYPE "{io_type}"',
        f"#define SE_ACT_BITS {bits}",
        f"typedef {ctype} se_act_t;",
        f"#define SE_ACT_MIN {_c_int(qmin)}",
        f"#define SE_ACT_MAX {_c_int(qmax)}",
        "",
    ]


def _tensor_lines(macro: str, tensor) -> list[str]:
    ctype, bits, qmin, qmax = activation_type(tensor.dtype)
    return [
        f"#define {macro}_NAME {_c_string(tensor.name)}",
        f"#define {macro}_POSITION {tensor.position}",
        f"#define {macro}_BITS {bits}",
        f"typedef {ctype} {macro.lower()}_t;",
        f"#define {macro}_MIN {_c_int(qmin)}",
        f"#define {macro}_MAX {_c_int(qmax)}",
        f"#define {macro}_SCALE {c_float_hex(tensor.scale)} /* {np.float32(tensor.scale):.9g} */",
        f"#define {macro}_ZERO_POINT {_c_int(tensor.zero_point)}",
    ]


_PAIR_STRUCT = [
    "#ifndef SE_STATE_PAIR_T_DEFINED",
    "#define SE_STATE_PAIR_T_DEFINED",
    "typedef struct {",
    "    const char *input_name;",
    "    const char *output_name;",
    "    uint16_t input_position;",
    "    uint16_t output_position;",
    "    uint16_t size;            /* values */",
    "    uint8_t input_bits;       /* 8: int8_t, 16: int16_t */",
    "    uint8_t output_bits;",
    "    uint16_t input_offset;    /* where it starts in the state buffer of its input type */",
    "    uint16_t output_offset;   /* where it starts in the state buffer of its output type */",
    "    float input_scale;",
    "    int32_t input_zero_point;",
    "    float output_scale;",
    "    int32_t output_zero_point;",
    "    uint8_t same_quantization;",
    "} se_state_pair_t;",
    "#endif",
]


def state_table(io: ModelIO) -> tuple[list[dict], dict[tuple[str, int], int]]:
    """Each state pair as a se_state_pair_t's fields (each state in the buffer of its type, in table order),
    and the elements of each (direction, bits) buffer. Shared by model_io.h and the model descriptor."""
    used = {("in", 8): 0, ("in", 16): 0, ("out", 8): 0, ("out", 16): 0}
    rows = []
    for pair in io.state_pairs:
        inp, out = io.input(pair.input), io.output(pair.output)
        size = int(np.prod(inp.shape))
        if size != int(np.prod(out.shape)):
            raise ValueError(f"state '{inp.name}' has {size} values in and {int(np.prod(out.shape))} out")
        bits_in, bits_out = activation_type(inp.dtype)[1], activation_type(out.dtype)[1]
        rows.append({"inp": inp, "out": out, "size": size, "bits_in": bits_in, "bits_out": bits_out,
                     "offset_in": used["in", bits_in], "offset_out": used["out", bits_out],
                     "same": pair.same_quantization and bits_in == bits_out})   # what the Python runners decide
        used["in", bits_in] += size
        used["out", bits_out] += size
    return rows, used


def state_pair_initialiser(row: dict) -> str:
    """One se_state_pair_t initialiser (with its comment) of a state_table row."""
    inp, out = row["inp"], row["out"]
    return (f"    {{{_c_string(inp.name)}, {_c_string(out.name)}, {inp.position}, {out.position}, {row['size']}, "
            f"{row['bits_in']}, {row['bits_out']}, {row['offset_in']}, {row['offset_out']}, "
            f"{c_float_hex(inp.scale)}, {_c_int(inp.zero_point)}, {c_float_hex(out.scale)}, {_c_int(out.zero_point)}, "
            f"{int(row['same'])}}},  /* in {np.float32(inp.scale):.9g}, out {np.float32(out.scale):.9g} */")


def _state_lines(io: ModelIO) -> list[str]:
    """The state pairs: each state lives in the buffer of its type (int8 or int16), in table order."""
    table, used = state_table(io)
    rows = [state_pair_initialiser(row) for row in table]
    total = sum(row["size"] for row in table)
    requant8 = sum(1 for row in table if not row["same"] and row["bits_in"] == row["bits_out"] == 8)
    if not rows:
        rows.append('    {"", "", 0, 0, 0, 8, 8, 0, 0, 1.0f, 0, 1.0f, 0, 1},  /* placeholder: no states */')
    return [
        "",
        "/* Recurrent states: output `output_position` is fed back to input `input_position` before",
        " * the next frame; copied when same_quantization, else requantised (se_quant.h). Each state",
        " * lives in the buffer of its type: int8 states at `*_offset` in the int8 buffers",
        " * (SE_STATE_IN8_ELEMENTS values in, SE_STATE_OUT8_ELEMENTS out), int16 states in the int16 ones.",
        " * SE_STATE_REQUANT8: pairs requantised from int8 to int8 (they get 256-entry tables). */",
        f"#define SE_NUM_STATES {len(table)}",
        f"#define SE_STATE_ELEMENTS {total}",
        f"#define SE_STATE_IN8_ELEMENTS {used['in', 8]}",
        f"#define SE_STATE_IN16_ELEMENTS {used['in', 16]}",
        f"#define SE_STATE_OUT8_ELEMENTS {used['out', 8]}",
        f"#define SE_STATE_OUT16_ELEMENTS {used['out', 16]}",
        f"#define SE_STATE_REQUANT8 {requant8}",
        "#define SE_STATE_TABLE_LEN (SE_NUM_STATES > 0 ? SE_NUM_STATES : 1)",
        "",
        *_PAIR_STRUCT,
        "",
        "static const se_state_pair_t se_state_pairs[SE_STATE_TABLE_LEN] = {",
        *rows,
        "};",
    ]


# --------------------------------------------------------------------------- the model as a C array

def model_array_source(tflite_bytes: bytes, symbol: str = "se_model", section: str = "nn_model",
                       stem: str | None = None) -> tuple[str, str]:
    """(`<stem>.c`, `<stem>.h`) holding the model bytes (stem defaults to the symbol):
    `const uint8_t <symbol>[] __attribute__((aligned(16), section("<section>")))` and
    `const unsigned int <symbol>_len`. 16-byte alignment is what TFLite Micro and the Ethos-U
    driver need for the flatbuffer and Vela's command stream / weights; the section lets the
    linker script place the model (e.g. in flash or a memory the NPU can read)."""
    if not _IDENTIFIER.match(symbol):
        raise ValueError(f"symbol {symbol!r} is not a C identifier")
    if not section or any(ch in section for ch in '"\\\n'):
        raise ValueError(f"section {section!r} cannot be written in a section attribute")
    data = bytes(tflite_bytes)
    if not data:
        raise ValueError("no model bytes")
    stem = stem or symbol
    if not _IDENTIFIER.match(stem):
        raise ValueError(f"file stem {stem!r} is not a C identifier")
    digest = hashlib.sha256(data).hexdigest()
    guard = f"{stem.upper()}_H"
    header = "\n".join([
        f"/* {stem}.h: GENERATED by pipeline/c_export.py (model_array_source); do not edit by hand.",
        f" * {len(data)} bytes, sha256 {digest}.",
        f" * `{symbol}` is aligned to 16 bytes and placed in the linker section \"{section}\":",
        " * map that section where TFLite Micro and the Ethos-U NPU can read it. */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <stdint.h>",
        "",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
        f"#define {symbol.upper()}_SHA256 \"{digest}\"",
        f"extern const uint8_t {symbol}[];",
        f"extern const unsigned int {symbol}_len;",
        "",
        "#ifdef __cplusplus",
        "}",
        "#endif",
        "",
        f"#endif /* {guard} */",
        "",
    ])
    rows = [", ".join(f"0x{b:02x}" for b in data[i:i + 12]) for i in range(0, len(data), 12)]
    source = "\n".join([
        f"/* {stem}.c: GENERATED by pipeline/c_export.py (model_array_source); do not edit by hand.",
        f" * {len(data)} bytes, sha256 {digest}. */",
        f"#include \"{stem}.h\"",
        "",
        f"const uint8_t {symbol}[] __attribute__((aligned(16), section(\"{section}\"))) = {{",
        *(f"    {row}," for row in rows),
        "};",
        f"const unsigned int {symbol}_len = {len(data)}u;",
        "",
    ])
    return source, header
