"""Bypass discovery: find the paths from an identity to a sensitive action that have no second control.

`engine.scan(paths)` walks the inputs, recognises each file by its content, and hands it to the one scanner
that owns that kind of file; each scanner returns `Finding`s (see `findings.py`). Reports are rendered
from a `ScanResult` by the `report_*` modules. Nothing found in a scanned file is ever executed.
"""
