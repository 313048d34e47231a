"""The carrier report: a per-carrier table for the terminal and a self-contained HTML page.

The HTML page embeds its charts as inline SVG drawn by matplotlib and its
styles inline, so it opens offline and fetches nothing.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from projections.database import Connection
from projections.queries import (
    Cause,
    Grouping,
    LatencyGroup,
    PerformanceGroup,
    StatsQuery,
    carrier_performance,
    latency,
)

__all__ = ["ReportData", "load_report", "print_report", "render_html"]

_DAY = 86_400


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows, for one range and optionally one tenant.

    Attributes:
        start: Start of the range, epoch seconds.
        end: End of the range, epoch seconds (exclusive).
        tenant: The tenant, or None for all tenants.
        period: "hour" or "day": the step of the delivery-rate chart.
        carriers: Performance per carrier.
        over_time: Performance per carrier and period.
        latencies: Latency percentiles per carrier.
        causes: Failure causes over all carriers, most frequent first.
    """

    start: int
    end: int
    tenant: str | None
    period: str
    carriers: list[PerformanceGroup]
    over_time: list[PerformanceGroup]
    latencies: list[LatencyGroup]
    causes: list[Cause]


def load_report(conn: Connection, start: int, end: int, tenant: str | None) -> ReportData:
    """Query everything the report shows; ranges longer than three days chart by day."""
    period: Grouping = "hour" if end - start <= 3 * _DAY else "day"
    by_carrier = StatsQuery(start, end, tenant, group_by=("carrier",))
    over_time = StatsQuery(start, end, tenant, group_by=("carrier", period))
    total = carrier_performance(conn, StatsQuery(start, end, tenant))
    return ReportData(
        start=start,
        end=end,
        tenant=tenant,
        period=period,
        carriers=carrier_performance(conn, by_carrier),
        over_time=carrier_performance(conn, over_time),
        latencies=latency(conn, by_carrier),
        causes=total[0].causes if total else [],
    )


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def _when(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _rows(data: ReportData) -> list[list[str]]:
    latencies = {g.key.carrier: g for g in data.latencies}
    rows = []
    for group in data.carriers:
        c = group.counters
        delivered = None
        found = latencies.get(group.key.carrier)
        if found is not None:
            delivered = next(m for m in found.metrics if m.metric == "submit_to_delivered")
        rows.append(
            [
                group.key.carrier or "",
                str(c["submitted"]),
                str(c["delivered"]),
                str(c["failed_permanent"]),
                str(c["failed_transient"]),
                str(c["rejected"]),
                str(c["expired"]),
                str(group.pending),
                _rate(group.delivery_rate),
                _ms(delivered.p50 if delivered else None),
                _ms(delivered.p90 if delivered else None),
                _ms(delivered.p99 if delivered else None),
            ]
        )
    return rows


_HEADERS = [
    "carrier",
    "submitted",
    "delivered",
    "failed perm",
    "failed trans",
    "rejected",
    "expired",
    "pending",
    "rate",
    "p50",
    "p90",
    "p99",
]


def print_report(console: Console, data: ReportData) -> None:
    """Print the per-carrier table."""
    scope = f"tenant {data.tenant}" if data.tenant else "all tenants"
    table = Table(
        title=f"Carrier performance, {scope}, {_when(data.start)} to {_when(data.end)}",
        caption=(
            "Messages count in the hour of their first submission; rate is delivered / final "
            "outcomes; p50-p99 are latencies from submission to delivery."
        ),
    )
    for index, header in enumerate(_HEADERS):
        table.add_column(header, justify="left" if index == 0 else "right")
    for row in _rows(data):
        table.add_row(*row)
    console.print(table)


# --------------------------------------------------------------------- HTML


def _svg(figure: object) -> str:
    buffer = io.StringIO()
    # No date in the metadata, so the same data gives the same page.
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})  # type: ignore[attr-defined]
    text = buffer.getvalue()
    # Drop the XML prolog and DOCTYPE: the SVG is embedded in HTML.
    return text[text.index("<svg") :]


def _charts(data: ReportData) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    # Text stays text in the SVG, so carrier names are searchable in the page.
    matplotlib.rcParams["svg.fonttype"] = "none"
    return {
        "rate": _rate_chart(data),
        "latency": _latency_chart(data),
        "causes": _causes_chart(data),
    }


