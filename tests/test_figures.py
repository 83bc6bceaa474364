"""Figure content, checked through the data each plotting function returns and the matplotlib
objects it draws (not only that a file exists)."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from advfeatures.reporting import Claim, figures, ilyas, verdicts  # noqa: E402
from advfeatures.reporting import mutual_info as rmi  # noqa: E402


def _claims() -> pd.DataFrame:
    cl = [Claim("ilyas", "A holds", 12.0, ">", 0.0, min_effect=4, ci_low=5, ci_high=19, p_value=0.001),
          Claim("ilyas", "B fails", 20.0, ">=", 30.0, min_effect=2, ci_low=15, ci_high=25, p_value=0.001),
          Claim("ilyas", "C inconclusive", 31.0, ">=", 30.0, min_effect=2, ci_low=25, ci_high=37, p_value=0.4),
          Claim("ilyas", "D untestable", 1.0, ">", 0.0, untestable="model trained on d_det at chance")]
    df = pd.DataFrame([c.row() for c in cl])
    df["p_holm"] = [0.003, 0.003, 0.8, np.nan]  # columns added by later versions are ignored
    return df


def _texts(fig) -> str:
    return " ".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))


def test_forest_with_many_not_testable_reasons_keeps_room_for_the_plotted_rows():
    """One plotted claim and 60 distinct not-testable reasons (one claim per attack and mask):
    the axes stay above the list (the list's line height used to outgrow the figure)."""
    cl = [Claim("ilyas", "A holds", 12.0, ">", 0.0, min_effect=4, ci_low=5, ci_high=19, p_value=0.001)]
    cl += [Claim("ilyas", f"m{i}: c", 1.0, ">", 0.0, untestable=f"reason {i}") for i in range(60)]
    fig, data = figures.claims_forest(pd.DataFrame([c.row() for c in cl]), "many")
    assert len(data["not_testable_lines"]) == 60 and len(data["plotted"]) == 1


def test_forest_plots_testable_claims_coloured_by_verdict_and_lists_the_rest():
    df = _claims()
    fig, data = figures.claims_forest(df, "Ilyas")
    assert list(data["plotted"]["claim"]) == ["A holds", "B fails", "C inconclusive"]
    assert data["plotted"]["effect"].tolist() == [12.0, 20.0, 31.0]
    assert list(data["not_testable"]["claim"]) == ["D untestable"]
    assert "model trained on d_det at chance" in _texts(fig)
    dots = [ln for ln in fig.findobj(matplotlib.lines.Line2D) if ln.get_marker() == "o" and len(ln.get_xdata()) == 1]
    colours = [mcolors.to_hex(ln.get_color()).upper() for ln in dots]
    assert colours == [figures.VERDICT_COLOURS[v] for v in ("holds", "fails", "inconclusive")]
    # each row shows its threshold and interval in its own units
    axes = [ax for ax in fig.axes if ax.get_xlim() != (0.0, 1.0)]
    for ax, (lo, hi, t) in zip(axes, [(5, 19, 0), (15, 25, 30), (25, 37, 30)]):
        x0, x1 = ax.get_xlim()
        assert x0 < min(lo, t) and x1 > max(hi, t)
    matplotlib.pyplot.close(fig)


def test_forest_says_when_nothing_is_testable_and_tolerates_renamed_columns():
    df = _claims().rename(columns={"ci_low": "ci_lo", "ci_high": "ci_hi"})
    _, data = figures.claims_forest(df)
    assert data["plotted"].loc[0, "lo"] == 5
    fig, data = figures.claims_forest(df[df["verdict"] == "not testable"])
    assert data["plotted"].empty and "no testable claim" in data["notes"][0]
    assert "no testable claim on this run" in _texts(fig)


def test_verdict_overview_counts():
    _, data = figures.verdict_overview(_claims())
    assert data["counts"].loc["ilyas"].to_dict() == {"holds": 1, "fails": 1, "inconclusive": 1, "not testable": 1}


def _datasets_table(with_pub: bool) -> pd.DataFrame:
    df = pd.DataFrame({"training set": ["D (standard training)", "D_R (robust features)"], "n": [500, 500],
                       "clean acc": [95.0, 80.0], "robust acc l2": [5.0, 40.0],
                       "published clean acc": [95.3, 84.0] if with_pub else [np.nan] * 2,
                       "published robust acc l2": [4.5, 48.0] if with_pub else [np.nan] * 2})
    return verdicts.add_wilson(df, ["clean acc", "robust acc l2"], "n")


def test_ilyas_bars_heights_intervals_and_paper_marks():
    t = _datasets_table(True)
    fig, data = figures.ilyas_bars(t)
    bars = data["bars"]
    assert bars[bars["quantity"] == "clean acc"]["value"].tolist() == [95.0, 80.0]
    assert (bars["lo"] < bars["value"]).all() and (bars["hi"] > bars["value"]).all()
    heights = sorted(round(p.get_height(), 6) for p in fig.axes[0].patches)
    assert heights == sorted([95.0, 80.0, 5.0, 40.0])
    diamonds = [ln for ln in fig.axes[0].lines if ln.get_marker() == "D"]
    assert diamonds and list(diamonds[0].get_ydata()) == [95.3, 84.0]


def test_paper_vs_ours_only_where_published_and_says_so_otherwise():
    tables = {"ilyas_datasets": _datasets_table(True)}
    fig, data = figures.paper_vs_ours(figures.paper_panels(tables))
    (rows,) = [d["rows"] for d in data.values()]
    assert len(rows) == 4 and set(rows["paper"]) == {95.3, 84.0, 4.5, 48.0}
    tables = {"ilyas_datasets": _datasets_table(False)}
    fig, data = figures.paper_vs_ours(figures.paper_panels(tables), setting="mnist5k / lenet5")
    (d,) = data.values()
    assert d["rows"].empty and "no published number" in d["note"]
    assert "mnist5k / lenet5" in _texts(fig)


def test_training_curves_every_method():
    m = {meth: pd.DataFrame({"epoch": [1, 2, 3], "test_clean_acc": [0.5, 0.7, 0.8 + i / 100],
                             "test_pgd_acc": [0.1, 0.2, 0.3], "train_loss": [2.0, 1.0, 0.5]})
         for i, meth in enumerate(["standard", "pgd_linf", "trades", "mart"])}
    fig, data = figures.training_curves(m)
    c = data["curves"]
    assert set(c["method"]) == set(m) and set(c["quantity"]) == {"test_clean_acc", "test_pgd_acc", "train_loss"}
    assert c[(c["method"] == "mart") & (c["quantity"] == "test_clean_acc")]["value"].iloc[-1] == pytest.approx(83.0)
    assert len(fig.axes[0].lines) == 4


def _mi(n=64, epochs=(1, 2, 3)):
    rows = []
    for method in ("standard", "pgd_linf"):
        for e in epochs:
            for inp in ("clean", "adversarial"):
                for layer, ixt in (("conv1", math.log2(n)), ("fc", 2.0 + e / 10)):
                    rows.append({"method": method, "epoch": e, "input": inp, "n": n, "layer": layer,
                                 "estimator": "kde_upper", "accuracy": 0.8, "loss": 0.5, "I_XT": ixt, "I_TY": 1.0})
    return pd.DataFrame(rows)


def test_mi_plots_draw_the_ceiling_and_mark_saturated_layers(tmp_path):
    df = _mi()
    assert rmi.saturated_layers(df) == {"pgd_linf": ["conv1"], "standard": ["conv1"]}
    data = rmi.plot_vs_epoch(df, tmp_path / "e.png", ["standard", "pgd_linf"], num_classes=10)
    assert data["ceiling"] == 6.0 and data["saturated"]["standard"] == ["conv1"]
    data = rmi.plot_information_plane(df, tmp_path / "p.png", ["standard", "pgd_linf"], num_classes=10)
    assert data["ceiling"] == 6.0 and (tmp_path / "p.png").stat().st_size > 0


def test_transfer_figure_intervals_on_both_axes_and_too_few_points_said():
    df = pd.DataFrame({"architecture": ["a", "b"], "n": [100, 100], "test acc trained on d_det": [40.0, 50.0],
                       "test acc trained on D": [90.0, 91.0], "transfer rate": [30.0, 45.0], "transfer n": [50, 60],
                       "n D": [100, 100]})
    df = verdicts.add_wilson(df, ["test acc trained on d_det", "transfer rate"],
                             {"test acc trained on d_det": "n", "transfer rate": "transfer n"})
    fig = ilyas.transfer_figure(df, "d_det", "l2")
    bars = fig.axes[0].collections  # errorbar line collections: x and y
    assert len(bars) == 2
    assert "needs 3 or more" in _texts(fig)
