"""README.md of a bundle: the manifest told for the firmware engineer."""

from __future__ import annotations

from typing import Any

from sepipe.bundle.layout import REQUANTIZE_FORMULA


def readme_text(m: dict[str, Any]) -> str:
    lines = [*_intro(m), *_files(m), *_per_hop(m), *_tensor_arena(m), *_vela_figures(m), *_golden(m)]
    return "\n".join(lines)


def _intro(m: dict[str, Any]) -> list[str]:
    src, fig, dtype = m["source"], m["vela"]["figures"], m["model"]["io_dtype"]
    precision = {"int16": "16x8: int16 activations, int8 weights", "int8": "int8 activations and weights"}.get(
        dtype, "mixed precision: each input and output its own type, int8 or int16 (16x8), listed below")
    return [
        f"# {src['experiment']} / {src['variant']} on {src['target']}: firmware hand-off",
        "",
        f"A speech-enhancement mask network, {dtype} I/O ({precision}), "
        f"compiled by Vela {fig.get('vela_version')} for {src['target']} ({fig.get('accelerator')}, "
        f"{fig.get('system_config')}, {fig.get('memory_mode')}). Everything below is also in "
        "`model_manifest.json` (the machine-readable contract).",
        "",
    ]


def _files(m: dict[str, Any]) -> list[str]:
    return [
        "## Files",
        "",
        f"- `{m['model']['vela_tflite']}`: the Vela-compiled model, what the Ethos-U firmware runs.",
        f"- `c/model_data.c`, `c/model_data.h`: that model as `{m['model']['c_array']['symbol']}[]`, "
        f"{m['model']['c_array']['bytes']} bytes, {m['model']['c_array']['alignment']}-byte aligned, in linker "
        f"section `{m['model']['c_array']['section']}` (place it in your linker script, e.g. flash).",
        "- `c/model_io.h`: tensor positions, shapes, scales and zero points, state feedback, feature constants.",
        *_firmware_files(m.get("firmware")),
        f"- `{m['model']['tflite']}`: the same network before Vela (reference kernels, any TFLM build); "
        "the golden vectors come from it.",
        "- `golden/`: features, input states and outputs of every Invoke for consecutive frames of real audio "
        "(`golden/golden.json` describes each file: raw little-endian arrays).",
        "- `vela/`: Vela's summary and per-layer CSVs and where each operator runs.",
        "- `SHA256SUMS`: check with `sha256sum -c SHA256SUMS`; `sepipe verify-bundle <this folder or zip>` "
        "also re-runs the golden vectors through TFLite Micro.",
        "",
    ]


def _firmware_files(firmware: dict[str, Any] | None) -> list[str]:
    if firmware is None:
        return []
    desc, ops = firmware["descriptor"], firmware["op_resolvers"]
    return [
        f"- `{desc['source']}`: the same model as one `const se_model_desc_t {desc['symbol']}` ({desc['header']}): "
        "tensors, states, arena, model bytes and op resolvers as data, so several models fit one image "
        f"(every symbol starts with `{desc['c_prefix']}`).",
        f"- `{ops['source']}`, `{ops['header']}`: the TFLite Micro op resolvers, exactly each model's op types: "
        f"`{ops['vela']['function']}()` ({', '.join(ops['vela']['op_types'])}) and `{ops['cpu']['function']}()` "
        f"({', '.join(ops['cpu']['op_types'])}).",
    ]


def _per_hop(m: dict[str, Any]) -> list[str]:
    feats, contract = m["features"], m["call_contract"]
    rows = [f"| {side} | {t['position']} | `{t['name']}` | {t['shape']} | {t['dtype']} | {t['scale']:.9g} | "
            f"{t['zero_point']} |" for side in ("inputs", "outputs") for t in m["tensors"][side]]
    pairs = [f"| `{p['output']}` (out {p['output_position']}) | `{p['input']}` (in {p['input_position']}) | "
             f"{p['rule']} |" for p in m["state_pairs"]]
    requant = any(p["rule"] == "requantize" for p in m["state_pairs"])
    copy_back = (f"as is where the rule is `copy`; where it is `requantize`: `{REQUANTIZE_FORMULA.split(';')[0]}`."
                 if requant else "every pair is a plain copy (same scale and zero point).")
    return [
        "## Per hop (one Invoke)",
        "",
        f"Every {feats['hop']} samples at {feats['sample_rate']} Hz ({feats['hop_ms']:g} ms):",
        "",
        f"1. Frame: the last {feats['fft_size']} samples (the stream starts with {feats['hop']} zeros), times a "
        f"periodic sqrt-Hann window, real FFT -> {feats['bins']} bins.",
        f"2. Features: `ln(|X|^2 + {feats['log_floor']:g})`, quantised: `{contract['quantize']}` "
        + (f"(QMIN, QMAX = {contract['qmin_qmax'][0]}, {contract['qmin_qmax'][1]})."
           if isinstance(contract["qmin_qmax"], list) else f"(QMIN, QMAX: {contract['qmin_qmax']})."),
        "3. Set the features input and every state input (before the first hop: each state's zero point), Invoke.",
        f"4. Mask: `{contract['dequantize']}`, multiply each bin of X, inverse FFT, window, overlap-add.",
        "5. Copy every state output to its input: " + copy_back,
        "",
        "| side | position | name | shape | dtype | scale | zero point |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "| state output | feeds input | rule |",
        "|---|---|---|",
        *pairs,
        "",
    ]


