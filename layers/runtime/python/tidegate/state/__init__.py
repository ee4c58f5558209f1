"""Windowed state: item layout, the store protocol and its DynamoDB backend."""
