"""Runtime tests."""
