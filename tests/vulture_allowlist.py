"""Names the dead-code check (vulture, tests/run.sh) must not report: each is used by something it cannot see.

vulture only reads this file. Add a name here only with the reason it is alive: a hook that a library or
protocol calls by name, an attribute a library reads, or a public name of the library that only users call.
"""

_ = object()

# -- the library's public surface (qianwen_ops/__init__.py): called by users' code, not by the bundle
_.resolve_file
_.api_settings
_.__getattr__          # PEP 562: the package's lazy public names

# -- PEP 517 build hooks (qianwen_ops/_build_backend.py): pip calls them by name, with keyword arguments
_.get_requires_for_build_wheel
_.get_requires_for_build_sdist
_.get_requires_for_build_editable
_.build_wheel
_.build_editable
_.build_sdist
_.config_settings
_.metadata_directory
_.external_attr         # zipfile.ZipInfo / tarfile.TarInfo fields the archive writers read
_.compress_type
_.mtime

# -- attributes and hooks of the standard library and of requests / urllib3 / oss2, set or defined for them
_.makefile              # http.client reads a response through sock.makefile() (http_client._Sock)
_.readable              # io.RawIOBase protocol (http_client._Reader)
_.readinto
_.default_port          # http.client.HTTPConnection
_.__annotations__       # named_tuple: what typing's introspection reads on a NamedTuple class
_.__cause__             # an exception's chain, which traceback printers read (errors.stripped cuts it)
_.__context__
_.trust_env             # requests.Session (the tests judge the sandbox with requests)
_.credentials_provider  # alibabacloud-oss-v2's Config (bench, tests)
_.endpoint
_.region
_.disable_upload_crc64_check
_.use_path_style

# -- http.server / socketserver hooks (the sandbox, the tests' small servers, the forward proxy)
_.protocol_version
_.server_version
_.sys_version
_.disable_nagle_algorithm
_.log_request
_.handle_error
_.client_address
_.do_GET
_.do_POST
_.do_PUT
_.do_HEAD
_.do_DELETE
_.daemon_threads
_.allow_reuse_address
_.request_queue_size

# -- pytest: hooks, autouse fixtures and module marks it finds by name; a fixture asked for its side effect
_.pytest_configure
_.pytestmark
_._windows_layer_verdict
_.own_registry
_.frozen                # test_oss_v4: the clock, frozen for the signatures
_.utcnow                # datetime's hook, replaced in that fixture
_.Bad                   # test_named_tuple: class statements whose creation must raise
_.Worse

# -- tests/winshim: msvcrt's whole constant set, as Windows has it
_.LK_LOCK
_.LK_RLCK
