"""Bad input stops a job with one line and touches nothing outside the project.

Each test works in a fresh "project" folder (the working directory) beside an "outside" folder
holding files a careless job record could overwrite or delete; the outside folder is
fingerprinted (names, sizes, contents, mtimes) before and compared after.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from advfeatures import h5io
from advfeatures.attacks import autoattack as aa
from advfeatures.attacks.cw import cw_l2
from advfeatures.attacks.nrf import nrf
from advfeatures.attacks.pgd import bim, check_budget, fgsm, pgd
from advfeatures.data import imagefolder, load_dataset
from advfeatures.stages import attack as attack_stage
from advfeatures.stages import data as data_stage
from advfeatures.stages import report as report_stage
from advfeatures.stages import synthesize as synth_stage
from advfeatures.stages import train as train_stage
from advfeatures.stages.job import Files, Job, check_numbers, load_record, main, run
from advfeatures.utils import AdvFeaturesError

ROOT = Path(__file__).resolve().parents[1]


def fingerprint(folder: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(folder))] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        else:
            out[str(p.relative_to(folder)) + "/"] = ()
    return out


@pytest.fixture
def where(tmp_path, monkeypatch):
    """(project, outside): the working directory, and a folder beside it with files in it."""
    project, outside = tmp_path / "project", tmp_path / "outside"
    project.mkdir()
    outside.mkdir()
    (outside / "victim.csv").write_text("precious,data\n1,2\n")
    (outside / "weights.pt").write_bytes(b"not yours")
    (outside / "chunk_0.pt").write_bytes(b"not yours either")
    monkeypatch.chdir(project)
    before = fingerprint(outside)
    yield project, outside
    assert fingerprint(outside) == before, "a rejected job changed files outside the project"


def one_line(text: str) -> str:
    lines = [ln for ln in str(text).strip().splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{text}"
    assert lines[0].startswith("advfeatures error: "), lines[0]
    assert "Traceback" not in text
    return lines[0]


def write_record(path: Path, record: dict | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(record if isinstance(record, str) else yaml.safe_dump(record, sort_keys=False))
    return path


def attack_record(eps, *, spec_eps=None, output="results/d/a/standard/attacks/pgd.h5",
                  log="results/logs/attack/d_a_standard_pgd.log") -> dict:
    spec = {"type": "pgd", "steps": 2, "alpha": 0.01}
    if spec_eps is not None:
        spec["eps"] = spec_eps
    return {
        "rule": "attack", "threads": 1, "log": log, "wildcards": {"method": "standard"},
        "input": {"files": ["data/d.h5", "results/d/a/standard/model.pt"],
                  "names": {"data": "data/d.h5", "model": "results/d/a/standard/model.pt"}},
        "output": {"files": [output], "names": {}},
        "params": {"attack": {"name": "pgd", "spec": spec, "eps": eps, "eval_subset": 20, "batch_size": 10,
                              "nrf": {}}, "seed": 0},
    }


# ----------------------------------------------------------------------------- non-finite / negative budgets


@pytest.mark.parametrize(("eps", "shown"), [(float("nan"), "nan"), (float("inf"), "inf"), (-0.1, "-0.1")])
def test_a_bad_eps_in_a_job_record_stops_with_one_line_naming_the_key(where, eps, shown):
    project, _ = where
    rec = write_record(project / "job.yaml", attack_record(eps))
    with pytest.raises(SystemExit) as e:
        main(attack_stage.STAGES, ["--job", str(rec)])
    line = one_line(e.value.code)
    assert "params.attack.eps" in line and shown in line
    assert not (project / "results").exists(), "a rejected job made folders or files"


def test_a_bad_eps_inside_the_attack_spec_names_that_key(where):
    project, _ = where
    rec = write_record(project / "job.yaml", attack_record(0.1, spec_eps=float("nan")))
    with pytest.raises(SystemExit) as e:
        main(attack_stage.STAGES, ["--job", str(rec)])
    assert "params.attack.spec.eps" in one_line(e.value.code)


def test_yaml_nan_in_a_record_run_by_the_command_line_is_one_line_on_stderr(where):
    """The whole path a user takes: YAML's .nan in a record, ``python -m``, exit status 1."""
    project, _ = where
    text = yaml.safe_dump(attack_record(0.1), sort_keys=False).replace("eps: 0.1", "eps: .nan")
    rec = write_record(project / "job.yaml", text)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "advfeatures.stages.attack", "--job", str(rec)],
                          capture_output=True, text=True, env=env, cwd=project, timeout=300)
    assert proc.returncode == 1
    assert "params.attack.eps" in one_line(proc.stderr)
    assert not (project / "results").exists()


