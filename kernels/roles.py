"""Bit flags describing what a fill does in the metrics (set per fill by the encoder).

These are encoding constants shared by the encoder and the kernels, not configuration.
"""

OPIOID = 1  # class opioid: MME, opioid days, opioid fills, prescribers, pharmacies
BENZO = 2  # class benzodiazepine
CNS = 4  # benzodiazepine, gabapentinoid, muscle_relaxant, sedative_hypnotic
MAT = 8  # buprenorphine_mat, naltrexone
NALOXONE = 16  # naloxone