def _rate_chart(data: ReportData) -> str:
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 3.6))
    series: dict[str, list[tuple[datetime, float]]] = {}
    for group in data.over_time:
        rate = group.delivery_rate
        if rate is not None and group.key.period_start is not None:
            when = datetime.fromtimestamp(group.key.period_start, UTC)
            series.setdefault(group.key.carrier or "", []).append((when, rate * 100))
    for carrier, points in sorted(series.items()):
        points.sort()
        # matplotlib plots datetimes, although its stubs accept only numbers.
        times: Any = [p[0] for p in points]
        axes.plot(times, [p[1] for p in points], marker="o", label=carrier)
    limits: Any = (
        datetime.fromtimestamp(data.start, UTC),
        datetime.fromtimestamp(data.end, UTC),
    )
    axes.set_xlim(*limits)
    axes.set_ylabel("delivered / final outcomes (%)")
    axes.set_xlabel(f"UTC {data.period} of first submission")
    axes.set_ylim(0, 105)
    axes.grid(alpha=0.3)
    if series:
        axes.legend(loc="lower left", fontsize="small")
    figure.autofmt_xdate()
    svg = _svg(figure)
    plt.close(figure)
    return svg


def _latency_chart(data: ReportData) -> str:
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 3.6))
    carriers = [g.key.carrier or "" for g in data.latencies]
    width = 0.25
    for offset, label in enumerate(("p50", "p90", "p99")):
        values = []
        for group in data.latencies:
            metric = next(m for m in group.metrics if m.metric == "submit_to_delivered")
            value: float | None = getattr(metric, label)
            values.append(0.0 if value is None else value / 1000)
        positions = [i + (offset - 1) * width for i in range(len(carriers))]
        axes.bar(positions, values, width, label=label)
    axes.set_xticks(range(len(carriers)), carriers)
    axes.set_ylabel("submit to delivered (s)")
    axes.grid(axis="y", alpha=0.3)
    if carriers:
        axes.legend(fontsize="small")
    svg = _svg(figure)
    plt.close(figure)
    return svg


def _causes_chart(data: ReportData) -> str:
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 3.6))
    top = data.causes[:12]
    if not top:
        axes.text(0.5, 0.5, "no failed outcomes in this range", ha="center", va="center")
        axes.set_axis_off()
    labels = [
        f"{c.status} {c.error_code or '(no code)'} {'perm.' if c.permanent else 'trans.'}"
        for c in top
    ]
    axes.barh(range(len(top)), [c.count for c in top], color="#c0504d")
    axes.set_yticks(range(len(top)), labels)
    axes.invert_yaxis()
    axes.set_xlabel("messages")
    axes.grid(axis="x", alpha=0.3)
    svg = _svg(figure)
    plt.close(figure)
    return svg


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f0f0; }
figure { margin: 1em 0; }
figcaption { font-weight: bold; margin-bottom: 0.5em; }
"""


def render_html(data: ReportData) -> str:
    """Return the report as one self-contained HTML page."""
    charts = _charts(data)
    scope = f"tenant {data.tenant}" if data.tenant else "all tenants"
    title = f"Carrier report, {scope}"
    header = "".join(f"<th>{html.escape(h)}</th>" for h in _HEADERS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row in _rows(data)
    )
    causes = "".join(
        f"<tr><td>{html.escape(c.status)}</td><td>{html.escape(c.error_code or '-')}</td>"
        f"<td>{'permanent' if c.permanent else 'transient'}</td><td>{c.count}</td></tr>"
        for c in data.causes
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p>{_when(data.start)} to {_when(data.end)}. Messages count in the UTC hour of their first
submission; a message's outcome is credited to the carrier of the attempt that produced it.</p>
<h2>Per carrier</h2>
<p>Rate is delivered / final outcomes; p50, p90 and p99 are latencies from an attempt's
submission to its delivery.</p>
<table id="carriers"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>
<figure id="delivery-rate"><figcaption>Delivery rate per carrier</figcaption>
{charts["rate"]}</figure>
<figure id="latency"><figcaption>Latency from submission to delivery</figcaption>
{charts["latency"]}</figure>
<figure id="failure-causes"><figcaption>Failure causes</figcaption>{charts["causes"]}</figure>
<table id="causes"><thead><tr><th>status</th><th>error code</th><th>class</th><th>messages</th>
</tr></thead><tbody>{causes}</tbody></table>
</body>
</html>
"""
