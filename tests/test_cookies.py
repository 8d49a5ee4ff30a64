"""Signed visitor cookies: signing, verification, expiry, rotation, tampering."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from service.identity.cookies import CookieSigner
from service.identity.visitor import is_valid_visitor_id, mint_visitor_id

K1 = "k1-" + "a" * 40
K2 = "k2-" + "b" * 40
NOW = 1_790_000_000.0
VID = "AbCdEfGhIjKlMnOpQrStUv"


def test_sign_then_verify_round_trips() -> None:
    signer = CookieSigner((K1,), 3600)
    value = signer.sign(VID, int(NOW))
    verified = signer.verify(value, NOW + 10)
    assert verified is not None
    assert verified.visitor_id == VID
    assert verified.issued_at == int(NOW)
    assert verified.key_index == 0


def test_expired_cookie_is_rejected() -> None:
    signer = CookieSigner((K1,), 3600)
    value = signer.sign(VID, int(NOW))
    assert signer.verify(value, NOW + 3599) is not None
    assert signer.verify(value, NOW + 3601) is None


def test_cookie_from_the_future_is_rejected() -> None:
    signer = CookieSigner((K1,), 3600)
    assert signer.verify(signer.sign(VID, int(NOW) + 3600), NOW) is None


def test_rotation_first_key_signs_all_keys_verify() -> None:
    old = CookieSigner((K1,), 3600)
    rotated = CookieSigner((K2, K1), 3600)
    value_old = old.sign(VID, int(NOW))
    verified = rotated.verify(value_old, NOW)
    assert verified is not None and verified.key_index == 1
    value_new = rotated.sign(VID, int(NOW))
    assert rotated.verify(value_new, NOW) is not None
    assert rotated.verify(value_new, NOW).key_index == 0  # type: ignore[union-attr]
    assert old.verify(value_new, NOW) is None  # the old key alone cannot verify new cookies
    retired = CookieSigner((K2,), 3600)
    assert retired.verify(value_old, NOW) is None  # dropping a key revokes its cookies


def test_wrong_key_rejected() -> None:
    assert (
        CookieSigner((K2,), 3600).verify(CookieSigner((K1,), 3600).sign(VID, int(NOW)), NOW) is None
    )


def test_minted_ids_are_valid_and_unique() -> None:
    ids = {mint_visitor_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(is_valid_visitor_id(i) and len(i) == 22 for i in ids)


def test_visitor_id_format() -> None:
    assert is_valid_visitor_id("a" * 16)
    assert is_valid_visitor_id("A-b_C" * 12 + "abcd")
    for bad in [
        "a" * 15,
        "a" * 65,
        "abc def ghijklmnop",
        "abcdefghijklmnop:",
        "persona:{x}:abcdef",
        "ábcdefghijklmnopq",
        "abcdefghijklmnop\n",
        "",
    ]:
        assert not is_valid_visitor_id(bad), bad


SIGNER = CookieSigner((K1,), 10**8)
GOOD = SIGNER.sign(VID, int(NOW))


@settings(max_examples=3000)
@given(st.integers(min_value=0, max_value=len(GOOD) - 1), st.characters(codec="utf-8"))
def test_any_single_character_change_is_rejected(pos: int, char: str) -> None:
    tampered = GOOD[:pos] + char + GOOD[pos + 1 :]
    if tampered == GOOD:
        return
    assert SIGNER.verify(tampered, NOW) is None


@settings(max_examples=2000)
@given(st.text(max_size=300))
def test_arbitrary_strings_never_verify(value: str) -> None:
    assert SIGNER.verify(value, NOW) is None


@settings(max_examples=2000)
@given(
    st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=16, max_size=64),
    st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=30),
)
def test_forged_signatures_never_verify(visitor_id: str, signature: str) -> None:
    forged = f"{visitor_id}.{int(NOW):x}.{signature}"
    assert SIGNER.verify(forged, NOW) is None


@settings(max_examples=500)
@given(st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=16, max_size=64))
def test_valid_ids_round_trip(visitor_id: str) -> None:
    verified = SIGNER.verify(SIGNER.sign(visitor_id, int(NOW)), NOW)
    assert verified is not None and verified.visitor_id == visitor_id
