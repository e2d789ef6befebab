"""One module per serving backend (`<name>.py` starts and stops servers; `<name>_service.py` runs inside them)."""
