"""The quality predictor's table, from the convert, compile and evaluate records (Markdown and CSV).

Quality (held-out test clips, per target): Pearson / Spearman / RMSE against the teacher in Keras and in
TFLite Micro (int8, what ships), and the Spearman agreement of the systems' mean scores (the ranking of
the enhancers). Memory: parameters, constant bytes in the .tflite (weights and biases), the smallest TFLite
Micro arena (peak activations and bookkeeping, 64-bit host), their sum and its ratio to the float32 model;
Vela's cycles and SRAM per target. Binary check: distinct int8 codes per activation map.
"""

from __future__ import annotations

import csv
import io

from sepipe import artifacts


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.{digits}f}"
    return str(value)


def _markdown(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _csv(rows: list[dict], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({c: _fmt(r.get(c), 4) for c in columns} for r in rows)
    return out.getvalue()


def quality_rows(cfg, needs) -> list[dict]:
    rows = []
    for target in cfg.predictor.targets:
        for v in cfg.predictor.variants:
            ev = needs[f"evaluate:{v}"]
            keras, tflm = ev["scores"][target]["keras"], ev["scores"][target]["tflm"]
            rows.append({"target": target, "variant": v, "pearson_keras": keras["pearson"],
                         "pearson_tflm": tflm["pearson"], "spearman_tflm": tflm["spearman"], "rmse_tflm": tflm["rmse"],
                         "rank_spearman_keras": ev["ranking"][target]["keras"]["spearman"],
                         "rank_spearman_tflm": ev["ranking"][target]["tflm"]["spearman"],
                         "test_clips": ev["test_clips"]})
    return rows


def memory_rows(cfg, needs) -> list[dict]:
    names = list(cfg.predictor.variants) + (["float32"] if "convert:float32" in needs else [])
    rows = []
    for v in names:
        conv = needs[f"convert:{v}"]
        row = {"variant": v, "dtype": conv["dtype"], "parameters": conv["parameters"],
               "weights_bytes": conv["constant_bytes"], "tflm_arena_bytes": conv["tflm_arena_bytes"],
               "inference_memory_bytes": conv["constant_bytes"] + conv["tflm_arena_bytes"],
               "peak_activation_bytes": conv.get("peak_activation_bytes"),
               "bit_packed_memory_bytes": conv["constant_bytes"] + conv.get("peak_activation_bytes_bit_packed", 0)}
        for target, fig in (needs.get(f"compile:{v}") or {}).items():
            row[f"cycles_{target}"] = fig["cycles_total"]
            row[f"sram_kib_{target}"] = fig["sram_memory_used_kib"]
        rows.append(row)
    reference = next((r for r in rows if r["variant"] == "float32"), None)
    for row in rows:
        row["memory_vs_float32"] = (None if reference is None else
                                    round(reference["inference_memory_bytes"] / row["inference_memory_bytes"], 2))
        # the what-if of 1-bit maps against the float32 model's weights + analytic peak, like for like
        row["bit_packed_vs_float32"] = (None if reference is None else round(
            (reference["weights_bytes"] + reference["peak_activation_bytes"]) / row["bit_packed_memory_bytes"], 2))
    return rows


def write_table(cfg, paths, needs) -> dict:
    quality, memory = quality_rows(cfg, needs), memory_rows(cfg, needs)
    q_cols = ["target", "variant", "pearson_keras", "pearson_tflm", "spearman_tflm", "rmse_tflm",
              "rank_spearman_keras", "rank_spearman_tflm", "test_clips"]
    m_cols = ["variant", "dtype", "parameters", "weights_bytes", "tflm_arena_bytes", "inference_memory_bytes",
              "memory_vs_float32", "peak_activation_bytes", "bit_packed_memory_bytes", "bit_packed_vs_float32"] + [f"{kind}_{t}" for t in cfg.compile.targets for kind in ("cycles", "sram_kib")]
    levels = [{"variant": v, **{block: f"{lv['codes']} codes, {lv['two_code_share']:.2%} at the top two"
                                for block, lv in needs[f"evaluate:{v}"]["activation_levels"].items()}}
              for v in cfg.predictor.variants]
    level_cols = ["variant"] + list(dict.fromkeys(k for row in levels for k in row if k != "variant"))
    ranking = [{"target": t, "variant": v, "systems": ", ".join(r["systems"]),
                "teacher": ", ".join(f"{x:.2f}" for x in r["teacher"]),
                "predicted_tflm": ", ".join(f"{x:.2f}" for x in r["predicted"])}
               for t in cfg.predictor.targets for v in cfg.predictor.variants
               for r in [needs[f"evaluate:{v}"]["ranking"][t]["tflm"]]]
    text = "\n\n".join([
        f"# Quality predictor `{cfg.name}`: held-out test clips (speakers and noises disjoint from train)",
        "## Agreement with the teacher", _markdown(quality, q_cols),
        "## Inference memory and Vela cycles (memory = weights + TFLite Micro arena)", _markdown(memory, m_cols),
        "## Mean score per system on the test clips (TFLite Micro)",
        _markdown(ranking, ["target", "variant", "systems", "teacher", "predicted_tflm"]),
        "## Distinct int8 codes per activation map (TFLite reference kernels, a few test clips)",
        _markdown(levels, level_cols)]) + "\n"
    artifacts.write_text(paths.table("md"), text)
    artifacts.write_text(paths.table("quality.csv"), _csv(quality, q_cols))
    artifacts.write_text(paths.table("memory.csv"), _csv(memory, m_cols))
    return {"quality": quality, "memory": memory}
