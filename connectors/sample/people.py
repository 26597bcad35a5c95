"""The people of a sample dossier: applicants and the officers who handle them.

Names are họ + tên đệm + tên, drawn with the family names' real weights (Nguyễn alone is
about a third of the country). Identity numbers are shaped like a căn cước: the province of
birth (3 digits), a digit for sex and century, the year of birth (2 digits), then 6 digits.
Addresses have two levels, ward or commune and province, as since the July 2025 reform.
Everything is drawn from the caller's `random.Random`, so a seed repeats it all.
"""

from __future__ import annotations

import random
import unicodedata
from typing import Final

from schemas import Applicant, ApplicantType
from schemas.units import unit_name

# (family name, weight in percent): the most common ones, roughly as surveys count them.
FAMILY_NAMES: Final = (
    ("Nguyễn", 38.0), ("Trần", 11.0), ("Lê", 9.5), ("Phạm", 7.0), ("Hoàng", 3.0),
    ("Huỳnh", 2.0), ("Phan", 4.5), ("Vũ", 2.0), ("Võ", 1.9), ("Đặng", 2.1), ("Bùi", 2.0),
    ("Đỗ", 1.4), ("Hồ", 1.3), ("Ngô", 1.3), ("Dương", 1.0), ("Lý", 0.5), ("Đinh", 0.8),
    ("Trương", 0.9), ("Mai", 0.5), ("Cao", 0.4),
)  # fmt: skip
MIDDLE_NAMES: Final = {
    "male": ("Văn", "Đức", "Minh", "Quốc", "Hữu", "Thành", "Công", "Gia", "Hoàng", "Anh"),
    "female": ("Thị", "Ngọc", "Thu", "Thanh", "Mai", "Kim", "Bảo", "Phương", "Hồng", "Diệu"),
}
GIVEN_NAMES: Final = {
    "male": ("An", "Bình", "Cường", "Dũng", "Hải", "Hùng", "Huy", "Khang", "Khoa", "Long",
             "Minh", "Nam", "Phúc", "Quang", "Sơn", "Tâm", "Thắng", "Tuấn", "Việt", "Vinh"),
    "female": ("Anh", "Chi", "Dung", "Giang", "Hà", "Hạnh", "Hoa", "Hương", "Lan", "Linh",
               "Loan", "Mai", "My", "Ngân", "Nhung", "Oanh", "Phương", "Thảo", "Trang", "Yến"),
}  # fmt: skip

STREETS: Final = (
    "Lê Lợi", "Trần Hưng Đạo", "Nguyễn Huệ", "Hai Bà Trưng", "Lý Thường Kiệt", "Quang Trung",
    "Nguyễn Trãi", "Phan Chu Trinh", "Lê Duẩn", "Hùng Vương", "Điện Biên Phủ", "Cách Mạng Tháng 8",
    "Nguyễn Văn Cừ", "Võ Thị Sáu", "Phạm Văn Đồng", "Tôn Đức Thắng",
)  # fmt: skip
WARDS: Final = (
    "phường Tân Định", "phường Bình Minh", "phường Hòa Bình", "phường Tân An", "phường Phú Lợi",
    "phường An Khánh", "phường Thống Nhất", "xã Tân Phú", "xã An Bình", "xã Phước Hòa",
    "xã Long Hưng", "xã Vĩnh Thạnh",
)  # fmt: skip

# Province-of-birth codes that open a căn cước number, for the units of schemas/data/units.csv;
# an applicant of another unit, or born elsewhere, gets one of the others.
BIRTH_PROVINCES: Final = {
    "H05": "027", "H20": "087", "H22": "002", "H29": "079", "H48": "051", "H59": "084",
}  # fmt: skip
OTHER_BIRTH_PROVINCES: Final = ("001", "031", "038", "040", "046", "048", "056", "074", "092")

MOBILE_PREFIXES: Final = ("032", "034", "038", "056", "070", "077", "081", "086", "090", "091",
                          "093", "094", "096", "097", "098")  # fmt: skip
