"""The portal's state: every applied version in order, durable across restarts, readable by
checkers unit by unit, and emptied by a reset."""

from __future__ import annotations

from pathlib import Path

from portal_sim_support import PortalClient, codes, dossier_code, dossier_item

from bus.portal_sim import InProcessServer, Options
from schemas import DossierStatus


def test_history_keeps_every_applied_version_in_the_order_applied(client: PortalClient) -> None:
    statuses = [DossierStatus.RECEIVED, DossierStatus.PROCESSING, DossierStatus.DECIDED]
    versions = [dossier_item(1, status=status) for status in statuses]
    client.sync(versions[:1])
    client.sync(versions[1:], updating=True)
    client.sync([dossier_item(1)])  # already exists: not applied, not in the history
    history = client.record(dossier_code(1))["history"]
    assert [row["item"] for row in history] == versions
    assert [row["status"] for row in history] == [2, 4, 9]
    assert [row["is_updating"] for row in history] == [False, True, True]
    assert [row["id"] for row in history] == sorted(row["id"] for row in history)


def test_state_survives_a_restart_on_the_same_file(portal_db: Path) -> None:
    with InProcessServer(Options(db=portal_db)) as url:
        client = PortalClient(url)
        client.login()
        client.sync([dossier_item(1)])
        before = client.record(dossier_code(1))
    with InProcessServer(Options(db=portal_db)) as url:
        restarted = PortalClient(url)
        restarted.session = client.session  # sessions are kept too
        assert restarted.lookup(dossier_code(1))["data"]["MaHoSo"] == dossier_code(1)
        assert restarted.record(dossier_code(1)) == before
        assert codes(restarted.sync([dossier_item(1)])) == [2]


def test_a_units_dossiers_are_listed_page_by_page_for_checkers(client: PortalClient) -> None:
    client.sync([dossier_item(n) for n in range(1, 6)])
    other = PortalClient(str(client.http.base_url), agency="000.00.01.H48")
    other.login()
    other.sync([dossier_item(9, agency="000.00.01.H48")])
    seen, after = [], ""
    while after is not None:
        params = {"unit": "H29", "limit": 2, "after": after}
        page = client.http.get("/_sim/dossiers", params=params).json()
        seen += [entry["code"] for entry in page["dossiers"]]
        after = page["next"]
    assert seen == [dossier_code(n) for n in range(1, 6)]


def test_counts_per_unit_say_what_each_unit_created_updated_and_had_refused(
    client: PortalClient,
) -> None:
    client.sync([dossier_item(1), dossier_item(2)])
    client.sync([dossier_item(1), dossier_item(3)], updating=True)
    assert client.http.get("/_sim/units").json() == {
        "H29": {"dossiers": 2, "updates": 1, "progress": 0, "rejected": 1}
    }


def test_a_reset_empties_the_store_and_ends_every_session(client: PortalClient) -> None:
    client.sync([dossier_item(1)])
    client.faults(down=True)
    assert client.http.post("/_sim/reset").json()["down"] is False
    assert client.http.get(f"/_sim/dossiers/{dossier_code(1)}").status_code == 404
    assert client.http.get("/_sim/units").json() == {}
    assert client.sync([dossier_item(1)])["error_code"] == 401
    assert client.stats()["calls"] == {"integration": 1, "total": 1}
