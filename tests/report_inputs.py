"""Hand-made inputs of the report stage (no training, no Vela): compile records as `compile_model` writes
them and quality rows as `evaluate.quality_table` returns them, for a three-variant sweep on two targets.

tests/golden/report/ holds what the report code made of them before the rows became typed
(tests/test_report.py compares against it byte for byte).
"""

from __future__ import annotations

import math
from pathlib import Path

NAN = math.nan
HOP_MS = 16.0

TARGET_COLUMNS = {
    "ethos-u55-128": {"target": "ethos-u55-128", "target_id": "H128", "accelerator": "ethos-u55-128",
                      "system_config": "Ethos_U55_High_End_Embedded", "memory_mode": "Shared_Sram",
                      "clock_hz": 500000000.0, "optimise": "Performance", "arena_cache_size": None},
    "ethos-u65-256": {"target": "ethos-u65-256", "target_id": "Y256", "accelerator": "ethos-u65-256",
                      "system_config": "Ethos_U65_High_End", "memory_mode": "Dedicated_Sram",
                      "clock_hz": 1000000000.0, "optimise": "Performance", "arena_cache_size": 393216},
}

# variant -> (structure, label, params, nonzero weights, tflite bytes, cost scale, SI-SDR of float/tflite/tflm)
VARIANTS = {
    "ptq": ("dense", "gru-2x24", 25728, 25712, 41872, 1.0, (10.13, 10.07, 10.0612)),
    "w80": ("weight", "gru-2x24", 25728, 5150, 41872, 0.41, (10.1, 10.06, 10.0531)),
    "u50": ("unit", "gru-2x12", 9864, 9860, 17320, 0.37, (9.31, 9.02, 8.9904)),
}


def summary_csv_row(target: str, scale: float) -> dict[str, str]:
    """The columns of Vela's `<net>_summary_<system_config>.csv` the record reads, as strings."""
    dram = target != "ethos-u55-128"
    cycles = round(35048 * scale)
    clock = TARGET_COLUMNS[target]["clock_hz"]
    return {"cycles_total": f"{cycles}.0", "cycles_npu": f"{round(cycles * 0.93)}.0",
            "inference_time": repr(cycles / clock), "inferences_per_second": repr(clock / cycles),
            "sram_memory_used": "0.515625" if not dram else "2.25",
            "dram_memory_used": "0.0" if not dram else repr(35.875 * scale),
            "on_chip_flash_memory_used": "0.0",
            "off_chip_flash_memory_used": repr(35.4375 * scale) if not dram else "0.0",
            "weights_storage_area": "Off-chip Flash" if not dram else "DRAM",
            "feature_map_storage_area": "SRAM",
            "total_original_weights": "25728", "total_npu_encoded_weights": str(round(28032 * scale)),
            "nn_macs": "25728"}


def record(variant: str, target: str) -> dict:
    """A compile record in the key order compile_model writes (the records CSV's column order)."""
    scale = VARIANTS[variant][5]
    s = summary_csv_row(target, scale)
    cycles, macs = int(float(s["cycles_total"])), int(s["nn_macs"])
    macs_per_cycle = 128 if target == "ethos-u55-128" else 256
    return {
        "model": f"demo_{variant}", "source_tflite": f"runs/demo/convert/demo_{variant}.tflite",
        "source_sha256": f"{variant:0<8}" * 8, "vela_version": "5.2.0",
        **TARGET_COLUMNS[target],
        "cycles_total": cycles, "cycles_npu": int(float(s["cycles_npu"])),
        "inference_time_ms": float(s["inference_time"]) * 1e3,
        "inferences_per_second": float(s["inferences_per_second"]),
        "sram_memory_used_kib": float(s["sram_memory_used"]), "dram_memory_used_kib": float(s["dram_memory_used"]),
        "on_chip_flash_memory_used_kib": float(s["on_chip_flash_memory_used"]),
        "off_chip_flash_memory_used_kib": float(s["off_chip_flash_memory_used"]),
        "flash_kib": float(s["on_chip_flash_memory_used"]) + float(s["off_chip_flash_memory_used"]),
        "weights_storage_area": s["weights_storage_area"], "feature_map_storage_area": s["feature_map_storage_area"],
        "total_original_weights": int(s["total_original_weights"]),
        "total_npu_encoded_weights_bytes": int(s["total_npu_encoded_weights"]),
        "nn_macs": macs, "mac_utilisation_pct": 100.0 * macs / (cycles * macs_per_cycle),
        "npu_ops": 14, "cpu_ops": 0, "npu_op_share": 1.0, "compile_s": 1.234,
    }


