"""What may be shown: the one place that removes secrets from text and tames server text.

Two tools:

* ``redact(text)`` removes credential-shaped strings (bearer tokens, ``sk-`` followed by 8 or
  more key characters (real keys have 32 or more; a shorter echo of a loaded key is caught as a
  piece), OSS signatures and policies) and every secret this process has loaded (see
  ``remember``), with and without its ``sk-``/``sk-sp-`` prefix, and any 6-character piece of
  one in any letter case.
* ``safe_line(text)`` is for anything a server sent (a JSON ``code``, a ``request_id``, a
  header, an XML message): ``redact``, then one printable line (newlines, control and
  format characters escaped, so a server cannot forge a line such as "SUCCESS" into an
  agent's context), then cut to a length. Every field taken from a response passes
  through it before it reaches stdout, stderr, evidence or an exception.

``credentials.Secret`` calls ``remember`` for each value it holds, so redaction knows the
secrets actually in use without any caller passing them around (``loaded_secrets`` lists them).
``child_env`` is the same rule for child processes: the environment they get holds no credential.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping

MIN_PIECE = 6          # a run this long taken from a secret counts as showing it
DEFAULT_LIMIT = 300    # characters of one field from outside (safe_line)
_KEY_PREFIXES = ("sk-sp-", "sk-ws-", "sk-")

_RULES = [
    (r"(?i)bearer\s+[^\s\"',;]+", "Bearer <redacted>"),
    (r"sk-[A-Za-z0-9_\-]{8,}", "sk-<redacted>"),  # key-shaped; "(sk-sp-)" is a word, not a key
    (r"(?i)\b(signature|x-oss-signature|ossaccesskeyid|x-oss-credential|"
     r"security-token|x-oss-security-token|policy)=[^&\s\"'<]+", r"\1=<redacted>"),
    (r"OSS4-HMAC-SHA256\s+[^\"'<\n]+", "OSS4-HMAC-SHA256 <redacted>"),
    (r"\bOSS\s+[A-Za-z0-9.]+:[A-Za-z0-9+/=]+", "OSS <redacted>"),
    (r"(?i)\"(signature|policy|oss_access_key_id|api_key|access_key_secret)\"\s*:\s*\"[^\"]*\"",
     r'"\1": "<redacted>"'),
]
# XML elements whose text is a signature or what was signed: masked by _mask_elements (linear, unlike a lazy regex)
_SECRET_ELEMENTS = ("SignatureProvided", "StringToSign", "StringToSignBytes", "CanonicalRequest", "OSSAccessKeyId")
_compiled: list = []
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")  # keeps every index
_lock = threading.Lock()
_secrets: set = set()        # full values, longest first when used
_pieces: set = set()         # every MIN_PIECE-long slice of every secret, ASCII lower-cased


def remember(value: str) -> None:
    """Register a secret this process holds, so that no text shown later can carry it."""
    if not isinstance(value, str) or len(value) < MIN_PIECE:
        return
    forms = {value}
    for prefix in _KEY_PREFIXES:
        if value.startswith(prefix) and len(value) - len(prefix) >= MIN_PIECE:
            forms.add(value[len(prefix):])
            break
    with _lock:
        _secrets.update(forms)
        for form in forms:
            low = form.translate(_ASCII_LOWER)
            _pieces.update(low[i:i + MIN_PIECE] for i in range(len(low) - MIN_PIECE + 1))
        _pieces.difference_update(_KEY_PREFIXES)  # "sk-sp-" alone is a key type, not a piece of a key


def known_secrets() -> tuple:
    """A mark of the secrets redaction knows now: it changes whenever one is added (``remember`` adds at least
    its whole value to ``_secrets``) or the registry is replaced. A caller that found texts clean
    (``nothing_to_redact``) may skip ``redact`` on them only while this mark is unchanged."""
    return id(_secrets), len(_secrets), id(_pieces), len(_pieces)


def _mask_pieces(text: str) -> str:
    """Replace every run of text made of secret pieces (in any letter case) by ``<redacted>``."""
    if not _pieces or len(text) < MIN_PIECE:
        return text
    low = text.translate(_ASCII_LOWER)
    hits = [i for i in range(len(low) - MIN_PIECE + 1) if low[i:i + MIN_PIECE] in _pieces]
    if not hits:
        return text
    out, cursor, i = [], 0, 0
    while i < len(hits):
        start = hits[i]
        end = start + MIN_PIECE
        i += 1
        while i < len(hits) and hits[i] <= end:
            end = hits[i] + MIN_PIECE
            i += 1
        out.append(text[cursor:start])
        out.append("<redacted>")
        cursor = end
    out.append(text[cursor:])
    return "".join(out)


def _mask_elements(text: str) -> str:
    """``<Tag>...</Tag>`` (any letter case) of each ``_SECRET_ELEMENTS`` tag, its text replaced by ``<redacted>``.

    ``str.find`` from left to right: linear in ``text``. Once an opening tag has no closing tag after
    it, no later one has either, so the scan for that tag ends there.
    """
    for tag in _SECRET_ELEMENTS:
        low = text.translate(_ASCII_LOWER)
        opening, closing = f"<{tag.lower()}>", f"</{tag.lower()}>"
        out, cursor = [], 0
        while True:
            start = low.find(opening, cursor)
            end = low.find(closing, start + len(opening)) if start >= 0 else -1
            if end < 0:
                break
            out.append(text[cursor:start + len(opening)] + "<redacted>" + text[end:end + len(closing)])
            cursor = end + len(closing)
        if out:
            text = "".join(out) + text[cursor:]
    return text


# Every rule above needs one of these (lower-cased): text without any is left as it is, uncompiled.
_TRIGGERS = ("bearer", "sk-", "=", "oss", '"', "<")


def _rules() -> list:
    """The rules, compiled on first use (the probe's happy path never needs them), in ``_RULES`` order."""
    if not _compiled:
        _compiled[:] = [(re.compile(p), r) for p, r in _RULES]   # one atomic assignment, whatever the threads
    return _compiled


def redact(text: str) -> str:
    """``text`` without credential-shaped strings or any known secret (or a piece of one)."""
    text = str(text)
    lowered = text.lower()
    # Credential shapes first: a key nobody loaded is caught whole, before a loaded secret's piece inside
    # it could break the shape and leave the rest showing. Text without a trigger compiles no rule.
    if any(trigger in lowered for trigger in _TRIGGERS):
        for pattern, replacement in _rules():
            text = pattern.sub(replacement, text)
        if "<" in text:
            text = _mask_elements(text)
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, "<redacted>")
    return _mask_pieces(text)


