"""Time limits shared across modules and the scripts' ``--help``: the one place that states them.

Kept apart from ``http_client`` so that a script can state these limits without loading the
HTTP stack (``upload_file.py`` serves a batch of cache hits without it).
"""

REQUEST_TIMEOUT = 15.0               # probe.py and doctor.py --timeout: seconds to wait for data on one request
UPLOAD_TIMEOUT = 60.0                # upload_file.py --timeout: seconds without progress on one upload request
TLS_CHECK_TIMEOUT = 10.0             # doctor's second handshake (is TLS intercepted?) waits at most this long
RETRY_DEADLINE_FACTOR = 3.0          # the retries of one request end within this many timeouts ...
MIN_UPLOAD_RATE = 256 * 1024         # ... plus the time to send its body at this rate (bytes per second)
