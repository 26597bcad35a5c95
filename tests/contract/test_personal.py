"""Personal data is marked in the models and masked by one function; in free text, where
nothing marks it, `mask_text` finds what looks like a person's number and masks it the same
way, and leaves alone what operators trace by."""

import hashlib
import string
from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from connectors.sample.people import citizen_id, mobile_phone
from factories import a_dossier
from schemas import Applicant, Personal, masked
from schemas.personal import mask_text, personal_keys, personal_kind
from strategies import (
    VIETNAMESE,
    agency_codes,
    dossier_codes,
    moments,
    procedure_codes,
    units,
)


def test_an_identity_number_keeps_only_its_first_four_and_last_two_digits() -> None:
    assert Personal.ID_NUMBER.mask("001234567889") == "0012******89"


def test_phone_email_and_name_masks_hide_all_but_a_hint() -> None:
    assert Personal.PHONE.mask("0912345678") == "091*****78"
    assert Personal.EMAIL.mask("an.nguyen@example.vn") == "a***@example.vn"
    assert Personal.NAME.mask("Nguyễn Văn An") == "N. V. A."
    assert Personal.TEXT.mask("12 Lê Lợi, Quận 1") == "<17 characters>"


def test_the_applicants_identifying_fields_are_marked() -> None:
    marked = {name for name in Applicant.model_fields if personal_kind(Applicant, name)}
    assert marked == {"name", "id_number", "phone", "email", "fax", "other_info"}


def test_masked_hides_every_personal_value_of_a_dossier() -> None:
    view = masked(a_dossier())
    text = str(view)
    for secret in ("001234567889", "0912345678", "an.nguyen@example.vn", "Nguyễn Văn An"):
        assert secret not in text
    assert view["applicant"]["id_number"] == "0012******89"
    assert view["procedure_name"] == "Cấp giấy phép xây dựng nhà ở riêng lẻ"


# ---- free text: log lines, error messages, bodies that are not the contract

# Characters that may stand beside a person's number in free text: it is still found.
SEPARATORS = st.sampled_from([" ", ", ", "; ", "=", '"', "'", "(", ")", "[", "]", "/", "\n", "\t"])
LETTERS = "".join(c for c in VIETNAMESE if c.isalpha())


def _joined(pieces: list[tuple[str, str]], separators: list[str]) -> tuple[str, str]:
    """The text the pieces make, and the text they should make once masked."""
    text, expected = pieces[0]
    for (piece, masked_piece), separator in zip(pieces[1:], separators, strict=False):
        text += separator + piece
        expected += separator + masked_piece
    return text, expected


def _unchanged(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[str, str]]:
    return strategy.map(lambda piece: (piece, piece))


def _masked_as(
    kind: Personal, strategy: st.SearchStrategy[str]
) -> st.SearchStrategy[tuple[str, str]]:
    return strategy.map(lambda piece: (piece, kind.mask(piece)))


def _digits(size: int) -> st.SearchStrategy[str]:
    return st.text(string.digits, min_size=size, max_size=size)


SEXES = st.sampled_from(["male", "female"])
# What a person is: the sample's căn cước numbers, old 9-digit ids, mobile and landline
# numbers with 0, +84 or 84 in front, e-mail addresses.
PERSONAL = st.one_of(
    _masked_as(
        Personal.ID_NUMBER,
        st.builds(
            citizen_id, st.randoms(use_true_random=False), units(), SEXES, st.integers(1920, 2010)
        ),
    ),
    _masked_as(Personal.ID_NUMBER, _digits(9)),
    _masked_as(Personal.PHONE, st.builds(mobile_phone, st.randoms(use_true_random=False))),
    _masked_as(
        Personal.PHONE,
        st.builds(
            "{}{}".format, st.sampled_from(["0", "+84", "84"]), _digits(9) | _digits(10)
        ).filter(lambda phone: not phone.startswith("84") or len(phone) == 11),
    ),
    _masked_as(
        Personal.EMAIL,
        st.builds(
            "{}{}@{}.{}".format,
            st.text(LETTERS, min_size=1, max_size=1),
            st.text(LETTERS + string.digits + "._+-", max_size=20),
            st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=15),
            st.sampled_from(["vn", "com", "gov.vn", "com.vn"]),
        ),
    ),
)
# What an operator traces by, and must read as it is.
TRACEABLE = st.one_of(
    _unchanged(st.uuids().map(str)),
    # A UUID whose last group is all decimal digits: 12 of them, like a căn cước.
    _unchanged(st.builds(lambda u, tail: str(u)[:24] + tail, st.uuids(), _digits(12))),
    _unchanged(
        st.binary(min_size=1, max_size=16).map(
            lambda b: "body-" + hashlib.sha256(b).hexdigest()[:24]
        )
    ),
    _unchanged(dossier_codes()),
    _unchanged(agency_codes()),
    _unchanged(procedure_codes()),
    _unchanged(moments().map(datetime.isoformat)),
    _unchanged(st.integers(10**15, 10**16 - 1).map(str)),  # seq: microseconds since 1970
    _unchanged(st.integers(10**9, 4 * 10**9).map(str)),  # seconds since 1970
    _unchanged(st.integers(0, 65535).map(str)),  # ports
    _unchanged(st.floats(0, 10**10, allow_nan=False).map(repr)),  # durations
    _unchanged(st.floats(0, 10**10, allow_nan=False).map("{:.1f} ms".format)),
)
WORDS = _unchanged(st.text(LETTERS, min_size=1, max_size=12))


