"""The leaderboard as the Python API returns it: rows that print as a table and convert to pandas."""

from __future__ import annotations

from typing import Any

__all__ = ["Leaderboard"]

SHOWN = (("rung", "rung"), ("status", "status"), ("comparison", "score [95% CI]"), ("comparison_n", "n"),
         ("gain_vs_baseline", "gain vs baseline"), ("fit_seconds", "fit s"), ("predict_seconds_per_case", "predict s/case"),
         ("peak_rss_bytes", "peak RSS GiB"), ("vram", "VRAM GiB"), ("n_params", "params"))
"""The columns printed (the row key, or a derived one, and its heading); every key stays in the rows."""


class Leaderboard(list):
    """One dict per rung (see :func:`automed.report.tables.leaderboard_rows` for the keys).

    It is a plain list of dicts, printed as an aligned table of the main columns (as AutoGluon's
    leaderboard is); :meth:`to_frame` gives a pandas DataFrame with every key.
    """

    def to_frame(self) -> Any:
        """The rows as a ``pandas.DataFrame`` (pandas is optional: ``pip install pandas``)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("Leaderboard.to_frame needs pandas, which is not installed: pip install pandas") from exc
        return pd.DataFrame(list(self))

    def __str__(self) -> str:
        cells = [[heading for _, heading in SHOWN]] + [[_cell(row, key) for key, _ in SHOWN] for row in self]
        widths = [max(len(line[i]) for line in cells) for i in range(len(SHOWN))]
        lines = ["  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip() for line in cells]
        return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])

    def __repr__(self) -> str:
        return f"Leaderboard ({len(self)} rungs; .to_frame() for every column)\n{self}"


def _cell(row: dict[str, Any], key: str) -> str:
    """One printed cell of ``row``."""
    from automed.report.tables import format_ci, format_gain

    gib = 2**30
    if key == "comparison":
        return format_ci(row.get("comparison_mean"), row.get("comparison_ci_low"), row.get("comparison_ci_high"))
    if key == "gain_vs_baseline":
        if row.get("gain_vs_baseline_mean") is None:
            return ""
        return (format_gain(row["gain_vs_baseline_mean"], row.get("gain_vs_baseline_ci_low"),
                            row.get("gain_vs_baseline_ci_high")) + f" vs {row['gain_vs_baseline']}")
    if key == "vram":
        value = row.get("peak_vram_bytes") if row.get("peak_vram_bytes") is not None else row.get("est_train_vram_bytes")
        return "" if value is None else f"{value / gib:.2f}" + ("" if row.get("peak_vram_bytes") is not None else " (est.)")
    value = row.get(key)
    if value is None:
        return ""
    if key == "peak_rss_bytes":
        return f"{value / gib:.2f}"
    if key == "n_params":
        return f"{value / 1e6:.2f} M"
    if isinstance(value, float):
        return f"{value:.1f}" if key == "fit_seconds" else f"{value:.3f}"
    return str(value)
