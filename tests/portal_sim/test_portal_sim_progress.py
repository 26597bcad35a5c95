"""`CapNhatTienDoHoSoMC`: steps kept per dossier, keyed by (ThoiDiemXuLy, TrangThai, NguoiXuLy)."""

from __future__ import annotations

from portal_sim_support import PortalClient, codes, dossier_code, dossier_item, progress_items

from factories import a_dossier


def test_a_step_of_a_known_dossier_is_kept_with_it(client: PortalClient) -> None:
    client.sync([dossier_item(1)])
    steps = progress_items(a_dossier(code=dossier_code(1)))
    assert codes(client.progress(steps)) == [0]
    assert client.record(dossier_code(1))["progress"] == steps


def test_sending_the_same_step_again_changes_nothing(client: PortalClient) -> None:
    client.sync([dossier_item(1)])
    steps = progress_items(a_dossier(code=dossier_code(1)))
    client.progress(steps)
    assert codes(client.progress(steps)) == [0]
    record = client.record(dossier_code(1))
    assert record["progress"] == steps
    assert [row["changed"] for row in record["history"]] == [True, True, False]
    assert client.http.get("/_sim/units").json()["H29"]["progress"] == 1


def test_a_step_with_the_same_key_and_new_content_replaces_the_old_one(
    client: PortalClient,
) -> None:
    client.sync([dossier_item(1)])
    step = progress_items(a_dossier(code=dossier_code(1)))[0]
    client.progress([step])
    corrected = {**step, "NoiDungXuLy": "Thụ lý hồ sơ, đã kiểm tra"}
    client.progress([corrected])
    assert client.record(dossier_code(1))["progress"] == [corrected]


def test_steps_are_listed_in_the_order_they_happened_whatever_the_order_sent(
    client: PortalClient,
) -> None:
    client.sync([dossier_item(1)])
    first = progress_items(a_dossier(code=dossier_code(1)))[0]
    later = {**first, "ThoiDiemXuLy": "20240116090000", "TrangThai": "9"}
    client.progress([later, first])
    assert client.record(dossier_code(1))["progress"] == [first, later]


def test_a_step_of_a_dossier_the_portal_does_not_have_answers_3(client: PortalClient) -> None:
    steps = progress_items(a_dossier(code=dossier_code(1)))
    answer = client.progress(steps)
    assert answer["result"] == [
        {"MaHoSo": dossier_code(1), "error_code": 3, "message": "Hồ sơ không tồn tại"}
    ]


def test_a_step_does_not_change_the_status_of_its_dossier(client: PortalClient) -> None:
    client.sync([dossier_item(1)])
    step = progress_items(a_dossier(code=dossier_code(1)))[0]
    client.progress([{**step, "TrangThai": "10"}])
    record = client.record(dossier_code(1))
    assert record["status"] == 4
    assert record["item"]["TrangThaiHoSo"] == "4"


def test_an_invalid_step_or_one_of_another_unit_is_refused_and_the_others_kept(
    client: PortalClient,
) -> None:
    client.sync([dossier_item(1)])
    step = progress_items(a_dossier(code=dossier_code(1)))[0]
    nameless = {**step, "NguoiXuLy": ""}
    foreign = {**step, "MaHoSo": dossier_code(1, "000.00.01.H30")}
    answer = client.progress([nameless, foreign, step])
    assert codes(answer) == [1, 1, 0]
    assert answer["result"][0]["message"].startswith("CapNhatTienDoHoSoMC.NguoiXuLy: ")
    assert "must belong to the unit of madonvi (H29)" in answer["result"][1]["message"]