# What each rule needs to match at all, tested as a plain substring (C speed) before the rule runs:
# (needle, look in the text lower-cased?). Each is implied by its rule in _RULES, in the same order.
# (The XML elements of _SECRET_ELEMENTS need a "<" and are checked by _mask_elements itself.)
_RULE_NEEDS = (("bearer", True), ("sk-", False), ("=", False), ("OSS4-HMAC-SHA256", False), ("OSS", False),
               ('"', False))


def _words() -> frozenset:
    """Every secret piece and every whole secret, ASCII lower-cased: what ``redact`` looks for."""
    with _lock:
        return frozenset(_pieces).union(s.translate(_ASCII_LOWER) for s in _secrets)


def nothing_to_redact(texts) -> bool:
    """True only when ``redact`` would return every one of ``texts`` unchanged (then it need not run).

    A few substring searches at C speed over all of them joined, instead of ``redact``'s per-text work
    (what made the evidence of a thousand cache hits cost more than the hits): a rule is tried only
    when the text holds what it needs (``_RULE_NEEDS``), and a match inside one text is a match in
    them all; any secret piece or whole secret inside one text is inside them all, ASCII lower-cased.
    """
    whole = "\n".join({t if isinstance(t, str) else str(t) for t in texts})   # each distinct text once
    lowered = whole.lower()
    for index, (needle, lower) in enumerate(_RULE_NEEDS):
        if needle in (lowered if lower else whole) and _rules()[index][0].search(whole):
            return False
    if "<" in whole and _mask_elements(whole) != whole:
        return False
    words = _words()
    if not words:
        return True
    scanned = lowered if whole.isascii() else whole.translate(_ASCII_LOWER)   # the same for ASCII, and cheaper
    return not any(word in scanned for word in words)   # a substring search per word beats one regex here


