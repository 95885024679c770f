"""Build the default drug reference ``data/reference/drugs.csv`` (see data/reference/README.md).

Usage::

    python data/scripts/build_reference.py [--source-dir data/reference/sources]
                                           [--out data/reference/drugs.csv]

``--source-dir`` defaults to ``<repo>/data/reference/sources`` (the project's copy of the source
files, with their licence and provenance) and ``--out`` to ``<repo>/data/reference/drugs.csv``.
The output is deterministic: the same inputs give the same bytes on every run (rows sorted by
ndc, fixed float formatting, ``\\n`` line endings, UTF-8). Needs ``openpyxl`` (a dev
dependency); the package itself only reads the CSV.

Sources, in precedence order (the first source that lists an NDC wins; later sources only add
NDCs that are not yet present):

1. ``CDC_Oral_Morphine_Milligram_Equivalents_Sept_2018.xlsx`` (CDC/NCIPC, public domain), sheets
   Opioids, Benzos, Muscle Relaxants, Stimulants, Misc Zolpidem. ``source = cdc2018``.
2. ``valuesets/opioiddatalab_Codelists/`` (Opioid Data Lab Codelists @ c1a0d9c, MIT), in this order:
   ``MAT_for_OUD_NDCs.csv``, ``buprenorphine_NDCs.csv``, ``ADF_NDCs.csv``,
   ``benzodiazepines_NDCs.csv``, ``gabapentin_NDCs.csv``. ``source`` = the file name.
   CDC wins for every NDC present in both (e.g. 322 of the 404 MAT NDCs, all of them buprenorphine,
   methadone or levomethadyl, are already in the CDC Opioids sheet: the CDC row is kept unchanged).

Columns written: ndc, drug_name, ingredient, drug_class, strength_per_unit, unit,
mme_factor_cdc2022, mme_factor_cdc2018, long_acting, days_per_unit, dea_schedule, source.
Empty cell = null. ``long_acting`` is ``true``/``false``.

Decisions, CDC file
-------------------
* ``ndc`` = the ``NDC`` text column (11 digits, zero padded; unique across the five sheets,
  asserted). ``drug_name`` = ``PRODNME``. ``ingredient`` = ``Drug`` lower-cased with the
  ``' LA'``/``' SA'`` suffix removed (``'Fentanyl LA'`` -> ``'fentanyl'``). ``unit`` = ``UOM``
  upper-cased (blank -> null). ``dea_schedule`` = ``DEAClassCode`` as text, as in the file
  (``'6'`` on the non-scheduled muscle relaxants is kept as CDC/RED BOOK wrote it).
* ``long_acting`` = ``LongShortActing == 'LA'``; the other sheets leave it blank -> false. CDC marks
  every buprenorphine row (including the MAT products) ``LA``; that is kept.
* ``drug_class``: Benzos -> benzodiazepine, Muscle Relaxants -> muscle_relaxant, Stimulants ->
  stimulant, Misc Zolpidem -> sedative_hypnotic, Opioids -> opioid, except buprenorphine, split by
  CDC's documentation note 5 (keep only the pain products): transdermal patches (UOM ``MCG/HR``:
  Butrans and the generic ``BUPRENORPHINE`` patches, same product type) and the buccal film in
  ``MCG`` (Belbuca) are ``opioid``; every other buprenorphine row (tablets and films in MG:
  Subutex, Suboxone, Zubsolv, Bunavail, generics; Probuphine implant and Sublocade with blank UOM)
  is ``buprenorphine_mat``. All buprenorphine has a null factor in both editions (CDC gives none).
* ``mme_factor_cdc2018`` = ``MME_Conversion_Factor`` (opioids only; null for buprenorphine and all
  non-opioids). The file's factors are checked against its own Summary Table (asserted).
* ``mme_factor_cdc2022`` = the CDC 2022 clinical practice guideline factor where the guideline gives
  one: codeine 0.15, hydrocodone 1, hydromorphone 5, methadone 4.7 (one factor, no dose tiers),
  morphine 1, oxycodone 1.5, oxymorphone 3, tapentadol 0.4, tramadol 0.2, fentanyl transdermal patch
  7.2 (= 2.4 per mcg/hr x 3 days per patch: the engine divides by days supply with days = patches x
  3, as the 2018 file does). Opioids the 2022 table omits keep the 2018 factor: levorphanol 11,
  meperidine 0.1, butorphanol 7, pentazocine 0.37, dihydrocodeine 0.25, opium 1, propoxyphene 0.23,
  levomethadyl 8, transmucosal fentanyl 0.13 (buccal/SL tablet, lozenge) / 0.16 (nasal spray) /
  0.18 (film, oral spray) per mcg.
* ``days_per_unit`` = 3 for fentanyl transdermal patches (UOM ``MCG/HR``), 7 for buprenorphine
  transdermal patches (``MCG/HR``), null otherwise (the methylphenidate patch, ``MG/HR``, is
  worn daily: null).
* Four Sublocade rows have blank strength and UOM; one Probuphine row has blank UOM. Kept as nulls
  (they are buprenorphine_mat, which never gets an MME).

Decisions, value-set files (only NDCs absent from all earlier sources are added)
-------------------------------------------------------------------------------
The NDC columns are wrapped in single quotes (``'00054306844'``): stripped. Files are read as
UTF-8 with an optional BOM; ``buprenorphine_NDCs.csv`` (and ``opioid_NDCs.csv``) contain byte 0xCA
(a Mac Roman no-break space), so the reader falls back to Latin-1 for those files. ``drug_name`` is
upper-cased (CDC style) with runs of spaces collapsed. Strength is parsed from ``strength`` and
``strength_uom``: a plain number with ``mg``/``mg/1``/``mcg``/``mg/mL``/``ug/h``; ``X mg/N mL`` is
converted to mg/mL; a strength embedded in the text (``'8 mg/1, 2 mg/1'``, ``'(1 mg/mL)'``,
``'5 ug/h'``) uses its first number; ``a-b`` combinations in a single unit (buprenorphine-naloxone
``2-0.5`` mg) take the first (controlled) component. Excel has turned some buprenorphine-naloxone
strengths into dates (``'2-aug'`` = 8-2 mg, ``'1-apr'`` = 4-1 mg, ``'3-dec'`` = 12-3 mg): the month
number is the buprenorphine strength. Anything else (bulk powders in ``%``, kits such as
``mg-%-%``, starter packs with two strengths, ``NA``) gets null strength and null unit: null strength
is fine for non-opioid classes and for buprenorphine_mat.

* ``MAT_for_OUD_NDCs.csv`` (404 NDCs: buprenorphine +/- naloxone, methadone, levomethadyl
  (Orlaam), naltrexone ER injection (Vivitrol); no naloxone-only product, no oral naltrexone):
  - buprenorphine products (Subutex, Suboxone, Zubsolv, Bunavail, Probuphine, generics) ->
    ``buprenorphine_mat``, null factor, ``long_acting`` true (CDC convention), schedule 3.
  - Vivitrol -> ``naltrexone`` (3 NDCs), no schedule.
  - methadone / Dolophine / Methadose / Diskets and Orlaam: the CDC row wins where present (187
    NDCs). There is no MAT class for full agonists, and CDC itself lists the same products
    (Methadose, Diskets, methadone oral concentrate, Orlaam) as ``opioid``, so the 24 oral tablets
    and solutions CDC misses (23 methadone, 1 Orlaam) are added as ``opioid`` with the methadone
    factors (4.7 / 3) or levomethadyl (8 / 8), ``long_acting`` true, schedule 2. Methadone bulk powder (``%``, 32 NDCs) and methadone
    injection in 0.9 % NaCl (3 NDCs) are skipped, as CDC excludes opioids in powder and injectables.
  - naloxone-only products would map to ``naloxone``: none are in the list.
* ``buprenorphine_NDCs.csv``: adds buprenorphine products CDC and the MAT list miss: Belbuca
  (``mcg``) and the generic transdermal patch (``ug/h`` -> ``MCG/HR``, days_per_unit 7) as
  ``opioid`` with null factor; solid sublingual products in mg (``mg/1``) and Probuphine as
  ``buprenorphine_mat``. Injections (``mg/ml``, Buprenex; CDC excludes buprenorphine in solution),
  bulk powders and rows without a strength (unknown dosage form) are skipped.
* ``ADF_NDCs.csv``: adds the 8 abuse-deterrent oxycodone ER NDCs (OxyContin repackagers, KVK
  oxycodone ER) CDC misses, as ``opioid``, oxycodone factor 1.5 / 1.5, ``long_acting`` true
  (``ir_er == 'ER'``), schedule 2. ``ER_opioids_NDC.csv`` adds nothing beyond CDC + ADF and is not read.
* ``benzodiazepines_NDCs.csv``: adds benzodiazepine NDCs CDC misses (newer generics,
  repackagers, injections, bulk powders) as ``benzodiazepine``, schedule 4, except midazolam
  (CDC explicitly excludes it: procedural sedation, not dispensed in outpatient pharmacy). The
  ingredient is the generic name found in ``drug_name``, else the CDC ingredient of the same
  9-digit product code (labeler + product), else the CDC ingredient of the same product name,
  else a short list of brand names (``BENZO_BRANDS``). 334 midazolam NDCs are skipped, and 24
  NDCs of old, inactive brands whose ingredient cannot be established from these sources (Di Tran,
  H-Tran, Calmium, Murcil, J-Tran, D-Tran, D-Val, M-Tran, Kenrax, Strazepam, Colspan, Gabazolamine)
  are skipped rather than guessed (the build log lists them).
* ``gabapentin_NDCs.csv``: every row -> ``gabapentinoid``, ingredient ``gabapentin`` (Horizant:
  ``gabapentin enacarbil``), no schedule (not federally controlled). Bulk powders and kits are
  kept with null strength. The list has no pregabalin (Lyrica) NDC, so the default reference has
  none: users add them with their own file (see data/reference/README.md).
* ``opioid_NDCs.csv`` is not read: its 7,152 NDCs absent from CDC are mostly injectables,
  bulk powders, cough/cold combinations and epidural mixtures that CDC deliberately excludes, with
  no dosage-form column to tell the oral ones apart, and an opioid row without a vetted factor
  would change MME. The known gap is documented in the README.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE_DIR = REPO / "data" / "reference" / "sources"
DEFAULT_OUT = REPO / "data" / "reference" / "drugs.csv"

CDC_FILE = "CDC_Oral_Morphine_Milligram_Equivalents_Sept_2018.xlsx"
CDC_SHA256 = "a221f798b20584aa8f4852035aa41c5e497a50db245c2ae5bd2821fafa6ca689"
VALUESET_DIR = Path("valuesets") / "opioiddatalab_Codelists"

COLUMNS = (
    "ndc",
    "drug_name",
    "ingredient",
    "drug_class",
    "strength_per_unit",
    "unit",
    "mme_factor_cdc2022",
    "mme_factor_cdc2018",
    "long_acting",
    "days_per_unit",
    "dea_schedule",
    "source",
)
CDC_HEADER = (
    "NDC",
    "NDC_Numeric",
    "PRODNME",
    "GENNME",
    "Master_Form",
    "Class",
    "Drug",
    "LongShortActing",
    "DEAClassCode",
    "Strength_Per_Unit",
    "UOM",
)
SHEET_CLASS = {
    "Opioids": "opioid",
    "Benzos": "benzodiazepine",
    "Muscle Relaxants": "muscle_relaxant",
    "Stimulants": "stimulant",
    "Misc Zolpidem": "sedative_hypnotic",
}

# CDC 2018 file factors (its Summary Table), used to check the per-row values.
CDC2018_FACTORS = {
    "butorphanol": 7.0,
    "codeine": 0.15,
    "dihydrocodeine": 0.25,
    "hydrocodone": 1.0,
    "hydromorphone": 4.0,
    "levomethadyl": 8.0,
    "levorphanol": 11.0,
    "meperidine": 0.1,
    "methadone": 3.0,
    "morphine": 1.0,
    "opium": 1.0,
    "oxycodone": 1.5,
    "oxymorphone": 3.0,
    "pentazocine": 0.37,
    "propoxyphene": 0.23,
    "tapentadol": 0.4,
    "tramadol": 0.1,
}
FENTANYL_2018 = {"MCG/HR": {7.2}, "MCG": {0.13, 0.18}, "MCG/SPRAY": {0.16, 0.18}}
# CDC 2022 clinical practice guideline, Table "MME conversion factors" (fentanyl patch separately).
CDC2022_FACTORS = {
    "codeine": 0.15,
    "hydrocodone": 1.0,
    "hydromorphone": 5.0,
    "methadone": 4.7,
    "morphine": 1.0,
    "oxycodone": 1.5,
    "oxymorphone": 3.0,
    "tapentadol": 0.4,
    "tramadol": 0.2,
}
FENTANYL_PATCH_2022 = 7.2  # 2.4 MME per mcg/hr x 3 days per patch

BENZO_INGREDIENTS = (
    "alprazolam",
    "chlordiazepoxide",
    "clobazam",
    "clonazepam",
    "clorazepate",
    "diazepam",
    "estazolam",
    "flurazepam",
    "halazepam",
    "lorazepam",
    "oxazepam",
    "prazepam",
    "quazepam",
    "temazepam",
    "triazolam",
)
# Old brand names of the benzodiazepine value set that neither CDC nor the generic name resolves.
BENZO_BRANDS = {
    "icn-azepox": "chlordiazepoxide",
    "zetran": "diazepam",
    "dizac": "diazepam",
    "ceberclon": "clonazepam",
    "diastat universal": "diazepam",
}
SCHEDULE = {"methadone": "2", "levomethadyl": "2", "oxycodone": "2", "buprenorphine": "3"}
MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}
NUM = r"(\d+(?:\.\d+)?|\.\d+)"
UNIT_MAP = {
    "mg": "MG",
    "mg/1": "MG",
    "mcg": "MCG",
    "ug/1": "MCG",
    "mg/ml": "MG/ML",
    "ug/h": "MCG/HR",
    "mcg/hr": "MCG/HR",
}


def log(msg: str) -> None:
    """Print a progress line to stderr."""
    print(msg, file=sys.stderr)


def fmt_float(x: float | None) -> str:
    """Format a float deterministically: shortest round-trip repr, no trailing ``.0``."""
    if x is None:
        return ""
    s = repr(float(x))
    return s[:-2] if s.endswith(".0") else s


def parse_strength(strength: str, uom: str) -> tuple[float | None, str | None]:
    """Parse a value-set ``strength`` / ``strength_uom`` pair into (strength, unit)."""
    s = strength.strip().lower().replace("\xa0", " ")
    u = uom.strip().lower().replace("\xa0", " ")
    if re.fullmatch(NUM, s):
        if u in UNIT_MAP:
            return float(s), UNIT_MAP[u]
        m = re.fullmatch(r"(mg|mcg)/" + NUM + r" ?ml(?: \(.*\))?", u)
        if m:  # "250 mg/5 mL" -> 50 MG/ML
            return float(s) / float(m.group(2)), m.group(1).upper() + "/ML"
        return None, None
    m = re.fullmatch(NUM + r"-(" + "|".join(MONTHS) + ")", s)
    if m and u in UNIT_MAP:  # Excel turned "8-2" into "2-aug"
        return float(MONTHS[m.group(2)]), UNIT_MAP[u]
    m = re.fullmatch(NUM + "-" + NUM, s)
    if m and u in UNIT_MAP:  # combination, controlled component first
        return float(m.group(1)), UNIT_MAP[u]
    for text in (s, u):  # strength written inside the text: "8 mg/1, 2 mg/1", "(1 mg/mL)"
        m = re.match(r"\(?" + NUM + r" ?(mg/ml|mg/1|mg|mcg|ug/h|ug/1)\b", text)
        if m and (text is s or s in ("na", "")):
            return float(m.group(1)), UNIT_MAP[m.group(2)]
    return None, None


def clean_name(name: str) -> str:
    """Upper-case a product name and collapse whitespace."""
    return " ".join(name.replace("\xa0", " ").split()).upper()


def read_valueset(path: Path) -> list[dict[str, str]]:
    """Read a value-set CSV (UTF-8 with optional BOM, Latin-1 fallback), NDC quotes stripped."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    for r in rows:
        key = "ndc" if "ndc" in r else "NDC"
        r["ndc"] = r.pop(key).strip().strip("'").strip()
        if not re.fullmatch(r"\d{11}", r["ndc"]):
            raise SystemExit(f"{path.name}: bad NDC {r['ndc']!r}")
    return rows