MAIL_DOMAINS: Final = ("gmail.com", "yahoo.com", "outlook.com", "example.vn")
COMPANY_KINDS: Final = ("Công ty TNHH", "Công ty cổ phần", "Công ty TNHH một thành viên")
COMPANY_TRADES: Final = ("Thương mại", "Xây dựng", "Dịch vụ", "Sản xuất", "Vận tải",
                         "Nông sản", "Công nghệ", "Du lịch")  # fmt: skip

_FAMILIES: Final = tuple(name for name, _ in FAMILY_NAMES)
_FAMILY_WEIGHTS: Final = tuple(weight for _, weight in FAMILY_NAMES)


def person_name(rng: random.Random, sex: str | None = None) -> str:
    """Họ + tên đệm + tên, e.g. "Nguyễn Thị Lan"."""
    sex = sex or rng.choice(("male", "female"))
    family = rng.choices(_FAMILIES, _FAMILY_WEIGHTS)[0]
    return f"{family} {rng.choice(MIDDLE_NAMES[sex])} {rng.choice(GIVEN_NAMES[sex])}"


def citizen_id(rng: random.Random, unit: str, sex: str, birth_year: int) -> str:
    """A 12-digit căn cước number: birth province, sex and century, year of birth, 6 digits."""
    province = BIRTH_PROVINCES.get(unit) if rng.random() < 0.75 else None
    province = province or rng.choice(OTHER_BIRTH_PROVINCES)
    century = 0 if birth_year < 2000 else 2
    return (
        f"{province}{century + (sex == 'female')}{birth_year % 100:02d}"
        f"{rng.randrange(1_000_000):06d}"
    )


def mobile_phone(rng: random.Random) -> str:
    """A 10-digit Vietnamese mobile number, e.g. 0912345678."""
    return f"{rng.choice(MOBILE_PREFIXES)}{rng.randrange(10_000_000):07d}"


def province_label(unit: str) -> str | None:
    """How an address names the unit's province: "Thành phố Hồ Chí Minh", "tỉnh Bắc Ninh"."""
    name = unit_name(unit)
    if name is None:
        return None
    return name if name.startswith("Thành phố") else f"tỉnh {name}"


def address(rng: random.Random, unit: str) -> str:
    """A two-level address: house and street, ward or commune, province."""
    parts = [f"Số {rng.randint(1, 350)} đường {rng.choice(STREETS)}", rng.choice(WARDS)]
    if province := province_label(unit):
        parts.append(province)
    return ", ".join(parts)


def plain(text: str) -> str:
    """Vietnamese without its marks, for e-mail addresses: "Nguyễn Đức" → "Nguyen Duc"."""
    text = text.replace("Đ", "D").replace("đ", "d")
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def citizen(rng: random.Random, unit: str, *, year: int) -> Applicant:
    """A person, with a căn cước number, usually a phone, sometimes an e-mail."""
    sex = rng.choice(("male", "female"))
    name = person_name(rng, sex)
    birth_year = rng.randint(year - 75, year - 18)
    email = None
    if rng.random() < 0.4:
        family, *_, given = plain(name).lower().split()
        email = f"{given}.{family}{birth_year % 100:02d}@{rng.choice(MAIL_DOMAINS)}"
    return Applicant(
        name=name,
        type=ApplicantType.CITIZEN,
        id_number=citizen_id(rng, unit, sex, birth_year),
        phone=mobile_phone(rng) if rng.random() < 0.9 else None,
        email=email,
        other_info=f"Địa chỉ thường trú: {address(rng, unit)}",
    )


def enterprise(rng: random.Random, unit: str) -> Applicant:
    """A company, its 10-digit enterprise code as both its code and its paper's number."""
    owner = person_name(rng).split()[-1]
    trade = rng.choice(COMPANY_TRADES)
    code = f"{rng.randint(3, 6)}{rng.randrange(10**9):09d}"
    return Applicant(
        name=f"{rng.choice(COMPANY_KINDS)} {trade} {owner} {rng.choice(('Phát', 'Thịnh', 'Hưng'))}",
        type=ApplicantType.ENTERPRISE,
        code=code,
        id_number=code,
        phone=mobile_phone(rng),
        email=f"lienhe@{plain(owner + trade).lower().replace(' ', '')}{code[-3:]}.vn",
        other_info=f"Trụ sở: {address(rng, unit)}",
    )
