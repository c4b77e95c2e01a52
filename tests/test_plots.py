"""`plots.finish`, the one ending of every figure function: layout, save at the caller's dpi, show once."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from medvid_core import plots  # noqa: E402


def _fig():
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [0, 1])
    return fig


@pytest.mark.parametrize("dpi", [100, 110])
def test_saves_at_the_callers_dpi(tmp_path, dpi):
    fig = _fig()
    assert plots.finish(fig, tmp_path / "f.png", dpi=dpi, tight_bbox=False) is fig
    assert Image.open(tmp_path / "f.png").size == (2 * dpi, 1 * dpi)  # the whole canvas, no bbox cropping
    plots.finish(fig, tmp_path / "tight.png", dpi=dpi)
    w, h = Image.open(tmp_path / "tight.png").size
    assert (w, h) != (2 * dpi, dpi) and w <= 2 * dpi + 10  # bbox_inches="tight" trims (or pads) the canvas
    plt.close(fig)


def test_show_closes_the_figure_and_returns_none(tmp_path):
    fig = _fig()
    assert plots.finish(fig, None, show=True) is None
    assert not plt.fignum_exists(fig.number)
    assert not (tmp_path / "none.png").exists()


def test_no_study_keeps_a_private_copy():
    import inspect

    import importlib
    import pkgutil

    import medvid_core.studies

    rooms = [importlib.import_module(f"medvid_core.studies.{m.name}") for m in pkgutil.iter_modules(medvid_core.studies.__path__)]
    assert len(rooms) >= 5
    for mod in rooms:
        src = inspect.getsource(mod)
        assert "def _finish" not in src and ".savefig(" not in src, mod.__name__
