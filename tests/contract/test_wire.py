"""The national portal's wire items: what the sync service sends and the portal simulator reads."""

from __future__ import annotations

import contextlib
import re
import typing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from factories import DOSSIER_CODE, a_dossier
from schemas import ContractError, Dossier, DossierStatus, Progress
from schemas.wire import (
    MAPPING,
    WIRE_TIME_PATTERN,
    WireType,
    from_wire,
    from_wire_time,
    progress_from_item,
    to_dossier_item,
    to_progress_item,
    to_wire_time,
)
from strategies import dossiers, moments, progress_steps

VIETNAM = timezone(timedelta(hours=7))
CONTRACT_DOC = Path(__file__).parents[2] / "docs" / "contract.md"

# DOMAIN.md's "Dossier record" and "Progress record", spelled out here rather than taken from
# schemas.wire's table, so that a typo in the table cannot agree with itself.
DOSSIER_RECORD = {
    "MaHoSo", "MaTTHC", "TenTTHC", "MaLinhVuc", "TenLinhVuc", "SoBienNhan", "ChuHoSo",
    "LoaiDoiTuong", "MaDoiTuong", "SoGiayToChuHoSo", "ThongTinKhac", "Email", "Fax",
    "SoDienThoai", "TrichYeuHoSo", "NgayNopHoSo", "NgayTiepNhan", "NgayHenTra", "NgayTra",
    "NgayTuChoi", "NgayKetThucXuLy", "TrangThaiHoSo", "ThongTinTra", "KenhThucHien", "HinhThuc",
    "DonViXuLy", "NoiNopHoSo", "DuocThanhToanTrucTuyen", "TaiKhoanDuocXacThucVoiVNeID",
    "HoSoCoThanhPhanSoHoa", "GhiChu", "TaiLieuNop", "DanhSachLePhi", "DanhSachTepDinhKemKhac",
    "DanhSachHoSoBoSung", "DanhSachGiayToKetQua",
}  # fmt: skip
LIST_RECORDS = {
    "TaiLieuNop": {
        "TepDinhKemId", "TenTepDinhKem", "MaThanhPhanHoSo", "DuongDanTaiTepTin", "DuocSoHoa",
        "DuocTaiSuDung", "DuocLayTuKhoDMQG", "IsDeleted",
    },
    "DanhSachLePhi": {"TenPhiLePhi", "MaPhiLePhi", "HinhThucThu", "Gia", "LoaiPhiLePhi"},
    "DanhSachTepDinhKemKhac": {"TenGiayTo", "SoLuong", "LoaiGiayTo"},
    "DanhSachHoSoBoSung": {
        "NguoiYeuCauBoSung", "NoiDungBoSung", "NgayBoSung", "NgayTiepNhanBoSung",
        "TrangThaiBoSung", "NgayHenTraTruoc", "NgayHenTraMoi",
    },
    "DanhSachGiayToKetQua": {
        "TenGiayTo", "MaThanhPhanHoSo", "GiayToId", "DuongDanTepTinKetQua", "MaGiayToKetQua",
    },
}  # fmt: skip
PROGRESS_RECORD = {
    "MaHoSo", "NguoiXuLy", "ChucDanh", "ThoiDiemXuLy", "PhongBanXuLy", "NoiDungXuLy",
    "TrangThai", "NgayBatDau", "NgayKetThucTheoQuyDinh",
}  # fmt: skip


def wire_of(dossier: Dossier) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return to_dossier_item(dossier), [to_progress_item(dossier.code, p) for p in dossier.progress]


def refusal(item: dict[str, Any], progress: list[dict[str, Any]] | None = None) -> str:
    with pytest.raises(ContractError) as caught:
        from_wire(item, progress or [])
    return str(caught.value)


def wire_dates(dossier: Dossier) -> list[tuple[datetime | None, str]]:
    """Every normalized moment beside the wire string it became."""
    item, progress = wire_of(dossier)
    pairs = []
    for row in MAPPING:
        if row.type is not WireType.DATE:
            continue
        path, _, leaf = row.path.rpartition(".")
        wire_list, _, wire_leaf = row.wire.rpartition(".")
        if path.endswith("[]"):
            owners = getattr(dossier, path[:-2])
            items = progress if path == "progress[]" else item[wire_list[:-2]]
            pairs += [(getattr(o, leaf), i[wire_leaf]) for o, i in zip(owners, items, strict=True)]
        else:
            pairs.append((getattr(dossier, row.path), item[row.wire]))
    return pairs


