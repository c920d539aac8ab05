"""Template filters of the registry pages."""

from django import template

register = template.Library()


@register.filter
def params(value) -> str:
    """A parameter count for people: 7615616512 -> "7.6B", 671000000000 -> "671B", 124000000 -> "124M"."""
    if value in (None, ""):
        return "—"
    number = float(value)
    for size, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if number >= size:
            scaled = number / size
            return f"{scaled:.0f}{unit}" if scaled >= 100 else f"{scaled:.1f}{unit}".replace(".0" + unit, unit)
    return str(int(number))


@register.filter
def percent(value) -> str:
    """0.4321 -> "43%"."""
    if value in (None, ""):
        return "—"
    return f"{float(value) * 100:.0f}%"


@register.filter
def signed(value) -> str:
    """A delta with its sign: -2.28 -> "−2.28", 1.5 -> "+1.5"."""
    if value in (None, ""):
        return "—"
    number = float(value)
    text = f"{abs(number):.2f}".rstrip("0").rstrip(".")
    return ("+" if number > 0 else "−" if number < 0 else "±") + text


@register.filter
def bar_width(value) -> str:
    """A 0..1 fraction as a CSS percentage number ("43.2"), clamped; "0" for nothing."""
    try:
        number = min(1.0, max(0.0, float(value)))
    except (TypeError, ValueError):
        return "0"
    return f"{number * 100:.1f}"
