"""tidegate runtime library: shipped to Lambda as a layer.

Kept import-light on purpose: importing the package imports nothing else, so each handler
pays only for the modules it uses (cold start).
"""

__version__ = "0.1.0"
