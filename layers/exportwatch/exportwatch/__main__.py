"""`python -m exportwatch` runs the operator CLI, which lives in exportwatch_local (never deployed)."""

try:
    from exportwatch_local.cli import main
except ImportError:  # the Lambda layer, or an install without the local package
    raise SystemExit("exportwatch: the operator CLI is not installed here (make install puts it in .venv)") from None

raise SystemExit(main())
