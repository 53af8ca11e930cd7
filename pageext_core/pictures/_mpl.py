"""matplotlib, set up once for byte-identical pictures: Agg, the bundled DejaVu Sans, no dates or tool names.

Imported only when a picture is drawn, so sessions without pictures and
``pageext plugins`` never pay for matplotlib.
"""
from __future__ import annotations

import io
from typing import Any

DPI = 100
SVG_SALT = "pageext"  # fixed ids in SVG output


class PicturesUnavailable(RuntimeError):
    """matplotlib is not installed: pictures need the ``pictures`` extra."""


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend with fixed fonts and settings (imported here, on first use)."""
    try:
        import matplotlib
    except ImportError:
        raise PicturesUnavailable("pictures need matplotlib: pip install 'pageext-core[pictures]' "
                                  "(make install does)") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    matplotlib.rcParams.update({
        "font.family": "DejaVu Sans",  # shipped inside matplotlib: the same glyphs on every machine
        "svg.hashsalt": SVG_SALT,
        "svg.fonttype": "path",  # text as paths: no font is fetched by a browser
        "path.simplify": True,
        "axes.unicode_minus": True,
        "figure.max_open_warning": 0,
    })
    return plt


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG without a Software tag or dates, then closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    finally:
        plt.close(fig)
    return buf.getvalue()


def svg_bytes(fig: Any) -> bytes:
    """The figure as SVG without a date or creator, then closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    finally:
        plt.close(fig)
    return buf.getvalue()
