"""Attack class: signatures stripped, truncated, or made with the wrong key."""

from __future__ import annotations

import pytest
from forge import (
    ACCESS_HEADER,
    KEYS,
    REFRESH_HEADER,
    assert_access_refused,
    assert_reissue_refused,
    forge,
    login_claims,
)
from helpers import SECRET, Api


def test_a_stripped_signature_is_refused(api: Api) -> None:
    access, _ = login_claims(api)
    token = forge(ACCESS_HEADER, access, KEYS.access)
    assert_access_refused(api, token.rsplit(".", 1)[0] + ".")
    assert_access_refused(api, token.rsplit(".", 1)[0])


@pytest.mark.parametrize("keep", [0, 1, 10, 42])
def test_a_truncated_signature_is_refused(api: Api, keep: int) -> None:
    access, _ = login_claims(api)
    head, body, signature = forge(ACCESS_HEADER, access, KEYS.access).split(".")
    assert_access_refused(api, f"{head}.{body}.{signature[:keep]}")


def test_a_signature_padded_with_extra_bytes_is_refused(api: Api) -> None:
    access, _ = login_claims(api)
    assert_access_refused(api, forge(ACCESS_HEADER, access, KEYS.access) + "AAAA")


def test_tokens_signed_with_the_raw_secret_are_refused(api: Api) -> None:
    access, refresh = login_claims(api)
    raw = SECRET.encode()
    assert_access_refused(api, forge(ACCESS_HEADER, access, raw))
    assert_reissue_refused(
        api, forge(ACCESS_HEADER, access, KEYS.access), forge(REFRESH_HEADER, refresh, raw)
    )


def test_each_key_signs_only_its_own_kind(api: Api) -> None:
    access, refresh = login_claims(api)
    assert_access_refused(api, forge(ACCESS_HEADER, access, KEYS.refresh))
    assert_reissue_refused(
        api,
        forge(ACCESS_HEADER, access, KEYS.access),
        forge(REFRESH_HEADER, refresh, KEYS.access),
    )


def test_a_signature_moved_from_another_token_is_refused(api: Api) -> None:
    first, _ = login_claims(api)
    second, _ = login_claims(api)
    good = forge(ACCESS_HEADER, first, KEYS.access)
    other = forge(ACCESS_HEADER, second, KEYS.access)
    assert_access_refused(api, good.rsplit(".", 1)[0] + "." + other.rsplit(".", 1)[1])
