"""The demo's timeline picture: one self-contained HTML page with an inline SVG.

Faults are shaded bands across the plot, the node's link state a strip (up, down, power
off), published and delivered readings rows of ticks (QoS 1 and QoS 2 apart, duplicates in
red), and the node's queue depth (accepted, not yet acknowledged) a line below. The
report's lines follow the picture. No scripts, no external files: it opens anywhere.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

W = 1120  # SVG width
LEFT = 118  # room for the row labels
RIGHT = 16
PLOT = W - LEFT - RIGHT

COLOURS = {
    "reset": "#f4a261",
    "blackhole": "#6c757d",
    "wifi": "#4dabf7",
    "broker": "#b197fc",
    "stall": "#ffd43b",
    "power": "#e03131",
}


@dataclass
class Data:
    seconds: float
    faults: Sequence[tuple[str, str, float, float]]  # (label, kind, start, end)
    kills: Sequence[float]
    boots: Sequence[float]
    link: Sequence[tuple[float, bool]]  # (t, up) changes
    queue: Sequence[tuple[float, int]]  # (t, queued)
    accepted: Sequence[tuple[float, int]]  # (t, qos)
    delivered: Sequence[tuple[float, int, bool]]  # (t, qos, a repeat delivery)
    keepalive: int
    stopped: float | None = None  # the node ended (after draining)


def _x(t: float, span: float) -> float:
    return LEFT + PLOT * max(0.0, min(t, span)) / span


def _ticks(ts: Sequence[float], span: float, y0: float, y1: float) -> str:
    # one path for a row of ticks: small and quick to draw
    return "".join(f"M{_x(t, span):.1f} {y0}V{y1}" for t in ts)


def _link_segments(d: Data, span: float) -> list[tuple[float, float, str]]:
    # (start, end, state) with state up, down or off; off from a kill to the next boot
    changes: list[tuple[float, str]] = [(t, "up" if up else "down") for t, up in d.link]
    for k in d.kills:
        changes.append((k, "off"))
        boot = next((b for b in d.boots if b >= k), None)
        if boot is not None:
            changes.append((boot, "down"))
    if d.stopped is not None:
        changes = [c for c in changes if c[0] < d.stopped] + [(d.stopped, "off")]
    changes.sort(key=lambda c: c[0])
    segs = []
    state, since = "down", 0.0
    for t, new in changes:
        if new == state:
            continue
        if state == "off" and new == "up":
            continue  # a stale line from before the kill
        segs.append((since, t, state))
        state, since = new, t
    segs.append((since, span, state))
    return [s for s in segs if s[1] > s[0]]


def svg(d: Data) -> str:
    span = max(d.seconds, 1.0)
    rows = {"link": 56, "pub": 86, "q1": 116, "q2": 140}
    qtop, qbot = 178, 318
    height = qbot + 44
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" '
        f'viewBox="0 0 {W} {height}" font-family="system-ui, sans-serif" font-size="12">',
        f'<rect x="0" y="0" width="{W}" height="{height}" fill="#fff"/>',
    ]
    # fault bands, labels staggered so that neighbours do not overlap
    for i, (label, kind, a, b) in enumerate(d.faults):
        x0 = _x(a, span)
        x1 = max(_x(b, span), x0 + 2.5)
        col = COLOURS.get(kind, "#adb5bd")
        out.append(
            f'<rect x="{x0:.1f}" y="30" width="{x1 - x0:.1f}" height="{qbot - 30}" '
            f'fill="{col}" fill-opacity="0.28"><title>{html.escape(label)}: '
            f"{a:.1f}-{b:.1f} s</title></rect>"
        )
        y = 14 if i % 2 == 0 else 26
        out.append(
            f'<text x="{x0:.1f}" y="{y}" fill="{col}" font-weight="600" '
            f'style="paint-order:stroke" stroke="#fff" stroke-width="3">'
            f"{html.escape(label)}</text>"
        )
    # row labels
    labels = {
        "link": "link",
        "pub": "published",
        "q1": "delivered QoS 1",
        "q2": "delivered QoS 2",
    }
    for key, y in rows.items():
        out.append(f'<text x="{LEFT - 8}" y="{y + 4}" text-anchor="end">{labels[key]}</text>')
    # link strip
    fills = {"up": "#2f9e44", "down": "#e03131", "off": "#343a40"}
    for a, b, state in _link_segments(d, span):
        x0, x1 = _x(a, span), _x(b, span)
        out.append(
            f'<rect x="{x0:.1f}" y="{rows["link"] - 7}" width="{max(x1 - x0, 0.8):.1f}" '
            f'height="14" fill="{fills[state]}"><title>{state}: {a:.1f}-{b:.1f} s</title></rect>'
        )
    # published and delivered ticks
    y = rows["pub"]
    for q, col in ((1, "#1c7ed6"), (2, "#7048e8")):
        ts = [t for t, qq in d.accepted if qq == q]
        y0, y1 = (y - 9, y) if q == 1 else (y, y + 9)
        out.append(f'<path d="{_ticks(ts, span, y0, y1)}" stroke="{col}" stroke-width="1"/>')
    for q, key in ((1, "q1"), (2, "q2")):
        y = rows[key]
        first = [t for t, qq, dup in d.delivered if qq == q and not dup]
        dups = [t for t, qq, dup in d.delivered if qq == q and dup]
        out.append(
            f'<path d="{_ticks(first, span, y - 8, y + 8)}" stroke="#2b8a3e" stroke-width="1"/>'
        )
        if dups:
            out.append(
                f'<path d="{_ticks(dups, span, y - 11, y + 11)}" stroke="#e03131" '
                f'stroke-width="2"/>'
            )
    # power cuts
    for k in d.kills:
        x = _x(k, span)
        out.append(
            f'<line x1="{x:.1f}" y1="30" x2="{x:.1f}" y2="{qbot}" stroke="#c92a2a" '
            f'stroke-width="2" stroke-dasharray="4 3"/>'
        )
    # queue depth
    qmax = max([q for _, q in d.queue] + [10])
    step = 10 if qmax <= 60 else 25 if qmax <= 150 else 50 if qmax <= 300 else 100
    qmax = ((qmax + step - 1) // step) * step

    def qy(q: float) -> float:
        return qbot - (qbot - qtop) * q / qmax

    out.append(f'<text x="{LEFT - 40}" y="{(qtop + qbot) / 2 + 4}" text-anchor="end">'
               f"queued</text>")
    for v in range(0, qmax + 1, step):
        yy = qy(v)
        out.append(
            f'<line x1="{LEFT}" y1="{yy:.1f}" x2="{W - RIGHT}" y2="{yy:.1f}" stroke="#dee2e6"/>'
        )
        out.append(f'<text x="{LEFT - 8}" y="{yy + 4:.1f}" text-anchor="end">{v}</text>')
    if d.queue:
        pts = []
        prev_q = 0
        for t, q in sorted(d.queue):
            x = _x(t, span)
            pts.append(f"{x:.1f},{qy(prev_q):.1f} {x:.1f},{qy(q):.1f}")
            prev_q = q
        out.append(
            f'<polyline points="{" ".join(pts)}" fill="none" stroke="#e8590c" '
            f'stroke-width="1.5"/>'
        )
    # time axis
    tick = 5 if span <= 100 else 10 if span <= 200 else 30
    out.append(
        f'<line x1="{LEFT}" y1="{qbot}" x2="{W - RIGHT}" y2="{qbot}" stroke="#495057"/>'
    )
    t = 0
    while t <= span:
        x = _x(t, span)
        out.append(f'<line x1="{x:.1f}" y1="{qbot}" x2="{x:.1f}" y2="{qbot + 5}" '
                   f'stroke="#495057"/>')
        out.append(f'<text x="{x:.1f}" y="{qbot + 18}" text-anchor="middle">{t}</text>')
        t += tick
    out.append(
        f'<text x="{LEFT + PLOT / 2}" y="{qbot + 36}" text-anchor="middle">'
        f"seconds since the node first started</text>"
    )
    out.append("</svg>")
    return "\n".join(out)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #212529; }
h1 { font-size: 20px; margin: 0 0 4px; }
p { margin: 4px 0 12px; max-width: 1100px; }
pre { background: #f8f9fa; padding: 10px 14px; border-radius: 6px; display: inline-block; }
.legend span { display: inline-block; margin-right: 16px; }
.sw { display: inline-block; width: 14px; height: 10px; margin-right: 5px;
      vertical-align: middle; }
"""


