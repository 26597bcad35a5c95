"""Personal data is marked in the models and masked by one function."""

from factories import a_dossier
from schemas import Applicant, Personal, masked
from schemas.personal import personal_kind


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
