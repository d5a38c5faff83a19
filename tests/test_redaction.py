"""redaction: known secrets and any piece of them, in any letter case; server text as one inert line."""

from __future__ import annotations

import pytest

from conftest import leaks
from qianwen_ops import redaction
from qianwen_ops.credentials import Secret

KEY = "sk-Rd4x-Qm7v-Tz2b-Wk9p"


@pytest.fixture(autouse=True)
def own_registry(monkeypatch):
    """Each test starts with no secret loaded: the registry is per process, and other tests in this
    worker load keys whose pieces (e.g. "sk-abc") would otherwise decide these outcomes."""
    monkeypatch.setattr(redaction, "_secrets", set())
    monkeypatch.setattr(redaction, "_pieces", set())


def test_a_secret_is_masked_whole_without_prefix_in_pieces_and_in_any_case():
    Secret(KEY)  # a Secret registers its value
    for shown in (KEY, KEY[3:], KEY[5:14], KEY.upper(), KEY[3:].lower(), f"id={KEY[4:12]}x"):
        out = redaction.redact(f"server said {shown} twice {shown}")
        assert not leaks(out.lower(), (KEY.lower(),)), (shown, out)
        assert out.startswith("server said ") and "twice" in out


def test_unrelated_text_is_left_alone():
    Secret(KEY)
    text = "request 7f3a-22 failed: InvalidApiKey (code 401)"
    assert redaction.redact(text) == text


def test_untrusted_is_one_printable_capped_line():
    forged = "denied\nSUCCESS: key verified\r\x1b[32mOK\x1b[0m \u202eevil\u0000"
    out = redaction.safe_line(forged, 40)
    assert "\n" not in out and "\r" not in out and out.isprintable() and len(out) <= 40
    assert out.startswith("denied\\nSUCCESS")
    assert redaction.safe_line(None) == "" and redaction.safe_line(12345) == "12345"


def test_sk_rule_needs_eight_key_characters():
    for text in ("a Token Plan key (sk-sp-) on a standard host", "prefixes sk-, sk-sp- and sk-ws-", "sk-abc1234"):
        assert redaction.redact(text) == text
    assert redaction.redact("got sk-abcd1234 back") == "got sk-<redacted> back"
    assert redaction.redact("(sk-sp-0123abcd)") == "(sk-<redacted>)"


def test_sandbox_secrets_hold_no_word_so_evidence_keeps_its_names(sb):
    """A sandbox key like sk-sandbox<hex> made every 6-letter piece of "sandbox" a secret piece."""
    secrets = [value for name, value in sb.info.items()
               if name.endswith(("api_key", "_secret", "_key_id", "session_token", "token_plan_key"))]
    assert len(secrets) >= 6
    for value in secrets:
        Secret(value)
    text = f"bucket {sb.info['oss_bucket']} (dashscope-sandbox-temp) via the sandbox at {sb.base_url}"
    assert redaction.redact(text) == text
    assert not leaks(redaction.redact(" ".join(secrets)), tuple(s[-12:] for s in secrets))


def test_the_token_plan_prefix_alone_stays_readable():
    """A loaded Token Plan key must not turn the words "(sk-sp-)" into <redacted> (key type, not key)."""
    token_plan = "sk-sp-Tq4w-Yh8e-Ur2c-Zm6n"
    Secret(token_plan)
    assert redaction.redact("a Token Plan key (sk-sp-) on a standard host") == \
        "a Token Plan key (sk-sp-) on a standard host"
    assert not leaks(redaction.redact(f"echo {token_plan[:14]}"), (token_plan,))


def test_a_key_shape_is_caught_whole_even_when_a_loaded_secret_overlaps_it():
    from qianwen_ops.redaction import redact, remember

    remember("sk-Qx7Jv2")                                   # a loaded (short) secret that begins like another key
    assert redact("DASHSCOPE_API_KEY=sk-Qx7Jv2defghijklmnop,") == "DASHSCOPE_API_KEY=sk-<redacted>,"


def test_nothing_to_redact_is_never_wrong_when_it_says_so():
    """The one-pass check that lets evidence skip ``redact``: when it says "nothing", ``redact`` changes
    nothing in any of the texts (it may err the other way: then ``redact`` simply runs)."""
    import random

    secrets = [KEY, "LTAI5tQm7vTz2bWk9pXc", "Ab/cd+ef0123456789aB", "sk-sp-"]
    for value in secrets:
        Secret(value)
    pieces = ["Bearer x", "signature=abc", "OSS a:b", "<OSSAccessKeyId>x</OSSAccessKeyId>", '"policy": "x"',
              "OSS4-HMAC-SHA256 x", "sk-abcdefgh1"]
    alphabet = "abcdefABCDEF0123456789/-_.=:<>\"' \nskSKOSB" + "".join(secrets)
    rng = random.Random(24)
    said_clean = 0
    for _ in range(3000):
        texts = []
        for _ in range(rng.randint(1, 4)):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
            if rng.random() < 0.3:
                secret = rng.choice(secrets)
                start = rng.randint(0, len(secret) - 6)
                piece = secret[start:start + rng.randint(6, 10)]
                at = rng.randint(0, len(text))
                text = text[:at] + (piece.upper() if rng.random() < 0.5 else piece) + text[at:]
            if rng.random() < 0.2:
                text = rng.choice(pieces) + text
            texts.append(text)
        clean = redaction.nothing_to_redact(texts)
        said_clean += clean
        assert not clean or all(redaction.redact(t) == t for t in texts), texts
    assert said_clean > 300  # and it does say so for ordinary text


def test_nothing_to_redact_sees_a_secret_anywhere_in_thousands_of_texts():
    Secret(KEY)
    texts = [f"/data/run/f{i:05d}.bin" for i in range(3000)] + [f"oss://b/dir/{i:012x}_x.png" for i in range(3000)]
    assert redaction.nothing_to_redact(texts)
    for shown in (KEY[5:11], KEY[5:11].upper(), "Bearer abc", "policy=abc"):
        assert not redaction.nothing_to_redact(texts[:1500] + [f"/data/{shown}/f.bin"] + texts[1500:])


def test_the_mark_of_known_secrets_moves_with_every_secret_added():
    """upload_many skips redact on inputs found clean only while this mark holds: it must move with each new
    secret (a stale "clean" would print one), and stay put when a known secret is remembered again."""
    mark = redaction.known_secrets()
    redaction.remember("s3cr3tValue0001")
    moved = redaction.known_secrets()
    assert moved != mark
    redaction.remember("s3cr3tValue0001")
    assert redaction.known_secrets() == moved
    redaction.remember("sk-" + "s3cr3tValue0001")   # a new form: the key with its prefix
    assert redaction.known_secrets() != moved
