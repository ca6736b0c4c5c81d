"""Every Lua script binds its KEYS and ARGV to the same names, in the same order, as the
dataclass that builds its calls: a swapped or missing argument cannot pass silently."""

from __future__ import annotations

import hashlib
import re
from importlib import resources

import fakeredis
import pytest
import redis
from helpers import Api, Users, bearer, build_app, sid_of

from flask_dualtoken.redis_scripts import LuaScript
from flask_dualtoken.scripts import ALL, ScriptArgs
from flask_dualtoken.state import get_state

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
        session="s",
        index="i",
        replay="r",
        uid="u",
        sid="x",
        reason="logout",
        caller="",
        channel="c",
    ).call()
    assert call.keys == ("s", "i", "r")
    assert call.args == ("u", "x", "logout", "", "c")


# -- every key a script touches is one it was given ---------------------------------------

#: Lua prepended to every script (after the prelude) in these tests: each redis.call must
#: name only keys in KEYS. Real Redis protects its `redis` table; fakeredis lets a test
#: wrap it.
KEY_GUARD = """
local declared_keys = {}
for _, k in ipairs(KEYS) do declared_keys[k] = true end
-- fakeredis keeps one Lua state: wrap the real call, never an earlier script's guard.
redis.real_call = redis.real_call or redis.call
local real_call = redis.real_call
local keyless = {TIME = true, PUBLISH = true}
local all_keys = {DEL = true, UNLINK = true, EXISTS = true}
redis.call = function(command, ...)
  local args = {...}
  local name = string.upper(command)
  local last = (keyless[name] and 0) or (all_keys[name] and #args) or 1
  for i = 1, last do
    if not declared_keys[args[i]] then
      error('undeclared key ' .. tostring(args[i]) .. ' in ' .. name)
    end
  end
  return real_call(command, ...)
end
"""


class GuardedScript(LuaScript):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        prelude_end = self.source.index("local function fmt(")
        self.source = self.source[:prelude_end] + KEY_GUARD + self.source[prelude_end:]
        self.sha = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch) -> None:
    for args in ALL:
        monkeypatch.setattr(args, "SCRIPT", GuardedScript(args.SCRIPT.name))


def test_the_key_guard_refuses_an_undeclared_key() -> None:
    client = fakeredis.FakeRedis()
    assert client.eval(KEY_GUARD + "return redis.call('GET', KEYS[1])", 1, "idx") is None
    with pytest.raises(redis.ResponseError, match="undeclared key elsewhere in GET"):
        client.eval(KEY_GUARD + "return redis.call('GET', 'elsewhere')", 1, "idx")


def test_every_flow_touches_only_declared_keys(guarded: None, users: Users) -> None:
    client = fakeredis.FakeRedis()
    app = build_app(
        client, users, DUALTOKEN_MAX_SESSIONS=2, DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS=3
    )
    api = Api(app)
    pairs = [api.login() for _ in range(4)]  # the cap ends the two oldest sessions
    assert api.reissue(pairs[0]).json["error"] == "session_revoked"  # type: ignore[index]
    new = api.reissue(pairs[3])
    assert new.status_code == 200
    assert api.reissue(pairs[3]).status_code == 200  # replayed within grace
    listed = api.get_json("/auth/sessions", new.json)  # type: ignore[arg-type]
    assert len(listed["sessions"]) == 2
    gone = api.client.delete(
        f"/auth/sessions/{sid_of(pairs[2])}",
        headers=bearer(new.json["access_token"]),  # type: ignore[index]
    )
    assert gone.status_code == 204
    assert api.logout(new.json).status_code == 204  # type: ignore[arg-type]
    last = api.login()
    all_out = api.client.post("/auth/logout-all", headers=bearer(last["access_token"]))
    assert all_out.status_code == 204
    assert client.zcard(get_state(app).store.index_key("1")) == 0
    for _ in range(4):  # failed logins, then the address limit
        api.client.post("/auth/login", json={"username": "bob", "password": "wrong"})
    throttled = api.client.post("/auth/login", json={"username": "bob", "password": "x"})
    assert throttled.status_code == 429
    strict = Api(build_app(client, users, DUALTOKEN_REVOCATION="strict"))
    assert strict.get_json("/me", strict.login("bob"))["id"] == 2


def test_reauth_stamps_and_credential_changes_touch_only_declared_keys(
    guarded: None, users: Users
) -> None:
    client = fakeredis.FakeRedis()
    app = build_app(client, users)
    dualtoken = app.extensions["dualtoken_object"]
    dualtoken.security_stamp_loader(lambda user: user.password_hash)
    api = Api(app)
    current, other, third = api.login(), api.login(), api.login()
    reauthed = api.reauth(current)
    assert reauthed.status_code == 200
    assert api.reissue(current).json == reauthed.json  # replayed within grace
    with app.app_context():
        assert dualtoken.credentials_changed(users.by_id["1"], keep_session=sid_of(third))
    assert api.reissue(other).json["error"] == "session_revoked"  # type: ignore[index]
    users.by_id["1"].password_hash = "changed"
    assert api.reissue(third).json["error"] == "session_revoked"  # type: ignore[index]
    with app.app_context():
        assert not dualtoken.credentials_changed(users.by_id["1"])