@pytest.mark.parametrize("key", ["lr", "epochs", "batch_size"])
def test_negative_or_nan_training_budgets_name_their_key(key):
    params = {"train": {"lr": 0.1, "epochs": 2, "batch_size": 8, "attack": {"eps": 0.3}}}
    params["train"][key] = -1
    with pytest.raises(AdvFeaturesError, match=rf"^params\.train\.{key} is -1: must be >= 0"):
        check_numbers(params)
    params["train"][key] = float("nan")
    with pytest.raises(AdvFeaturesError, match=rf"^params\.train\.{key} is nan"):
        check_numbers(params)


def test_a_bad_number_in_a_list_names_its_position():
    with pytest.raises(AdvFeaturesError, match=r"params\.sweep\.eps\[2\] is -0\.1"):
        check_numbers({"sweep": {"eps": [0.0, 0.1, -0.1]}})
    with pytest.raises(AdvFeaturesError, match=r"params\.sweep\.eps\[1\] is inf"):
        check_numbers({"sweep": {"eps": [0.0, float("inf")]}})


def test_valid_numbers_pass_and_negative_values_of_other_keys_are_left_alone():
    check_numbers({"attack": {"eps": 0.0, "alpha": 0.01, "steps": 0}, "seed": 0, "offset": -3, "flag": True})


def test_every_shipped_config_passes_the_number_checks():
    for f in [ROOT / "config.yaml", *sorted((ROOT / "presets").glob("*.yaml"))]:
        check_numbers(yaml.safe_load(f.read_text()), f.name)


class Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(12, 3)

    def forward(self, x):
        return self.fc(x.flatten(1))


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    return Linear(), torch.rand(4, 3, 2, 2, generator=g), torch.tensor([0, 1, 2, 0])


BAD = [float("nan"), float("inf"), -0.1]


@pytest.mark.parametrize("eps", BAD)
def test_pgd_refuses_a_bad_eps_instead_of_returning_nan_or_clean_images(batch, eps):
    model, x, y = batch
    for fn in (lambda: pgd(model, x, y, eps=eps, alpha=0.01, steps=3),
               lambda: pgd(model, x, y, eps=eps, alpha=0.01, steps=3, norm="l2"),
               lambda: fgsm(model, x, y, eps=eps),
               lambda: bim(model, x, y, eps=eps, alpha=0.01, steps=2)):
        with pytest.raises(AdvFeaturesError, match=r"^pgd: eps must be a finite number >= 0, got"):
            fn()


@pytest.mark.parametrize("name", ["alpha", "steps"])
def test_pgd_refuses_a_bad_step(batch, name):
    model, x, y = batch
    kw = {"eps": 0.1, "alpha": 0.01, "steps": 3, name: float("nan")}
    with pytest.raises(AdvFeaturesError, match=rf"^pgd: {name} must be"):
        pgd(model, x, y, **kw)


def test_eps_zero_is_still_the_clean_input(batch):
    model, x, y = batch
    assert torch.equal(pgd(model, x, y, eps=0.0, alpha=0.01, steps=3), x)


