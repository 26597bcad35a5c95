"""The sample local system's own spelling of a dossier, and the system itself moving in time.

A connector's hard part is translation, not transport: every vendor names, codes and dates a
dossier its own way. So the sample speaks a vendor's dialect on purpose, unlike the contract
in every respect a real one is: Vietnamese snake_case names without marks, status codes as
words, naive wall-clock times of Vietnam, booleans as 0/1, nested lists under their own names.
`connectors/examples/*.toml` map it back, and the tests hold them to reproducing every
dossier exactly; a mapping that is right for the sample has met each kind of difference.

`LocalSystem` replays seeded lifecycles (`connectors.sample.lifecycle`) as the rows of such a
system: each step updates one dossier's row, bumps its version (`phien_ban`, the event's seq)
and stamps it (`cap_nhat_luc`, strictly increasing, as an updated-at column a connector
polls on). The REST, SQL and file samples serve those rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any, Final

from pydantic import BaseModel

from connectors.sample.lifecycle import lifecycles
from schemas import AgencyCode, Dossier, DossierStatus, Event
from schemas.wire import VIETNAM_TIME

LOCAL_STATUS: Final[dict[DossierStatus, str]] = {
    DossierStatus.SUBMITTED: "CHO_TIEP_NHAN",
    DossierStatus.RECEIVED: "DA_TIEP_NHAN",
    DossierStatus.REFUSED: "TU_CHOI",
    DossierStatus.PROCESSING: "DANG_XU_LY",
    DossierStatus.SUPPLEMENT_REQUESTED: "CHO_BO_SUNG",
    DossierStatus.PAYMENT_REQUESTED: "CHO_NOP_PHI",
    DossierStatus.WITHDRAWN: "RUT_HO_SO",
    DossierStatus.STOPPED: "DUNG_XU_LY",
    DossierStatus.DECIDED: "CO_KET_QUA",
    DossierStatus.RETURNED: "DA_TRA",
}

# Contract field path → local column: every scalar of Dossier and of its Applicant.
FIELDS: Final[dict[str, str]] = {
    "code": "ma_ho_so",
    "procedure_code": "ma_tthc",
    "procedure_name": "ten_tthc",
    "sector_code": "ma_linh_vuc",
    "sector_name": "ten_linh_vuc",
    "receipt_number": "so_bien_nhan",
    "applicant.name": "chu_ho_so",
    "applicant.type": "loai_doi_tuong",
    "applicant.code": "ma_doi_tuong",
    "applicant.id_number": "so_giay_to",
    "applicant.phone": "dien_thoai",
    "applicant.email": "email",
    "applicant.fax": "fax",
    "applicant.other_info": "thong_tin_khac",
    "summary": "trich_yeu",
    "status": "trang_thai",
    "channel": "kenh",
    "submitted_at": "ngay_nop",
    "received_at": "ngay_tiep_nhan",
    "due_at": "ngay_hen_tra",
    "processed_at": "ngay_ket_thuc_xu_ly",
    "returned_at": "ngay_tra",
    "refused_at": "ngay_tu_choi",
    "return_info": "thong_tin_tra",
    "result_delivery": "hinh_thuc_tra",
    "handling_unit": "don_vi_xu_ly",
    "submission_place": "noi_nop",
    "online_payment": "thanh_toan_truc_tuyen",
    "vneid_verified": "xac_thuc_vneid",
    "has_digitized_documents": "co_so_hoa",
    "note": "ghi_chu",
}

# Contract list → (local column, its items' contract field → local key).
LISTS: Final[dict[str, tuple[str, dict[str, str]]]] = {
    "documents": (
        "tai_lieu",
        {
            "file_id": "ma_tep",
            "file_name": "ten_tep",
            "component_code": "ma_thanh_phan",
            "url": "duong_dan",
            "digitized": "da_so_hoa",
            "reused": "tai_su_dung",
            "from_national_repository": "tu_kho_quoc_gia",
            "deleted": "da_xoa",
        },
    ),
    "fees": (
        "le_phi",
        {
            "name": "ten_phi",
            "code": "ma_phi",
            "stage": "hinh_thuc_thu",
            "amount": "so_tien",
            "kind": "loai_phi",
        },
    ),
    "other_papers": (
        "giay_to_khac",
        {"name": "ten_giay_to", "quantity": "so_luong", "kind": "loai_giay_to"},
    ),
    "supplements": (
        "bo_sung",
        {
            "requested_by": "nguoi_yeu_cau",
            "content": "noi_dung",
            "requested_at": "ngay_yeu_cau",
            "received_at": "ngay_nhan_bo_sung",
            "status": "trang_thai_bo_sung",
            "previous_due_at": "ngay_hen_tra_cu",
            "new_due_at": "ngay_hen_tra_moi",
        },
    ),
    "results": (
        "ket_qua",
        {
            "name": "ten_giay_to",
            "component_code": "ma_thanh_phan",
            "document_id": "ma_giay_to",
            "url": "duong_dan",
            "result_code": "so_ky_hieu",
        },
    ),
    "progress": (
        "tien_do",
        {
            "handler": "nguoi_xu_ly",
            "title": "chuc_danh",
            "handled_at": "thoi_diem_xu_ly",
            "department": "phong_ban",
            "content": "noi_dung",
            "status": "trang_thai",  # a local status code, like the dossier's own
            "started_at": "ngay_bat_dau",
            "due_at": "han_xu_ly",
        },
    ),
}

KEY: Final = "ma_ho_so"
VERSION: Final = "phien_ban"
UPDATED_AT: Final = "cap_nhat_luc"
LIST_COLUMNS: Final = tuple(column for column, _ in LISTS.values())
COLUMNS: Final = (*FIELDS.values(), *LIST_COLUMNS, VERSION, UPDATED_AT)
"""Every key of a record, in the order a record has them."""

# What text formats (CSV, XML) lose and their readers must restore: the keys, at the top or
# inside a list's items, whose values are integers (code lists, 0/1 booleans, amounts).
INTEGERS: Final = frozenset(
    {
        "loai_doi_tuong", "kenh", "hinh_thuc_tra", "thanh_toan_truc_tuyen", "xac_thuc_vneid",
        "co_so_hoa", VERSION, "da_so_hoa", "tai_su_dung", "tu_kho_quoc_gia", "da_xoa",
        "hinh_thuc_thu", "so_tien", "loai_phi", "so_luong", "trang_thai_bo_sung",
    }
)  # fmt: skip
TIMES: Final = frozenset(
    {
        "ngay_nop", "ngay_tiep_nhan", "ngay_hen_tra", "ngay_ket_thuc_xu_ly", "ngay_tra",
        "ngay_tu_choi", "ngay_yeu_cau", "ngay_nhan_bo_sung", "ngay_hen_tra_cu",
        "ngay_hen_tra_moi", "thoi_diem_xu_ly", "ngay_bat_dau", "han_xu_ly",
    }
)  # fmt: skip
"""Keys holding a naive local time, "YYYY-MM-DD HH:MM:SS" (cap_nhat_luc has microseconds)."""

TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
STAMP_FORMAT: Final = "%Y-%m-%d %H:%M:%S.%f"
_TICK: Final = timedelta(microseconds=1)


def local_time(moment: datetime) -> str:
    """The wall clock in Vietnam at `moment`, without its offset, as the vendor stores it."""
    return _in_vietnam(moment).strftime(TIME_FORMAT)


def local_stamp(moment: datetime) -> str:
    """`local_time` with microseconds: fixed width, so the text sorts as the moments do."""
    return _in_vietnam(moment).strftime(STAMP_FORMAT)


def _in_vietnam(moment: datetime) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError("a naive datetime is no moment: give it a time zone")
    return moment.astimezone(VIETNAM_TIME)


def to_local(dossier: Dossier, *, version: int, updated_at: datetime) -> dict[str, Any]:
    """The dossier as the local system's row: `version` its phien_ban, `updated_at` (aware)
    its cap_nhat_luc. Absent values are None; lists are lists of dicts."""
    record = {column: _local(_get(dossier, path)) for path, column in FIELDS.items()}
    for name, (column, keys) in LISTS.items():
        items: tuple[BaseModel, ...] = getattr(dossier, name)
        record[column] = [
            {key: _local(getattr(item, field)) for field, key in keys.items()} for item in items
        ]
    record[VERSION] = version
    record[UPDATED_AT] = local_stamp(updated_at)
    return record


def _get(dossier: Dossier, path: str) -> Any:
    head, _, rest = path.partition(".")
    value = getattr(dossier, head)
    return getattr(value, rest) if rest else value


def _local(value: Any) -> Any:
    """One contract value in the vendor's types: plain str, int or None, nothing richer."""
    if value is None:
        return None
    if isinstance(value, DossierStatus):
        return LOCAL_STATUS[value]
    if isinstance(value, int):  # bool and the code lists too: 0/1 and plain numbers
        return int(value)
    if isinstance(value, datetime):
        return local_time(value)
    if isinstance(value, str):
        return str(value)  # DossierCode and the like are str subclasses
    raise TypeError(f"no local spelling for {type(value).__name__}")