def records(variant: str) -> list[dict]:
    return [record(variant, target) for target in TARGET_COLUMNS]


def _scores(si_sdr: float, pesq: float, dnsmos: bool = True) -> dict:
    return {"si_sdr": si_sdr, "pesq": pesq, "stoi": 0.8 + si_sdr / 100,
            "dnsmos_sig": 3.1 if dnsmos else NAN, "dnsmos_bak": 3.6 if dnsmos else NAN,
            "dnsmos_ovrl": 2.71 if dnsmos else NAN}


def quality_rows() -> list[dict]:
    """As evaluate.quality_table returns them: references, then each variant's float / TFLite / TFLM rows."""
    references = [{"experiment": "demo", "variant": "-", "model": "-", "system": "unprocessed", "files": 8,
                   **_scores(5.12, 1.41)},
                  {"experiment": "demo", "variant": "-", "model": "-", "system": "RNNoise (pyrnnoise)", "files": 8,
                   **_scores(7.3, 1.72, dnsmos=False)}]
    variants = []
    for name, (_, label, *_rest, sdrs) in VARIANTS.items():
        for system, sdr, rtf in zip(("float32 Keras", "int8 TFLite", "int8 TFLite Micro"), sdrs, (310.4, 1204.9, 88.2)):
            variants.append({"experiment": "demo", "variant": name, "model": label, "system": system, "files": 8,
                             **_scores(sdr, 2.0 + sdr / 50), "loop_rtf": rtf})
    noisy, dense_float = references[0]["si_sdr"], VARIANTS["ptq"][6][0]
    return [{**row, "si_sdr_gain_db": row["si_sdr"] - noisy,
             "si_sdr_vs_float_db": row["si_sdr"] - dense_float if row["variant"] != "-" else NAN}
            for row in [*references, *variants]]


def model_stats(variant: str) -> dict:
    _, _, params, nonzero, *_ = VARIANTS[variant]
    return {"params": params, "nonzero_weights": nonzero}


def deployment_dicts(quality: list[dict]) -> list[dict]:
    """Every variant's deployment rows as dicts, built as the report stage builds them (a CSV reads them back so)."""
    from sepipe.report import as_dicts, build_deployment_rows

    rows = []
    for variant, (structure, label, _, _, tflite_bytes, *_) in VARIANTS.items():
        stats = model_stats(variant)
        rows += as_dicts(build_deployment_rows("demo", variant, structure, label, stats["params"],
                                               stats["nonzero_weights"], tflite_bytes, quality, records(variant),
                                               HOP_MS))
    return rows


PER_LAYER_CSV = (
    "TFLite_operator,NNG Operator,SRAM Usage,Peak%,Op Cycles,Network%,NPU,SRAM AC,DRAM AC,OnFlash AC,OffFlash AC,"
    "MAC Count,Network%,Util%,Name,Target,Original Operator\n"
    "FULLY_CONNECTED,FullyConnected,528,100.0,12000,34.2,3000,200,0,0,12000,8192,31.8,0.5,"
    "model/dense/MatMul;model/dense/Relu,NPU,FullyConnected\n"
    "FULLY_CONNECTED,FullyConnected,528,100.0,9000,25.7,2500,180,0,0,9000,6144,23.9,0.5,model/gru/MatMul,NPU,"
    "FullyConnected\n"
    "LOGISTIC,Sigmoid,256,48.5,0,0.0,0,0,0,0,0,0,0.0,0.0,model/mask/Sigmoid,NPU,Logistic\n"
)


def write_kept_audio(audio_dir, files=("mix_0001", "mix_0002"), rate: int = 16000, seconds: float = 1.0,
                     quality=None) -> list[tuple[str, str]]:
    """WAVs as evaluation keeps them (`<audio_dir>/<system>/<file>.wav`, clean under `clean/`) for every
    system of `quality` (default `quality_rows()`): a tone in seeded noise, quieter noise per system.
    Returns the systems as `sepipe.report.listen.systems_of` lists them."""
    import numpy as np

    from sepipe.audio import write_wav
    from sepipe.report.listen import systems_of

    systems = systems_of(quality if quality is not None else quality_rows())
    t = np.arange(int(rate * seconds)) / rate
    for index, (folder, _) in enumerate(systems):
        for number, name in enumerate(files):
            noise = np.random.RandomState(100 * index + number).standard_normal(len(t))
            level = 0.0 if folder == "clean" else 0.2 / (1 + index)
            write_wav(Path(audio_dir) / folder / f"{name}.wav",
                      0.3 * np.sin(2 * np.pi * (300 + 100 * number) * t) + level * noise, rate)
    return systems
