"""TLE parsing: the bundled CelesTrak files, each kind of bad line, and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from orbitq.services.orbits import (
    ELEMENT_AGE_WARN_DAYS,
    ImportProblem,
    bundled_path,
    parse_elements,
    stale_elements,
    tle_checksum,
)
from orbitq.services.orbits.elements import satrec_from_elements
from orbitq.services.orbits.tle import decode_catalog

from .support import ISS, bundled, tle_lines, with_checksum

ISS_NAME = "ISS (ZARYA)"
ISS_1 = "1 25544U 98067A   24316.80134145  .00024701  00000+0  41805-3 0  9996"
ISS_2 = "2 25544  51.6402 304.0768 0008521 164.1179 257.4029 15.51378358481449"
CSS_1 = "1 48274U 21035A   24316.31749812  .00052236  00000+0  63859-3 0  9998"
CSS_2 = "2 48274  41.4661 265.6718 0009369 307.1762  52.8221 15.59510287202116"


def _only_problem(text: str) -> ImportProblem:
    parsed = parse_elements(text)
    assert len(parsed.problems) == 1, parsed.problems
    return parsed.problems[0]


def test_bundled_files_parse_without_problems() -> None:
    counts = {"starlink": 9038, "oneweb": 651, "stations": 23}
    for name, count in counts.items():
        parsed = parse_elements(bundled_path(name).read_text(encoding="ascii"))
        assert parsed.problems == []
        assert len(parsed.elements) == count
    iss = bundled("stations")[ISS]
    assert iss.name == ISS_NAME  # trailing blanks of CelesTrak's name column dropped
    assert iss.line1 == ISS_1
    assert iss.line2 == ISS_2


def test_fields_of_a_known_element_set() -> None:
    (iss,) = parse_elements(f"{ISS_NAME}\r\n{ISS_1}\r\n{ISS_2}\r\n").elements
    assert iss.norad_id == ISS
    assert iss.epoch == datetime(2024, 11, 11, 19, 13, 55, 901280, tzinfo=UTC)
    assert iss.inclination_deg == 51.6402
    assert iss.raan_deg == 304.0768
    assert iss.eccentricity == pytest.approx(0.0008521)
    assert iss.arg_perigee_deg == 164.1179
    assert iss.mean_anomaly_deg == 257.4029
    assert iss.mean_motion_rev_per_day == 15.51378358
    assert iss.bstar == pytest.approx(0.41805e-3)
    assert iss.mean_motion_dot == pytest.approx(0.00024701)
    assert iss.rev_at_epoch == 48144
    assert iss.intl_designator == "98067A"


def test_two_line_form_and_space_track_name_lines() -> None:
    parsed = parse_elements(f"{ISS_1}\n{ISS_2}\n\n0 CSS (TIANHE)\n{CSS_1}\n{CSS_2}\n")
    assert parsed.problems == []
    assert [(e.norad_id, e.name) for e in parsed.elements] == [
        (25544, "25544"),
        (48274, "CSS (TIANHE)"),
    ]


def test_satrec_from_lines_and_from_elements_agree() -> None:
    iss = bundled("stations")[ISS]
    from_lines = iss.to_satrec()
    from_elements = satrec_from_elements(iss)
    for days in (0.0, 0.5, 1.0, 2.0):
        a = from_lines.sgp4(from_lines.jdsatepoch, from_lines.jdsatepochF + days)
        b = from_elements.sgp4(from_lines.jdsatepoch, from_lines.jdsatepochF + days)
        assert a[0] == b[0] == 0
        assert max(abs(x - y) for x, y in zip(a[1], b[1], strict=True)) < 1e-6  # km


def test_alpha5_catalog_numbers() -> None:
    assert decode_catalog("A0000") == 100_000
    assert decode_catalog("Z9999") == 339_999
    assert decode_catalog("25544") == 25_544
    assert decode_catalog("I0000") is None  # I and O are never used
    line1 = with_checksum("1 A1234" + ISS_1[7:68])
    line2 = with_checksum("2 A1234" + ISS_2[7:68])
    (element,) = parse_elements(f"{line1}\n{line2}\n").elements
    assert element.norad_id == 101_234


def _replace(line: str, column: int, text: str) -> str:
    """Put `text` at 1-based `column` and fix the checksum, so only the field is wrong."""
    body = line[: column - 1] + text + line[column - 1 + len(text) : 68]
    return with_checksum(body)


BAD_RECORDS = [
    pytest.param(ISS_1[:68] + "7", ISS_2, 2, "checksum digit is 7", id="checksum"),
    pytest.param(ISS_1, ISS_2[:60], 3, "has 60 characters, expected 69", id="short"),
    pytest.param(ISS_1, ISS_2 + "0", 3, "has 70 characters", id="long"),
    pytest.param(ISS_1, _replace(ISS_2, 3, "25545"), 3, "does not match 25544 on line 2", id="ids"),
    pytest.param(ISS_1, _replace(ISS_2, 9, "200.0000"), 3, "inclination 200.0", id="incl"),
    pytest.param(ISS_1, _replace(ISS_2, 27, "-000852"), 3, "eccentricity", id="ecc"),
    pytest.param(ISS_1, _replace(ISS_2, 53, " 0.00000000"), 3, "mean motion 0.0", id="n0"),
    pytest.param(ISS_1, _replace(ISS_2, 53, "25.00000000"), 3, "inside the Earth", id="n25"),
    pytest.param(ISS_1, _replace(ISS_2, 18, "400.0000"), 3, "RAAN 400.0", id="raan"),
    pytest.param(_replace(ISS_1, 21, "400.80134145"), ISS_2, 2, "epoch day 400", id="day"),
    pytest.param(_replace(ISS_1, 55, "4180x-3"), ISS_2, 2, "B* '4180x-3'", id="bstar"),
    pytest.param(_replace(ISS_1, 8, "X"), ISS_2, 2, "classification 'X'", id="class"),
    pytest.param(_replace(ISS_1, 3, "2554?"), ISS_2, 2, "catalog number '2554?'", id="catalog"),
    pytest.param(_replace(ISS_1, 33, "7"), ISS_2, 2, "columns [33]", id="shifted"),
    pytest.param(ISS_1.replace("U", "\u00dc"), ISS_2, 2, "printable ASCII", id="unicode"),
]


@pytest.mark.parametrize(("line1", "line2", "line", "fragment"), BAD_RECORDS)
def test_each_kind_of_bad_line_is_named(line1: str, line2: str, line: int, fragment: str) -> None:
    problem = _only_problem(f"{ISS_NAME}\n{line1}\n{line2}\n")
    assert problem.line == line
    assert fragment in problem.message


def test_structure_problems() -> None:
    parsed = parse_elements(f"{ISS_NAME}\n{ISS_1}\nSOMETHING\n{CSS_2}\nLONELY NAME\n")
    assert [(p.line, p.message.split(" ")[0]) for p in parsed.problems] == [
        (2, "TLE"),  # line 1 without its line 2
        (3, "'SOMETHING'"),  # a name followed by no TLE
        (4, "TLE"),  # a line 2 without a line 1
        (5, "'LONELY"),
    ]
    assert "not followed by its line 2" in parsed.problems[0].message


def test_every_bad_record_is_reported_and_good_ones_kept() -> None:
    good = bundled_path("stations").read_text(encoding="ascii").splitlines()
    lines = list(good[:9])  # three good records: lines 1-9
    lines += ["BAD ONE", ISS_1[:68] + "0", ISS_2]  # lines 10-12: checksum of line 11
    lines += good[9:12]  # a good record: 13-15
    lines += ["BAD TWO", ISS_1, ISS_2[:50]]  # 16-18: short line 18
    parsed = parse_elements("\n".join(lines))
    assert [p.line for p in parsed.problems] == [11, 18]
    assert len(parsed.elements) == 4


def test_duplicate_catalog_numbers_keep_the_first() -> None:
    parsed = parse_elements(f"A\n{ISS_1}\n{ISS_2}\nB\n{ISS_1}\n{ISS_2}\n")
    assert [e.name for e in parsed.elements] == ["A"]
    assert parsed.problems == [
        ImportProblem(5, parsed.problems[0].message),
    ]
    assert "already appeared at line 2" in parsed.problems[0].message


def test_unknown_format_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown element format"):
        parse_elements("", fmt="xml")


def test_staleness() -> None:
    iss = bundled("stations")[ISS]
    assert stale_elements([iss], iss.epoch + timedelta(days=ELEMENT_AGE_WARN_DAYS - 0.1)) == []
    assert stale_elements([iss], iss.epoch + timedelta(days=ELEMENT_AGE_WARN_DAYS + 0.1)) == [iss]
    assert stale_elements([iss], iss.epoch - timedelta(days=ELEMENT_AGE_WARN_DAYS + 0.1)) == [iss]
    assert iss.age_days(iss.epoch + timedelta(hours=12)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="aware"):
        stale_elements([iss], datetime(2024, 11, 11))


# A semi-major axis this far out keeps perigee above the atmosphere, so SGP4 accepts the set.
_PERIGEE_KM_MIN = 6_600.0
_MU = 398_600.8


@given(
    norad=st.integers(1, 99_999),
    yy=st.integers(0, 56),
    day=st.floats(1.0, 365.99999999),
    inclination=st.floats(0.0, 180.0),
    raan=st.floats(0.0, 359.9999),
    eccentricity=st.floats(0.0, 0.7),
    arg_perigee=st.floats(0.0, 359.9999),
    mean_anomaly=st.floats(0.0, 359.9999),
    mean_motion=st.floats(0.8, 16.5),
)
def test_a_generated_valid_tle_round_trips(
    norad: int,
    yy: int,
    day: float,
    inclination: float,
    raan: float,
    eccentricity: float,
    arg_perigee: float,
    mean_anomaly: float,
    mean_motion: float,
) -> None:
    motion_rad_s = mean_motion * 2 * 3.141592653589793 / 86400
    semi_major_km = (_MU / motion_rad_s**2) ** (1 / 3)
    assume(semi_major_km * (1 - eccentricity) > _PERIGEE_KM_MIN)
    line1, line2 = tle_lines(
        norad, yy, day, inclination, raan, eccentricity, arg_perigee, mean_anomaly, mean_motion
    )
    parsed = parse_elements(f"SAT\n{line1}\n{line2}\n")
    assert parsed.problems == []
    (element,) = parsed.elements
    assert element.norad_id == norad
    assert element.inclination_deg == pytest.approx(inclination, abs=5e-5)
    assert element.raan_deg == pytest.approx(raan, abs=5e-5)
    assert element.eccentricity == pytest.approx(eccentricity, abs=5e-8)
    assert element.mean_motion_rev_per_day == pytest.approx(mean_motion, abs=5e-9)
    expected_epoch = datetime(2000 + yy, 1, 1, tzinfo=UTC) + timedelta(days=day - 1)
    assert abs(element.epoch - expected_epoch) < timedelta(milliseconds=1)
    assert (element.line1, element.line2) == (line1, line2)


@settings(deadline=None)  # the first example loads the Starlink snapshot
@given(index=st.integers(0, 9037), which=st.sampled_from([1, 2]), digit=st.integers(0, 9))
def test_a_corrupted_checksum_digit_is_reported_with_its_line(
    index: int, which: int, digit: int
) -> None:
    elements = list(bundled("starlink").values())
    target = elements[index]
    assert target.line1 is not None
    assert target.line2 is not None
    lines = {1: target.line1, 2: target.line2}
    assume(int(lines[which][68]) != digit)
    lines[which] = lines[which][:68] + str(digit)
    neighbour = elements[(index + 1) % len(elements)]
    records = [neighbour.name, str(neighbour.line1), str(neighbour.line2)]
    text = "\n".join([*records, target.name, lines[1], lines[2]])
    problem = _only_problem(text)
    assert problem.line == 4 + which
    assert "checksum" in problem.message


@given(st.text(max_size=400), st.sampled_from(["auto", "tle", "omm-csv", "omm-json"]))
def test_random_text_never_raises(text: str, fmt: str) -> None:
    parsed = parse_elements(text, fmt)
    line_count = max(1, len(text.splitlines()))
    for problem in parsed.problems:
        assert problem.message
        assert problem.line >= 1
        if problem.unit == "line":
            assert problem.line <= line_count + 1


@given(
    which=st.sampled_from([1, 2]),
    column=st.integers(0, 68),
    char=st.characters(min_codepoint=32, max_codepoint=126),
)
def test_any_single_character_change_parses_or_is_reported_on_its_line(
    which: int, column: int, char: str
) -> None:
    lines = [ISS_NAME, ISS_1, ISS_2]
    line = lines[which]
    lines[which] = line[:column] + char + line[column + 1 :]
    parsed = parse_elements("\n".join(lines))
    if parsed.problems:
        # A broken line number turns the line into a "name": the lines around it are reported.
        assert {p.line for p in parsed.problems} <= {1, 2, 3}
        assert parsed.elements == []
    else:
        # Only changes that keep the checksum and every field valid get through.
        assert tle_checksum(lines[which]) == int(lines[which][68])
