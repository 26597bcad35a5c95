"""Signatures make every event attributable to its connector: what a connector signs verifies
with its key, and any change to the body or to the event's identity (the AMQP properties
message_id, type, app_id and timestamp), a key that is not the connector's, a signature
labelled with another key's id, or a missing or garbled signature is refused with a reason an
operator can act on. A key the registry binds to a unit and a broker user vouches only for
that unit's events published by that user, retried copies included; a retired key vouches for
nothing. No broker needed.
"""

from __future__ import annotations

import base64
import json
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bus import headers, signing
from bus.errors import OperatorError, PermanentError, SignatureError
from bus.message import Message, Outgoing
from bus.ops.deadletter import DeadLetter
from bus.ops.deadletters import replay_message
from bus.signing import KeyRing, Signer, VerifyKey
from bus.topology import EVENTS_EXCHANGE

CONNECTOR = "igate-hcm"
EVENT_ID = "3f1c7a52-8d0e-4b7e-9a51-0c2f7c1e9b11"
OCCURRED = 1705318200  # 2024-01-15T11:30:00Z, in seconds as the AMQP timestamp holds it
BODY = b'{"event_type":"status_changed","dossier_code":"000.00.01.H29-240115-0001"}'
HMAC_SECRET = b"igate-hcm secret, 32 bytes long!"
ED25519_PRIVATE = Ed25519PrivateKey.generate()
ED25519_RAW = ED25519_PRIVATE.private_bytes_raw()
ED25519_PUBLIC = ED25519_PRIVATE.public_key().public_bytes_raw()

SIGNERS = {
    "hmac-sha256": Signer("igate-hcm-2026", "hmac-sha256", HMAC_SECRET),
    "ed25519": Signer("igate-hcm-ed", "ed25519", ED25519_RAW),
}
RING = KeyRing(
    [
        VerifyKey("igate-hcm-2026", CONNECTOR, "hmac-sha256", HMAC_SECRET),
        VerifyKey("igate-hcm-ed", CONNECTOR, "ed25519", ED25519_PUBLIC),
        VerifyKey("motcua-dng-2026", "motcua-dng", "hmac-sha256", b"another connector's"),
    ]
)

both_algorithms = pytest.mark.parametrize("algorithm", list(SIGNERS))


def a_message(body: bytes = BODY) -> Message:
    """An unsigned status event as a consumer receives it from the events exchange: its
    identity in the AMQP properties, only what has no property in headers."""
    return Message(
        body=body,
        exchange=EVENTS_EXCHANGE,
        routing_key="H29.status_changed",
        headers={headers.DOSSIER_CODE: "000.00.01.H29-240115-0001", headers.SEQ: 7},
        redelivered=False,
        delivery_tag=1,
        message_id=EVENT_ID,
        content_type="application/json",
        type="status_changed",
        app_id=CONNECTOR,
        timestamp=OCCURRED,
    )


def signed_by(signer: Signer, body: bytes = BODY) -> Message:
    """The message its connector publishes: signed over the body and the event's identity."""
    message = a_message(body)
    message.headers.update(signer.sign(body, EVENT_ID, "status_changed", CONNECTOR, OCCURRED))
    return message


def signed(algorithm: str, body: bytes = BODY) -> Message:
    return signed_by(SIGNERS[algorithm], body)


def with_headers(message: Message, **changes: Any) -> Message:
    return replace(message, headers=message.headers | changes)


@both_algorithms
def test_a_signed_message_verifies_with_its_connectors_key(algorithm: str) -> None:
    message = signed(algorithm)

    RING.verify(message)  # no exception

    # Only the key id travels with the signature: the registry knows each key's algorithm.
    assert set(message.headers) - set(a_message().headers) == {headers.KEY_ID, headers.SIGNATURE}
    assert message.headers[headers.KEY_ID] == SIGNERS[algorithm].key_id


@both_algorithms
def test_a_signature_survives_headers_that_are_not_signed_changing(algorithm: str) -> None:
    # Retries and dead letters add their own headers, and the copy comes back through the
    # default exchange (which keeps them); the signature must still hold.
    message = signed(algorithm)
    retried = replace(
        message,
        exchange="",
        routing_key="portal.sync",
        headers=message.headers | {headers.ATTEMPT: 3, headers.REASON: "transient"},
    )
    assert retried.attempt == 3

    RING.verify(retried)