def row(**kw: object) -> dict[str, object]:
    """A reference row with every column present (missing -> None)."""
    out = {c: None for c in COLUMNS}
    out["long_acting"] = False
    out.update(kw)
    assert set(out) == set(COLUMNS), set(out) ^ set(COLUMNS)
    return out


def read_cdc(path: Path) -> dict[str, dict[str, object]]:
    """Read the five drug sheets of the CDC 2018 workbook into reference rows keyed by NDC."""
    import openpyxl  # dev dependency; only the build script needs it

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != CDC_SHA256:
        log(f"warning: {path.name} sha256 {digest} differs from PROVENANCE.md ({CDC_SHA256})")
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    out: dict[str, dict[str, object]] = {}
    try:
        for sheet, sheet_class in SHEET_CLASS.items():
            rows = wb[sheet].iter_rows(values_only=True)
            header = next(rows)
            expected = CDC_HEADER + (("MME_Conversion_Factor",) if sheet == "Opioids" else ())
            assert tuple(header[: len(expected)]) == expected, (sheet, header)
            n = 0
            for values in rows:
                if all(v is None for v in values):
                    continue
                r = dict(zip(expected, values, strict=False))
                ndc = str(r["NDC"]).strip()
                assert re.fullmatch(r"\d{11}", ndc), (sheet, ndc)
                assert ndc not in out, f"duplicate NDC {ndc} in CDC file"
                out[ndc] = cdc_row(sheet_class, ndc, r)
                n += 1
            log(f"cdc2018 {sheet}: {n} rows")
    finally:
        wb.close()
    return out


