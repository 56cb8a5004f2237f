"""The bad-input probe (scripts/probe_bad_input.py, `make probe`): its verdicts are honest. A case is
clean only when the process fails in one named line (or, for accepted input, says what it did),
and the probe notices lost fixtures and code that ran."""
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def probe():
    spec = importlib.util.spec_from_file_location("probe_bad_input", ROOT / "scripts" / "probe_bad_input.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the crafted pickle names its class by module
    spec.loader.exec_module(module)
    return module


def test_a_case_is_clean_only_when_its_error_names_the_problem(probe, tmp_path):
    bad_split = ("loaders.prepare", "digits:valid", "{w}/x.beton")
    assert probe.run_case(probe.Case("named", bad_split, says="split must be train or test"), tmp_path, tmp_path)[1]
    assert not probe.run_case(probe.Case("other", bad_split, says="something else"), tmp_path, tmp_path)[1]
    accepted = ("loaders.prepare", "digits:test", "{w}/out", "--format", "wds")
    assert not probe.run_case(probe.Case("accepted", accepted), tmp_path, tmp_path)[1]  # exit 0 is no error


def test_every_case_name_is_unique_and_the_fixtures_are_checked(probe, tmp_path):
    assert len({c.name for c in probe.CASES}) == len(probe.CASES) >= 60
    before = probe.make_fixtures(tmp_path)
    assert {p.name for p in before} >= {"notes.txt", "checkpoint.pt", "file"}


@pytest.mark.slow
def test_the_probe_runs_the_crafted_pickle_and_foreign_folder_cases_clean(probe, capsys):
    assert probe.main(["resume-pickle", "overwrite-not-a-run", "eval-pickle"]) == 0
    assert "3 of 3 cases clean; data lost: 0; code executed: 0" in capsys.readouterr().out