@both_algorithms
def test_a_tampered_body_is_refused(algorithm: str) -> None:
    message = signed(algorithm)

    with pytest.raises(
        SignatureError, match="signature does not match the body and the event's identity"
    ):
        RING.verify(replace(message, body=BODY.replace(b"H29", b"G01")))


@both_algorithms
@pytest.mark.parametrize(
    ("prop", "forged"),
    [
        ("message_id", "00000000-0000-4000-8000-000000000000"),
        ("type", "result_returned"),
        ("timestamp", 1735689600),
        ("timestamp", None),
    ],
    ids=["event-id", "event-type", "occurred-at", "no-occurred-at"],
)
def test_a_tampered_identity_property_is_refused(algorithm: str, prop: str, forged: Any) -> None:
    # app_id, the connector, is signed too: changing it is refused as a claim on another
    # connector's identity (below), before the signature is even computed.
    message = replace(signed(algorithm), **{prop: forged})

    with pytest.raises(
        SignatureError, match="signature does not match the body and the event's identity"
    ):
        RING.verify(message)


@both_algorithms
def test_a_message_claiming_another_connector_is_refused_naming_both(algorithm: str) -> None:
    message = replace(signed(algorithm), app_id="motcua-dng")

    with pytest.raises(SignatureError, match=r"belongs to connector 'igate-hcm', not 'motcua-dng'"):
        RING.verify(message)


def test_a_connector_signing_with_another_connectors_key_is_refused() -> None:
    # motcua-dng's key is genuine and the signature is valid, but the message says igate-hcm.
    stolen = Signer("motcua-dng-2026", "hmac-sha256", b"another connector's")

    with pytest.raises(
        SignatureError, match=r"'motcua-dng-2026' belongs to connector 'motcua-dng'"
    ):
        RING.verify(signed_by(stolen))


@both_algorithms
def test_an_unknown_key_id_is_refused_naming_the_key(algorithm: str) -> None:
    signer = SIGNERS[algorithm]
    unknown = Signer("retired-2019", signer.algorithm, signer.secret)

    with pytest.raises(SignatureError, match="unknown key id 'retired-2019'"):
        RING.verify(signed_by(unknown))


@pytest.mark.parametrize(
    ("signed_with", "labelled_as"),
    [("hmac-sha256", "ed25519"), ("ed25519", "hmac-sha256")],
    ids=["hmac-labelled-ed25519", "ed25519-labelled-hmac"],
)
def test_a_signature_made_with_one_key_but_labelled_with_another_key_id_is_refused(
    signed_with: str, labelled_as: str
) -> None:
    # Both keys are the same connector's and genuine: only the label is wrong.
    message = with_headers(signed(signed_with), **{headers.KEY_ID: SIGNERS[labelled_as].key_id})

    with pytest.raises(SignatureError, match="signature does not match"):
        RING.verify(message)


def test_a_signature_relabelled_with_a_key_id_sharing_its_secret_is_refused() -> None:
    # The key id is signed as well: even a key with the very same secret does not vouch for
    # a signature made under another id.
    ring = KeyRing(
        [
            VerifyKey("igate-hcm-2026", CONNECTOR, "hmac-sha256", HMAC_SECRET),
            VerifyKey("igate-hcm-2027", CONNECTOR, "hmac-sha256", HMAC_SECRET),
        ]
    )
    message = signed("hmac-sha256")
    ring.verify(message)

    with pytest.raises(SignatureError, match="signature does not match"):
        ring.verify(with_headers(message, **{headers.KEY_ID: "igate-hcm-2027"}))


@both_algorithms
def test_a_signature_made_with_another_secret_under_the_right_key_id_is_refused(
    algorithm: str,
) -> None:
    signer = SIGNERS[algorithm]
    other = Ed25519PrivateKey.generate().private_bytes_raw()
    forger = Signer(signer.key_id, signer.algorithm, other if algorithm == "ed25519" else b"x")

    with pytest.raises(SignatureError, match="signature does not match"):
        RING.verify(signed_by(forger))


@pytest.mark.parametrize(
    "missing",
    [(headers.SIGNATURE,), (headers.KEY_ID,), (headers.SIGNATURE, headers.KEY_ID)],
    ids=["signature", "key-id", "both"],
)
def test_a_message_without_a_signature_is_refused_as_not_signed(missing: tuple[str, ...]) -> None:
    message = signed("hmac-sha256")
    message.headers = {k: v for k, v in message.headers.items() if k not in missing}

    with pytest.raises(SignatureError, match="message is not signed"):
        RING.verify(message)


