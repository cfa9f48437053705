"""Per-exit table of early-exit runs (issue 16): quality of each variant's int8 TFLite row against Vela
cycles (u55-128, flash, SRAM; cycles on u55-64, u65-256, u85-256), from the runs' manifests and compile records.

    .venv/bin/python benchmarks/early_exit_table.py runs/early_exit_demo runs/early_exit_demo_plain ...
"""
import csv, json, sys
from pathlib import Path

def rows(run):
    run = Path(run); name = run.name
    m = json.loads((run / "manifest.json").read_text())["stages"]
    ref = [r for r in m["evaluate:references"]["summary"]["rows"] if r["system"] == "unprocessed"][0]
    out = [("unprocessed", ref, None)]
    for stage, rec in m.items():
        if stage.startswith("evaluate:") and stage != "evaluate:references":
            v = stage.split(":")[1]
            r = [x for x in rec["summary"]["rows"] if "TFLite" in x["system"]][0]
            vela = {}
            path = run / "compile" / f"{name}_{v}_vela_records.csv"
            for row in csv.DictReader(open(path)):
                vela[row["target"]] = row
            out.append((v, r, vela))
    return out

for run in sys.argv[1:]:
    print(f"\n{Path(run).name}\n")
    print("| variant | SI-SDR dB | PESQ | STOI | DNSMOS OVRL | u55-128 cycles | flash KiB | SRAM KiB | u55-64 | u65-256 | u85-256 cycles |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for v, r, vela in rows(run):
        q = f"| {v} | {r['si_sdr']:.2f} | {r['pesq']:.3f} | {r['stoi']:.4f} | {r.get('dnsmos_ovrl', float('nan')):.3f} |"
        if vela:
            h = vela["ethos-u55-128"]
            q += f" {int(float(h['cycles_total']))} | {float(h['flash_kib']):.1f} | {float(h['sram_memory_used_kib']):.1f} |"
            q += " " + " | ".join(str(int(float(vela[t]['cycles_total']))) if t in vela else "-" for t in ("ethos-u55-64", "ethos-u65-256", "ethos-u85-256")) + " |"
        else:
            q += " - | - | - | - | - | - |"
        print(q)
