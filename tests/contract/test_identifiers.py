"""Agency, dossier and procedure codes parse once and say clearly why they do not."""

import pytest

from schemas import AgencyCode, ContractError, DossierCode, ProcedureCode
from schemas.units import load_units, unit_name


def test_an_agency_code_exposes_its_level_one_unit() -> None:
    assert AgencyCode.parse("000.00.01.H29").unit == "H29"
    assert AgencyCode.parse("000.00.00.G01").is_ministry


@pytest.mark.parametrize("text", ["000.00.01.X29", "000.00.01.H2", "00.00.01.H29", "", "H29"])
def test_a_malformed_agency_code_is_refused_with_the_rule(text: str) -> None:
    with pytest.raises(ContractError, match="agency code must look like"):
        AgencyCode.parse(text)


def test_a_dossier_code_exposes_its_agency_day_and_sequence() -> None:
    code = DossierCode.parse("000.00.53.H48-220921-0099")
    assert (code.agency, code.unit, code.day.isoformat(), code.sequence) == (
        "000.00.53.H48",
        "H48",
        "2022-09-21",
        "0099",
    )


def test_a_dossier_code_with_a_malformed_agency_part_says_so() -> None:
    with pytest.raises(ContractError, match=r"agency part '00\.00\.01\.H29' is malformed"):
        DossierCode.parse("00.00.01.H29-240115-0001")


def test_a_dossier_code_whose_date_does_not_exist_is_refused() -> None:
    with pytest.raises(ContractError, match="240230 is not a real date"):
        DossierCode.parse("000.00.01.H29-240230-0001")


def test_a_procedure_code_may_be_national_or_localised() -> None:
    assert ProcedureCode.parse("1.000894").agency is None
    local = ProcedureCode.parse("3.000181.000.00.00.H22")
    assert (local.national, local.agency) == ("3.000181", "000.00.00.H22")


def test_a_non_string_identifier_is_refused_not_crashed_on() -> None:
    with pytest.raises(ContractError, match="procedure code"):
        ProcedureCode.parse(1.000894)


def test_unit_names_come_from_a_data_table_and_unknown_units_have_none() -> None:
    assert unit_name("H29") == "Thành phố Hồ Chí Minh"
    assert unit_name("H99") is None


def test_a_deployment_can_supply_its_own_unit_table(tmp_path) -> None:
    table = tmp_path / "units.csv"
    table.write_text("unit,name,kind\nH99,Tỉnh Mới,province\n", encoding="utf-8")
    assert load_units(table)["H99"].name == "Tỉnh Mới"
