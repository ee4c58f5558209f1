"""`tidegate plan`: the capacity model (model.py), its measured inputs (calibration.py,
shape.py) and the command (cli.py)."""
