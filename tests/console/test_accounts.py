"""Operator accounts: scrypt hashes, the accounts file, and login throttling."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bus.cli import main
from bus.console.accounts import Accounts, AccountsError, hash_password, verify_password
from bus.console.throttle import LoginThrottle

CHEAP = {"n": 2**4, "r": 8, "p": 1}  # the format is the same; the tests need no memory-hardness


def test_a_hash_verifies_its_own_password_and_no_other() -> None:
    encoded = hash_password("s3cret", **CHEAP)
    assert verify_password("s3cret", encoded)
    assert not verify_password("s3cret ", encoded)


def test_the_same_password_hashes_differently_for_each_account() -> None:
    assert hash_password("s3cret", **CHEAP) != hash_password("s3cret", **CHEAP)


def test_a_hash_says_its_scheme_and_cost_so_that_the_cost_can_be_raised_later() -> None:
    scheme, n, r, p, _salt, _digest = hash_password("s3cret").split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert verify_password("s3cret", hash_password("s3cret", **CHEAP))


@pytest.mark.parametrize(
    "broken", ["", "scrypt$1$2", "bcrypt$16$8$1$AA==$AA==", "scrypt$x$8$1$?$?"]
)
def test_a_malformed_hash_matches_no_password(broken: str) -> None:
    assert not verify_password("anything", broken)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "accounts.toml"
    path.write_text(text, "utf-8")
    return path


def test_accounts_load_national_and_provincial_operators(tmp_path: Path) -> None:
    hashed = hash_password("pw", **CHEAP)
    path = write(
        tmp_path,
        f'[operators.nation]\npassword = "{hashed}"\nunits = "*"\n'
        f'[operators.hanoi]\npassword = "{hashed}"\nunits = ["h29"]\n',
    )
    accounts = Accounts.load(path)
    nation, hanoi = accounts.get("nation"), accounts.get("hanoi")
    assert nation is not None
    assert nation.national
    assert nation.operator().may_act_on("G01")
    assert hanoi is not None
    assert hanoi.units == frozenset({"H29"})
    assert not hanoi.operator().may_act_on("G01")
    assert accounts.authenticate("hanoi", "pw") == hanoi
    assert accounts.authenticate("hanoi", "wrong") is None
    assert accounts.authenticate("nobody", "pw") is None


def test_a_password_written_in_clear_is_refused_with_where_and_why(tmp_path: Path) -> None:
    path = write(tmp_path, '[operators.hanoi]\npassword = "hunter2"\nunits = ["H29"]\n')
    with pytest.raises(AccountsError, match=r"operators\.hanoi: password must be a hash"):
        Accounts.load(path)


def test_an_account_without_units_is_refused(tmp_path: Path) -> None:
    hashed = hash_password("pw", **CHEAP)
    path = write(tmp_path, f'[operators.hanoi]\npassword = "{hashed}"\n')
    with pytest.raises(AccountsError, match="units must be"):
        Accounts.load(path)


def test_hash_password_prints_a_hash_of_the_password_given() -> None:
    result = CliRunner().invoke(main, ["console", "hash-password", "--password", "pw"])
    assert result.exit_code == 0, result.output
    assert verify_password("pw", result.output.strip())


def test_logins_are_throttled_after_a_few_failures_until_the_window_passes() -> None:
    now = [0.0]
    throttle = LoginThrottle(max_failures=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.blocked("account:a", "address:x") == 0
        throttle.failed("account:a", "address:x")
    assert throttle.blocked("account:a") == 60
    assert throttle.blocked("address:x") == 60
    assert throttle.blocked("account:b") == 0
    now[0] = 61
    assert throttle.blocked("account:a", "address:x") == 0