def page(d: Data, report: Sequence[str], faults: Sequence[str] = ()) -> str:
    legend = "".join(
        f'<span><i class="sw" style="background:{c};opacity:.5"></i>{k}</span>'
        for k, c in COLOURS.items()
    )
    legend += (
        '<span><i class="sw" style="background:#2f9e44"></i>link up</span>'
        '<span><i class="sw" style="background:#e03131"></i>link down</span>'
        '<span><i class="sw" style="background:#343a40"></i>power off</span>'
        '<span><i class="sw" style="background:#e8590c;height:2px"></i>queue depth</span>'
        '<span><i class="sw" style="background:#e03131;width:3px"></i>repeat delivery</span>'
    )
    body = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>mqttsession demo: timeline</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>A sensor node riding through link faults and power cuts</h1>",
        "<p>The virtual node (MicroPython unix port, littlefs flash, ESP32-sized heap) "
        "publishes a reading every 100 ms, QoS 1 and QoS 2 alternately, through the fault rig "
        f"to mosquitto; keepalive {d.keepalive} s. Shaded bands are faults, dashed red lines "
        "power cuts. Ticks: readings published (upper half QoS 1, lower half QoS 2) and "
        "delivered to the observer.</p>",
        f'<p class="legend">{legend}</p>',
        svg(d),
        "<h2>Report</h2>",
        "<pre>" + html.escape("\n".join(report)) + "</pre>",
    ]
    if faults:
        body += ["<h2>Faults</h2>", "<pre>" + html.escape("\n".join(faults)) + "</pre>"]
    body.append("</body></html>")
    return "\n".join(body) + "\n"


def write(path: Path, d: Data, report: Sequence[str], faults: Sequence[str] = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page(d, report, faults), encoding="utf-8")
