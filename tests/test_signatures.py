from __future__ import annotations

from bot.core.signatures import sign, verify, well_formed

# GitHub's documented test vector ("Validating webhook deliveries").
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_sign_matches_githubs_documented_vector() -> None:
    assert sign(GITHUB_SECRET, GITHUB_BODY) == GITHUB_SIGNATURE


def test_verify_accepts_githubs_documented_vector() -> None:
    assert verify([GITHUB_SECRET], GITHUB_BODY, GITHUB_SIGNATURE)


def test_verify_accepts_any_secret_while_rotating() -> None:
    assert verify(["new-secret", GITHUB_SECRET], GITHUB_BODY, GITHUB_SIGNATURE)


def test_verify_refuses_a_changed_body_or_wrong_secret() -> None:
    assert not verify([GITHUB_SECRET], b"Hello, World?", GITHUB_SIGNATURE)
    assert not verify(["another secret"], GITHUB_BODY, GITHUB_SIGNATURE)


def test_verify_refuses_garbage_signatures() -> None:
    for garbage in ["", "sha256=", "sha1=abc", "sha256=zz", GITHUB_SIGNATURE[:-1]]:
        assert not verify([GITHUB_SECRET], GITHUB_BODY, garbage)


def test_verify_accepts_a_bare_hex_digest_as_semaphore_sends_it() -> None:
    # Semaphore's own test: Signature.sign("body", "secret")
    bare = "dc46983557fea127b43af721467eb9b3fde2338fe3e14f51952aa8478c13d355"
    assert verify(["secret"], b"body", bare)
    assert verify(["secret"], b"body", "sha256=" + bare)


def test_github_signatures_need_the_prefix_and_exactly_64_hex_digits() -> None:
    digest = GITHUB_SIGNATURE[len("sha256=") :]
    assert verify([GITHUB_SECRET], GITHUB_BODY, GITHUB_SIGNATURE, prefixed=True)
    assert not verify([GITHUB_SECRET], GITHUB_BODY, digest, prefixed=True)
    assert well_formed(GITHUB_SIGNATURE, prefixed=True)
    assert not well_formed(digest, prefixed=True)
    assert well_formed(digest, prefixed=False)
    for bad in ("sha256=" + digest[:-1], "sha256=" + digest + "0", "sha256=é" + digest[1:]):
        assert not well_formed(bad, prefixed=False)
        assert not verify([GITHUB_SECRET], GITHUB_BODY, bad)
