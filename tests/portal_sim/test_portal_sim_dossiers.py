"""`DongBoHoSoMC`: one verdict per item, in order; a bad item never stops the others."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from portal_sim_support import PortalClient, codes, dossier_code, dossier_item

from schemas import DossierStatus


def test_creating_a_new_dossier_applies_it(client: PortalClient) -> None:
    answer = client.sync([dossier_item(1)])
    assert answer["error_code"] == 0
    assert answer["result"] == [
        {"MaHoSo": dossier_code(1), "error_code": 0, "message": "Thành công"}
    ]


def test_creating_a_dossier_that_exists_answers_2_already_exists(client: PortalClient) -> None:
    client.sync([dossier_item(1)])
    answer = client.sync([dossier_item(1)])
    assert answer["result"] == [
        {"MaHoSo": dossier_code(1), "error_code": 2, "message": "Hồ sơ đã tồn tại"}
    ]


def test_updating_a_dossier_that_does_not_exist_answers_3_does_not_exist(
    client: PortalClient,
) -> None:
    answer = client.sync([dossier_item(1)], updating=True)
    assert answer["result"] == [
        {"MaHoSo": dossier_code(1), "error_code": 3, "message": "Hồ sơ không tồn tại"}
    ]


def test_updating_an_existing_dossier_replaces_its_record(client: PortalClient) -> None:
    client.sync([dossier_item(1)])
    decided = dossier_item(1, status=DossierStatus.DECIDED)
    assert codes(client.sync([decided], updating=True)) == [0]
    record = client.record(dossier_code(1))
    assert record["status"] == 9
    assert record["item"] == decided
    assert record["version"] == 2


def test_a_batch_of_100_with_one_invalid_item_applies_99_and_names_the_bad_field(
    client: PortalClient,
) -> None:
    batch = [dossier_item(n) for n in range(1, 101)]
    batch[41]["NgayHenTra"] = "2024-01-30"
    answer = client.sync(batch)
    assert codes(answer) == [0] * 41 + [1] + [0] * 58
    message = answer["result"][41]["message"]
    assert message.startswith("NgayHenTra: '2024-01-30' — a wire date must be yyyyMMddHHmmss")
    assert answer["result"][41]["MaHoSo"] == dossier_code(42)
    assert client.http.get(f"/_sim/dossiers/{dossier_code(42)}").status_code == 404
    assert client.http.get("/_sim/units").json()["H29"]["dossiers"] == 99


def test_an_invalid_item_names_every_problem_and_masks_personal_values(
    client: PortalClient,
) -> None:
    item = dossier_item(1)
    item.update(SoDienThoai="0912x345678", LoaiDoiTuong=1, MaHoSoo="x")
    message = client.sync([item])["result"][0]["message"]
    assert "SoDienThoai: '091******78'" in message
    assert "0912x345678" not in message
    assert "LoaiDoiTuong: 1 — every wire scalar must be a JSON string" in message
    assert "MaHoSoo: <1 characters> — unknown field" in message
    assert "did you mean 'MaHoSo'?" in message


def test_a_dossier_of_another_unit_is_refused_with_the_rule(client: PortalClient) -> None:
    foreign = dossier_item(1, agency="000.00.01.H30")
    answer = client.sync([foreign, dossier_item(2)])
    assert codes(answer) == [1, 0]
    assert answer["result"][0]["message"] == (
        "MaHoSo: '000.00.01.H30-240115-0001' — must belong to the unit of madonvi (H29): "
        "a unit writes only its own dossiers"
    )


def test_a_dossier_of_another_agency_of_the_same_unit_is_accepted(client: PortalClient) -> None:
    assert codes(client.sync([dossier_item(1, agency="000.00.53.H29")])) == [0]


def test_items_are_judged_in_order_so_a_repeated_creation_in_one_call_already_exists(
    client: PortalClient,
) -> None:
    assert codes(client.sync([dossier_item(1), dossier_item(1)])) == [0, 2]


def test_is_updating_is_read_in_every_spelling_vendors_send(client: PortalClient) -> None:
    for n, spelling in enumerate(["False", "false", "0", False], start=1):
        body = client.envelope("DongBoHoSoMC", [dossier_item(n)], isUpdating=spelling)
        assert codes(client.post("/integration", body)) == [0]
    for spelling in ["True", "true", "1", True]:
        body = client.envelope("DongBoHoSoMC", [dossier_item(1)], isUpdating=spelling)
        assert codes(client.post("/integration", body)) == [0]


def test_quirky_but_valid_spellings_are_kept_as_sent_and_looked_up_in_the_portals_own(
    client: PortalClient,
) -> None:
    item = dossier_item(1)
    item.update(NgayHenTra=None, TaiKhoanDuocXacThucVoiVNeID="False", TrangThaiHoSo="04")
    assert codes(client.sync([item])) == [0]
    assert client.record(dossier_code(1))["item"] == item
    looked_up = client.lookup(dossier_code(1))["data"]
    assert looked_up["NgayHenTra"] == ""
    assert looked_up["TaiKhoanDuocXacThucVoiVNeID"] == "0"
    assert looked_up["TrangThaiHoSo"] == "4"


def test_an_empty_batch_answers_an_empty_result(client: PortalClient) -> None:
    assert client.sync([])["result"] == []


def test_a_malformed_envelope_refuses_the_whole_call_with_400_and_no_result(
    client: PortalClient,
) -> None:
    calls = {
        "service": client.envelope("DongBoHoSo", []),
        "data": client.envelope("DongBoHoSoMC", {"MaHoSo": "x"}, isUpdating="False"),
        "madonvi": {**client.envelope("DongBoHoSoMC", [], isUpdating="False"), "madonvi": "H29"},
        "isUpdating": client.envelope("DongBoHoSoMC", [], isUpdating="maybe"),
    }
    for expected, body in calls.items():
        answer = client.post("/integration", body)
        assert answer["error_code"] == 400, expected
        assert expected in answer["message"]
        assert "result" not in answer
    answer = client.post("/integration", [dossier_item(1)])
    assert answer["error_code"] == 400
    not_json = client.http.post("/integration", content=b"{not json")
    assert not_json.json()["error_code"] == 400


def test_racing_creations_of_the_same_dossiers_let_exactly_one_win_each(
    client: PortalClient,
) -> None:
    batch = [dossier_item(n) for n in range(1, 51)]
    racers = [PortalClient(str(client.http.base_url)) for _ in range(6)]
    for racer in racers:
        racer.session = client.session
    with ThreadPoolExecutor(len(racers)) as pool:
        answers = list(pool.map(lambda racer: racer.sync(batch), racers))
    per_dossier = zip(*(codes(answer) for answer in answers), strict=True)
    assert all(sorted(outcomes) == [0, 2, 2, 2, 2, 2] for outcomes in per_dossier)
    for racer in racers:
        racer.close()
