"""Lambda event -> source records (Kinesis, MSK)."""