def cdc_row(sheet_class: str, ndc: str, r: dict[str, object]) -> dict[str, object]:
    """Convert one CDC row to a reference row (see the module docstring for the rules)."""
    ingredient = re.sub(r" (la|sa)$", "", str(r["Drug"]).strip().lower())
    unit = str(r["UOM"]).strip().upper() if r["UOM"] not in (None, "") else None
    strength = float(r["Strength_Per_Unit"]) if r["Strength_Per_Unit"] is not None else None
    dea = str(r["DEAClassCode"]).strip() if r["DEAClassCode"] not in (None, "") else None
    drug_class = sheet_class
    f2018 = f2022 = days = None
    if sheet_class == "opioid":
        factor = r.get("MME_Conversion_Factor")
        if ingredient == "buprenorphine":
            assert factor is None, ndc
            if unit in ("MCG/HR", "MCG"):  # transdermal patch (Butrans, generic) / Belbuca film
                days = 7.0 if unit == "MCG/HR" else None
            else:
                drug_class = "buprenorphine_mat"
        else:
            f2018 = float(factor)
            if ingredient == "fentanyl":
                assert f2018 in FENTANYL_2018[unit], (ndc, unit, f2018)
                if unit == "MCG/HR":
                    days = 3.0
                    f2022 = FENTANYL_PATCH_2022
                else:
                    f2022 = f2018
            else:
                assert f2018 == CDC2018_FACTORS[ingredient], (ndc, ingredient, f2018)
                f2022 = CDC2022_FACTORS.get(ingredient, f2018)
            assert strength is not None and unit is not None, ndc
    return row(
        ndc=ndc,
        drug_name=clean_name(str(r["PRODNME"])),
        ingredient=ingredient,
        drug_class=drug_class,
        strength_per_unit=strength,
        unit=unit,
        mme_factor_cdc2022=f2022,
        mme_factor_cdc2018=f2018,
        long_acting=r["LongShortActing"] == "LA",
        days_per_unit=days,
        dea_schedule=dea,
        source="cdc2018",
    )


