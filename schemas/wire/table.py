"""The mapping table: every normalized field beside the wire field that carries it.

Writing, reading and `docs/contract.md` are all read from this one table, so they cannot
disagree. The rows follow DOMAIN.md's order, which is the order vendors send.
"""

from __future__ import annotations

from enum import Enum
from typing import Final, NamedTuple


class WireType(Enum):
    """How a normalized value is spelled as a wire string (`spelling.py` says why)."""

    TEXT = "text"  # as is; "" when absent
    CODE = "code"  # a code list value as a decimal string: "10"
    NUMBER = "number"  # an amount or quantity as a decimal string: "100000"
    DATE = "date"  # yyyyMMddHHmmss in UTC+7; "" when absent
    FLAG = "flag"  # "1" / "0"
    BOOLEAN = "boolean"  # "True" / "False"


TEXT, CODE, NUMBER = WireType.TEXT, WireType.CODE, WireType.NUMBER
DATE, FLAG, BOOLEAN = WireType.DATE, WireType.FLAG, WireType.BOOLEAN


class Pair(NamedTuple):
    """One normalized field and its wire field.

    The wire has no applicant object: the owner's fields sit beside the dossier's, so their
    paths are dotted ("applicant.name").
    """

    path: str
    wire: str
    type: WireType


class ListPair(NamedTuple):
    """A tuple of nested models and the wire array that carries it."""

    path: str
    wire: str
    fields: tuple[Pair, ...]


DOSSIER_ITEM: Final = "DongBoHoSoMC"
PROGRESS_ITEM: Final = "CapNhatTienDoHoSoMC"

DOSSIER_FIELDS: Final = (
    Pair("code", "MaHoSo", TEXT),
    Pair("procedure_code", "MaTTHC", TEXT),
    Pair("procedure_name", "TenTTHC", TEXT),
    Pair("sector_code", "MaLinhVuc", TEXT),
    Pair("sector_name", "TenLinhVuc", TEXT),
    Pair("receipt_number", "SoBienNhan", TEXT),
    Pair("applicant.name", "ChuHoSo", TEXT),
    Pair("applicant.type", "LoaiDoiTuong", CODE),
    Pair("applicant.code", "MaDoiTuong", TEXT),
    Pair("applicant.id_number", "SoGiayToChuHoSo", TEXT),
    Pair("applicant.other_info", "ThongTinKhac", TEXT),
    Pair("applicant.email", "Email", TEXT),
    Pair("applicant.fax", "Fax", TEXT),
    Pair("applicant.phone", "SoDienThoai", TEXT),
    Pair("summary", "TrichYeuHoSo", TEXT),
    Pair("submitted_at", "NgayNopHoSo", DATE),
    Pair("received_at", "NgayTiepNhan", DATE),
    Pair("due_at", "NgayHenTra", DATE),
    Pair("returned_at", "NgayTra", DATE),
    Pair("refused_at", "NgayTuChoi", DATE),
    Pair("processed_at", "NgayKetThucXuLy", DATE),
    Pair("status", "TrangThaiHoSo", CODE),
    Pair("return_info", "ThongTinTra", TEXT),
    Pair("channel", "KenhThucHien", CODE),
    Pair("result_delivery", "HinhThuc", CODE),
    Pair("handling_unit", "DonViXuLy", TEXT),
    Pair("submission_place", "NoiNopHoSo", TEXT),
    Pair("online_payment", "DuocThanhToanTrucTuyen", CODE),
    Pair("vneid_verified", "TaiKhoanDuocXacThucVoiVNeID", FLAG),
    Pair("has_digitized_documents", "HoSoCoThanhPhanSoHoa", FLAG),
    Pair("note", "GhiChu", TEXT),
)

DOSSIER_LISTS: Final = (
    ListPair(
        "documents",
        "TaiLieuNop",
        (
            Pair("file_id", "TepDinhKemId", TEXT),
            Pair("file_name", "TenTepDinhKem", TEXT),
            Pair("component_code", "MaThanhPhanHoSo", TEXT),
            Pair("url", "DuongDanTaiTepTin", TEXT),
            Pair("digitized", "DuocSoHoa", FLAG),
            Pair("reused", "DuocTaiSuDung", FLAG),
            Pair("from_national_repository", "DuocLayTuKhoDMQG", FLAG),
            Pair("deleted", "IsDeleted", BOOLEAN),
        ),
    ),
    ListPair(
        "fees",
        "DanhSachLePhi",
        (
            Pair("name", "TenPhiLePhi", TEXT),
            Pair("code", "MaPhiLePhi", TEXT),
            Pair("stage", "HinhThucThu", CODE),
            Pair("amount", "Gia", NUMBER),
            Pair("kind", "LoaiPhiLePhi", CODE),
        ),
    ),
    ListPair(
        "other_papers",
        "DanhSachTepDinhKemKhac",
        (
            Pair("name", "TenGiayTo", TEXT),
            Pair("quantity", "SoLuong", NUMBER),
            Pair("kind", "LoaiGiayTo", TEXT),
        ),
    ),
    ListPair(
        "supplements",
        "DanhSachHoSoBoSung",
        (
            Pair("requested_by", "NguoiYeuCauBoSung", TEXT),
            Pair("content", "NoiDungBoSung", TEXT),
            Pair("requested_at", "NgayBoSung", DATE),
            Pair("received_at", "NgayTiepNhanBoSung", DATE),
            Pair("status", "TrangThaiBoSung", CODE),
            Pair("previous_due_at", "NgayHenTraTruoc", DATE),
            Pair("new_due_at", "NgayHenTraMoi", DATE),
        ),
    ),
    ListPair(
        "results",
        "DanhSachGiayToKetQua",
        (
            Pair("name", "TenGiayTo", TEXT),
            Pair("component_code", "MaThanhPhanHoSo", TEXT),
            Pair("document_id", "GiayToId", TEXT),
            Pair("url", "DuongDanTepTinKetQua", TEXT),
            Pair("result_code", "MaGiayToKetQua", TEXT),
        ),
    ),
)

# Each progress item also carries its dossier's MaHoSo, which is no attribute of Progress.
PROGRESS_CODE: Final = "MaHoSo"
PROGRESS_FIELDS: Final = (
    Pair("handler", "NguoiXuLy", TEXT),
    Pair("title", "ChucDanh", TEXT),
    Pair("handled_at", "ThoiDiemXuLy", DATE),
    Pair("department", "PhongBanXuLy", TEXT),
    Pair("content", "NoiDungXuLy", TEXT),
    Pair("status", "TrangThai", CODE),
    Pair("started_at", "NgayBatDau", DATE),
    Pair("due_at", "NgayKetThucTheoQuyDinh", DATE),
)

MAPPING: Final = (
    *DOSSIER_FIELDS,
    *(
        Pair(f"{group.path}[].{pair.path}", f"{group.wire}[].{pair.wire}", pair.type)
        for group in DOSSIER_LISTS
        for pair in group.fields
    ),
    Pair("code", f"{PROGRESS_ITEM}.{PROGRESS_CODE}", TEXT),
    *(Pair(f"progress[].{p.path}", f"{PROGRESS_ITEM}.{p.wire}", p.type) for p in PROGRESS_FIELDS),
)
"""Every row of the table, nested ones spelled out as `docs/contract.md` shows them."""
