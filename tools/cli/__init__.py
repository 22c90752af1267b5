"""What the scripts under tools/ share as command-line programs: the error convention (errors.py) and the run
folders (runs.py)."""