def test_an_unsigned_message_is_refused_as_not_signed() -> None:
    with pytest.raises(SignatureError, match="message is not signed"):
        RING.verify(a_message())


@both_algorithms
@pytest.mark.parametrize(
    "garbage", ["not base64!", "abc", "????"], ids=["text", "short", "symbols"]
)
def test_a_signature_that_is_not_base64_is_refused_as_such(algorithm: str, garbage: str) -> None:
    message = with_headers(signed(algorithm), **{headers.SIGNATURE: garbage})

    with pytest.raises(SignatureError, match="signature is not base64"):
        RING.verify(message)


@both_algorithms
def test_a_signature_of_the_wrong_length_is_refused_not_crashed_on(algorithm: str) -> None:
    short = base64.b64encode(b"short").decode()
    message = with_headers(signed(algorithm), **{headers.SIGNATURE: short})

    with pytest.raises(SignatureError, match="signature does not match"):
        RING.verify(message)


def test_signature_errors_dead_letter_at_once_with_reason_signature() -> None:
    with pytest.raises(SignatureError) as caught:
        RING.verify(a_message())

    assert isinstance(caught.value, PermanentError)
    assert caught.value.reason == "signature"


def test_signatures_differ_when_one_identity_field_shifts_into_the_next() -> None:
    # Length-prefixed fields: "ab" + "c" must not sign the same as "a" + "bc".
    signer = SIGNERS["hmac-sha256"]
    one = signer.sign(BODY, "ab", "c", CONNECTOR, OCCURRED)
    two = signer.sign(BODY, "a", "bc", CONNECTOR, OCCURRED)

    assert one[headers.SIGNATURE] != two[headers.SIGNATURE]


def test_signers_read_keys_as_settings_hold_them() -> None:
    hmac_signer = Signer.from_text("k1", base64.b64encode(HMAC_SECRET).decode())
    ed_signer = Signer.from_text("k2", "ed25519:" + base64.b64encode(ED25519_RAW).decode())

    assert (hmac_signer.algorithm, hmac_signer.secret) == ("hmac-sha256", HMAC_SECRET)
    assert (ed_signer.algorithm, ed_signer.secret) == ("ed25519", ED25519_RAW)


def test_a_key_ring_loaded_from_its_json_file_verifies_both_algorithms(tmp_path: Path) -> None:
    registry = tmp_path / "keys.json"
    registry.write_text(
        json.dumps(
            {
                "keys": [
                    {
                        "id": "igate-hcm-2026",
                        "connector": CONNECTOR,
                        "alg": "hmac-sha256",
                        "secret": base64.b64encode(HMAC_SECRET).decode(),
                    },
                    {
                        "id": "igate-hcm-ed",
                        "connector": CONNECTOR,
                        "alg": "ed25519",
                        "public_key": base64.b64encode(ED25519_PUBLIC).decode(),
                    },
                ]
            }
        )
    )
    ring = KeyRing.load(registry)

    for algorithm in SIGNERS:
        ring.verify(signed(algorithm))
    with pytest.raises(SignatureError):
        ring.verify(replace(signed("ed25519"), body=BODY + b" "))


def test_a_saved_key_ring_loads_back_and_verifies_both_algorithms(tmp_path: Path) -> None:
    ring = KeyRing.load(RING.save(tmp_path / "keys.json"))

    for algorithm in SIGNERS:
        ring.verify(signed(algorithm))


# ---- keys bound to a unit and a broker user, retired keys, the registry file ---------------

BOUND = Signer.generate("igate-hcm-bound")  # as `bus provision` makes them: Ed25519
BOUND_RING = KeyRing([BOUND.verify_key(CONNECTOR, unit="H29", user=CONNECTOR)])


def published_by(user: str | None, signer: Signer = BOUND, **changes: Any) -> Message:
    """`signed_by`, arriving from the events exchange with the broker's word on its user."""
    return replace(signed_by(signer), user_id=user, **changes)


