"""The identification step: which visitor, and which cookie to send back."""

from __future__ import annotations

from service.identity.consent import ConsentState
from service.identity.cookies import CookieSigner
from service.identity.identify import REFRESH_AFTER_S, identify

K1 = "k1-" + "a" * 40
K2 = "k2-" + "b" * 40
NOW = 1_790_000_000.0
VID = "AbCdEfGhIjKlMnOpQrStUv"
YES = ConsentState(True, True, "header")
NO = ConsentState(False, False, "header")


def test_no_cookie_mints_an_unknown_visitor_with_a_cookie() -> None:
    signer = CookieSigner((K1,), 86400 * 30)
    identity, outcome = identify(signer, None, None, NOW, YES)
    assert outcome == "minted" and not identity.known and identity.source == "minted"
    assert identity.cookie is not None
    assert signer.verify(identity.cookie, NOW).visitor_id == identity.visitor_id  # type: ignore[union-attr]


def test_valid_cookie_is_known_and_not_reset() -> None:
    signer = CookieSigner((K1,), 86400 * 30)
    identity, outcome = identify(signer, signer.sign(VID, int(NOW)), None, NOW + 60, YES)
    assert (identity.visitor_id, identity.known, identity.cookie, outcome) == (
        VID,
        True,
        None,
        "valid",
    )


def test_cookie_signed_with_old_key_is_re_signed() -> None:
    old = CookieSigner((K1,), 86400 * 30)
    signer = CookieSigner((K2, K1), 86400 * 30)
    identity, outcome = identify(signer, old.sign(VID, int(NOW)), None, NOW, YES)
    assert outcome == "refreshed" and identity.visitor_id == VID and identity.known
    assert identity.cookie is not None
    assert signer.verify(identity.cookie, NOW).key_index == 0  # type: ignore[union-attr]


def test_aged_cookie_is_refreshed_so_active_visitors_stay_known() -> None:
    signer = CookieSigner((K1,), 86400 * 30)
    identity, outcome = identify(
        signer, signer.sign(VID, int(NOW)), None, NOW + REFRESH_AFTER_S + 1, YES
    )
    assert outcome == "refreshed" and identity.visitor_id == VID
    assert signer.verify(identity.cookie or "", NOW + REFRESH_AFTER_S + 1).issued_at > NOW  # type: ignore[union-attr]


def test_tampered_cookie_is_replaced_with_a_new_visitor() -> None:
    signer = CookieSigner((K1,), 86400 * 30)
    value = signer.sign(VID, int(NOW))
    identity, outcome = identify(signer, value[:-2] + "AA", None, NOW, YES)
    assert outcome == "rejected" and identity.visitor_id != VID and not identity.known
    assert identity.cookie is not None


def test_expired_cookie_is_replaced() -> None:
    signer = CookieSigner((K1,), 3600)
    identity, outcome = identify(signer, signer.sign(VID, int(NOW)), None, NOW + 7200, YES)
    assert outcome == "rejected" and identity.visitor_id != VID


def test_explicit_visitor_id_wins_and_sets_no_cookie() -> None:
    signer = CookieSigner((K1,), 3600)
    identity, outcome = identify(
        signer, signer.sign(VID, int(NOW)), "server-side-id-12345", NOW, YES
    )
    assert outcome == "explicit" and identity.visitor_id == "server-side-id-12345"
    assert identity.known and identity.cookie is None


def test_an_explicit_refusal_withdraws_the_cookies_identity_and_deletes_the_cookie() -> None:
    signer = CookieSigner((K1,), 3600)
    identity, outcome = identify(signer, signer.sign(VID, int(NOW)), None, NOW, NO)
    assert outcome == "withdrawn"
    assert identity.visitor_id is None and not identity.known and identity.cookie is None
    assert identity.clear_cookie and identity.withdrawing == VID
    # the site's server may refuse for a visitor it names
    identity, outcome = identify(signer, None, "server-side-id-12345", NOW, NO)
    assert outcome == "withdrawn" and identity.withdrawing == "server-side-id-12345"
    assert identity.visitor_id is None and not identity.clear_cookie
    # a refusal with a forged cookie withdraws nobody, and still deletes the cookie
    identity, outcome = identify(signer, "forged.cookie.value", None, NOW, NO)
    assert outcome == "no_consent" and identity.withdrawing is None and identity.clear_cookie


def test_without_a_consent_header_nothing_is_read_written_or_changed() -> None:
    signer = CookieSigner((K1,), 3600)
    unknown = ConsentState(False, False, "default")
    identity, outcome = identify(signer, signer.sign(VID, int(NOW)), None, NOW, unknown)
    assert outcome == "no_consent"
    assert identity.visitor_id is None and identity.withdrawing is None
    assert not identity.clear_cookie and identity.cookie is None
