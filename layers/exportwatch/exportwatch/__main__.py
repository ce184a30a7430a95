"""`python -m exportwatch` is the same as the `exportwatch` console script."""

from exportwatch.cli import main

raise SystemExit(main())
