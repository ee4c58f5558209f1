"""Mergeable aggregate functions (create, add, merge, result), as Flink splits them."""
