#!/usr/bin/env python3
"""Run the local DashScope + OSS sandbox on loopback, in the foreground.

When ready, prints one JSON line on stdout: base_url, api_key (a standard sk- key
it accepts), other_api_key (a second account), token_plan_key (sk-sp-),
oss_endpoint, oss_bucket, oss_region, oss_access_key_id, oss_access_key_secret,
the STS trio, and limits. These are throw-away sandbox credentials, created fresh
at every start. Logs (method, path, status; never queries or headers) go to stderr.
Stops cleanly on SIGINT/SIGTERM. With --tls-cert/--tls-key both ports serve HTTPS
(base_url and oss_endpoint then start with https://; tests make the CA with trustme).

Test hooks: GET {base_url}/_sandbox/stats and POST {base_url}/_sandbox/faults with
{"route": "chat"|"getPolicy"|"postObject"|"oss", "status": 503, "count": 2} or
{"action": "reset"} (drop the connection mid-body) or {"action": "lose_answer"} (do the
request, then drop the connection instead of answering) or {"delay_s": 2.5};
{"clear": true} drops queued faults.
POST {base_url}/_sandbox/clock with {"advance_s": 400} moves the sandbox clock forward
(expiry of policies, presigned URLs and 48-hour media) without waiting;
POST {base_url}/_sandbox/purge deletes every stored object.

--ram-policy FILE restricts the main OSS AccessKey (oss_access_key_id) to a RAM policy document;
refused requests get OSS's 403 AccessDenied (see qianwen_sandbox/ram.py for the action mapping).
"""

import json
import signal
import sys
import threading
from pathlib import Path

from qianwen_ops import cli, errors
from qianwen_ops.urls import is_loopback_host
from qianwen_sandbox import SandboxConfig, start
from qianwen_sandbox.ram import PolicyError, load_policy


def main() -> int:
    parser = cli.ArgumentParser(prog="sandbox.py", description=__doc__,
                                epilog=cli.exit_code_epilog([errors.OK, errors.USAGE, errors.CONFIG]))
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="DashScope API port (default 0: any free port)")
    parser.add_argument("--oss-port", type=int, default=0, help="OSS port (default 0: any free port)")
    parser.add_argument("--data-dir", type=Path, help="where objects are kept (default: a temp dir, removed at exit)")
    parser.add_argument("--qps", type=int, default=100,
                        help="getPolicy requests per second per key+model (default 100)")
    parser.add_argument("--policy-ttl", type=int, default=300, help="upload policy lifetime in seconds (default 300)")
    parser.add_argument("--max-file-mb", type=int, default=100, help="largest temporary-storage upload (default 100)")
    parser.add_argument("--tls-cert", type=Path, help="serve HTTPS on both ports with this PEM certificate chain")
    parser.add_argument("--tls-key", type=Path, help="the PEM private key for --tls-cert")
    parser.add_argument("--ram-policy", type=Path, metavar="FILE",
                        help="RAM policy JSON enforced for the main OSS AccessKey (default: full access)")
    parser.add_argument("--latency-ms", type=int, default=0,
                        help="emulated round trip on both ports: one to open each connection, one per "
                             "request (default 0)")
    parser.add_argument("--upload-host", default="", metavar="URL",
                        help="the upload address getPolicy names (default: the OSS port, path-style); for tests "
                             "that route an OSS host name to the sandbox through a proxy")
    parser.add_argument("--quiet", action="store_true", help="no request log on stderr")
    args = parser.parse_args()
    if not is_loopback_host(args.host):
        parser.error("--host must be a loopback address (the sandbox prints its credentials)")
    for name, value, low, high in (("--port", args.port, 0, 65535), ("--oss-port", args.oss_port, 0, 65535),
                                   ("--qps", args.qps, 1, 100000), ("--policy-ttl", args.policy_ttl, 1, 86400),
                                   ("--max-file-mb", args.max_file_mb, 1, 5120),
                                   ("--latency-ms", args.latency_ms, 0, 10000)):
        if not low <= value <= high:
            parser.error(f"{name} must be between {low} and {high}")
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if args.data_dir is not None:
        args.data_dir.mkdir(parents=True, exist_ok=True)
    ram_policy = None
    if args.ram_policy is not None:
        try:
            ram_policy = load_policy(args.ram_policy)
        except PolicyError as exc:
            parser.error(f"--ram-policy: {exc}")
    config = SandboxConfig(host=args.host, port=args.port, oss_port=args.oss_port, data_dir=args.data_dir,
                           qps=args.qps, policy_ttl=args.policy_ttl, max_file_mb=args.max_file_mb,
                           tls_cert=args.tls_cert, tls_key=args.tls_key, ram_policy=ram_policy,
                           latency_ms=args.latency_ms, upload_host=args.upload_host)
    try:
        sandbox = start(config, quiet=args.quiet)
    except OSError as exc:  # ssl.SSLError too: a bad certificate or key file
        raise errors.QwenOpsError(f"cannot start the sandbox: {exc.strerror or exc.__class__.__name__}",
                                  errors.CONFIG) from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(json.dumps(sandbox.info), flush=True)
    print(f"sandbox: listening on {sandbox.info['base_url']} (api) and {sandbox.info['oss_endpoint']} (oss)",
          file=sys.stderr, flush=True)
    stop.wait()
    sandbox.stop()
    print("sandbox: stopped", file=sys.stderr)
    return errors.OK


if __name__ == "__main__":
    cli.run(main)
