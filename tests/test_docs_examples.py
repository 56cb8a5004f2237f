"""The code blocks of the README, the getting-started page and the guides cannot rot:

- every Python block runs as written, the blocks of a page one after the other in one namespace,
  with mktestdocs;
- every shell block's `python -m` command is parsed by that command line's own argument parser
  (run as `python -m` runs it, stopping once the flags are parsed: the commands themselves are
  runs of minutes, tested with their flags in tests/ssl_train and tests/experiments), and every
  `make` target it names exists (`pip install .` is tests/test_packaging.py's);
- a block that does not run here is a `{code-block}` whose caption says so and why ("Not run
  here: ...") or names the test that runs it ("Run by tests/...").
"""
import argparse
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest
from mktestdocs import check_md_file, grab_code_blocks

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "docs" / "getting-started.md", *sorted((ROOT / "docs" / "guide").glob("*.md"))]
IDS = [str(p.relative_to(ROOT)) for p in PAGES]
RUNNABLE = {"python", "bash"}
NOT_CODE = {"text", "yaml", "json", ""}
DIRECTIVES = {"{toctree}", "{include}", "{literalinclude}", "{eval-rst}"}
# Shell commands other than `python -m` and `make`, and the test that runs each.
RUN_ELSEWHERE = {"pip install .": "tests/test_packaging.py"}


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("AUGPIPE_CACHE", str(tmp_path_factory.getbasetemp() / "augpipe-cache"))


def fences(text: str) -> list[tuple[str, str]]:
    """(info string, body) of every fenced block of a markdown page."""
    return re.findall(r"^```([^\n`]*)\n(.*?)^```", text, re.S | re.M)


def commands(block: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments and blank lines left out."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.split(" #")[0].strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]


class Parsed(Exception):
    """Raised by the patched parser once a command line's flags are parsed."""


def parse_as_python_m(module: str, argv: list[str], monkeypatch) -> None:
    """Run `python -m module argv` up to the end of its argument parsing; fail on a usage error."""
    original = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, args=None, namespace=None):
        original(self, args, namespace)
        raise Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    monkeypatch.setattr(sys, "argv", [module, *argv])
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except Parsed:
        return
    except SystemExit as stop:
        assert stop.code in (0, None), f"python -m {module} {shlex.join(argv)}: exit {stop.code}"
        return
    pytest.fail(f"python -m {module} {shlex.join(argv)} returned without parsing its flags")


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_the_python_blocks_run(page):
    check_md_file(page, memory=True)


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_every_block_runs_or_says_why_not(page):
    for info, body in fences(page.read_text()):
        kind = info.split()[0] if info.strip() else ""
        if kind in RUNNABLE | NOT_CODE | DIRECTIVES:
            continue
        assert kind == "{code-block}", f"{page.name}: a ```{info} block neither runs nor says why"
        caption = re.search(r"^:caption: \"?([^\n\"]*)", body, re.M)
        assert caption, f"{page.name}: a {{code-block}} without a caption saying why it does not run here"
        reason = caption.group(1)
        if reason.startswith("Run by "):
            test = ROOT / reason.split()[2].rstrip(",.")
            assert test.is_file(), f"{page.name}: {reason!r} names no test file"
        else:
            assert reason.startswith("Not run here: ") and len(reason) > 24, f"{page.name}: {reason!r}"


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_the_shell_commands_parse(page, tmp_path, monkeypatch):
    text = page.read_text()
    for name, body in re.findall(r"^```yaml\n# ([\w.-]+)\n(.*?)^```", text, re.S | re.M):
        (tmp_path / name).write_text(body)  # a file the page shows before a command reads it
    monkeypatch.chdir(tmp_path)
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    for block in grab_code_blocks(text, lang="bash"):
        for command in commands(block):
            words = shlex.split(command)
            if command in RUN_ELSEWHERE:
                assert (ROOT / RUN_ELSEWHERE[command]).is_file()
            elif words[0] == "make":
                assert set(words[1:]) <= targets, f"{page.name}: {command!r} names no Makefile target"
            else:
                assert words[:2] == ["python", "-m"], f"{page.name}: {command!r} is neither `python -m` nor " \
                                                      "`make`: put it in a captioned {code-block}"
                with monkeypatch.context() as patch:
                    parse_as_python_m(words[2], words[3:], patch)