BUP_MAT_NAMES = ("subutex", "suboxone", "zubsolv", "bunavail", "probuphine", "buprenorphine")


def mat_rows(rows: list[dict[str, str]], source: str) -> tuple[list[dict[str, object]], list[str]]:
    """Rows of MAT_for_OUD_NDCs.csv; returns (rows, skipped descriptions)."""
    out, skipped = [], []
    for r in rows:
        name = r["drug_name"].strip().lower()
        strength, unit = parse_strength(r["strength"], r["strength_uom"])
        base = {"ndc": r["ndc"], "drug_name": clean_name(r["drug_name"]), "source": source}
        if name == "vivitrol" or "naltrexone" in name:
            out.append(
                row(
                    **base,
                    ingredient="naltrexone",
                    drug_class="naltrexone",
                    strength_per_unit=strength,
                    unit=unit,
                )
            )
        elif name.startswith(BUP_MAT_NAMES):
            out.append(
                row(
                    **base,
                    ingredient="buprenorphine",
                    drug_class="buprenorphine_mat",
                    strength_per_unit=strength,
                    unit=unit,
                    long_acting=True,
                    dea_schedule=SCHEDULE["buprenorphine"],
                )
            )
        elif "naloxone" in name:
            out.append(
                row(
                    **base,
                    ingredient="naloxone",
                    drug_class="naloxone",
                    strength_per_unit=strength,
                    unit=unit,
                )
            )
        elif name in (
            "methadone",
            "dolophine",
            "methadose",
            "diskets",
            "methadone intensol",
            "orlaam",
        ):
            ing = "levomethadyl" if name == "orlaam" else "methadone"
            if unit not in ("MG", "MG/ML"):
                skipped.append(f"{r['ndc']} {name} {r['strength']} {r['strength_uom']}")
                continue
            out.append(
                row(
                    **base,
                    ingredient=ing,
                    drug_class="opioid",
                    strength_per_unit=strength,
                    unit=unit,
                    mme_factor_cdc2022=CDC2022_FACTORS.get(ing, CDC2018_FACTORS[ing]),
                    mme_factor_cdc2018=CDC2018_FACTORS[ing],
                    long_acting=True,
                    dea_schedule=SCHEDULE[ing],
                )
            )
        else:
            # methadone bulk powder and methadone injection in 0.9 % NaCl
            skipped.append(f"{r['ndc']} {name} {r['strength']} {r['strength_uom']}")
    return out, skipped


