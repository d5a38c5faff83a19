"""How long one request may keep retrying: shared by the HTTP layer and the scripts' ``--help``.

Kept apart from ``http_client`` so that a script can state these limits without loading the
HTTP stack (``upload_file.py`` serves a batch of cache hits without it).
"""

RETRY_DEADLINE_FACTOR = 3.0          # the retries of one request end within this many timeouts ...
MIN_UPLOAD_RATE = 256 * 1024         # ... plus the time to send its body at this rate (bytes per second)
