"""A spectrum drawn as inline SVG on the server: axes, ticks and units, no JavaScript and nothing fetched.

The item page shows what ``ingest/views.py`` kept of a spectrum (at most a thousand points), so the plot is a
few kilobytes of markup that scales with the page, prints, and reads to a screen reader as its caption.
"""

from __future__ import annotations

import math

import markupsafe

WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 12, 44  # margins for the tick labels and axis titles
TICKS = 6  # about this many ticks on each axis


def nice_ticks(low: float, high: float, count: int = TICKS) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    raw = (high - low) / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _label(value: float) -> str:
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.1e}"
    return f"{value:,.6g}"


def axis_title(label: str, unit: str) -> str:
    """'energy loss (eV)'; a count of channels has no unit."""
    return f"{label} ({unit})" if unit else label


def spectrum_svg(spectrum: dict) -> markupsafe.Markup:
    """The spectrum as an ``<svg>`` element: a line over ticked axes titled with their units."""
    x, y = spectrum["x"], spectrum["y"]
    x_low, x_high = min(x), max(x)
    y_low, y_high = min(0.0, min(y)), max(y)
    if y_high <= y_low:
        y_high = y_low + 1
    if x_high <= x_low:
        x_high = x_low + 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(value: float) -> float:
        return LEFT + (value - x_low) / (x_high - x_low) * plot_w

    def py(value: float) -> float:
        return TOP + plot_h - (value - y_low) / (y_high - y_low) * plot_h

    x_title = axis_title(spectrum.get("x_label") or "channel", spectrum.get("x_unit") or "")
    y_title = spectrum.get("y_label") or "counts"  # counts are their own unit; a profile's intensity has none
    summed = spectrum.get("summed_over") or 1
    caption = f"{y_title} against {x_title}, {len(x):,} points"
    if summed > 1:
        caption += f", summed over {summed:,} scan positions"
    points = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(x, y))
    parts = [
        f'<svg class="scisearch-spectrum" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{markupsafe.escape(caption)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{markupsafe.escape(caption)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="scisearch-plot-area"/>',
    ]
    for tick in nice_ticks(x_low, x_high):
        at = px(tick)
        parts.append(f'<line x1="{at:.1f}" y1="{TOP + plot_h}" x2="{at:.1f}" y2="{TOP + plot_h + 5}" class="tick"/>')
        parts.append(f'<text x="{at:.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">{_label(tick)}</text>')
    for tick in nice_ticks(y_low, y_high, 5):
        at = py(tick)
        parts.append(f'<line x1="{LEFT - 5}" y1="{at:.1f}" x2="{LEFT + plot_w}" y2="{at:.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 8}" y="{at + 4:.1f}" text-anchor="end">{_label(tick)}</text>')
    parts += [
        f'<polyline points="{points}" class="scisearch-plot-line"/>',
        f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 6}" text-anchor="middle" class="axis-title">'
        f"{markupsafe.escape(x_title)}</text>",
        f'<text x="14" y="{TOP + plot_h / 2:.0f}" text-anchor="middle" class="axis-title" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2:.0f})">{markupsafe.escape(y_title)}</text>',
        "</svg>",
    ]
    return markupsafe.Markup("".join(parts))
