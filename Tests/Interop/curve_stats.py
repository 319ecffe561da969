"""The arithmetic of the curve comparison (curve_vs_nemo.py), in plain Python so that
`make test` can check it without NeMo: per validation step, each system's mean over seeds and
its seed spread, whether nest-train's mean lies within NeMo's spread, and the SVG picture.

Runs are given as {seed: {step: value}}. The spread of a system at a step is the range of its
seeds' values there (min to max), as the issue asks ("within NeMo's spread"); the sample
standard deviation is reported beside it.
"""

import math


def summarize(values):
    """Mean, min, max and sample standard deviation (0 for one value) of a list of numbers."""
    if not values:
        raise ValueError("no values to summarize")
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "lo": min(values), "hi": max(values), "sd": sd, "n": n}


def common_steps(*systems):
    """The steps every seed of every system has a value for, in order."""
    steps = None
    for runs in systems:
        for curve in runs.values():
            steps = set(curve) if steps is None else steps & set(curve)
    return sorted(steps or [])


def compare(nest, nemo):
    """One row per common step: both systems' summaries and whether nest-train's mean lies in
    NeMo's [min, max] over seeds."""
    rows = []
    for step in common_steps(nest, nemo):
        a = summarize([curve[step] for curve in nest.values()])
        b = summarize([curve[step] for curve in nemo.values()])
        rows.append({"step": step, "nest": a, "nemo": b, "within": b["lo"] <= a["mean"] <= b["hi"]})
    return rows


def markdown_table(rows, metric, digits=4):
    """A Markdown table of `rows` (from `compare`) for one metric."""
    f = "{:.%df}" % digits
    lines = [f"| step | nest-train mean (min–max) | NeMo mean (min–max) | nest-train mean within NeMo's spread |",
             "| ---: | --- | --- | --- |"]
    for r in rows:
        a, b = r["nest"], r["nemo"]
        lines.append(f"| {r['step']} | {f.format(a['mean'])} ({f.format(a['lo'])}–{f.format(a['hi'])}) | "
                     f"{f.format(b['mean'])} ({f.format(b['lo'])}–{f.format(b['hi'])}) | {'yes' if r['within'] else 'no'} |")
    return "\n".join(lines)


def _polyline(points, color, width, opacity=1.0):
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f'<polyline fill="none" stroke="{color}" stroke-width="{width}" stroke-opacity="{opacity}" points="{path}"/>'


def svg(panels, title):
    """An SVG of side-by-side panels. Each panel: {"title", "systems": [(name, color, runs)],
    "baseline": optional (label, {step: value})}; every seed a thin line, each system's mean a
    thick one."""
    pw, ph, margin = 420, 300, 50
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{pw * len(panels)}" height="{ph + 56}" font-family="sans-serif" font-size="11">',
           f'<text x="10" y="16" font-size="13">{title}</text>']
    for p, panel in enumerate(panels):
        x0 = p * pw
        values, steps = [], set()
        for _, _, runs in panel["systems"]:
            for curve in runs.values():
                values += list(curve.values())
                steps |= set(curve)
        if panel.get("baseline"):
            values += list(panel["baseline"][1].values())
        lo, hi = min(values), max(values)
        if hi == lo:
            hi = lo + 1
        s_lo, s_hi = min(steps), max(steps)
        span = max(s_hi - s_lo, 1)

        def at(step, v):
            return (x0 + margin + (step - s_lo) / span * (pw - 2 * margin),
                    30 + (ph - margin) - (v - lo) / (hi - lo) * (ph - margin - 20))

        out.append(f'<text x="{x0 + margin}" y="34">{panel["title"]}</text>')
        out.append(f'<line x1="{x0 + margin}" y1="{30 + ph - margin}" x2="{x0 + pw - margin}" y2="{30 + ph - margin}" stroke="black"/>')
        out.append(f'<line x1="{x0 + margin}" y1="50" x2="{x0 + margin}" y2="{30 + ph - margin}" stroke="black"/>')
        for v in (lo, (lo + hi) / 2, hi):
            _, y = at(s_lo, v)
            out.append(f'<text x="{x0 + 4}" y="{y + 4:.1f}">{v:.3f}</text>')
        for step in sorted(steps):
            x, _ = at(step, lo)
            out.append(f'<text x="{x - 8:.1f}" y="{30 + ph - margin + 14}">{step}</text>')
        if panel.get("baseline"):
            label, curve = panel["baseline"]
            out.append(_polyline([at(s, curve[s]) for s in sorted(curve)], "gray", 1.5, 0.8).replace("/>", ' stroke-dasharray="4 3"/>'))
            out.append(f'<text x="{x0 + margin}" y="{ph + 50}" fill="gray">- - {label}</text>')
        for k, (name, color, runs) in enumerate(panel["systems"]):
            for curve in runs.values():
                out.append(_polyline([at(s, curve[s]) for s in sorted(curve)], color, 0.8, 0.6))
            mean_steps = common_steps(runs)
            mean = {s: sum(c[s] for c in runs.values()) / len(runs) for s in mean_steps}
            out.append(_polyline([at(s, mean[s]) for s in mean_steps], color, 2.5))
            out.append(f'<text x="{x0 + margin + 150 * k}" y="{ph + 34}" fill="{color}">{name} ({len(runs)} seeds)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
