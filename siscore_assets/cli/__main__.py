"""`python -m siscore_assets.cli` runs the `siscore` command (handy inside a worktree)."""

from siscore_assets.cli import app

app()
