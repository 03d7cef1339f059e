"""The Helm chart's generated parts: values.yaml, values.schema.json and the CRD templates."""

from atomic_operator.chart.generate import render_chart_files, write_chart_files

__all__ = ["render_chart_files", "write_chart_files"]