@pytest.mark.parametrize("eps", BAD)
def test_cw_nrf_and_autoattack_refuse_a_bad_budget(batch, eps):
    model, x, y = batch
    with pytest.raises(AdvFeaturesError, match=r"^cw: eps must be"):
        cw_l2(model, x, y, eps=eps, steps=2)
    with pytest.raises(AdvFeaturesError, match=r"^cw: c must be"):
        cw_l2(model, x, y, c=eps, steps=2)
    with pytest.raises(AdvFeaturesError, match=r"^nrf: eps must be"):
        nrf(model, x, y, torch.ones(4, 3, dtype=torch.bool), eps=eps, steps=2)
    with pytest.raises(AdvFeaturesError, match=r"^apgd_ce: eps must be"):
        aa.apgd_ce(model, x, y, eps=eps, n_iter=2)
    with pytest.raises(AdvFeaturesError, match=r"^fab: eps must be"):
        aa.fab(model, x, y, eps=eps, n_iter=2)
    with pytest.raises(AdvFeaturesError, match=r"^autoattack: eps must be"):
        aa.autoattack(model, x, y, eps=eps, n_iter=2)


def test_check_budget_names_a_non_number():
    with pytest.raises(AdvFeaturesError, match=r"^x: eps must be a number, got 'big'"):
        check_budget("x", eps="big")
    with pytest.raises(AdvFeaturesError, match=r"^x: steps must be a finite number >= 0, got True"):
        check_budget("x", steps=True)
    check_budget("x", eps=None, steps=0, alpha=np.float32(0.5))


# ----------------------------------------------------------------------------- confinement


def claims_job(tmp: Path, out: str, log: str | None = None, **params) -> Job:
    from advfeatures.reporting import Claim, write_claims

    src = tmp / "in.csv"
    write_claims([Claim("s", "c", 1.0, ">", 0.0, "")], src)
    return Job("gather_claims", input=Files([str(src)], {"claims": [str(src)]}), output=Files([out]),
               params=params, log=log)


def test_an_output_outside_the_project_is_refused_and_the_file_there_is_kept(where, capsys):
    project, outside = where
    job = claims_job(project, str(outside / "victim.csv"))
    with pytest.raises(SystemExit):
        run(report_stage.STAGES["gather_claims"], job)
    line = one_line(capsys.readouterr().err)
    assert "output" in line and str(outside / "victim.csv") in line and "--allow-outside" in line


def test_a_relative_path_climbing_out_of_the_project_is_refused(where, capsys):
    project, outside = where
    job = claims_job(project, "results/../../outside/victim.csv")
    with pytest.raises(SystemExit):
        run(report_stage.STAGES["gather_claims"], job)
    assert "outside the working directory" in one_line(capsys.readouterr().err)


def test_a_log_outside_the_project_is_refused_before_anything_is_written(where, capsys):
    project, outside = where
    job = claims_job(project, "results/claims.csv", log=str(outside / "victim.csv"))
    with pytest.raises(SystemExit):
        run(report_stage.STAGES["gather_claims"], job)
    assert "log " + str(outside / "victim.csv") in one_line(capsys.readouterr().err)
    assert not (project / "results").exists()


def test_an_output_replaced_on_the_command_line_is_confined_too(where):
    project, outside = where
    job = claims_job(project, "results/claims.csv", log="results/logs/g.log")
    run(report_stage.STAGES["gather_claims"], job)
    with pytest.raises(SystemExit) as e:
        main(report_stage.STAGES, ["--job", "results/logs/g.job.yaml", "--output", f"0={outside / 'new' / 'x.csv'}"])
    assert str(outside / "new" / "x.csv") in one_line(e.value.code)
    assert not (outside / "new").exists(), "the output's folder was made before the check"


def test_allow_outside_is_the_explicit_way_out(where):
    project, outside = where
    target = outside / "mine" / "claims.csv"
    try:
        src = claims_job(project, "x").input[0]
        main(report_stage.STAGES, ["--input", f"claims={src}", "--input", f"claims={src}",
                                   "--output", f"0={target}", "--log", "-", "--allow-outside"])
        assert target.exists()
    finally:  # the fixture checks the outside folder is as it was
        target.unlink(missing_ok=True)
        target.parent.rmdir()


