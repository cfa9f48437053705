"""The report stage: typed rows joined on typed keys, rendered as CSV, Markdown and a self-contained HTML page.

Modules: `rows` (QualityRow, DeploymentRow and their joins; labels made in `to_dict` only), `tables`
(column specs, CSV and Markdown), `headline` (the sweep's memory and speed claims), `plots` (matplotlib,
imported when a plot is drawn), `page` (the HTML page). Importing this package imports no matplotlib.
"""

from sepipe.report.headline import MEMORY_LOSS_LIMIT_DB, SPEED_LOSS_LIMIT_DB, headline_figures, headline_lines
from sepipe.report.rows import (DENSE_STRUCTURE, QUALITY_COLUMNS, SHIPPED_RUNNER, SYSTEM_LABELS, DeploymentRow,
                                QualityRow, as_dicts, build_deployment_rows, quality_rows,
                                shipped_quality)
from sepipe.report.tables import (CONDITION_COLUMNS, DEPLOYMENT_COLUMNS, DISPLAY_COLUMNS, PREDICTED_COLUMNS, csv_text,
                                  markdown_table, with_predicted, write_tables)

__all__ = ["MEMORY_LOSS_LIMIT_DB", "SPEED_LOSS_LIMIT_DB", "headline_figures", "headline_lines", "DENSE_STRUCTURE",
           "QUALITY_COLUMNS", "SHIPPED_RUNNER", "SYSTEM_LABELS", "DeploymentRow", "QualityRow", "as_dicts",
           "build_deployment_rows", "quality_rows", "shipped_quality", "CONDITION_COLUMNS",
           "DEPLOYMENT_COLUMNS", "DISPLAY_COLUMNS", "PREDICTED_COLUMNS", "csv_text", "markdown_table", "with_predicted",
           "write_tables"]
