"""Operating a pipeline like a user would: produce load, check status, tail results, and
draw a run's timeline. Works on the embedded backend and on a real account alike."""
