"""Tests of the drug reference: packaged drugs.csv, load_reference, merge, validation, rebuild."""

from __future__ import annotations

import gzip
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from rxrisk.config.reference import (
    DRUG_CLASSES,
    EDITIONS,
    REFERENCE_SCHEMA,
    load_reference,
    reference_digest,
)
from rxrisk.config.resources import data_path
from rxrisk.errors import InputError

REPO = Path(__file__).resolve().parents[1]
SOURCE_DIR = REPO / "data" / "reference" / "sources"  # the project's copy of the sources
SCRIPT = REPO / "data" / "scripts" / "build_reference.py"
DRUGS_CSV = data_path("reference", "drugs.csv")

CSV_COLUMNS = [
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
]
CSV_TYPES = {
    "ndc": pa.string(),
    "drug_name": pa.string(),
    "ingredient": pa.string(),
    "drug_class": pa.string(),
    "strength_per_unit": pa.float64(),
    "unit": pa.string(),
    "mme_factor_cdc2022": pa.float64(),
    "mme_factor_cdc2018": pa.float64(),
    "long_acting": pa.bool_(),
    "days_per_unit": pa.float64(),
    "dea_schedule": pa.string(),
    "source": pa.string(),
}

# Concrete NDCs looked up in the built drugs.csv.
OXYCODONE_30 = "00054466525"  # Roxicodone 30 mg tablet (CDC)
FENTANYL_25 = "00093690045"  # fentanyl transdermal system 25 mcg/hr patch (CDC)
HYDROMORPHONE_2 = "00044102202"  # Dilaudid 2 mg tablet (CDC)
METHADONE_10 = "00054421725"  # Dolophine 10 mg tablet (CDC; also in the MAT list: CDC wins)
TRAMADOL_50 = "00045065910"  # Ultram 50 mg tablet (CDC)
BUTRANS_10 = "35356060504"  # Butrans 10 mcg/hr transdermal patch (CDC)
BELBUCA_75 = "59385002160"  # Belbuca 75 mcg buccal film (CDC)
SUBOXONE_FILM_8 = "12496120801"  # Suboxone 8-2 mg sublingual film (CDC, Master_Form Film)
ALPRAZOLAM_025 = "00009002901"  # Xanax 0.25 mg tablet (CDC Benzos sheet)
NEURONTIN_300 = "00071080524"  # Neurontin 300 mg capsule (gabapentin_NDCs.csv)
ZOLPIDEM_5 = "00024540131"  # Ambien 5 mg tablet (CDC Misc Zolpidem sheet)
VIVITROL = "65757030001"  # Vivitrol 380 mg ER injectable suspension (MAT_for_OUD_NDCs.csv)
PREGABALIN_75 = "00071101568"  # Lyrica (pregabalin) 75 mg capsule: not in the default reference


def _row(table: pa.Table, ndc: str) -> dict:
    rows = table.filter(pc.equal(table["ndc"], ndc)).to_pylist()
    assert len(rows) == 1, (ndc, rows)
    return rows[0]


@pytest.fixture(scope="module")
def ref2022() -> pa.Table:
    return load_reference()


@pytest.fixture(scope="module")
def ref2018() -> pa.Table:
    return load_reference(edition="cdc2018")


@pytest.fixture(scope="module")
def raw_csv() -> pa.Table:
    """The packaged CSV read with explicit column types (ndc stays a string)."""
    return pacsv.read_csv(
        DRUGS_CSV,
        convert_options=pacsv.ConvertOptions(
            column_types=CSV_TYPES,
            null_values=[""],
            strings_can_be_null=True,
            true_values=["true"],
            false_values=["false"],
        ),
    )


# --------------------------------------------------------------------------- packaged file


def test_csv_round_trips_with_explicit_types(raw_csv: pa.Table) -> None:
    assert raw_csv.column_names == CSV_COLUMNS
    assert raw_csv.schema.equals(pa.schema(CSV_TYPES))
    assert raw_csv.num_rows > 30_000
    assert DRUGS_CSV.stat().st_size < 5_000_000
    ndc = raw_csv["ndc"].to_pylist()
    assert ndc == sorted(ndc)


