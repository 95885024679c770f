"""Medical code vocabulary of the synthetic book: weighted code groups and their dotless twins.

Every (code type, code) pair gets a vocabulary index; medical rows carry indices until the block
is finished (:mod:`rxrisk.synthetic.defects` turns them into strings).
"""

from __future__ import annotations

import numpy as np

#: group name -> list of (code_type, code, weight)
MEDICAL_GROUPS: dict[str, list[tuple[str, str, float]]] = {
    "office_cpt": [
        ("CPT", "99213", 45),
        ("CPT", "99214", 25),
        ("CPT", "99212", 10),
        ("CPT", "99215", 4),
        ("CPT", "99203", 4),
        ("CPT", "99204", 3),
        ("CPT", "99396", 3),
        ("CPT", "99397", 3),
        ("CPT", "99395", 2),
        ("HCPCS", "G0439", 1),
    ],
    "office_dx": [
        ("ICD10CM", "I10", 14),
        ("ICD10CM", "E11.9", 8),
        ("ICD10CM", "E78.5", 8),
        ("ICD10CM", "M54.5", 3),
        ("ICD10CM", "M54.50", 4),
        ("ICD10CM", "Z00.00", 8),
        ("ICD10CM", "Z00.01", 3),
        ("ICD10CM", "J06.9", 5),
        ("ICD10CM", "K21.9", 3),
        ("ICD10CM", "F41.1", 3),
        ("ICD10CM", "F32.9", 3),
        ("ICD10CM", "R51.9", 1),
        ("ICD10CM", "M25.561", 2),
        ("ICD10CM", "J45.909", 2),
        ("ICD10CM", "E66.9", 2),
        ("ICD10CM", "N39.0", 2),
        ("ICD10CM", "R05.9", 2),
        ("ICD10CM", "Z23", 3),
        ("ICD10CM", "M79.7", 1),
        ("ICD10CM", "G43.909", 1),
        ("ICD10CM", "R10.9", 1),
        ("ICD10CM", "M17.11", 1),
        ("ICD10CM", "E03.9", 2),
        ("ICD10CM", "L70.0", 1),
        ("ICD10CM", "Z79.899", 2),
    ],
    "office_extra": [
        ("CPT", "80053", 4),
        ("CPT", "85025", 4),
        ("CPT", "36415", 4),
        ("CPT", "90686", 2),
        ("CPT", "93000", 1),
        ("HCPCS", "J1100", 1),
        ("HCPCS", "J3420", 1),
        ("HCPCS", "A4253", 1),
    ],
    "office_pos": [("POS", "11", 80), ("POS", "22", 8), ("POS", "02", 6), ("POS", "10", 6)],
    "pain_dx": [
        ("ICD10CM", "M54.50", 20),
        ("ICD10CM", "M54.5", 6),
        ("ICD10CM", "G89.29", 18),
        ("ICD10CM", "G89.4", 6),
        ("ICD10CM", "M79.7", 6),
        ("ICD10CM", "M47.816", 8),
        ("ICD10CM", "M51.26", 6),
        ("ICD10CM", "M17.0", 5),
        ("ICD10CM", "Z79.891", 25),
    ],
    "ed_cpt": [
        ("CPT", "99281", 2),
        ("CPT", "99282", 8),
        ("CPT", "99283", 35),
        ("CPT", "99284", 35),
        ("CPT", "99285", 20),
    ],
    "ed_rev": [
        ("REV", "0450", 68),
        ("REV", "450", 15),
        ("REV", "0451", 4),
        ("REV", "0456", 4),
        ("REV", "0459", 4),
        ("REV", "0981", 5),
    ],
    "ed_pos": [("POS", "23", 1)],
    "ed_dx": [
        ("ICD10CM", "R07.9", 12),
        ("ICD10CM", "R10.9", 12),
        ("ICD10CM", "S93.401A", 6),
        ("ICD10CM", "J18.9", 6),
        ("ICD10CM", "N39.0", 6),
        ("ICD10CM", "R55", 5),
        ("ICD10CM", "S01.81XA", 5),
        ("ICD10CM", "M54.50", 6),
        ("ICD10CM", "K29.70", 4),
        ("ICD10CM", "R51.9", 6),
        ("ICD10CM", "J06.9", 6),
        ("ICD10CM", "S61.411A", 4),
        ("ICD10CM", "R06.02", 4),
        ("ICD10CM", "T78.40XA", 2),
    ],
    "inpatient": [("REV", "0120", 3), ("POS", "21", 1)],
    "overdose": [
        ("ICD10CM", "T40.2X1A", 38),
        ("ICD10CM", "T40.1X1A", 15),
        ("ICD10CM", "T40.411A", 20),
        ("ICD10CM", "T40.604A", 5),
        ("ICD10CM", "T40.2X4A", 5),
        ("ICD10CM", "T40.2X2A", 4),
        ("ICD10CM", "T40.3X1A", 5),
        ("ICD10CM", "T40.421A", 4),
        ("ICD10CM", "T40.0X1A", 1),
        ("ICD10CM", "T40.491A", 2),
        ("ICD10CM", "T40.691A", 1),
    ],
    "overdose_followup": [  # subsequent encounters: not an overdose
        ("ICD10CM", "T40.2X1D", 6),
        ("ICD10CM", "T40.1X1D", 2),
        ("ICD10CM", "T40.411D", 2),
        ("ICD10CM", "T40.2X1S", 1),
    ],
    "adverse_effect": [  # adverse effect / underdosing: not an overdose
        ("ICD10CM", "T40.2X5A", 10),
        ("ICD10CM", "T40.2X6A", 2),
        ("ICD10CM", "T40.415A", 1),
        ("ICD10CM", "K59.03", 4),
    ],
    "other_poisoning": [  # not opioid overdose codes
        ("ICD10CM", "T40.5X1A", 4),
        ("ICD10CM", "T40.7X1A", 3),
        ("ICD10CM", "T42.4X1A", 3),
        ("ICD10CM", "T51.0X1A", 2),
    ],
    "oud": [
        ("ICD10CM", "F11.20", 70),
        ("ICD10CM", "F11.10", 10),
        ("ICD10CM", "F11.21", 8),
        ("ICD10CM", "F11.23", 4),
        ("ICD10CM", "F11.90", 8),
    ],
    "mat_service": [("HCPCS", "H0020", 2), ("HCPCS", "G2068", 2), ("HCPCS", "J0571", 1)],
    "sud_alcohol": [("ICD10CM", "F10.20", 6), ("ICD10CM", "F10.10", 3), ("ICD10CM", "F10.21", 1)],
    "sud_cannabis": [("ICD10CM", "F12.90", 5), ("ICD10CM", "F12.20", 3), ("ICD10CM", "F12.10", 2)],
    "sud_other": [("ICD10CM", "F14.20", 4), ("ICD10CM", "F15.20", 3), ("ICD10CM", "F19.20", 3)],
    "tobacco": [("ICD10CM", "F17.210", 8), ("ICD10CM", "Z72.0", 2)],
    "cancer": [
        ("ICD10CM", "C50.911", 20),
        ("ICD10CM", "C34.90", 14),
        ("ICD10CM", "C61", 14),
        ("ICD10CM", "C18.9", 8),
        ("ICD10CM", "C79.51", 6),
        ("ICD10CM", "C25.9", 4),
        ("ICD10CM", "C90.00", 4),
        ("ICD10CM", "C4A.9", 1),
        ("ICD10CM", "C7A.010", 1),
        ("ICD10CM", "C43.9", 4),
    ],
    "cancer_pain": [("ICD10CM", "G89.3", 1)],
    "cancer_service": [("CPT", "96413", 3), ("HCPCS", "J9267", 1), ("CPT", "77412", 2)],
    "cancer_history": [("ICD10CM", "Z85.3", 5), ("ICD10CM", "Z85.46", 3), ("ICD10CM", "D05.10", 1)],
    "sickle": [("ICD10CM", "D57.00", 5), ("ICD10CM", "D57.1", 8), ("ICD10CM", "D57.01", 1)],
    "sickle_crisis": [("ICD10CM", "D57.00", 3), ("ICD10CM", "D57.219", 1)],
    "sickle_trait": [("ICD10CM", "D57.3", 1)],
    "hospice_rev": [("REV", "0651", 10), ("REV", "0655", 1), ("REV", "0656", 1)],
    "hospice_dx": [("ICD10CM", "Z51.5", 1)],
    "hospice_pos": [("POS", "34", 1)],
}