def one_line(text: str) -> str:
    """Escape line breaks, control and format characters so ``text`` prints as one inert line."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        elif ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def truncate(text: str, limit: int = DEFAULT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when anything was cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def safe_line(value: object, limit: int = DEFAULT_LIMIT) -> str:
    """A value from outside (a server's field, a setting), made safe to show: no secret, one printable line, at
    most ``limit`` characters."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    text = text[: limit * 8]  # bound the work on hostile input before anything else
    return truncate(one_line(redact(text)), limit)


def server_said(value: object, limit: int = DEFAULT_LIMIT, who: str = "server said") -> str:
    """Prose a server sent, marked as its words: ``server said: "..."``; "" when there is none.

    Redacted, ``\\`` and ``"`` escaped, then one line and capped (as ``safe_line``): the quote cannot
    be closed early, so nothing after it reads as the tool's own words.
    """
    if value is None or value == "":
        return ""
    text = value if isinstance(value, str) else str(value)
    text = redact(text[: limit * 8]).replace("\\", "\\\\").replace('"', '\\"')  # before one_line: "\\n" stays apart
    return f'{who}: "' + truncate(one_line(text), limit) + '"'


_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,79}")


def server_token(value: object, limit: int = 80) -> str:
    """An identifier a server sent (error code, request id): as it is when shaped like one, else marked."""
    text = safe_line(value, limit)
    return text if not text or _TOKEN.fullmatch(text) else server_said(value, limit)


def loaded_secrets() -> list:
    """Every secret value this process holds (for checks such as "does this file contain one?")."""
    with _lock:
        return list(_secrets)


_SECRET_PREFIXES = ("QIANWEN_", "DASHSCOPE_", "OSS_", "QWEN_TMP_OSS_", "ALIBABA_CLOUD_", "ALIYUN_", "BAILIAN_")
_SECRET_WORDS = ("API_KEY", "APIKEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "ACCESS_KEY",
                 "PRIVATE_KEY", "AUTH")
_PROXY_WITH_USER = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@]*@|^[^/@:]+:[^/@]*@")


def child_env(env: Mapping[str, str]) -> dict:
    """``env`` without credentials: the update check needs none, so it is given none.

    Dropped: ``QIANWEN_*``, ``DASHSCOPE_*``, ``OSS_*``, ``QWEN_TMP_OSS_*``, ``ALIBABA_CLOUD_*``,
    ``ALIYUN_*``, ``BAILIAN_*``; any name containing ``API_KEY``, ``SECRET``, ``TOKEN``, ``PASSWORD``,
    ``CREDENTIAL``, ``ACCESS_KEY``, ``PRIVATE_KEY`` or ``AUTH``; proxy variables whose URL carries a
    user name or password.
    """
    kept = {}
    for name, value in env.items():
        upper = name.upper()
        if upper.startswith(_SECRET_PREFIXES) or any(word in upper for word in _SECRET_WORDS):
            continue
        if upper.endswith("_PROXY") and _PROXY_WITH_USER.match(value.strip()):
            continue
        kept[name] = value
    return kept


class Concealed(str):
    """A string that holds a secret (an ``Authorization`` header value): its ``repr`` shows nothing.

    Defence in depth for frames the library does not control: a dict of headers formatted with
    ``repr`` (``traceback``'s ``capture_locals``, loguru's ``diagnose``, a debugger) shows
    ``<hidden>``. ``str()`` and formatting still give the value, so HTTP clients send it unchanged.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "<hidden>"

    def __reduce__(self):  # a pickle would carry the value
        raise TypeError("a concealed value cannot be pickled")


def holds_secret(text: str, run: int = 12) -> bool:
    """True when ``text`` holds a secret this process has loaded, or ``run`` consecutive characters of one, in any
    letter case (a whole secret when it is shorter). Not ``redact``'s 6-character rule: a name or URL that merely
    shares 6 digits with a key (a photo's timestamp) is not the key. Over 4096 characters, whole secrets only."""
    low = text.lower() if text.isascii() else text.translate(_ASCII_LOWER)
    with _lock:
        if len(low) <= 4096 and not any(low[i:i + MIN_PIECE] in _pieces for i in range(len(low) - MIN_PIECE + 1)):
            return False   # the usual answer, from set lookups: not even a 6-character piece
        secrets = [secret.translate(_ASCII_LOWER) for secret in _secrets]
    for secret in secrets:
        size = min(run, len(secret))
        if len(low) > 4096 or size == len(secret):
            if secret in low:
                return True
        elif any(low[i:i + size] in secret for i in range(len(low) - size + 1)):
            return True
    return False