# --- properties ------------------------------------------------------------------------------


@given(dossiers())
def test_normalized_to_wire_and_back_is_the_identity(dossier: Dossier) -> None:
    """Any valid dossier written as wire items and read back is the same dossier."""
    item, progress = wire_of(dossier)
    assert from_wire(item, progress) == dossier


@given(dossiers())
def test_every_wire_date_is_fourteen_digits_naming_the_same_moment_in_utc_plus_7(
    dossier: Dossier,
) -> None:
    """Every wire date is yyyyMMddHHmmss of the same moment in UTC+7, and "" when absent."""
    for moment, text in wire_dates(dossier):
        if moment is None:
            assert text == ""
        else:
            assert re.fullmatch(WIRE_TIME_PATTERN, text, re.ASCII)
            wall_clock = datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=VIETNAM)
            assert wall_clock == moment


@given(dossiers())
def test_every_wire_scalar_is_a_string(dossier: Dossier) -> None:
    """Every scalar of a dossier item and of its progress items is a JSON string."""
    item, progress = wire_of(dossier)
    for key, value in item.items():
        if key in LIST_RECORDS:
            assert all(isinstance(v, str) for entry in value for v in entry.values())
        else:
            assert isinstance(value, str)
    assert all(isinstance(v, str) for step in progress for v in step.values())


@given(dossiers())
def test_the_wire_items_hold_exactly_the_fields_of_domain_md(dossier: Dossier) -> None:
    """A dossier item, its list entries and its progress items hold exactly DOMAIN.md's fields."""
    item, progress = wire_of(dossier)
    assert set(item) == DOSSIER_RECORD
    for name, fields in LIST_RECORDS.items():
        assert all(set(entry) == fields for entry in item[name])
    assert all(set(step) == PROGRESS_RECORD for step in progress)


@given(progress_steps())
def test_a_progress_step_read_back_from_its_item_is_the_same_step(step: Progress) -> None:
    """A progress step written as a wire item and read back alone is the same step."""
    assert progress_from_item(to_progress_item(DOSSIER_CODE, step)) == step


@given(moments())
def test_wire_time_names_the_whole_second_of_any_moment(moment: datetime) -> None:
    """A moment in any zone, written and read back, is the same moment less its fraction."""
    # Compared in UTC: Python calls a repeated local hour unequal to every moment of another zone.
    assert from_wire_time(to_wire_time(moment)) == moment.astimezone(UTC).replace(microsecond=0)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=10,
)


@given(
    st.sampled_from(sorted(DOSSIER_RECORD | {"Unknown"})),
    json_values | st.text("0123456789", max_size=16),
)
def test_any_wire_value_in_any_field_gives_a_dossier_or_a_contract_error(
    field: str, value: object
) -> None:
    """Whatever JSON value sits in a field, reading yields a dossier or a ContractError."""
    item, progress = wire_of(a_dossier())
    with contextlib.suppress(ContractError):
        assert isinstance(from_wire({**item, field: value}, progress), Dossier)


@given(json_values)
def test_any_json_value_as_an_item_gives_a_contract_error(value: object) -> None:
    """Whatever JSON value arrives instead of items, reading raises only ContractError."""
    with pytest.raises(ContractError):
        from_wire(value)  # type: ignore[arg-type]
    with pytest.raises(ContractError):
        progress_from_item(value)  # type: ignore[arg-type]


# --- the mapping table -----------------------------------------------------------------------


