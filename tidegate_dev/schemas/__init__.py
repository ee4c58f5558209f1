"""Schema tooling that never ships to Lambda: compatibility checks between versions."""