def received(copy: Outgoing, user: str = "bus-sync") -> Message:
    """A copy the sync service re-published, as it comes back from its queue through the
    default exchange: the copy's user is the sync service's own."""
    return Message(
        body=copy.body,
        exchange=copy.exchange,
        routing_key=copy.routing_key,
        headers=dict(copy.headers),
        redelivered=False,
        delivery_tag=2,
        message_id=copy.message_id,
        content_type=copy.content_type,
        type=copy.type,
        app_id=copy.app_id,
        user_id=user,
        timestamp=copy.timestamp,
    )


def test_a_key_bound_to_a_broker_user_accepts_what_that_user_published() -> None:
    BOUND_RING.verify(published_by(CONNECTOR))


@pytest.mark.parametrize("user", ["motcua-dng", "guest", None])
def test_a_key_bound_to_a_broker_user_refuses_what_another_user_or_no_user_published(
    user: str | None,
) -> None:
    with pytest.raises(
        SignatureError, match=r"signs only what broker user 'igate-hcm' publishes, and .* published"
    ) as caught:
        BOUND_RING.verify(published_by(user))

    assert caught.value.reason == "signature"


def test_a_publisher_claimed_in_a_bus_header_through_the_events_exchange_is_not_believed() -> None:
    claimed = published_by("motcua-dng")
    forged = replace(claimed, headers={**claimed.headers, headers.PUBLISHED_BY: CONNECTOR})

    assert headers.PUBLISHED_BY not in forged.headers
    assert forged.published_by == "motcua-dng"
    with pytest.raises(SignatureError, match="'motcua-dng' published this"):
        BOUND_RING.verify(forged)


def test_a_retried_copy_is_judged_by_its_first_publisher_however_often_it_returns() -> None:
    first = published_by(CONNECTOR)
    retried = received(first.forwarded("", "portal.sync.retry.1", **{headers.ATTEMPT: 2}))
    again = received(retried.forwarded("", "portal.sync.retry.2", **{headers.ATTEMPT: 3}))

    for copy in (retried, again):
        assert copy.user_id == "bus-sync"
        assert copy.published_by == CONNECTOR
        BOUND_RING.verify(copy)


def test_a_dead_letter_replayed_by_an_operator_is_judged_by_its_first_publisher() -> None:
    first = published_by(CONNECTOR)
    dead = received(first.forwarded("", "portal.sync.dlq", **{headers.REASON: "transient"}))
    replayed = received(replay_message(DeadLetter.from_message(dead), "an"), user="bus-ops")

    assert replayed.published_by == CONNECTOR
    BOUND_RING.verify(replayed)


def test_a_copy_from_the_default_exchange_without_the_bus_header_has_no_known_publisher() -> None:
    copy = received(published_by(CONNECTOR).forwarded("", "portal.sync"), user=CONNECTOR)
    copy.headers.pop(headers.PUBLISHED_BY)

    assert copy.published_by is None
    with pytest.raises(SignatureError, match="no known user published this"):
        BOUND_RING.verify(copy)


def test_a_key_bound_to_a_unit_refuses_an_event_routed_under_another_unit() -> None:
    elsewhere = published_by(CONNECTOR, routing_key="H30.status_changed")

    with pytest.raises(
        SignatureError,
        match=r"signs only unit H29's events, not one routed as 'H30.status_changed'",
    ):
        BOUND_RING.verify(elsewhere)


def test_a_retried_copy_is_judged_by_the_routing_key_its_connector_used() -> None:
    elsewhere = published_by(CONNECTOR, routing_key="H30.status_changed")
    copy = received(elsewhere.forwarded("", "portal.sync.retry.1"))

    assert copy.unit == "H30"
    with pytest.raises(SignatureError, match="signs only unit H29's events"):
        BOUND_RING.verify(copy)


@both_algorithms
def test_a_retired_key_is_refused_naming_it_and_its_connector(algorithm: str) -> None:
    signer = SIGNERS[algorithm]
    [key] = [k for k in RING if k.key_id == signer.key_id]
    ring = KeyRing([replace(key, retired=True)])

    with pytest.raises(
        SignatureError, match=rf"key '{signer.key_id}' of connector 'igate-hcm' is retired"
    ):
        ring.verify(signed(algorithm))


def test_a_key_naming_no_unit_or_user_accepts_any_publisher_and_routing_key() -> None:
    # Registries written before keys were bound keep working as they did.
    RING.verify(replace(signed("ed25519"), user_id="anyone", routing_key="G01.status_changed"))
    RING.verify(signed("hmac-sha256"))  # no user_id at all


