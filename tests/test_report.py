import math

from sepipe.report import headline_figures, headline_lines


def _row(variant, target, params, cycles, flash_kib, loss_db):
    return {"variant": variant, "target": target, "params": params, "cycles_total": cycles,
            "flash_kib": flash_kib, "dram_memory_used_kib": 0.0, "si_sdr_vs_float_db": loss_db}


def test_headlines_pick_the_best_variant_within_each_loss_limit():
    rows = [_row("ptq", "u55", 1000, 1000.0, 1.0, -0.02),
            _row("w80", "u55", 1000, 400.0, 0.25, -0.08),     # 4000 B / 256 B = 15.6x, 2.5x faster
            _row("w95", "u55", 1000, 200.0, 0.1, -0.4),       # too lossy for memory, fine for speed
            _row("w99", "u55", 1000, 100.0, 0.05, -2.0)]      # too lossy for both
    memory, speed = headline_figures(rows)
    assert (memory["variant"], round(memory["value"], 1)) == ("w80", 15.6)
    assert (speed["variant"], speed["value"]) == ("w95", 5.0)
    assert len(headline_lines([memory, speed])) == 3


def test_headlines_say_when_no_variant_keeps_the_quality():
    memory, speed = headline_figures([_row("ptq", "u55", 10, 50.0, 1.0, -1.0)])
    assert memory["variant"] == "-" and math.isnan(memory["value"])
    assert "no variant within 0.1 dB" in headline_lines([memory, speed])[1]
