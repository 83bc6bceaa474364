"""Published numbers as package data: every file loads, cites its paper, and the numbers agree
with each other where the paper prints one value twice."""

import math

import pytest

from advfeatures import published
from advfeatures.reporting import attacks, bottleneck, ilyas


@pytest.mark.parametrize("pid", published.PAPERS)
def test_every_paper_has_a_full_citation(pid):
    p = published.paper(pid)
    assert p.authors and p.title and p.venue and p.url.startswith("https://")
    assert str(p.year) in p.citation and p.title.split()[0] in p.citation
    df = published.numbers(pid)
    assert set(df["paper"]) <= {pid} and set(df["citation"]) <= {p.citation}
    assert df["value"].between(0, 100).all()


def test_kim_tables_are_complete_and_consistent():
    df = published.numbers("kim2021")
    counts = df.groupby("source").size().to_dict()
    # 3 datasets x 2 archs x (T1: 4 inputs x 3 cols; T2: 3 attacks; T3: 3 models x 8; T4: 3 models x 5)
    assert counts == {"Table 1": 72, "Table 2": 18, "Table 3": 144, "Table 4": 90}
    t3 = df[df["source"] == "Table 3"].set_index(["dataset", "arch", "model", "column"])["value"]
    t4 = df[df["source"] == "Table 4"].set_index(["dataset", "arch", "model", "column"])["value"]
    # Table 4's G_nr max column is Table 3's NRF column
    for (ds, arch, model, col), v in t4.items():
        if col == "G_nr max":
            assert t3[(ds, arch, model, "NRF")] == v
    # Table 1's clean Int. accuracy (ADV) is Table 3's clean accuracy, rounded
    t1 = df[(df["source"] == "Table 1") & (df["row"] == "Clean") & (df["column"] == "Int. Acc")]
    for r in t1.itertuples():
        assert abs(t3[(r.dataset, r.arch, "ADV", "Clean")] - r.value) <= 0.05 + 1e-9


def test_reporting_reads_the_data_files():
    assert attacks.PUBLISHED_TABLE3[("cifar10", "VGG-16")]["pgd_linf"]["NRF"] == published.value(
        "kim2021", source="Table 3", dataset="cifar10", arch="VGG-16", model="ADV", column="NRF")
    assert attacks.PUBLISHED_TABLE4[("svhn", "WRN-28-10")]["mart"][("robust", False)] == 91.5
    assert bottleneck.published_table1("svhn", "vgg16")["pgd"] == (48.92, 97.91, 32.18)
    assert bottleneck.published_table1("cifar10", "lenet5") == {}
    assert bottleneck.published_table2("cifar10", "vgg16") == {"fgsm": 92.78, "pgd": 93.43, "cw": 93.72}
    assert ilyas.PUBLISHED["d_nr"] == (88.0, 0.0)
    assert ilyas.PUBLISHED["d_det"][0] == 43.7 and math.isnan(ilyas.PUBLISHED["d_det"][1])
    approx = published.numbers("ilyas2019", source="Figure 2(b)")
    assert approx["approximate"].all()


def test_lookup_errors_name_the_problem():
    with pytest.raises(KeyError, match="known: ilyas2019"):
        published.numbers("nope2020")
    with pytest.raises(KeyError, match="no column"):
        published.numbers("kim2021", colour="red")
    with pytest.raises(ValueError, match="add keys"):
        published.value("kim2021", source="Table 3")
    assert math.isnan(published.value("kim2021", source="Table 9"))


def test_citation_file_lists_the_three_papers():
    from pathlib import Path

    import yaml

    cff = yaml.safe_load((Path(__file__).resolve().parents[1] / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["license"] == "MIT"
    refs = {(" ".join(r["title"].split()), int(r["year"])) for r in cff["references"]}
    assert refs == {(published.paper(p).title, published.paper(p).year) for p in published.PAPERS}
