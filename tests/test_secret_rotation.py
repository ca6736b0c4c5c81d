"""Secret rotation: DUALTOKEN_PREVIOUS_SECRET_KEYS keeps old tokens verifying, and
reissue moves a session onto the current secret."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from helpers import SECRET, Api

from flask_dualtoken import ConfigError
from flask_dualtoken.keys import SigningKeys

NEW_SECRET = "rotated-secret-" + "n" * 40


def kid(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def test_tokens_name_the_secret_that_signed_them(api: Api) -> None:
    pair = api.login()
    assert kid(pair["access_token"]) == SigningKeys.from_secret(SECRET.encode()).kid
    assert kid(pair["refresh_token"]) == kid(pair["access_token"])
    assert SigningKeys.from_secret(NEW_SECRET.encode()).kid != kid(pair["access_token"])


def test_after_rotation_old_tokens_verify_and_reissue_onto_the_new_secret(
    make_app: Any,
) -> None:
    old = Api(make_app())
    pair = old.login()
    rotated = Api(
        make_app(DUALTOKEN_SECRET_KEY=NEW_SECRET, DUALTOKEN_PREVIOUS_SECRET_KEYS=[SECRET])
    )
    assert rotated.get("/me", pair["access_token"]).status_code == 200
    response = rotated.reissue(pair)
    assert response.status_code == 200
    new = response.json
    new_kid = SigningKeys.from_secret(NEW_SECRET.encode()).kid
    assert kid(new["access_token"]) == kid(new["refresh_token"]) == new_kid
    assert rotated.get("/me", new["access_token"]).status_code == 200
    # The session is the same one: its old refresh token is now a predecessor.
    assert rotated.reissue(pair).status_code == 200  # grace replay
    assert rotated.logout(new).status_code == 204


def test_once_the_old_secret_is_removed_its_tokens_are_refused(make_app: Any) -> None:
    pair = Api(make_app()).login()
    only_new = Api(make_app(DUALTOKEN_SECRET_KEY=NEW_SECRET))
    assert only_new.get("/me", pair["access_token"]).json["error"] == "token_invalid"
    assert only_new.reissue(pair).json["error"] == "token_invalid"


def test_the_new_secret_is_not_accepted_by_servers_that_do_not_know_it_yet(
    make_app: Any,
) -> None:
    new_pair = Api(make_app(DUALTOKEN_SECRET_KEY=NEW_SECRET)).login()
    old = Api(make_app())
    assert old.get("/me", new_pair["access_token"]).json["error"] == "token_invalid"


def test_a_staged_rollout_can_verify_the_next_secret_before_signing_with_it(
    make_app: Any,
) -> None:
    # Step 1 of the runbook: every server learns the new secret as a verify-only key...
    staged = Api(make_app(DUALTOKEN_PREVIOUS_SECRET_KEYS=[NEW_SECRET]))
    # ...so tokens from a server already switched (step 2) verify everywhere.
    new_pair = Api(
        make_app(DUALTOKEN_SECRET_KEY=NEW_SECRET, DUALTOKEN_PREVIOUS_SECRET_KEYS=[SECRET])
    ).login()
    assert staged.get("/me", new_pair["access_token"]).status_code == 200


@pytest.mark.parametrize(
    "value", ["a-single-string-not-a-list-" + "x" * 40, ["short"], [None], [123], {"a": 1}]
)
def test_previous_secrets_are_validated_at_start_up(make_app: Any, value: Any) -> None:
    with pytest.raises(ConfigError, match="DUALTOKEN_PREVIOUS_SECRET_KEYS"):
        make_app(DUALTOKEN_PREVIOUS_SECRET_KEYS=value)
