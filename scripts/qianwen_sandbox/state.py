"""Everything the sandbox remembers: configuration, keys, objects, counters, faults."""

from __future__ import annotations

import json
import os
import secrets
import string
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

from .oss_signing import Credential
from .store import ObjectStore

ROUTES = ("chat", "getPolicy", "postObject", "oss")
MEDIA_TTL_SECONDS = 48 * 3600


@dataclass
class SandboxConfig:
    host: str = "127.0.0.1"
    port: int = 0
    oss_port: int = 0
    data_dir: Path | None = None
    qps: int = 100
    policy_ttl: int = 300
    max_file_mb: int = 100
    region: str = "cn-beijing"
    bucket: str = "sandbox-bucket"
    temp_bucket: str = "dashscope-sandbox-temp"
    tls_cert: Path | None = None     # both set: both ports serve HTTPS with this certificate chain
    tls_key: Path | None = None
    ram_policy: object = None        # ram.Policy for the main ("user") AccessKey; None: full access
    latency_ms: int = 0              # emulated round trip: one to open a connection, one per request
    upload_host: str = ""            # what getPolicy names (default: this OSS port, path-style temp bucket)


@dataclass
class Fault:
    status: int = 0
    action: str = ""          # "reset": drop the connection mid-body; "lose_answer": act, then drop it
    delay_s: float = 0.0
    remaining: int = 1


def _token(n: int = 12) -> str:
    return secrets.token_hex(n)


def _base62(length: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


@dataclass
class SandboxState:
    config: SandboxConfig
    store: ObjectStore
    api_keys: dict = field(default_factory=dict)        # key -> account id
    token_plan_key: str = ""
    credentials: dict = field(default_factory=dict)     # access key id -> Credential
    named: dict = field(default_factory=dict)           # "temp" / "user" / "sts" -> Credential
    base_url: str = ""
    oss_endpoint: str = ""
    counts: Counter = field(default_factory=Counter)
    faults: dict = field(default_factory=dict)
    upload_dirs: dict = field(default_factory=dict)     # upload_dir -> (account, model)
    clock_offset: float = 0.0                           # test hook: POST /_sandbox/clock
    _windows: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, config: SandboxConfig, data_dir: Path) -> "SandboxState":
        """Fresh keys, or the ones saved in ``data_dir`` by an earlier run (so a restart is seamless)."""
        saved = data_dir / "sandbox-state.json"
        state = cls(config, ObjectStore(data_dir))
        try:
            old = json.loads(saved.read_text(encoding="utf-8"))
            state.api_keys, state.token_plan_key = old["api_keys"], old["token_plan_key"]
            state.named = {name: Credential(c["access_key_id"], c["secret"], frozenset(c["buckets"]),
                                            c["security_token"]) for name, c in old["named"].items()}
            state.credentials = {cred.access_key_id: cred for cred in state.named.values()}
            state._load_upload_dirs()
            return state
        except (OSError, ValueError, KeyError, TypeError):
            pass
        # random characters only: a word in a key ("sandbox") would make every echo of that word a
        # secret piece to the redaction, so evidence would lose it everywhere (bucket names, hosts)
        main_key, other_key = f"sk-{_token(16)}", f"sk-{_token(16)}"
        state.api_keys = {main_key: "acct-main", other_key: "acct-other"}
        state.token_plan_key = f"sk-sp-{_token(16)}"
        user_bucket = frozenset({config.bucket})
        state.named = {
            "temp": Credential(f"LTAI{_base62(20)}", _base62(30), frozenset({config.temp_bucket})),
            "user": Credential(f"LTAI{_base62(20)}", _base62(30), user_bucket),
            "sts": Credential(f"STS.{_base62(24)}", _base62(30), user_bucket, security_token=_base62(48)),
        }
        state.credentials = {cred.access_key_id: cred for cred in state.named.values()}
        state.save()
        return state

    def _load_upload_dirs(self) -> None:
        try:
            lines = (self.store.root / "upload-dirs.jsonl").read_text(encoding="utf-8").splitlines()
        except OSError:
            return
        for line in lines:
            try:
                upload_dir, account, model = json.loads(line)
                self.upload_dirs[upload_dir] = (account, model)
            except (ValueError, TypeError):
                continue  # a line torn by a crash

    def remember_upload_dir(self, upload_dir: str, account: str, model: str) -> None:
        """Bind a policy's upload dir to its account and model; one appended line (getPolicy is a hot path)."""
        with self.lock:
            self.upload_dirs[upload_dir] = (account, model)
            with open(self.store.root / "upload-dirs.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps([upload_dir, account, model]) + "\n")

    def save(self) -> None:
        """Keys to ``sandbox-state.json`` (sandbox-only throw-away credentials), once at creation."""
        data = {"api_keys": self.api_keys, "token_plan_key": self.token_plan_key,
                "named": {name: {"access_key_id": c.access_key_id, "secret": c.secret, "buckets": sorted(c.buckets),
                                 "security_token": c.security_token} for name, c in self.named.items()}}
        path = self.store.root / "sandbox-state.json"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(tmp, path)

    def info(self) -> dict:
        """The one JSON line printed at start-up (sandbox-only secrets, by design)."""
        keys = list(self.api_keys)
        user, sts = self.named["user"], self.named["sts"]
        return {
            "base_url": self.base_url,
            "api_key": keys[0],
            "other_api_key": keys[1],
            "token_plan_key": self.token_plan_key,
            "oss_endpoint": self.oss_endpoint,
            "oss_bucket": self.config.bucket,
            "oss_region": self.config.region,
            "oss_access_key_id": user.access_key_id,
            "oss_access_key_secret": user.secret,
            "oss_sts_access_key_id": sts.access_key_id,
            "oss_sts_access_key_secret": sts.secret,
            "oss_session_token": sts.security_token,
            "temp_bucket": self.config.temp_bucket,
            "policy_ttl": self.config.policy_ttl,
            "max_file_mb": self.config.max_file_mb,
            "qps": self.config.qps,
            "ram_policy": self.config.ram_policy is not None,
        }

    def now(self) -> float:
        """Wall clock plus the test offset; every expiry check uses this."""
        return time.time() + self.clock_offset

    # -- observability and faults
    def count(self, route: str) -> None:
        with self.lock:
            self.counts[route] += 1

    def stats(self) -> dict:
        with self.lock:
            counts = {route: self.counts.get(route, 0) for route in ROUTES}
            counts.update(self.counts)
        return {"counts": counts, "objects": self.store.listing()}

    def add_fault(self, route: str, fault: Fault) -> None:
        with self.lock:
            self.faults.setdefault(route, deque()).append(fault)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def take_fault(self, route: str) -> Fault | None:
        with self.lock:
            queue = self.faults.get(route)
            if not queue:
                return None
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.popleft()
            return fault

    def allow_rate(self, key: str, model: str, now: float | None = None) -> bool:
        """Sliding one-second window per key and model."""
        now = time.monotonic() if now is None else now
        with self.lock:
            window = self._windows.setdefault((key, model), deque())
            while window and now - window[0] >= 1.0:
                window.popleft()
            if len(window) >= self.config.qps:
                return False
            window.append(now)
            return True
