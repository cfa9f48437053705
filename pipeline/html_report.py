"""`sepipe.html_report`: the HTML page under its historical import path (the code is in sepipe.report.page
and sepipe.report.plots). New code imports from there."""

from sepipe.report.page import COST_TABLE, VARIANT_QUALITY_TABLE, render_html, write_html_report
from sepipe.report.plots import (pareto_front, per_layer_figure, read_per_layer_csv, structure_figure,
                                 tradeoff_figure)

__all__ = ["COST_TABLE", "VARIANT_QUALITY_TABLE", "render_html", "write_html_report", "pareto_front",
           "per_layer_figure", "read_per_layer_csv", "structure_figure", "tradeoff_figure"]