def test_ndcs_are_11_digits_and_unique(ref2022: pa.Table) -> None:
    ndc = ref2022["ndc"]
    assert ndc.null_count == 0
    assert pc.all(pc.match_substring_regex(ndc, r"^\d{11}$")).as_py()
    assert pc.count_distinct(ndc).as_py() == ref2022.num_rows


def test_every_drug_class_is_known(ref2022: pa.Table) -> None:
    classes = set(ref2022["drug_class"].to_pylist())
    assert classes <= set(DRUG_CLASSES)
    assert None not in classes


def test_opioid_rows_have_strength_and_unit(ref2022: pa.Table) -> None:
    opioids = ref2022.filter(pc.equal(ref2022["drug_class"], "opioid"))
    assert opioids.num_rows > 14_000
    assert opioids["strength_per_unit"].null_count == 0
    assert opioids["unit"].null_count == 0


def test_schema_and_sort(ref2022: pa.Table, ref2018: pa.Table) -> None:
    for table in (ref2022, ref2018):
        assert table.schema.equals(REFERENCE_SCHEMA)
        ndc = table["ndc"].to_pylist()
        assert ndc == sorted(ndc)
    assert EDITIONS == ("cdc2022", "cdc2018")
    assert DRUG_CLASSES == (
        "opioid",
        "buprenorphine_mat",
        "naltrexone",
        "naloxone",
        "benzodiazepine",
        "gabapentinoid",
        "muscle_relaxant",
        "sedative_hypnotic",
        "stimulant",
    )


def test_default_is_cached_per_edition() -> None:
    assert load_reference() is load_reference(edition="cdc2022")
    assert load_reference(edition="cdc2018") is load_reference(edition="cdc2018")
    assert load_reference() is not load_reference(edition="cdc2018")


# --------------------------------------------------------------------------- known rows


@pytest.mark.parametrize(
    ("ndc", "ingredient", "strength", "unit", "f2022", "f2018", "days"),
    [
        (OXYCODONE_30, "oxycodone", 30.0, "MG", 1.5, 1.5, None),
        (FENTANYL_25, "fentanyl", 25.0, "MCG/HR", 7.2, 7.2, 3.0),
        (HYDROMORPHONE_2, "hydromorphone", 2.0, "MG", 5.0, 4.0, None),
        (METHADONE_10, "methadone", 10.0, "MG", 4.7, 3.0, None),
        (TRAMADOL_50, "tramadol", 50.0, "MG", 0.2, 0.1, None),
        (BUTRANS_10, "buprenorphine", 10.0, "MCG/HR", None, None, 7.0),
        (BELBUCA_75, "buprenorphine", 75.0, "MCG", None, None, None),
    ],
)
def test_known_opioids(
    ref2022: pa.Table,
    ref2018: pa.Table,
    ndc: str,
    ingredient: str,
    strength: float,
    unit: str,
    f2022: float | None,
    f2018: float | None,
    days: float | None,
) -> None:
    r22, r18 = _row(ref2022, ndc), _row(ref2018, ndc)
    for r in (r22, r18):
        assert r["drug_class"] == "opioid"
        assert r["ingredient"] == ingredient
        assert r["strength_per_unit"] == strength
        assert r["unit"] == unit
        assert r["days_per_unit"] == days
    assert r22["mme_factor"] == f2022
    assert r18["mme_factor"] == f2018


def test_known_opioid_details(ref2022: pa.Table, raw_csv: pa.Table) -> None:
    assert _row(ref2022, FENTANYL_25)["long_acting"] is True
    assert _row(ref2022, OXYCODONE_30)["long_acting"] is False
    assert _row(ref2022, OXYCODONE_30)["dea_schedule"] == "2"
    assert _row(ref2022, BUTRANS_10)["drug_name"] == "BUTRANS"
    assert _row(ref2022, BELBUCA_75)["drug_name"] == "BELBUCA"
    # Dolophine is in both the CDC file and MAT_for_OUD_NDCs.csv: the CDC row is kept.
    assert _row(raw_csv, METHADONE_10)["source"] == "cdc2018"


