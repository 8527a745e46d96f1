"""`python -m searchd ...` is the `searchd` command."""

from searchd.cli import main

main()
