"""Event schemas: compiling the pipeline's schema and decoding records against it."""