def buprenorphine_rows(rows: list[dict[str, str]], source: str) -> tuple[list, list[str]]:
    """Rows of buprenorphine_NDCs.csv (pain patches/films -> opioid, sublingual -> MAT)."""
    out, skipped = [], []
    for r in rows:
        name = r["drug_name"].strip().lower()
        strength, unit = parse_strength(r["strength"], r["strength_uom"])
        base = {
            "ndc": r["ndc"],
            "drug_name": clean_name(r["drug_name"]),
            "ingredient": "buprenorphine",
            "strength_per_unit": strength,
            "unit": unit,
            "long_acting": True,
            "dea_schedule": SCHEDULE["buprenorphine"],
            "source": source,
        }
        if "bulk" in name or strength is None:
            skipped.append(f"{r['ndc']} {name} {r['strength']} {r['strength_uom']}")
        elif unit == "MCG/HR":
            out.append(row(**base, drug_class="opioid", days_per_unit=7.0))
        elif unit == "MCG" and "belbuca" in name:
            out.append(row(**base, drug_class="opioid"))
        elif unit == "MG":
            out.append(row(**base, drug_class="buprenorphine_mat"))
        else:  # injection (mg/ml): CDC excludes buprenorphine in solution
            skipped.append(f"{r['ndc']} {name} {r['strength']} {r['strength_uom']}")
    return out, skipped


