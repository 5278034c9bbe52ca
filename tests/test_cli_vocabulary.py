"""One CLI vocabulary (``arcray/cli/options.py``), enforced on every command, present and future.

A new stage command passes by taking its common options from ``arcray.cli.options``: ``--root``
(the pipeline root), ``--cameras`` (validated), ``--workers`` (parallelism), ``--address`` (what Ray
means there), ``--max-failures`` (when items can fail), ``--smoke`` and ``--progress``.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest
import typer

from arcray.cli import options
from arcray.cli.apps import app
from arcray.cli.main import _register, main

# Commands that are not pipeline stages (no --root of a pipeline): everything else must take --root.
NOT_STAGES = {"demo", "sim render", "sim serve", "submit", "jobs list", "jobs status", "jobs logs", "jobs stop"}
# Where --out (a destination other than the pipeline root) makes sense.
OUT_COMMANDS = {"demo", "sim render", "train", "tune"}
# Stages whose items can fail one by one (they return failure counts): they take --max-failures.
PER_ITEM = {"scrape", "download", "calibrate", "measure", "night", "train", "tune", "demo"}
DASHBOARD_COMMANDS = {"submit", "jobs list", "jobs status", "jobs logs", "jobs stop"}
OTHER_PARALLELISM = {"--actors", "--threads", "--jobs", "--procs", "--processes", "--concurrency", "--parallel",
                     "--num-workers", "--n-workers"}
REQUIRED_DUMMY = {"--base-url": "http://127.0.0.1:9", "--root": "/nonexistent/arcray", "--out": "/nonexistent/o",
                  "--user": "u", "--password-file": "/nonexistent/pw"}


def _commands() -> dict:
    """Every leaf command (Typer's own Click: groups have ``commands``), by its full name."""
    _register()
    found = {}

    def walk(cmd, path: tuple[str, ...]) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, (*path, name))
        else:
            found[" ".join(path)] = cmd

    walk(typer.main.get_command(app), ())
    return found


COMMANDS = _commands()


def _options(cmd) -> dict:
    return {o.opts[0]: o for o in cmd.params if o.param_type_name == "option"}


def test_every_command_is_walked():
    assert {"scrape", "download", "calibrate", "train", "tune", "embed", "analyze", "regress", "report",
            "demo", "sim render", "submit", "jobs logs"} <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_one_name_per_option_and_no_other_dialect(name):
    for opt in _options(COMMANDS[name]).values():
        longs = [o for o in opt.opts if o.startswith("--")]
        assert len(longs) == 1, f"{name}: {opt.opts} are aliases of one option"
        flag = longs[0]
        assert flag not in {"--data", "--camera", *OTHER_PARALLELISM}, f"{name}: {flag}"
        if "comma" in (opt.help or "").lower():
            assert flag.endswith("s"), f"{name}: {flag} takes a comma list: plural name"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_root_out_and_address_mean_one_thing(name):
    opts = _options(COMMANDS[name])
    if name not in NOT_STAGES:
        assert "--root" in opts and "pipeline root" in opts["--root"].help.lower(), name
    if "--out" in opts:
        assert name in OUT_COMMANDS, f"{name}: --out is only for a different destination"
        assert any(w in opts["--out"].help.lower() for w in ("destination", "different")), name
    if "--address" in opts:
        helptext = opts["--address"].help
        if name in DASHBOARD_COMMANDS:
            assert "dashboard URL" in helptext and "ray job submit --address" in helptext, name
        else:
            assert "ray.init(address=...)" in helptext, name


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_shared_options_come_from_the_vocabulary(name):
    opts = _options(COMMANDS[name])
    if "--cameras" in opts:
        assert opts["--cameras"].callback is not None and "b1, r1, b2, r2" in opts["--cameras"].help
    if "--workers" in opts:
        assert opts["--workers"].help.startswith("Parallel "), name
    if "--smoke" in opts:
        assert opts["--smoke"].help.startswith("CI-sized run: "), name
    if "--progress" in opts:
        assert opts["--progress"].help == "Progress bars (default: only on a terminal).", name
    assert ("--max-failures" in opts) == (name in PER_ITEM), name
    if "--max-failures" in opts:
        assert opts["--max-failures"].default is None and "count" in opts["--max-failures"].help


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_no_option_that_does_nothing(name):
    """Every parameter of the command's function is read in its body."""
    fn = COMMANDS[name].callback
    fn = getattr(fn, "__wrapped__", fn)
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    body = tree.body[0]
    used = {n.id for n in ast.walk(ast.Module(body=body.body, type_ignores=[])) if isinstance(n, ast.Name)}
    params = [a.arg for a in body.args.args + body.args.kwonlyargs]
    assert [p for p in params if p not in used] == [], f"{name}: options read nowhere"


CAMERA_COMMANDS = sorted(n for n, c in COMMANDS.items() if "--cameras" in _options(c))


@pytest.mark.parametrize("name", CAMERA_COMMANDS)
def test_unknown_camera_is_a_one_line_error_listing_the_valid_ones(name, capsys):
    cmd = COMMANDS[name]
    args = [*name.split(), "--cameras", "b1,x9"]  # first on the line: checked before anything else
    for flag, opt in _options(cmd).items():
        if opt.required:
            args += [flag, REQUIRED_DUMMY[flag]]
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and out == ""
    assert err == "arcray: error: --cameras: unknown x9; valid: b1, r1, b2, r2\n"


def test_camera_and_failure_parsers():
    assert options.parse_cameras("r1, b1") == ("r1", "b1")
    assert options.parse_cameras(None) is None and options.parse_cameras("all") is None
    mf = options.parse_max_failures("5%")
    assert mf.fraction and mf.allowed(100) == 5 and mf.allowed(19) == 0
    assert options.parse_max_failures("3").allowed(1000) == 3
    assert options.parse_max_failures(None).allowed(10**6) == 0
    for bad in ("-1", "1.5", "x", "100%"):
        with pytest.raises(Exception, match="--max-failures"):
            options.parse_max_failures(bad)
