"""The code lists of the national portal, with their Vietnamese labels."""

import pytest

from schemas import (
    ApplicantType,
    Channel,
    DossierStatus,
    FeeCollectionStage,
    OnlinePayment,
    ServiceLevel,
    StatusKind,
)


def test_dossier_statuses_are_the_ten_national_codes_with_labels() -> None:
    assert [status.value for status in DossierStatus] == list(range(1, 11))
    assert DossierStatus(10).label == "Đã trả kết quả"
    assert str(DossierStatus.PROCESSING) == "4 (Đang xử lý)"


def test_each_status_has_the_kind_domain_md_gives_it() -> None:
    finals = {status for status in DossierStatus if status.is_final}
    assert finals == {3, 7, 8, 10}
    assert DossierStatus.SUPPLEMENT_REQUESTED.kind is StatusKind.PAUSED


def test_code_lists_keep_the_portal_numbering() -> None:
    assert Channel.POSTAL == 3
    assert ApplicantType.ENTERPRISE == 2
    assert OnlinePayment.NOT_ONLINE == 0
    assert [stage.value for stage in FeeCollectionStage] == [1, 2, 4]


def test_legacy_service_levels_map_to_the_decree_42_names() -> None:
    assert ServiceLevel.from_legacy_level(4) is ServiceLevel.FULLY_ONLINE
    assert ServiceLevel.from_legacy_level(3).label == "Dịch vụ công trực tuyến một phần"
    with pytest.raises(ValueError, match="3 or 4"):
        ServiceLevel.from_legacy_level(2)