class LocalSystem:
    """A local one-stop system's rows, replaying seeded lifecycles in the order they happen.

    `advance(steps)` applies the next steps of all dossiers together, in the order of their
    moments, so the system looks like a real one: many dossiers open at once, each changing
    now and then. Records are plain dicts; callers must not change them.
    """

    def __init__(
        self,
        agency: str,
        count: int,
        *,
        seed: int,
        start: datetime,
        connector: str | None = None,
    ) -> None:
        self.agency = AgencyCode.parse(agency)
        self.unit = self.agency.unit
        histories = lifecycles(agency, count, seed=seed, start=start, connector=connector)
        # A stable sort: a dossier's own steps keep their seq order, and two dossiers' steps
        # at the same second keep the dossiers' order, so a seed replays identically.
        self._steps = sorted(_flat(histories), key=lambda event: event.occurred_at)
        self._expected: dict[str, Dossier] = {
            events[-1].dossier_code: events[-1].payload.dossier for events in histories
        }
        self._done = 0
        # Insertion order is cap_nhat_luc order: an updated row is moved to the end.
        self._rows: dict[str, dict[str, Any]] = {}
        self._last: datetime | None = None

    @property
    def finished(self) -> bool:
        """Every step has been applied: the rows are final."""
        return self._done == len(self._steps)

    @property
    def remaining(self) -> int:
        return len(self._steps) - self._done

    def advance(self, steps: int) -> list[dict[str, Any]]:
        """Apply the next `steps` steps (fewer when the system finishes) and return each
        updated record as it was written: a dossier changed twice comes twice."""
        if steps < 0:
            raise ValueError("steps must not be negative")
        changed = []
        for event in self._steps[self._done : self._done + steps]:
            # The clock of the vendor's database: the step's moment, or a microsecond after
            # the previous update when steps share a second, so no two rows share a stamp.
            moment = event.occurred_at
            if self._last is not None and moment <= self._last:
                moment = self._last + _TICK
            self._last = moment
            record = to_local(event.payload.dossier, version=event.seq, updated_at=moment)
            self._rows.pop(event.dossier_code, None)
            self._rows[event.dossier_code] = record
            changed.append(record)
        self._done += len(changed)
        return changed

    def records(self) -> list[dict[str, Any]]:
        """The current row of each dossier seen so far, oldest cap_nhat_luc first."""
        return list(self._rows.values())

    def events(self) -> Iterator[Event]:
        """Every step it replays, as the contract's event, in the order they happen: a
        dossier's own in seq order."""
        return iter(self._steps)

    def expected(self) -> dict[str, Dossier]:
        """Each dossier code's final dossier: what the portal must hold once all is synced."""
        return dict(self._expected)


def _flat(histories: Iterable[list[Event]]) -> list[Event]:
    return [event for events in histories for event in events]
