"""The search's HTML page (`<run>/search/search.html`): what it cost, the front against the uniform
references (plot and tables) and the chosen members, every figure labelled as what it is.

The search's figures are proxies (an untrained offline edit, or a briefly fine-tuned member with `proxy:
finetune`, scored on validation files); fine-tuned and
test-set figures come from `sepipe run` on the chosen YAMLs, whose own report pages hold them. The page
says so above the tables, so nobody reads a proxy as a result.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from sepipe import artifacts
from sepipe.report.page import STYLE

SHOWN = (("id", "candidate"), ("label", "row"), ("si_sdr", "proxy SI-SDR (dB)"), ("flash_kib", "flash KiB"),
         ("cycles_total", "cycles"), ("sram_memory_used_kib", "SRAM KiB"), ("settings", "per-layer settings"))


def _table(rows: list[dict], chosen: dict[str, str]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in SHOWN) + "<th>chosen YAML</th>"
    body = []
    for row in rows:
        cells = "".join(f"<td>{html.escape(str(row.get(key, '')))}</td>" for key, _ in SHOWN)
        body.append(f"<tr>{cells}<td>{html.escape(chosen.get(row['id'], ''))}</td></tr>")
    return f"<table>\n<tr>{head}</tr>\n" + "\n".join(body) + "\n</table>\n"


PROXY_TEXT = ("the dense int8 model edited offline (pruned and clustered, no retraining)",
              "the member briefly fine-tuned ({} steps of its cluster / weight variant) and converted")


def write_page(out_dir: Path, title: str, stats: dict, front_rows: list[dict], reference_rows: list[dict],
               plot: Path, chosen: dict[str, str], proxy_steps: int = 0) -> Path:
    """`out_dir/search.html`; `chosen` maps a YAML's file name to its candidate id; `proxy_steps` > 0: the
    fine-tuned proxy's steps per candidate."""
    by_id = {candidate: name for name, candidate in chosen.items()}
    png = base64.b64encode(Path(plot).read_bytes()).decode("ascii")
    rate = stats.get("vela_cache_hit_rate")       # None when this run compiled nothing (all resumed)
    cost = (f"{stats.get('candidates_scored', 0)} candidates scored in {stats.get('wall_s', 0):.0f} s, "
            f"{stats.get('candidates_resumed', 0)} resumed from an earlier run, Vela cache hit rate "
            + ("n/a (nothing compiled)." if rate is None else f"{100 * rate:.1f} %."))
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{html.escape(title)}"
             f"</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n",
             f'<p class="note">{html.escape(cost)}</p>\n',
             f'<p class="note">Proxy figures: each candidate is {PROXY_TEXT[proxy_steps > 0].format(proxy_steps)}, '
             'scored through the TFLite interpreter on the fixed validation files; '
             'cycles, flash and SRAM are Vela\'s. Fine-tuned and test-set figures of a chosen member come from '
             '<code>sepipe run</code> on its YAML (chosen/), on that run\'s own page.</p>\n',
             "<h2>Front against the uniform references</h2>\n",
             f'<img src="data:image/png;base64,{png}" alt="proxy SI-SDR against flash and cycles">\n',
             "<h2>Pareto front</h2>\n", _table(front_rows, by_id),
             "<h2>References: dense int8 and uniform offline pruning</h2>\n", _table(reference_rows, by_id),
             "</body>\n</html>\n"]
    return artifacts.write_text(out_dir / "search.html", "".join(parts))