@pytest.mark.parametrize(
    ("ndc", "drug_class", "ingredient", "source"),
    [
        (SUBOXONE_FILM_8, "buprenorphine_mat", "buprenorphine", "cdc2018"),
        (ALPRAZOLAM_025, "benzodiazepine", "alprazolam", "cdc2018"),
        (NEURONTIN_300, "gabapentinoid", "gabapentin", "gabapentin_NDCs.csv"),
        (ZOLPIDEM_5, "sedative_hypnotic", "zolpidem", "cdc2018"),
        (VIVITROL, "naltrexone", "naltrexone", "MAT_for_OUD_NDCs.csv"),
    ],
)
def test_known_non_opioids(
    ref2022: pa.Table,
    ref2018: pa.Table,
    raw_csv: pa.Table,
    ndc: str,
    drug_class: str,
    ingredient: str,
    source: str,
) -> None:
    for table in (ref2022, ref2018):
        r = _row(table, ndc)
        assert r["drug_class"] == drug_class
        assert r["ingredient"] == ingredient
        assert r["mme_factor"] is None
        assert r["days_per_unit"] is None
    assert _row(raw_csv, ndc)["source"] == source


def test_buprenorphine_split(ref2022: pa.Table) -> None:
    bup = ref2022.filter(pc.equal(ref2022["ingredient"], "buprenorphine"))
    assert bup["mme_factor"].null_count == bup.num_rows
    for r in bup.select(["drug_class", "unit", "days_per_unit"]).to_pylist():
        pain = r["unit"] in ("MCG/HR", "MCG")
        assert r["drug_class"] == ("opioid" if pain else "buprenorphine_mat"), r
        assert r["days_per_unit"] == (7.0 if r["unit"] == "MCG/HR" else None), r


def test_pregabalin_not_in_default(ref2022: pa.Table) -> None:
    assert not pc.any(pc.equal(ref2022["ndc"], PREGABALIN_75)).as_py()


def test_unknown_edition() -> None:
    with pytest.raises(InputError, match="edition"):
        load_reference(edition="cdc2016")


# --------------------------------------------------------------------------- user rows

USER_HEADER = "ndc,drug_name,ingredient,drug_class,strength_per_unit,unit,mme_factor\n"


def _write(tmp_path: Path, body: str, header: str = USER_HEADER, name: str = "my_ref.csv") -> Path:
    path = tmp_path / name
    path.write_text(header + body, encoding="utf-8")
    return path


def test_merge_user_csv(tmp_path: Path, ref2022: pa.Table) -> None:
    path = _write(
        tmp_path,
        f"{OXYCODONE_30},MY OXY,oxycodone,opioid,30,mg,2\n"
        f"{PREGABALIN_75},LYRICA,pregabalin,gabapentinoid,75,MG,\n",
    )
    merged = load_reference(path)
    assert merged.schema.equals(REFERENCE_SCHEMA)
    assert merged.num_rows == ref2022.num_rows + 1
    ndc = merged["ndc"].to_pylist()
    assert ndc == sorted(ndc) and len(set(ndc)) == len(ndc)
    oxy = _row(merged, OXYCODONE_30)
    assert oxy == {
        "ndc": OXYCODONE_30,
        "drug_name": "MY OXY",
        "ingredient": "oxycodone",
        "drug_class": "opioid",
        "strength_per_unit": 30.0,
        "unit": "MG",
        "mme_factor": 2.0,
        "long_acting": False,
        "days_per_unit": None,
        "dea_schedule": None,
    }
    pre = _row(merged, PREGABALIN_75)
    assert pre["drug_class"] == "gabapentinoid"
    assert pre["mme_factor"] is None
    # every other row is unchanged, and the cached default is not modified
    assert _row(merged, FENTANYL_25) == _row(ref2022, FENTANYL_25)
    assert not pc.any(pc.equal(load_reference()["ndc"], PREGABALIN_75)).as_py()
    assert reference_digest(merged) != reference_digest(ref2022)


def test_merge_edition_columns_and_optional(tmp_path: Path) -> None:
    header = (
        "ndc,ingredient,drug_class,strength_per_unit,unit,mme_factor_cdc2022,"
        "mme_factor_cdc2018,long_acting,days_per_unit,dea_schedule,source\n"
    )
    path = _write(
        tmp_path, f"{HYDROMORPHONE_2},hydromorphone,opioid,2,MG,6,4.5,yes,,2,me\n", header
    )
    r22 = _row(load_reference(path), HYDROMORPHONE_2)
    r18 = _row(load_reference(path, edition="cdc2018"), HYDROMORPHONE_2)
    assert (r22["mme_factor"], r18["mme_factor"]) == (6.0, 4.5)
    assert r22["long_acting"] is True
    assert r22["drug_name"] is None


