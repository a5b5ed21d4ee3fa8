"""Numbers and user text as the pages show them.

    format_number(v)   a measured value for a table cell or tooltip
    plain(text)        user text (file, column, category, run names; messages quoting them) for anything
                       Streamlit reads as Markdown: shown exactly as typed, never as Markdown or HTML
    chart_text(text)   the same for a plotly title, axis, legend, tick or hover label
"""
from __future__ import annotations

import html
import math
import re
import string


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


# CommonMark lets a backslash escape every ASCII punctuation mark, and an escaped mark is always literal
# text: no emphasis, code, link, image, heading, list, table, HTML tag, entity, math ($) or Streamlit
# directive (:red[...], :material/icon:) can start from it
_MARKS = frozenset(string.punctuation)
# GitHub's autolinks (http://..., www...., a@b.c) are found in the text after escapes are read, so
# an escape does not stop them: an invisible word joiner after ':' and '@' and inside 'www.' does
WORD_JOINER = "\u2060"
_WWW = re.compile(r"(www)(?=\\\.)", re.IGNORECASE)


def plain(text) -> str:
    """``text`` for ``st.title/markdown/caption/info/warning/error/success``, widget labels, radio options,
    tab labels and progress text (all read as Markdown, ``unsafe_allow_html`` or not): it shows exactly
    as typed. Not for selectbox/multiselect options, ``st.text``, ``st.code`` or table cells, which show
    text as it is (an escape there would show its backslash)."""
    out = []
    for ch in str(text):
        out.append("\\" + ch if ch in _MARKS else ch)
        if ch in ":@":
            out.append(WORD_JOINER)
    return _WWW.sub(r"\1" + WORD_JOINER, "".join(out))


def chart_text(text) -> str:
    """User text for a plotly title, legend, tick, axis or hover label: plotly reads a little HTML
    (``<b>``, ``<br>``, ``<a href>``, entities) and ``%{...}`` in hover templates, so both are defused."""
    return html.escape(str(text), quote=False).replace("%{", "%\u200b{")
