"""Input/output helpers that compute nothing: Arrow <-> numpy conversions (``arrow``), output
path checks, the quarantine table and the writers that commit a run's outputs together
(``outputs``), and the files a run owns while it works (``runfiles``)."""