@pytest.mark.parametrize(("stages", "rule", "glob"), [
    (train_stage.STAGES, "train", "weights.pt"),
    (synth_stage.STAGES, "synthesize", "chunk_0.pt"),
])
def test_a_resume_dir_outside_results_resume_is_refused_and_its_files_kept(where, stages, rule, glob):
    """Training deletes every ``*.pt`` of its resume_dir when it ends, synthesis every
    ``chunk_*.pt``: a record pointing it elsewhere must not start."""
    project, outside = where
    for state in (str(outside), "results/models"):
        rec = {"rule": rule, "log": None, "input": {"files": [], "names": {}},
               "output": {"files": ["results/out.pt"], "names": {}},
               "params": {"seed": 0, "resume_dir": state}}
        path = write_record(project / "job.yaml", rec)
        with pytest.raises(SystemExit) as e:
            main(stages, ["--job", str(path), "--log", "-"])
        line = one_line(e.value.code)
        assert "params.resume_dir" in line and "results/.resume" in line
    assert (outside / glob).exists()
    assert not (project / "results").exists()


def test_a_resume_dir_under_results_resume_passes_the_check(where):
    from advfeatures.stages.job import check_job

    job = Job("train", output=Files(["results/m.pt"]), params={"resume_dir": "results/.resume/d/a/standard"})
    check_job(job)


# ----------------------------------------------------------------------------- malformed records


@pytest.mark.parametrize(("text", "says"), [
    ("rule: attack\ninput: [unclosed\n", "not valid YAML at line"),
    ("- just\n- a list\n", "must be a mapping, got list"),
    (yaml.safe_dump({"rule": "attack", "input": {"files": [], "names": {}}}), "no key 'output'"),
    (yaml.safe_dump({"rule": "attack", "input": {"files": [], "names": {}}, "output": ["a.h5"]}),
     "key 'output' must hold 'files'"),
    (yaml.safe_dump({"rule": "attack", "input": {"files": [], "names": {}}, "output": {"files": [], "names": {}},
                     "params": [1, 2]}), "key 'params' must be a mapping"),
    (yaml.safe_dump({"rule": "attack", "input": {"files": [], "names": {}}, "output": {"files": [], "names": {}},
                     "threads": "many"}), "malformed job record"),
])
def test_a_malformed_job_record_is_one_line_naming_the_file(where, text, says):
    project, _ = where
    rec = write_record(project / "bad.job.yaml", text)
    with pytest.raises(SystemExit) as e:
        load_record(str(rec))
    line = one_line(e.value.code)
    assert str(rec) in line and says in line


def test_a_missing_record_or_params_file_is_one_line(where):
    project, _ = where
    with pytest.raises(SystemExit) as e:
        main(attack_stage.STAGES, ["--job", "nope.job.yaml"])
    assert "nope.job.yaml: cannot read the job record" in one_line(e.value.code)
    write_record(project / "p.yaml", "- 1\n")
    with pytest.raises(SystemExit) as e:
        main(report_stage.STAGES, ["--params", "p.yaml", "--output", "0=results/x.csv"])
    assert "p.yaml: a params file must hold a mapping" in one_line(e.value.code)


# ----------------------------------------------------------------------------- HDF5 attributes


def test_a_params_attribute_that_is_not_json_is_one_error_naming_the_file(tmp_path):
    path = tmp_path / "a.h5"
    h5io.write_h5(path, {"x": np.zeros(3)}, kind="attack", producer="test", params={"eps": 0.1})
    assert h5io.read_h5(path)[1]["params"] == {"eps": 0.1}
    with h5py.File(path, "a") as f:
        f.attrs["params"] = "{eps: not json"
    with pytest.raises(AdvFeaturesError, match=r"a\.h5: attribute 'params' is not JSON \(JSONDecodeError\)") as e:
        h5io.read_h5(path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("value", "says"), [("abc", "not a JSON list"), ('{"a": 1}', "not a JSON list"),
                                             (None, "missing")])
