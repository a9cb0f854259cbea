"""Pure comparison: the inventory model, drift (added / removed / changed with diffs) and the
summary text. No I/O."""