@given(
    st.lists(PERSONAL | TRACEABLE | WORDS, min_size=1, max_size=12),
    st.lists(SEPARATORS, max_size=12),
)
def test_in_free_text_every_identity_number_phone_and_email_is_masked_and_nothing_else(
    pieces: list[tuple[str, str]], separators: list[str]
) -> None:
    pieces = pieces[: len(separators) + 1]
    text, expected = _joined(pieces, separators)
    assert mask_text(text) == expected


@given(
    st.lists(PERSONAL | TRACEABLE | WORDS, min_size=1, max_size=12),
    st.lists(SEPARATORS, max_size=12),
)
def test_masking_masked_text_again_changes_nothing(
    pieces: list[tuple[str, str]], separators: list[str]
) -> None:
    once = mask_text(_joined(pieces[: len(separators) + 1], separators)[0])
    assert mask_text(once) == once


@given(st.text())
def test_masking_any_text_twice_is_masking_it_once(text: str) -> None:
    once = mask_text(text)
    assert mask_text(once) == once


@given(st.text(st.characters(exclude_characters="0123456789@\"'")))
def test_a_text_without_digits_at_signs_or_quotes_is_left_as_it_is(text: str) -> None:
    assert mask_text(text) == text


def test_phone_numbers_written_in_groups_are_masked() -> None:
    assert mask_text("gọi 0912 345 678.") == "gọi 091*******78."
    assert mask_text("SĐT: 0912.345.678") == "SĐT: 091*******78"
    assert mask_text("tel +84 912 345 678") == "tel +84**********78"
    assert mask_text("(+84) 912 345 678") == "(+8************78"
    assert mask_text("version 0.10.2, 012 345 67") == "version 0.10.2, 012 345 67"


def test_a_url_keeps_its_user_and_host_but_not_its_password() -> None:
    text = "cannot reach amqp://h29-igate:s3cr%40t@broker.example.vn:5671/prod"
    assert mask_text(text) == "cannot reach amqp://h29-igate:***@broker.example.vn:5671/prod"
    assert mask_text("http://broker:15672/api") == "http://broker:15672/api"


def test_a_quoted_pair_whose_key_names_personal_data_is_masked_as_that_kind() -> None:
    body = '{"chu_ho_so": "Nguyễn Văn An", "SoGiayToChuHoSo": "001234567889", "ma": "X"}'
    assert (
        mask_text(body) == '{"chu_ho_so": "N. V. A.", "SoGiayToChuHoSo": "0012******89", "ma": "X"}'
    )
    shown = "input_value={'name': 'Trần Thị Bình', 'address': 'Số 12 Lê Lợi', 'type': 1}"
    assert (
        mask_text(shown)
        == "input_value={'name': 'T. T. B.', 'address': '<12 characters>', 'type': 1}"
    )


def test_personal_keys_are_the_contracts_marked_fields_their_portal_names_and_local_spellings() -> (
    None
):
    keys = personal_keys()
    assert keys["id_number"] is keys["sogiaytochuhoso"] is keys["so_giay_to"] is Personal.ID_NUMBER
    assert keys["name"] is keys["chuhoso"] is keys["ho_ten"] is Personal.NAME
    assert keys["phone"] is keys["sodienthoai"] is keys["fax"] is Personal.PHONE
    assert keys["return_info"] is Personal.TEXT
    assert "code" not in keys
    assert "procedure_code" not in keys
