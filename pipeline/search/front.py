"""The Pareto front of a search: table (CSV, Markdown), plot, and one experiment YAML per chosen member.

The front is the non-dominated set (SI-SDR up; flash and cycles down) of every feasible candidate the
search met, not only pymoo's last population. Chosen members are spread evenly along the front by SI-SDR;
each is written as the experiment (same name, so `sepipe run` reuses its training and dense conversion)
plus one `offline` variant holding the member's per-layer settings: the convert stage rebuilds the same
bytes, so Vela and the interpreters give the same figures (on the test split, where the search used
validation files).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from sepipe import artifacts
from sepipe.search.genes import Candidate, plan_variant
from sepipe.search.page import write_page

COLUMNS = ("id", "label", "si_sdr", "pesq", "flash_kib", "cycles_total", "sram_memory_used_kib",
           "inference_time_ms", "total_npu_encoded_weights_bytes", "violations", "settings")


def pareto_front(records: list[dict]) -> list[dict]:
    """Feasible, non-dominated records (each id once), best SI-SDR first (ties: id)."""
    unique = {r["id"]: r for r in records if not r["violations"]}
    rows = sorted(unique.values(), key=lambda r: (-r["si_sdr"], r["id"]))
    points = np.array([[-r["si_sdr"], r["flash_kib"], r["cycles_total"]] for r in rows], dtype=float)
    keep = []
    for i, p in enumerate(points):
        dominated = np.any(np.all(points <= p, axis=1) & np.any(points < p, axis=1))
        if not dominated:
            keep.append(rows[i])
    return keep


def choose(front: list[dict], count: int) -> list[dict]:
    """`count` members spread evenly along the front (by SI-SDR order), the best and the smallest included."""
    if len(front) <= count:
        return list(front)
    picks = sorted({int(round(i)) for i in np.linspace(0, len(front) - 1, count)})
    return [front[i] for i in picks]


def settings_text(record: dict) -> str:
    s = " ".join(f"{k}={v:g}" for k, v in record["sparsity"].items())
    c = " ".join(f"{k}:{v}" for k, v in record["levels"].items())
    p = record.get("base") or ""
    return "; ".join(x for x in (f"sparsity {s}" if s else "", f"levels {c}" if c else "", p) if x) or "dense"


def table_rows(records: list[dict]) -> list[dict]:
    return [{"id": r["id"], "label": r.get("label") or "search", "si_sdr": round(r["si_sdr"], 3),
             "pesq": round(r["pesq"], 3) if "pesq" in r else "", "flash_kib": round(r["flash_kib"], 2),
             "cycles_total": r["cycles_total"], "sram_memory_used_kib": r["sram_memory_used_kib"],
             "inference_time_ms": round(r["inference_time_ms"], 4),
             "total_npu_encoded_weights_bytes": r["total_npu_encoded_weights_bytes"],
             "violations": len(r["violations"]), "settings": settings_text(r)} for r in records]


def write_tables(out_dir: Path, stem: str, rows: list[dict]) -> list[Path]:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    md = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    md += ["| " + " | ".join(str(row[c]) for c in COLUMNS) + " |" for row in rows]
    return [artifacts.write_text(out_dir / f"{stem}.csv", text.getvalue()),
            artifacts.write_text(out_dir / f"{stem}.md", "\n".join(md) + "\n")]


REFERENCE_COLOURS = ("tab:blue", "tab:green", "tab:purple")


def write_plot(path: Path, records: list[dict], front: list[dict], references: list[dict], title: str) -> Path:
    """SI-SDR against flash and against cycles: every candidate, the front, the dense and uniform references."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, x, label in ((axes[0], "flash_kib", "Vela flash (KiB)"), (axes[1], "cycles_total", "Vela cycles")):
        ax.scatter([r[x] for r in records], [r["si_sdr"] for r in records], s=10, c="0.75", label="candidates")
        ordered = sorted(front, key=lambda r: r[x])
        ax.plot([r[x] for r in ordered], [r["si_sdr"] for r in ordered], "o-", c="tab:red", ms=4, label="Pareto front")
        # one line per base (dense int8, each precision plan), in flash / cycle order, not zigzagging between them
        for i, base in enumerate(dict.fromkeys(r.get("base") or "" for r in references)):
            group = sorted((r for r in references if (r.get("base") or "") == base), key=lambda r: r[x])
            ax.plot([r[x] for r in group], [r["si_sdr"] for r in group], "s--", c=REFERENCE_COLOURS[i % 3], ms=5,
                    label=f"dense / uniform offline ({base or 'int8'})")
        for r in references:
            ax.annotate(r["label"], (r[x], r["si_sdr"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("proxy SI-SDR (dB, validation files)")
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return artifacts.write_bytes(path, buffer.getvalue())


def finetuned_variant(candidate: Candidate, name: str, plans: dict | None, epochs: int) -> list[dict]:
    """The member fine-tuned by the existing compressors, `epochs` epochs, with its precision plan: kind
    'cluster' with each layer's sparsity and palette when it clusters any layer (`layers`, `layer_clusters`;
    sepipe.compress.kinds.cluster), else kind 'weight' with its per-layer sparsity; [] when `epochs` is 0 or
    the member changes nothing."""
    if not epochs or not (candidate.sparsity or candidate.levels):
        return []
    sparsity, levels = dict(candidate.sparsity), dict(candidate.levels)
    variant: dict = {"name": name, "kind": "cluster" if levels else "weight"}
    if levels:
        layers = list(dict.fromkeys([*sparsity, *levels]))
        variant["layers"] = [f"{layer}={sparsity.get(layer, 0.0)!r}" for layer in layers]
        variant["layer_clusters"] = [f"{layer}={levels.get(layer, 0)}" for layer in layers]
    else:
        variant["layers"] = [f"{k}={v!r}" for k, v in candidate.sparsity]
    variant["finetune_epochs"] = epochs
    if candidate.base:
        variant["precision"] = dict((plans or {})[candidate.base])
    return [variant]


def chosen_yaml(raw_experiment: dict, cfg, record: dict, name: str, plans: dict | None = None,
                finetune_epochs: int = 0, proxy_steps: int = 0) -> str:
    """The experiment YAML (without `search:`) that rebuilds `record`'s bytes: as `offline` variant `name`, or
    with the fine-tuned proxy (`proxy_steps` > 0) as its briefly fine-tuned variant `p<id>`."""
    import yaml

    from sepipe.search.finetune_proxy import proxy_variant
    from sepipe.search.plans import with_variants

    candidate = Candidate(tuple(record["sparsity"].items()), tuple(record["levels"].items()), base=record.get("base", ""))
    plan = [{"name": candidate.base, "kind": "ptq", "precision": dict(plans[candidate.base])}] if candidate.base else []
    scored = (proxy_variant(candidate, plans or {}, proxy_steps, record["id"]) if proxy_steps else None) \
        or candidate.variant(name)
    tuned = finetuned_variant(candidate, f"f{name[1:]}", plans, finetune_epochs)
    experiment = with_variants(raw_experiment, cfg, [*plan, scored, *tuned])
    header = (f"# Chosen by `sepipe search` (candidate {record['id']}): proxy SI-SDR {record['si_sdr']:.3f} dB on "
              f"the validation files, {record['flash_kib']:.1f} KiB flash, {record['cycles_total']} cycles.\n"
              f"# `sepipe run` on this file rebuilds the same .tflite (sha256 {record['tflite_sha256'][:16]}...).\n")
    return header + yaml.safe_dump(experiment, sort_keys=False)


def write_outputs(out_dir: Path, cfg, raw_experiment: dict, result: dict, chosen_count: int) -> dict:
    """Tables, plot and chosen YAMLs under `out_dir`; returns the summary (written last by the caller)."""
    records, references = result["records"], result["references"]
    front = pareto_front(records)
    chosen = choose(front, chosen_count)
    files = write_tables(out_dir, "front", table_rows(front))
    files += write_tables(out_dir, "references", table_rows(references))
    title = (f"{cfg.name}: {len({r['id'] for r in records})} candidates, {len(front)} on the front "
             f"({result['stats']['wall_s']:.0f} s)")
    if cfg.search and cfg.search.proxy == "finetune":
        title += f", fine-tuned proxy ({cfg.search.proxy_steps} steps)"
    files.append(write_plot(out_dir / "front.png", records, front, references, title))
    search = cfg.search
    proxy_steps = search.proxy_steps if search and search.proxy == "finetune" else 0
    yamls, chosen_ids = [], {}
    for record in chosen:
        name = f"s{record['id'][:8]}"
        path = out_dir / "chosen" / f"{cfg.name}_{name}.yaml"
        plans = {plan_variant(plan): plan for plan in result["genome"].plans if plan}
        text = chosen_yaml(raw_experiment, cfg, record, name, plans, search.finetune_epochs if search else 0,
                           proxy_steps)
        yamls.append(artifacts.write_text(path, text))
        chosen_ids[path.name] = record["id"]
    for stale in sorted((out_dir / "chosen").glob("*.yaml")):     # an earlier search's members, not this front's
        if stale.name not in chosen_ids:
            stale.unlink()
    files.append(write_page(out_dir, title, result["stats"], table_rows(front), table_rows(references),
                            files[-1], chosen_ids, proxy_steps))
    return {"front": [r["id"] for r in front], "chosen": chosen_ids,
            "files": [str(p) for p in files + yamls]}
