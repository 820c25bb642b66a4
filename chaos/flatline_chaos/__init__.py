"""flatline's helpers around Chaos Toolkit runs (the readable report of a run)."""
