"""Every Lua script binds its KEYS and ARGV to the same names, in the same order, as the
dataclass that builds its calls: a swapped or missing argument cannot pass silently."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from flask_dualtoken.scripts import ALL, ScriptArgs

BINDING = re.compile(r"^local ([\w,\s]+?) = unpack\((KEYS|ARGV)\)$", re.M)


def bindings(name: str) -> dict[str, tuple[str, ...]]:
    source = (resources.files("flask_dualtoken") / "lua" / f"{name}.lua").read_text("utf-8")
    found = {}
    for names, table in BINDING.findall(source):
        assert table not in found, f"{name}.lua binds {table} twice"
        found[table] = tuple(n.strip() for n in names.split(","))
    return found


@pytest.mark.parametrize("args", ALL, ids=lambda a: a.SCRIPT.name)
def test_the_script_binds_the_names_its_builder_sends(args: type[ScriptArgs]) -> None:
    bound = bindings(args.SCRIPT.name)
    assert bound["KEYS"] == args.KEYS
    assert bound.get("ARGV", ()) == args.argv_names()


@pytest.mark.parametrize("args", ALL, ids=lambda a: a.SCRIPT.name)
def test_the_script_reads_its_arguments_only_by_name(args: type[ScriptArgs]) -> None:
    source = (resources.files("flask_dualtoken") / "lua" / f"{args.SCRIPT.name}.lua").read_text()
    assert not re.search(r"(KEYS|ARGV)\[", source)


def test_every_script_file_has_a_builder() -> None:
    files = {p.name[:-4] for p in (resources.files("flask_dualtoken") / "lua").iterdir()}
    assert files - {"prelude"} == {a.SCRIPT.name for a in ALL}


def test_a_call_puts_keys_and_arguments_in_declaration_order() -> None:
    from flask_dualtoken.scripts import RevokeArgs

    call = RevokeArgs(
        session="s", index="i", replay="r", uid="u", sid="x", reason="logout", caller=""
    ).call()
    assert call.keys == ("s", "i", "r")
    assert call.args == ("u", "x", "logout", "")