def adf_rows(rows: list[dict[str, str]], source: str) -> tuple[list, list[str]]:
    """Rows of ADF_NDCs.csv (abuse-deterrent formulations; all oral solids in MG)."""
    out, skipped = [], []
    for r in rows:
        ing = r["opioid_ingredient1"].strip().lower()
        strength, unit = parse_strength(r["strength"], r["strength_uom"])
        if ing not in CDC2018_FACTORS or unit != "MG":
            skipped.append(f"{r['ndc']} {r['drug_name']} {ing} {r['strength']}")
            continue
        out.append(
            row(
                ndc=r["ndc"],
                drug_name=clean_name(r["drug_name"]),
                ingredient=ing,
                drug_class="opioid",
                strength_per_unit=strength,
                unit=unit,
                mme_factor_cdc2022=CDC2022_FACTORS.get(ing, CDC2018_FACTORS[ing]),
                mme_factor_cdc2018=CDC2018_FACTORS[ing],
                long_acting=r["ir_er"].strip().upper() == "ER",
                dea_schedule=SCHEDULE.get(ing, "2"),
                source=source,
            )
        )
    return out, skipped


def benzo_rows(
    rows: list[dict[str, str]], source: str, cdc: dict[str, dict[str, object]]
) -> tuple[list, list[str]]:
    """Rows of benzodiazepines_NDCs.csv (midazolam excluded, ingredient resolved)."""
    by_product: dict[str, str] = {}
    by_name: dict[str, str] = {}
    for ndc in sorted(cdc):
        c = cdc[ndc]
        if c["drug_class"] == "benzodiazepine":
            by_product.setdefault(ndc[:9], str(c["ingredient"]))
            by_name.setdefault(str(c["drug_name"]).lower(), str(c["ingredient"]))
    out, skipped = [], []
    for r in rows:
        name = " ".join(r["drug_name"].lower().split())
        if "midazolam" in name or "versed" in name:
            skipped.append(f"{r['ndc']} {name} (midazolam)")
            continue
        found = [i for i in BENZO_INGREDIENTS if i in name]
        ing = (
            found[0]
            if len(found) == 1
            else by_product.get(r["ndc"][:9]) or by_name.get(name) or BENZO_BRANDS.get(name)
        )
        if ing is None:
            skipped.append(f"{r['ndc']} {name} (ingredient unknown)")
            continue
        strength, unit = parse_strength(r["strength"], r["strength_uom"])
        out.append(
            row(
                ndc=r["ndc"],
                drug_name=clean_name(r["drug_name"]),
                ingredient=ing,
                drug_class="benzodiazepine",
                strength_per_unit=strength,
                unit=unit,
                dea_schedule="4",
                source=source,
            )
        )
    return out, skipped