def test_merge_gzip_parquet_and_table(tmp_path: Path) -> None:
    table = pa.table(
        {
            "ndc": [PREGABALIN_75],
            "ingredient": ["pregabalin"],
            "drug_class": ["gabapentinoid"],
            "strength_per_unit": [75.0],
            "unit": ["MG"],
            "mme_factor": pa.array([None], pa.float64()),
        }
    )
    gz = tmp_path / "ref.csv.gz"
    with gzip.open(gz, "wb") as fh:
        pacsv.write_csv(table, fh)
    pq.write_table(table, tmp_path / "ref.parquet")
    for extra in (table, gz, str(tmp_path / "ref.parquet")):
        assert _row(load_reference(extra), PREGABALIN_75)["ingredient"] == "pregabalin"


@pytest.mark.parametrize(
    ("body", "header", "column", "needle"),
    [
        (f"{PREGABALIN_75},X,pregabalin,opiod,75,MG,\n", None, "drug_class", "'opiod' in row 1"),
        ("7110156,X,pregabalin,gabapentinoid,75,MG,\n", None, "ndc", "not 11 digits"),
        ("0007-1101-568,X,p,gabapentinoid,75,MG,\n", None, "ndc", "not 11 digits"),
        (
            f"{PREGABALIN_75},X,p,gabapentinoid,75,MG,\n{PREGABALIN_75},X,p,gabapentinoid,75,MG,\n",
            None,
            "ndc",
            "duplicate ndc",
        ),
        (f"{PREGABALIN_75},X,p,gabapentinoid,abc,MG,\n", None, "strength_per_unit", "'abc'"),
        (f"{OXYCODONE_30},X,oxycodone,opioid,30,MG,-1\n", None, "mme_factor", "positive"),
        (f"{OXYCODONE_30},X,oxycodone,opioid,,MG,1.5\n", None, "strength_per_unit", "opioid"),
        (f"{OXYCODONE_30},X,oxycodone,opioid,30,,1.5\n", None, "unit", "opioid"),
        (f"{OXYCODONE_30},X,,opioid,30,MG,1.5\n", None, "ingredient", "required"),
        (
            f"{OXYCODONE_30},oxycodone,opioid,30,MG,1.5,maybe\n",
            "ndc,ingredient,drug_class,strength_per_unit,unit,mme_factor,long_acting\n",
            "long_acting",
            "'maybe'",
        ),
        (
            f"{OXYCODONE_30},oxycodone,opioid,30,MG,1.5,0\n",
            "ndc,ingredient,drug_class,strength_per_unit,unit,mme_factor,days_per_unit\n",
            "days_per_unit",
            "positive",
        ),
    ],
)
def test_validation_errors(
    tmp_path: Path, body: str, header: str | None, column: str, needle: str
) -> None:
    path = _write(tmp_path, body, header or USER_HEADER)
    with pytest.raises(InputError) as info:
        load_reference(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert "my_ref.csv" in msg
    assert f"'{column}'" in msg
    assert needle in msg


def test_validation_lists_at_most_three(tmp_path: Path) -> None:
    body = "".join(f"0000000000{i},X,p,opiod,1,MG,\n" for i in range(5))
    path = _write(tmp_path, body)
    with pytest.raises(InputError, match=r"row 3 \(and 2 more\); expected one of opioid"):
        load_reference(path)


def test_missing_columns(tmp_path: Path) -> None:
    path = _write(tmp_path, f"{OXYCODONE_30},oxycodone,opioid\n", "ndc,ingredient,drug_class\n")
    with pytest.raises(InputError, match=r"my_ref.csv: missing required column\(s\) 'strength"):
        load_reference(path)
    header = "ndc,ingredient,drug_class,strength_per_unit,unit,mme_factor_cdc2018\n"
    path = _write(tmp_path, f"{OXYCODONE_30},oxycodone,opioid,30,MG,1.5\n", header)
    with pytest.raises(InputError, match="'mme_factor'.*found mme_factor_cdc2018"):
        load_reference(path)
    assert _row(load_reference(path, edition="cdc2018"), OXYCODONE_30)["mme_factor"] == 1.5


def test_bad_extra_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_reference(tmp_path / "nope.csv")
    (tmp_path / "ref.xlsx").write_bytes(b"x")
    with pytest.raises(InputError, match="unsupported"):
        load_reference(tmp_path / "ref.xlsx")
    int_ndc = pa.table(
        {
            "ndc": [71101568],
            "ingredient": ["pregabalin"],
            "drug_class": ["gabapentinoid"],
            "strength_per_unit": [75.0],
            "unit": ["MG"],
            "mme_factor": pa.array([None], pa.float64()),
        }
    )
    with pytest.raises(InputError, match="column 'ndc' has type int64"):
        load_reference(int_ndc)


def test_digest_is_stable(ref2022: pa.Table, ref2018: pa.Table) -> None:
    d = reference_digest(ref2022)
    assert len(d) == 64 and int(d, 16) >= 0
    assert d == reference_digest(load_reference())
    rechunked = pa.concat_tables([ref2022.slice(0, 1000), ref2022.slice(1000)])
    assert reference_digest(rechunked) == d
    assert reference_digest(ref2018) != d
    assert reference_digest(ref2022.slice(1)) != d


# --------------------------------------------------------------------------- rebuild


def _provenance_files() -> dict[str, tuple[int, str]]:
    """``{relative path: (bytes, sha256)}`` from the tables of sources/PROVENANCE.md."""
    text = (SOURCE_DIR / "PROVENANCE.md").read_text(encoding="utf-8")
    files = {}
    cdc = "CDC_Oral_Morphine_Milligram_Equivalents_Sept_2018.xlsx"
    size = re.search(r"\| size \| ([\d,]+) bytes \|", text)
    digest = re.search(r"\| sha256 \| `([0-9a-f]{64})`", text)
    assert size and digest, "CDC size / sha256 rows missing from PROVENANCE.md"
    files[cdc] = (int(size.group(1).replace(",", "")), digest.group(1))
    row = r"^\| `([^`]+)` \| `[^`]+` \| ([\d,]+) \| `([0-9a-f]{64})` \|$"
    for name, n, sha in re.findall(row, text, re.M):
        files[f"valuesets/opioiddatalab_Codelists/{name}"] = (int(n.replace(",", "")), sha)
    return files


def test_sources_match_their_provenance() -> None:
    """Every source file the build reads is in the repository, as recorded (bytes, sha256)."""
    files = _provenance_files()
    assert len(files) == 7, sorted(files)  # the CDC workbook, five value sets, the MIT licence
    for rel, (size, sha) in files.items():
        path = SOURCE_DIR / rel
        assert path.is_file(), f"{path} is missing: the reference cannot be rebuilt"
        data = path.read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sha), rel
    kept = {p.relative_to(SOURCE_DIR).as_posix() for p in SOURCE_DIR.rglob("*") if p.is_file()}
    assert kept == set(files) | {"PROVENANCE.md", ".gitattributes"}, kept ^ set(files)