def test_the_contract_doc_table_is_the_mapping_table_of_the_code() -> None:
    """docs/contract.md's mapping table lists every row of schemas.wire.MAPPING, and no other."""
    text = CONTRACT_DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([^`]+)` \| `([^`]+)` \| (\w+) \|", text, re.MULTILINE))
    assert documented == {(row.path, row.wire, row.type.value) for row in MAPPING}


def model_in(annotation: Any) -> type[BaseModel] | None:
    """The model inside an annotation such as `Applicant` or `tuple[Fee, ...]`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, map(model_in, typing.get_args(annotation))), None)


def leaf_fields(model: type[BaseModel], prefix: str = "") -> set[str]:
    """`applicant.name`, `documents[].url`: every scalar field of a model, nested ones too."""
    names = set()
    for name, field in model.model_fields.items():
        nested = model_in(field.annotation)
        if nested is None:
            names.add(prefix + name)
        else:
            many = typing.get_origin(field.annotation) is tuple
            names |= leaf_fields(nested, f"{prefix}{name}{'[]' if many else ''}.")
    return names


def test_the_mapping_table_covers_every_field_of_the_dossier() -> None:
    """Every scalar field of the Dossier model, nested ones included, has a wire field."""
    assert leaf_fields(Dossier) == {row.path for row in MAPPING}


# --- examples --------------------------------------------------------------------------------

SAIGON = ZoneInfo("Asia/Ho_Chi_Minh")
NEW_YORK_WINTER = timezone(timedelta(hours=-5))


def a_full_dossier() -> Dossier:
    """Every field set, moments in four zones, one with microseconds the model drops."""
    return a_dossier(
        receipt_number="BN-0001",
        applicant={
            "name": "Nguyễn Văn An",
            "type": 1,
            "code": "CD-77",
            "id_number": "001234567889",
            "phone": "0912345678",
            "email": "an.nguyen@example.vn",
            "fax": "028-3829",
            "other_info": "12 Lê Lợi, Quận 1",
        },
        submitted_at=datetime(2024, 1, 14, 23, 59, 59, 999_999, tzinfo=NEW_YORK_WINTER),
        received_at=datetime(2024, 1, 15, 8, 30, tzinfo=UTC),
        due_at=datetime(2024, 1, 30, 17, 0, tzinfo=UTC),
        processed_at=datetime(2024, 1, 29, 16, 45, tzinfo=SAIGON),
        returned_at=datetime(2024, 1, 30, 9, 0, tzinfo=VIETNAM),
        refused_at=None,
        status=DossierStatus.RETURNED,
        return_info="Trả tại bộ phận một cửa",
        result_delivery=1,
        submission_place="000.00.01.H29",
        online_payment=2,
        vneid_verified=True,
        has_digitized_documents=True,
        note="Hồ sơ ưu tiên",
        documents=[
            {
                "file_id": "f-1",
                "file_name": "don-de-nghi.pdf",
                "component_code": "TP1",
                "url": "https://files.example.vn/f-1",
                "digitized": True,
                "reused": False,
                "from_national_repository": True,
                "deleted": True,
            }
        ],
        fees=[{"name": "Lệ phí cấp phép", "code": "LP01", "stage": 4, "amount": 75000, "kind": 2}],
        other_papers=[{"name": "Bản vẽ thiết kế", "quantity": 3, "kind": "BAN_SAO"}],
        supplements=[
            {
                "requested_by": "Lê Văn Cường",
                "content": "Bổ sung bản vẽ mặt bằng",
                "requested_at": datetime(2024, 1, 20, 2, 0, tzinfo=UTC),
                "received_at": datetime(2024, 1, 22, 9, 15, tzinfo=VIETNAM),
                "status": 1,
                "previous_due_at": datetime(2024, 1, 30, 8, 30, tzinfo=UTC),
                "new_due_at": None,
            }
        ],
        results=[
            {
                "name": "Giấy phép xây dựng",
                "component_code": "KQ1",
                "document_id": "GP-2024-001",
                "url": "https://files.example.vn/gp-2024-001",
                "result_code": "GPXD",
            }
        ],
        progress=[
            {
                "handler": "Trần Thị Bình",
                "title": "Chuyên viên",
                "handled_at": datetime(2024, 1, 15, 10, 30, tzinfo=UTC),
                "department": "Phòng Quản lý đô thị",
                "content": "Thụ lý hồ sơ",
                "status": 4,
                "started_at": datetime(2024, 1, 15, 17, 0, tzinfo=VIETNAM),
                "due_at": datetime(2024, 1, 19, 17, 0, tzinfo=VIETNAM),
            }
        ],
    )


def test_a_known_dossier_becomes_exactly_this_dossier_item() -> None:
    """A dossier with every field set becomes this exact DongBoHoSoMC item."""
    assert to_dossier_item(a_full_dossier()) == {
        "MaHoSo": "000.00.01.H29-240115-0001",
        "MaTTHC": "1.000894",
        "TenTTHC": "Cấp giấy phép xây dựng nhà ở riêng lẻ",
        "MaLinhVuc": "XD",
        "TenLinhVuc": "Xây dựng",
        "SoBienNhan": "BN-0001",
        "ChuHoSo": "Nguyễn Văn An",
        "LoaiDoiTuong": "1",
        "MaDoiTuong": "CD-77",
        "SoGiayToChuHoSo": "001234567889",
        "ThongTinKhac": "12 Lê Lợi, Quận 1",
        "Email": "an.nguyen@example.vn",
        "Fax": "028-3829",
        "SoDienThoai": "0912345678",
        "TrichYeuHoSo": "Xin cấp phép xây dựng nhà ở tại phường Bến Thành",
        "NgayNopHoSo": "20240115115959",  # 23:59:59.999999 at UTC-5: next day, no fraction
        "NgayTiepNhan": "20240115153000",
        "NgayHenTra": "20240131000000",  # 17:00 UTC is midnight in Vietnam
        "NgayTra": "20240130090000",
        "NgayTuChoi": "",
        "NgayKetThucXuLy": "20240129164500",
        "TrangThaiHoSo": "10",
        "ThongTinTra": "Trả tại bộ phận một cửa",
        "KenhThucHien": "2",
        "HinhThuc": "1",
        "DonViXuLy": "Phòng Quản lý đô thị",
        "NoiNopHoSo": "000.00.01.H29",
        "DuocThanhToanTrucTuyen": "2",
        "TaiKhoanDuocXacThucVoiVNeID": "1",
        "HoSoCoThanhPhanSoHoa": "1",
        "GhiChu": "Hồ sơ ưu tiên",
        "TaiLieuNop": [
            {
                "TepDinhKemId": "f-1",
                "TenTepDinhKem": "don-de-nghi.pdf",
                "MaThanhPhanHoSo": "TP1",
                "DuongDanTaiTepTin": "https://files.example.vn/f-1",
                "DuocSoHoa": "1",
                "DuocTaiSuDung": "0",
                "DuocLayTuKhoDMQG": "1",
                "IsDeleted": "True",
            }
        ],
        "DanhSachLePhi": [
            {
                "TenPhiLePhi": "Lệ phí cấp phép",
                "MaPhiLePhi": "LP01",
                "HinhThucThu": "4",
                "Gia": "75000",
                "LoaiPhiLePhi": "2",
            }
        ],
        "DanhSachTepDinhKemKhac": [
            {"TenGiayTo": "Bản vẽ thiết kế", "SoLuong": "3", "LoaiGiayTo": "BAN_SAO"}
        ],
        "DanhSachHoSoBoSung": [
            {
                "NguoiYeuCauBoSung": "Lê Văn Cường",
                "NoiDungBoSung": "Bổ sung bản vẽ mặt bằng",
                "NgayBoSung": "20240120090000",
                "NgayTiepNhanBoSung": "20240122091500",
                "TrangThaiBoSung": "1",
                "NgayHenTraTruoc": "20240130153000",
                "NgayHenTraMoi": "",
            }
        ],
        "DanhSachGiayToKetQua": [
            {
                "TenGiayTo": "Giấy phép xây dựng",
                "MaThanhPhanHoSo": "KQ1",
                "GiayToId": "GP-2024-001",
                "DuongDanTepTinKetQua": "https://files.example.vn/gp-2024-001",
                "MaGiayToKetQua": "GPXD",
            }
        ],
    }


def test_a_known_progress_step_becomes_exactly_this_progress_item() -> None:
    """A progress step becomes this exact CapNhatTienDoHoSoMC item, carrying its dossier's code."""
    dossier = a_full_dossier()
    assert to_progress_item(dossier.code, dossier.progress[0]) == {
        "MaHoSo": "000.00.01.H29-240115-0001",
        "NguoiXuLy": "Trần Thị Bình",
        "ChucDanh": "Chuyên viên",
        "ThoiDiemXuLy": "20240115173000",
        "PhongBanXuLy": "Phòng Quản lý đô thị",
        "NoiDungXuLy": "Thụ lý hồ sơ",
        "TrangThai": "4",
        "NgayBatDau": "20240115170000",
        "NgayKetThucTheoQuyDinh": "20240119170000",
    }


def test_the_known_dossier_reads_back_from_its_items() -> None:
    """The full example dossier read back from its items is the same dossier."""
    dossier = a_full_dossier()
    assert from_wire(*wire_of(dossier)) == dossier


@pytest.mark.parametrize("missing", ["", None])
def test_empty_and_null_dates_read_as_absent(missing: str | None) -> None:
    """A wire date sent as "" or as null reads as None, in the dossier and in its lists."""
    item, progress = wire_of(a_full_dossier())
    item["NgayHenTra"] = missing
    item["DanhSachHoSoBoSung"][0]["NgayTiepNhanBoSung"] = missing
    progress[0]["NgayBatDau"] = missing
    dossier = from_wire(item, progress)
    assert dossier.due_at is None
    assert dossier.supplements[0].received_at is None
    assert dossier.progress[0].started_at is None
    assert from_wire_time(missing) is None


def test_missing_optional_fields_and_lists_read_as_absent() -> None:
    """A vendor that leaves out optional fields and empty lists sends a valid dossier."""
    item = {
        "MaHoSo": DOSSIER_CODE,
        "MaTTHC": "1.000894",
        "TenTTHC": "Cấp giấy phép xây dựng",
        "ChuHoSo": "Nguyễn Văn An",
        "LoaiDoiTuong": "1",
        "TrangThaiHoSo": "1",
        "KenhThucHien": "2",
    }
    dossier = from_wire(item)
    assert dossier.documents == ()
    assert dossier.due_at is None
    assert dossier.applicant.email is None


def test_unknown_wire_field_is_refused_with_its_name_and_the_closest_known_one() -> None:
    """A field the portal does not know is refused; the message names it and suggests a name."""
    item, progress = wire_of(a_dossier())
    message = refusal({**item, "NgayHenTraa": "20240130153000"}, progress)
    assert "NgayHenTraa" in message
    assert "unknown field" in message
    assert "did you mean 'NgayHenTra'" in message


def test_unknown_fields_in_list_entries_and_progress_items_are_refused_by_place() -> None:
    """Unknown fields inside a list entry or a progress item are named with their place."""
    item, progress = wire_of(a_dossier())
    item["TaiLieuNop"][0]["KichThuoc"] = "1024"
    progress[0]["GhiChu"] = "x"
    message = refusal(item, progress)
    assert "TaiLieuNop[0].KichThuoc" in message
    assert "CapNhatTienDoHoSoMC[0].GhiChu" in message


def test_the_value_of_an_unknown_field_is_never_shown() -> None:
    """An unknown field may hold personal data, so its message shows only the value's size."""
    item, _ = wire_of(a_dossier())
    message = refusal({**item, "CCCD": "001234567889"})
    assert "001234567889" not in message
    assert "<12 characters>" in message


@pytest.mark.parametrize(
    "bad",
    [
        "2024-01-30",
        "2024013015300",
        "20241330153000",
        "20240130 53000",
        "２０２４０１３０１５３０００",
    ],
)
def test_a_bad_wire_date_is_refused_naming_the_field(bad: str) -> None:
    """A date that is not yyyyMMddHHmmss of a real moment is refused, naming its field."""
    item, progress = wire_of(a_dossier())
    item["NgayHenTra"] = bad
    progress[0]["ThoiDiemXuLy"] = bad
    message = refusal(item, progress)
    assert f"NgayHenTra: {bad!r}" in message
    assert f"CapNhatTienDoHoSoMC[0].ThoiDiemXuLy: {bad!r}" in message
    assert "yyyyMMddHHmmss" in message
    with pytest.raises(ContractError):
        from_wire_time(bad)


def test_a_wire_date_outside_the_contracts_years_is_refused_naming_the_field() -> None:
    """A real date before 1970 UTC is refused by the contract, named by its wire field."""
    item, _ = wire_of(a_dossier())
    message = refusal({**item, "NgayTiepNhan": "19700101065959"})
    assert message.startswith("NgayTiepNhan: '19700101065959'")


@pytest.mark.parametrize("bad", ["ten", "4.0", "-4", " 4", "٤", 4])
def test_a_code_that_is_not_a_decimal_string_is_refused(bad: object) -> None:
    """TrangThaiHoSo must be a string of ASCII digits; anything else is refused, naming it."""
    item, _ = wire_of(a_dossier())
    assert "TrangThaiHoSo" in refusal({**item, "TrangThaiHoSo": bad})


def test_a_code_outside_its_list_is_refused_naming_the_wire_field() -> None:
    """A well-formed code that is not in its code list is refused under its wire name."""
    item, _ = wire_of(a_dossier())
    item["DanhSachLePhi"][0]["HinhThucThu"] = "3"
    assert refusal(item).startswith("DanhSachLePhi[0].HinhThucThu: '3'")


@pytest.mark.parametrize(("text", "value"), [("True", True), ("1", True), ("False", False)])
def test_flags_and_booleans_read_both_spellings(text: str, value: bool) -> None:
    """Flags and IsDeleted read "True"/"False" and "1"/"0" alike."""
    item, _ = wire_of(a_dossier())
    item["TaiKhoanDuocXacThucVoiVNeID"] = text
    item["TaiLieuNop"][0]["IsDeleted"] = text
    dossier = from_wire(item)
    assert dossier.vneid_verified is value
    assert dossier.documents[0].deleted is value


def test_a_required_field_sent_empty_is_reported_missing() -> None:
    """A required field sent as "" is absent, and the message says it is required."""
    item, _ = wire_of(a_dossier())
    assert refusal({**item, "TenTTHC": ""}).startswith("TenTTHC: '' — required")


def test_a_personal_value_in_an_error_is_masked() -> None:
    """A malformed phone number is refused under SoDienThoai with its digits masked."""
    item, _ = wire_of(a_dossier())
    message = refusal({**item, "SoDienThoai": "0912345678x"})
    assert "SoDienThoai: '091******8x'" in message
    assert "0912345678" not in message


def test_a_citizen_id_of_the_wrong_length_is_refused_in_wire_names_and_masked() -> None:
    """The applicant's own rule is told with the wire field SoGiayToChuHoSo, value masked."""
    item, _ = wire_of(a_dossier())
    message = refusal({**item, "SoGiayToChuHoSo": "0012345678"})
    assert message.startswith("SoGiayToChuHoSo: '0012****78' — a citizen's SoGiayToChuHoSo")


def test_a_progress_item_of_another_dossier_is_refused() -> None:
    """A progress item read with a dossier must carry that dossier's MaHoSo."""
    item, progress = wire_of(a_dossier())
    progress[0]["MaHoSo"] = "000.00.01.H29-240115-0002"
    assert "CapNhatTienDoHoSoMC[0].MaHoSo" in refusal(item, progress)


def test_a_progress_item_read_alone_must_carry_a_valid_dossier_code() -> None:
    """A progress item read without its dossier is refused when its MaHoSo is no dossier code."""
    item = to_progress_item(DOSSIER_CODE, a_full_dossier().progress[0])
    with pytest.raises(ContractError) as caught:
        progress_from_item({**item, "MaHoSo": "H29-0001"})
    assert str(caught.value).startswith("CapNhatTienDoHoSoMC.MaHoSo: 'H29-0001' — dossier code")


def test_a_list_that_is_no_array_or_an_entry_that_is_no_object_is_refused_once_by_place() -> None:
    """A list or list entry of the wrong JSON kind is named, and not also called "required"."""
    item, _ = wire_of(a_full_dossier())
    item["DanhSachLePhi"] = "75000"
    item["TaiLieuNop"] = ["f-1"]
    message = refusal(item)
    assert "DanhSachLePhi: '75000' — must be a JSON array of objects" in message
    assert "TaiLieuNop[0]: <3 characters> — must be a JSON object" in message
    assert "TaiLieuNop[0]." not in message


def test_every_problem_of_an_item_is_reported_at_once() -> None:
    """One answer lists every broken field, so a vendor fixes them in one round."""
    item, _ = wire_of(a_dossier())
    with pytest.raises(ContractError) as caught:
        from_wire({**item, "NgayHenTra": "x", "KenhThucHien": "9", "Thua": "1"})
    assert [p.field for p in caught.value.problems] == ["Thua", "NgayHenTra", "KenhThucHien"]


def test_a_naive_datetime_has_no_wire_time() -> None:
    """A datetime without a zone names no moment, so it has no wire time."""
    with pytest.raises(ValueError, match="time zone"):
        to_wire_time(datetime(2024, 1, 15, 8, 30))


def test_wire_time_keeps_the_seconds_of_an_old_local_mean_time_offset() -> None:
    """Liberia's -00:44:30 of 1971 maps to the exact second in Vietnam time."""
    moment = datetime(1971, 6, 1, 12, 0, tzinfo=ZoneInfo("Africa/Monrovia"))
    assert to_wire_time(moment) == "19710601194430"


@pytest.mark.parametrize(("fold", "wire"), [(0, "20211107123000"), (1, "20211107133000")])
def test_wire_time_of_a_repeated_local_hour_follows_its_fold(fold: int, wire: str) -> None:
    """01:30 on New York's fall-back night is two moments; each gets its own wire time."""
    moment = datetime(2021, 11, 7, 1, 30, fold=fold, tzinfo=ZoneInfo("America/New_York"))
    assert to_wire_time(moment) == wire
