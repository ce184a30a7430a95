"""`python -m exportwatch_local` is the same as the `exportwatch` console script."""

from exportwatch_local.cli import main

raise SystemExit(main())