def test_wheel_does_not_ship_the_sources() -> None:
    """The package data of the reference folder matches its top level only (drugs.csv and the
    README), never the sources/ sub-folder (a few MB of xlsx and CSV that only the build reads)."""
    import tomllib

    tool = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    packages = tool["setuptools"]["packages"]
    assert "rxrisk.data.reference" in packages
    assert not [p for p in packages if p.startswith("rxrisk.data.reference.")], packages
    globs = tool["setuptools"]["package-data"]["rxrisk.data.reference"]
    assert globs and all("/" not in g and "**" not in g for g in globs), globs
    shipped = {p.name for g in globs for p in DRUGS_CSV.parent.glob(g) if p.is_file()}
    assert shipped == {"drugs.csv", "README.md"}, shipped


@pytest.mark.slow
def test_rebuild_is_byte_identical(tmp_path: Path) -> None:
    # A plain clone has everything: the sources live in the repository and openpyxl is in the
    # dev extra, so a missing piece is a failure, never a skip.
    assert (SOURCE_DIR / "CDC_Oral_Morphine_Milligram_Equivalents_Sept_2018.xlsx").is_file()
    import openpyxl  # in the dev extra; the build script needs it

    assert openpyxl.__version__

    out = tmp_path / "drugs.csv"
    proc = subprocess.run(  # the script's default --source-dir is the in-repository folder
        [sys.executable, str(SCRIPT), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == DRUGS_CSV.read_bytes()
