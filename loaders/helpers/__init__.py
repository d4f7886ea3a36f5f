"""What the built-in readers share: checks on HDF5 files' declarations before any array is read. No readers here."""
