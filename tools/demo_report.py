"""The demo's printed report."""

from __future__ import annotations

from demo_watch import Summary

# --------------------------------------------------------------------------------------
# The report


def _s(v: float | None, unit: str = "s") -> str:
    return "n/a" if v is None else f"{v:g} {unit}".rstrip()


def report_lines(s: Summary) -> list[str]:
    lines = [
        f"messages published (publish returned)  {s.published}  "
        f"(QoS 1: {s.published_q1}, QoS 2: {s.published_q2})",
        f"delivered (seen by the observer)       {s.delivered}",
        f"lost (published, never delivered)      {s.lost}",
        f"duplicates at QoS 2                    {s.duplicates_q2}",
        f"duplicates at QoS 1 (allowed)          {s.duplicates_q1}",
        f"order kept per QoS level               "
        f"{'yes' if not s.order_violations else f'no: {s.order_violations} out of order'}",
        f"longest outage ridden through          {s.longest_outage_s:g} s "
        f"(node's own count, power cuts apart: {s.longest_outage_node_s:g} s)",
        f"half-open detection                    {_s(s.halfopen_detect_s)} with keepalive "
        f"{s.keepalive_s} s ({_s(s.halfopen_ratio, 'x')} keepalive; bound 1.5 x)",
        f"link return to backlog delivered       {_s(s.link_return_to_delivered_s)} "
        f"({s.drain_backlog} readings queued in a {s.drain_fault}; the link was up "
        f"{_s(s.drain_reconnect_s)} after the network returned)",
        f"delivery rate while draining           {_s(s.drain_rate_per_s, 'msg/s')}",
        f"power cuts / boots                     {s.power_cuts} / {s.boots}",
    ]
    if s.delivered_unaccepted:
        lines.append(f"delivered, publish cut short by power  {s.delivered_unaccepted} "
                     "(not counted as published)")
    if s.reused_numbers:
        lines.append(f"reading numbers reused after a cut     {s.reused_numbers} "
                     "(new boot number, so no false duplicate)")
    lines.append(f"readings not taken, loop held          {s.skipped} (longest publish() or "
                 f"check_msg() call: {s.longest_block_ms} ms)")
    if s.store_reports:
        lines.append(f"store reports at boot                  {len(s.store_reports)} "
                     f"(e.g. {s.store_reports[0]})")
    if s.refused:
        lines.append(f"refused by publish (queue full)        {s.refused}")
    if s.heap_free_after_setup is not None:
        lines.append(f"node heap free                         {s.heap_free_after_setup} bytes "
                     f"after setup, {s.heap_free_min} at least (ESP32-sized heap)")
    return lines


def fault_table(s: Summary) -> list[str]:
    out = [f"{'t':>6}  {'fault':<30} {'held':>5} {'detect':>7} {'back':>6} "
           f"{'backlog':>7} {'drain':>6} {'msg/s':>6} {'call':>6}"]
    for f in s.faults:
        held = (f["end"] - f["start"]) if f["end"] is not None else 0.0
        detect = "rode" if f["rode_through"] else _n(f["detect_s"])
        if f["already_down"]:
            detect = "was down"
        elif f["kind"] == "power":
            detect = "cut"
        if f["inside"]:
            detect = "inside"
        out.append(
            f"{f['start']:6.1f}  {f['label']:<30} {held:5.1f} {detect:>7} "
            f"{_n(f['reconnect_s']):>6} "
            + (f"{'(cut short by the power cut)':>21}" if f["drain_cut"] else
               f"{f['backlog']:>7} {_n(f['drain_s']):>6} {_n(f['drain_rate']):>6}")
            + f" {_n(f['call_ms']):>6}"
        )
    return out


def _n(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)


def print_report(s: Summary) -> None:
    print()
    print("Faults (seconds; detect: fault start to link down; back: network back to link up;")
    print("        drain: link up to backlog delivered; call: the node's longest publish() or")
    print("        check_msg() call in ms, from the fault's start to the next fault)")
    for line in fault_table(s):
        print("  " + line)
    print()
    print("Report")
    for line in report_lines(s):
        print("  " + line)
    print()
    print(f"timeline picture: {s.timeline}")
    if s.problems:
        print("FAILED:")
        for p in s.problems:
            print("  - " + p)
    else:
        print("PASS: nothing lost, no QoS 2 duplicates")
