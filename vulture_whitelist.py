"""What vulture (`make lint`, [tool.vulture] in pyproject.toml) cannot see used: names a signature must have.

Each entry names what it is for. At min_confidence 80 vulture reports unused imports and arguments; the ones below
are parameters a protocol fixes (the caller passes them positionally or by that name), not dead code.
"""

# ruff: noqa: F821, B018

decode_content  # archive.RawStream.read: urllib3's HTTPResponse.read(amt, decode_content) signature, a Protocol
signum  # demo._keep_running's signal handler: signal.signal calls it as handler(signum, frame)
frame  # the same signal handler's second parameter
exc_type  # __exit__(exc_type, exc, tb) of the context managers (localstack.MotoServer, loopback.LoopbackServer)
tb  # the same __exit__'s traceback parameter
