"""``inspector bench``: the pipeline against the bare engine and a naive loop, side by side."""