def test_a_dataset_with_a_malformed_classes_attribute_is_refused(tmp_path, value, says):
    path = tmp_path / "d.h5"
    arrays = {"x_train": np.zeros((2, 1, 4, 4), np.uint8), "y_train": np.zeros(2, np.int64),
              "x_test": np.zeros((2, 1, 4, 4), np.uint8), "y_test": np.zeros(2, np.int64)}
    h5io.write_h5(path, arrays, kind="dataset", producer="test",
                  attrs={"name": "d", "classes": ["a", "b"], "mean": [0.5], "std": [0.2]})
    assert load_dataset(path).classes == ["a", "b"]
    with h5py.File(path, "a") as f:
        if value is None:
            del f.attrs["classes"]
        else:
            f.attrs["classes"] = value
    with pytest.raises(AdvFeaturesError, match=rf"d\.h5: attribute 'classes' is {says}"):
        load_dataset(path)


# ----------------------------------------------------------------------------- images


def png_bytes(size=(8, 8), mode="L", seed=0) -> bytes:
    import io

    from PIL import Image

    a = np.random.default_rng(seed).integers(0, 255, (size[1], size[0]), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a, mode).save(buf, format="PNG")
    return buf.getvalue()


def image_root(root: Path) -> Path:
    for split in ("train", "test"):
        for k, c in enumerate(("cat", "dog")):
            folder = root / split / c
            folder.mkdir(parents=True)
            for i in range(2):
                (folder / f"{i}.png").write_bytes(png_bytes(seed=10 * k + i))
    return root


def test_a_good_image_folder_loads(tmp_path):
    raw = imagefolder(image_root(tmp_path / "imgs"), False, 0)
    assert raw.train.x.shape == (4, 1, 8, 8) and raw.classes == ["cat", "dog"]


def test_a_truncated_image_names_the_file(tmp_path):
    root = image_root(tmp_path / "imgs")
    bad = root / "test" / "dog" / "1.png"
    data = png_bytes(size=(64, 64), seed=3)
    # keep the header and half of the pixel data: the header pass reads it, decoding fails
    bad.write_bytes(data[: len(data) // 2])
    for f in root.rglob("*.png"):
        if f != bad:
            f.write_bytes(png_bytes(size=(64, 64), seed=hash(f.name) % 100))
    with pytest.raises(AdvFeaturesError, match="image data cannot be decoded") as e:
        imagefolder(root, False, 0)
    assert str(e.value).startswith(f"{bad}: ") and "\n" not in str(e.value)


def bomb_png(width: int, height: int) -> bytes:
    """A valid small PNG whose IHDR claims ``width x height`` pixels (CRC fixed)."""
    data = bytearray(png_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def test_a_decompression_bomb_names_the_file(tmp_path):
    root = image_root(tmp_path / "imgs")
    bad = root / "train" / "cat" / "0.png"
    bad.write_bytes(bomb_png(40000, 40000))
    with pytest.raises(AdvFeaturesError, match="decompression bomb") as e:
        imagefolder(root, False, 0)
    assert str(e.value).startswith(f"{bad}: ") and "\n" not in str(e.value)


def test_an_image_error_ends_the_prepare_stage_with_one_line(where, capsys):
    project, _ = where
    root = image_root(project / "imgs")
    bad = root / "train" / "dog" / "1.png"
    bad.write_bytes(bomb_png(40000, 40000))
    job = Job("prepare_data", output=Files(["data/d.h5"]), log="results/logs/prepare_data.log",
              params={"dataset": {"name": "imagefolder", "root": str(root), "seed": 0}})
    with pytest.raises(SystemExit):
        run(data_stage.STAGES["prepare_data"], job)
    assert str(bad) in one_line(capsys.readouterr().err.splitlines()[-1])
    assert not (project / "data" / "d.h5").exists()