def gabapentin_rows(rows: list[dict[str, str]], source: str) -> tuple[list, list[str]]:
    """Rows of gabapentin_NDCs.csv (all gabapentinoid; pregabalin would be too, none present)."""
    out = []
    for r in rows:
        name = r["drug_name"].strip().lower()
        if "pregabalin" in name or "lyrica" in name:
            ing = "pregabalin"
        elif "horizant" in name or "enacarbil" in name:
            ing = "gabapentin enacarbil"
        else:
            ing = "gabapentin"
        strength, unit = parse_strength(r["strength"], r["strength_uom"])
        out.append(
            row(
                ndc=r["ndc"],
                drug_name=clean_name(r["drug_name"]),
                ingredient=ing,
                drug_class="gabapentinoid",
                strength_per_unit=strength,
                unit=unit,
                source=source,
            )
        )
    return out, []


def build(source_dir: Path) -> list[dict[str, object]]:
    """Build every reference row from the source files, sorted by ndc."""
    table = read_cdc(source_dir / CDC_FILE)
    vs = source_dir / VALUESET_DIR
    steps = (
        ("MAT_for_OUD_NDCs.csv", lambda rows, s: mat_rows(rows, s)),
        ("buprenorphine_NDCs.csv", lambda rows, s: buprenorphine_rows(rows, s)),
        ("ADF_NDCs.csv", lambda rows, s: adf_rows(rows, s)),
        ("benzodiazepines_NDCs.csv", lambda rows, s: benzo_rows(rows, s, table)),
        ("gabapentin_NDCs.csv", lambda rows, s: gabapentin_rows(rows, s)),
    )
    for name, convert in steps:
        raw = read_valueset(vs / name)
        ndcs = [r["ndc"] for r in raw]
        assert len(ndcs) == len(set(ndcs)), f"duplicate NDC in {name}"
        new = [r for r in raw if r["ndc"] not in table]
        rows, skipped = convert(new, name)
        for r in rows:
            table[str(r["ndc"])] = r
        log(
            f"{name}: {len(raw)} NDCs, {len(raw) - len(new)} already present (kept), "
            f"{len(rows)} added, {len(skipped)} skipped"
        )
        for s in skipped:
            log(f"  skipped {s}")
    return [table[k] for k in sorted(table)]


def to_csv(rows: list[dict[str, object]]) -> bytes:
    """Serialise the rows as deterministic CSV bytes."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(COLUMNS)
    floats = {"strength_per_unit", "mme_factor_cdc2022", "mme_factor_cdc2018", "days_per_unit"}
    for r in rows:
        out = []
        for c in COLUMNS:
            v = r[c]
            if c in floats:
                out.append(fmt_float(v))  # type: ignore[arg-type]
            elif c == "long_acting":
                out.append("true" if v else "false")
            else:
                out.append("" if v is None else str(v))
        w.writerow(out)
    return buf.getvalue().encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source-dir", type=Path, default=DEFAULT_SOURCE_DIR)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    if not (args.source_dir / CDC_FILE).is_file():
        raise SystemExit(
            f"{args.source_dir}: {CDC_FILE} not found; give --source-dir the folder holding the "
            "source files (default data/reference/sources)"
        )
    rows = build(args.source_dir)
    ndcs = [r["ndc"] for r in rows]
    assert len(ndcs) == len(set(ndcs)), "duplicate ndc"
    assert all(re.fullmatch(r"\d{11}", str(n)) for n in ndcs), "ndc not 11 digits"
    data = to_csv(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    counts: dict[str, int] = {}
    for r in rows:
        counts[str(r["drug_class"])] = counts.get(str(r["drug_class"]), 0) + 1
    log(f"wrote {args.out} ({len(rows)} rows, {len(data)} bytes): {dict(sorted(counts.items()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
