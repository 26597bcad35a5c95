"""The national portal's code lists, each value with its Vietnamese label.

Codes are integers in the normalized contract and strings on the wire ("10", not 10): the
wire module does that conversion, nowhere else.
"""

from __future__ import annotations

from enum import Enum, IntEnum, StrEnum
from typing import Self


class LabelledCode(IntEnum):
    """An integer code that also carries its official Vietnamese label."""

    label: str

    def __new__(cls, value: int, label: str) -> Self:
        member = int.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member

    def __str__(self) -> str:
        return f"{self.value} ({self.label})"


class StatusKind(Enum):
    OPEN = "open"
    PAUSED = "paused"
    DONE = "done"
    FINAL = "final"


class DossierStatus(LabelledCode):
    """TrangThaiHoSo: the same ten codes in every vendor's system."""

    SUBMITTED = 1, "Mới đăng ký"
    RECEIVED = 2, "Được tiếp nhận"
    REFUSED = 3, "Không được tiếp nhận"
    PROCESSING = 4, "Đang xử lý"
    SUPPLEMENT_REQUESTED = 5, "Yêu cầu bổ sung giấy tờ"
    PAYMENT_REQUESTED = 6, "Yêu cầu thực hiện nghĩa vụ tài chính"
    WITHDRAWN = 7, "Công dân yêu cầu rút hồ sơ"
    STOPPED = 8, "Dừng xử lý"
    DECIDED = 9, "Đã xử lý xong"
    RETURNED = 10, "Đã trả kết quả"

    @property
    def kind(self) -> StatusKind:
        return _STATUS_KINDS[self]

    @property
    def is_final(self) -> bool:
        return self.kind is StatusKind.FINAL


_STATUS_KINDS = {
    DossierStatus.SUBMITTED: StatusKind.OPEN,
    DossierStatus.RECEIVED: StatusKind.OPEN,
    DossierStatus.REFUSED: StatusKind.FINAL,
    DossierStatus.PROCESSING: StatusKind.OPEN,
    DossierStatus.SUPPLEMENT_REQUESTED: StatusKind.PAUSED,
    DossierStatus.PAYMENT_REQUESTED: StatusKind.PAUSED,
    DossierStatus.WITHDRAWN: StatusKind.FINAL,
    DossierStatus.STOPPED: StatusKind.FINAL,
    DossierStatus.DECIDED: StatusKind.DONE,
    DossierStatus.RETURNED: StatusKind.FINAL,
}


class Channel(LabelledCode):
    """KenhThucHien: how the dossier was submitted."""

    IN_PERSON = 1, "Trực tiếp"
    ONLINE = 2, "Trực tuyến"
    POSTAL = 3, "Qua dịch vụ bưu chính công ích"


class ApplicantType(LabelledCode):
    """LoaiDoiTuong: who owns the dossier (3 and 4 are vendor extensions the portal accepts)."""

    CITIZEN = 1, "Công dân"
    ENTERPRISE = 2, "Doanh nghiệp"
    STATE_AGENCY = 3, "Cơ quan nhà nước"
    OTHER = 4, "Khác"


class ApplicantIdType(LabelledCode):
    """LoaiDinhDanh: which kind of personal identity document a number is."""

    CITIZEN_IDENTITY = 1, "Căn cước công dân (12 số)"
    OLD_IDENTITY_CARD = 2, "Chứng minh nhân dân (9 số)"


class OnlinePayment(LabelledCode):
    """DuocThanhToanTrucTuyen: whether, and where, the fee was paid online."""

    NOT_ONLINE = 0, "Không thanh toán trực tuyến"
    NATIONAL_PORTAL = 1, "Thanh toán trên Cổng Dịch vụ công quốc gia"
    LOCAL_PORTAL = 2, "Thanh toán qua cổng thanh toán của bộ, ngành, địa phương"


class FeeCollectionStage(LabelledCode):
    """HinhThucThu: when a fee is collected."""

    AT_RECEPTION = 1, "Thu khi tiếp nhận hồ sơ"
    AT_SUPPLEMENT = 2, "Thu khi bổ sung hồ sơ"
    AT_RESULT = 4, "Thu khi trả kết quả"


class FeeKind(LabelledCode):
    """LoaiPhiLePhi."""

    NORMAL = 1, "Phí, lệ phí thông thường"
    APPRAISAL = 2, "Phí thẩm định"
    EXTENSION = 3, "Phí gia hạn"


class ResultDelivery(LabelledCode):
    """HinhThuc: how the result goes back to the applicant."""

    BY_HAND = 0, "Nhận trực tiếp"
    BY_POST = 1, "Qua dịch vụ bưu chính"


class ServiceLevel(StrEnum):
    """How much of a procedure can be done online (Decree 42/2022; formerly levels 3 and 4)."""

    label: str

    def __new__(cls, value: str, label: str) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member

    FULLY_ONLINE = "full", "Dịch vụ công trực tuyến toàn trình"
    PARTLY_ONLINE = "partial", "Dịch vụ công trực tuyến một phần"

    @classmethod
    def from_legacy_level(cls, level: int) -> ServiceLevel:
        """Level 4 became "toàn trình", level 3 "một phần"."""
        if level == 4:
            return cls.FULLY_ONLINE
        if level == 3:
            return cls.PARTLY_ONLINE
        raise ValueError(f"legacy service level must be 3 or 4, got {level}")


class SupplementStatus(LabelledCode):
    """TrangThaiBoSung. The portal publishes no list; these two are what vendors send."""

    REQUESTED = 0, "Chưa bổ sung"
    SUPPLIED = 1, "Đã bổ sung"