def _build_vocabulary():
    """Index every code of :data:`MEDICAL_GROUPS` (plus the dotless twins of ICD-10-CM codes).

    Returns ``(types, codes, groups, nodot, is_icd, is_t40)``: the code type and code of each
    index, each group's ``(indices, cumulative weights)``, the index of each code's dotless twin
    (itself when it has none), and whether each index is an ICD-10-CM code / a T40 code.
    """
    types: list[str] = []
    codes: list[str] = []
    index: dict[tuple[str, str], int] = {}

    def add(t: str, c: str) -> int:
        key = (t, c)
        if key not in index:
            index[key] = len(types)
            types.append(t)
            codes.append(c)
        return index[key]

    groups = {}
    for name, entries in MEDICAL_GROUPS.items():
        idx = np.array([add(t, c) for t, c, _ in entries], dtype=np.int32)
        w = np.array([w for _, _, w in entries], dtype=np.float64)
        groups[name] = (idx, np.cumsum(w) / w.sum())
    # dotless twins of ICD-10-CM codes
    nodot = np.arange(len(types), dtype=np.int32)
    for i in range(len(types)):
        if types[i] == "ICD10CM" and "." in codes[i]:
            nodot[i] = add("ICD10CM", codes[i].replace(".", ""))
    nodot = np.concatenate([nodot, np.arange(len(nodot), len(types), dtype=np.int32)])
    is_icd = np.array([t == "ICD10CM" for t in types])
    is_t40 = np.array(
        [t == "ICD10CM" and c.startswith("T40") for t, c in zip(types, codes, strict=True)]
    )
    return types, codes, groups, nodot, is_icd, is_t40


VOCAB_TYPES, VOCAB_CODES, GROUPS, NODOT, IS_ICD, IS_T40 = _build_vocabulary()
