"""`TraCuuHoSo`: the portal answers what it holds, in its own spelling, with the steps."""

from __future__ import annotations

from portal_sim_support import PortalClient, progress_items

from factories import DOSSIER_CODE, a_dossier
from schemas.wire import from_wire, to_dossier_item


def test_looking_up_a_dossier_answers_exactly_what_was_sent(client: PortalClient) -> None:
    dossier = a_dossier()
    sent, steps = to_dossier_item(dossier), progress_items(dossier)
    client.sync([sent])
    client.progress(steps)
    answer = client.lookup(DOSSIER_CODE)
    assert answer["error_code"] == 0
    data = answer["data"]
    assert data.pop("CapNhatTienDoHoSoMC") == steps
    assert data == sent
    assert from_wire(data, steps) == dossier


def test_looking_up_an_unknown_dossier_answers_3(client: PortalClient) -> None:
    assert client.lookup(DOSSIER_CODE) == {"error_code": 3, "message": "Hồ sơ không tồn tại"}


def test_looking_up_with_a_malformed_code_is_a_malformed_call(client: PortalClient) -> None:
    answer = client.lookup("H29-0001")
    assert answer["error_code"] == 400
    assert "MaHoSo" in answer["message"]


def test_a_lookup_needs_a_live_session(client: PortalClient) -> None:
    client.session = "expired"
    assert client.lookup(DOSSIER_CODE)["error_code"] == 401