def test_the_registry_file_keeps_each_keys_unit_user_and_retirement(tmp_path: Path) -> None:
    ring = KeyRing([BOUND.verify_key(CONNECTOR, unit="H29", user=CONNECTOR), *RING])
    ring.retire("igate-hcm-2026")

    path = ring.save(tmp_path / "keys.json")
    entries = {entry["id"]: entry for entry in json.loads(path.read_text())["keys"]}
    loaded = KeyRing.load(path)

    assert entries["igate-hcm-bound"]["unit"] == "H29"
    assert entries["igate-hcm-bound"]["user"] == CONNECTOR
    assert "retired" not in entries["igate-hcm-bound"]
    assert entries["igate-hcm-2026"]["retired"] is True
    assert set(entries["igate-hcm-ed"]) == {"id", "connector", "alg", "public_key"}
    assert list(loaded) == list(ring)


def test_a_key_id_already_in_the_registry_cannot_be_added_again() -> None:
    ring = KeyRing(list(RING))

    with pytest.raises(OperatorError, match="already holds a key 'igate-hcm-ed'"):
        ring.add(VerifyKey("igate-hcm-ed", "someone", "hmac-sha256", b"x"))


def test_retiring_a_key_the_registry_does_not_hold_names_the_ones_it_does() -> None:
    with pytest.raises(OperatorError, match=r"no key 'nope' \(it holds: igate-hcm-2026, "):
        KeyRing(list(RING)).retire("nope")


def test_a_registry_holding_an_hmac_secret_is_never_readable_by_all(tmp_path: Path) -> None:
    public_only = KeyRing([BOUND.verify_key(CONNECTOR)]).save(tmp_path / "public.json")
    with_secret = RING.save(tmp_path / "secret.json")
    assert stat.S_IMODE(public_only.stat().st_mode) == 0o644
    assert stat.S_IMODE(with_secret.stat().st_mode) == 0o600

    # Public keys only, readable by all; then an HMAC key comes: the group the sync service
    # reads it through keeps its access, everyone else loses it.
    public_only.chmod(0o644)
    ring = KeyRing.load(public_only)
    ring.add(SIGNERS["hmac-sha256"].verify_key(CONNECTOR))
    ring.save(public_only)

    assert stat.S_IMODE(public_only.stat().st_mode) == 0o640


def test_a_ring_loaded_from_its_file_follows_the_file_as_keys_are_added_and_retired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signing, "RELOAD_INTERVAL", 0.0)
    path = KeyRing([SIGNERS["ed25519"].verify_key(CONNECTOR)]).save(tmp_path / "keys.json")
    running = KeyRing.load(path)  # as the sync service holds it
    running.verify(signed("ed25519"))
    with pytest.raises(SignatureError, match="unknown key id 'igate-hcm-2026'"):
        running.verify(signed("hmac-sha256"))

    operator = KeyRing.load(path)  # as `bus provision` changes it
    operator.add(SIGNERS["hmac-sha256"].verify_key(CONNECTOR))
    operator.retire("igate-hcm-ed")
    operator.save(path)

    running.verify(signed("hmac-sha256"))
    with pytest.raises(SignatureError, match="is retired"):
        running.verify(signed("ed25519"))


def test_a_registry_file_broken_by_hand_leaves_the_running_keys_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signing, "RELOAD_INTERVAL", 0.0)
    path = RING.save(tmp_path / "keys.json")
    running = KeyRing.load(path)

    path.write_text('{"keys": [{"id": "half-writ', "utf-8")

    running.verify(signed("ed25519"))
    running.verify(signed("hmac-sha256"))


@both_algorithms
def test_a_generated_key_signs_what_its_verify_key_accepts_and_reads_back_from_its_text(
    algorithm: str,
) -> None:
    signer = Signer.generate("fresh", algorithm)  # type: ignore[arg-type]
    ring = KeyRing([signer.verify_key(CONNECTOR)])

    ring.verify(signed_by(signer))
    assert Signer.from_text("fresh", signer.text()) == signer
    assert Signer.generate("fresh", algorithm).secret != signer.secret  # type: ignore[arg-type]


def test_an_ed25519_verify_key_holds_the_public_key_only() -> None:
    key = BOUND.verify_key(CONNECTOR)

    assert key.material != BOUND.secret
    assert key.material == (
        Ed25519PrivateKey.from_private_bytes(BOUND.secret).public_key().public_bytes_raw()
    )
