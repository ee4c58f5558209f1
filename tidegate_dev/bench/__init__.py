"""`tidegate bench`: throughput, write cost, cold start, close latency and dollars, measured
side by side in one run against the targets of issue 8.

Nothing here ships to Lambda. Modules are imported by the command on demand: the moto and
peer sections are heavy, and the CPU section must not pay for them.
"""