def _tensor_arena(m: dict[str, Any]) -> list[str]:
    ref, vela_arena = m["tflm_arena"]["reference_kernels"], m["tflm_arena"]["vela_model"]
    lower = vela_arena["lower_bound_bytes"]
    return [
        "## Tensor arena",
        "",
        *_cortex_m_arena(m["tflm_arena"].get("cortex_m"), ref),
        f"- Measured here: {ref['measured_min_bytes']} bytes, the smallest arena that allocates and invokes the "
        f"quantised model in the Python TFLite Micro (reference kernels, 64-bit host); +10 %: "
        f"{ref['recommended_bytes']} bytes ({ref['headroom']}). Enough for the reference kernels only.",
        f"- Vela model: not measurable here (no Python interpreter runs the `ethos-u` operator). Vela reports "
        f"{vela_arena['sram_memory_used_bytes']} bytes of SRAM (`sram_memory_used`); "
        + (f"the arena must hold at least that plus TFLM's bookkeeping (lower bound {lower} bytes). "
           if lower is not None else "in this memory mode that is the NPU's fast scratch, given to the driver "
                                     "apart from the tensor arena. ")
        + "Measure it on the device with `MicroInterpreter::arena_used_bytes()` after `AllocateTensors()`.",
        "",
    ]


def _cortex_m_arena(cortex: dict[str, Any] | None, ref: dict[str, Any]) -> list[str]:
    """The per-kernel-set table for a 32-bit Cortex-M and the rule it was derived by."""
    if cortex is None:
        return []
    rows = []
    for label, key in (("reference", "reference"), ("CMSIS-NN (Cortex-M default)", "cmsis_nn")):
        entry = cortex[key]
        rows.append(f"| {label} | {entry['bytes']} | **{entry['recommended_bytes']}** | {entry['how']} |"
                    if entry["derived"] else f"| {label} | not derived | - | {entry['why_not']} |")
    cmsis = cortex["cmsis_nn"]
    layers = (f" CMSIS-NN adds {cmsis['cmsis_nn_extra_bytes']} bytes over {len(cmsis['fully_connected'])} "
              f"FULLY_CONNECTED layers (" + ", ".join(f"{fc['out_channels']} ch {fc['types']}: {fc['bytes']} B"
                                                      for fc in cmsis["fully_connected"]) + ")."
              if cmsis["derived"] and cmsis["fully_connected"] else "")
    return [
        f"The quantised model on a {cortex['target']}, per kernel set (derived, not measured on a 32-bit target: "
        "no TFLite Micro source here):",
        "",
        "| kernels | arena bytes | recommended | derivation |",
        "|---|---|---|---|",
        *rows,
        "",
        f"Rule: {cortex['rule']}.{layers} {cortex['use'][0].upper()}{cortex['use'][1:]}.",
        "",
    ]


def _vela_figures(m: dict[str, Any]) -> list[str]:
    feats, fig = m["features"], m["vela"]["figures"]
    return [
        "## Vela figures",
        "",
        f"{fig.get('cycles_total'):,} cycles, {fig.get('inference_time_ms'):.3f} ms per Invoke at "
        f"{float(fig.get('clock_hz') or 0) / 1e6:g} MHz ({fig.get('inference_time_ms', 0) / feats['hop_ms']:.1%} of "
        f"the hop); SRAM {fig.get('sram_memory_used_kib'):.2f} KiB, flash {fig.get('flash_kib'):.2f} KiB, "
        f"DRAM {fig.get('dram_memory_used_kib'):.2f} KiB; {fig.get('nn_macs'):,} MACs; "
        f"{fig.get('npu_ops')} operators on the NPU, {fig.get('cpu_ops')} on the CPU.",
        "",
        *_frame_loop(m.get("frame_loop")),
    ]


def _frame_loop(loop: dict[str, Any] | None) -> list[str]:
    """The CPU's share of a hop outside the Invoke: firmware_stub's frame loop on the emulated Cortex-M55."""
    if loop is None:
        return []
    if not loop.get("measured"):
        return [f"C frame loop on the Cortex-M55 (outside the Invoke): not measured ({loop.get('reason')}); "
                f"`{loop.get('command')}` measures it.", ""]
    return [
        f"C frame loop on the Cortex-M55 (window, FFT, features, quantise, state feedback, mask, inverse FFT, "
        f"overlap-add; outside the Invoke): **{loop['frame_loop_instructions_per_hop']:,} instructions per hop** "
        f"(min {loop['min']:,}, max {loop['max']:,} over {loop['frames']} frames): QEMU instruction counts on "
        f"mps3-an547, not cycles, with {loop['tools']['arm-none-eabi-gcc']} -O2. The golden vectors pass the "
        f"host test's checks there too (`{loop['command']}`).",
        "",
    ]


def _golden(m: dict[str, Any]) -> list[str]:
    return [
        "## Golden vectors",
        "",
        f"{m['golden']['frames']} consecutive frames of {', '.join(m['golden']['test_audio']['files'])} "
        f"({m['golden']['test_audio']['dataset']}, test split), produced by {m['golden']['produced_by']}. "
        "Feed `in_<input>.bin` frame by frame (or compute features from `audio_in.f32` and feed the states back "
        "yourself) and compare every output with `out_<output>.bin`: the reference kernels must match bit for "
        "bit; the Vela model on the NPU may differ by a few LSB. The C frame loop of this repository's "
        "`firmware_stub/` checks itself against this folder: `make -C firmware_stub host-test "
        "GOLDEN=<bundle>/golden MODEL_IO=<bundle>/c` (on the build machine) and `make -C firmware_stub qemu-test "
        "GOLDEN=<bundle>/golden MODEL_IO=<bundle>/c` (on QEMU's Cortex-M55).",
        "",
    ]
