"""Numbers as the pages show them."""
from __future__ import annotations

import math


def format_number(v) -> str:
    """A measured value for a table cell or tooltip: 4 significant digits at least, never fewer
    integer digits than the value has (9999.39 -> "9,999.39", not "9999"; 10900.04 -> "10,900.04",
    not "1.09e+04"), scientific only for very large or tiny magnitudes."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(x):
        return "NA"
    if math.isinf(x) or x == 0:
        return f"{x:g}"
    mag = abs(x)
    if mag >= 1e9 or mag < 1e-4:
        return f"{x:.4g}"
    decimals = min(8, max(2, 3 - math.floor(math.log10(mag))))
    text = f"{x:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
