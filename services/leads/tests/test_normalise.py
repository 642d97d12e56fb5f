"""Normalisation and masking, without a database."""
import pytest

from leads.domain import normalise as n


@pytest.mark.parametrize("raw", ["138-0013-8000", "+86 13800138000", "8613800138000", "13800138000",
                                 "(+86) 138 0013 8000", "+86-138-0013-8000"])
def test_phone_forms_are_one_e164_number(raw):
    assert n.phone(raw) == "+8613800138000"


def test_landline_and_foreign_numbers():
    assert n.phone("010-6552 9988") == "+861065529988"
    assert n.phone("+1 650 253 0000") == "+16502530000"


@pytest.mark.parametrize("raw", ["12345", "abc", "+86 1380013800099"])
def test_bad_phone_is_refused(raw):
    with pytest.raises(n.Invalid):
        n.phone(raw)


def test_email_lower_cased_and_validated():
    assert n.email("  Li.Lei@Example.COM ") == "li.lei@example.com"
    with pytest.raises(n.Invalid):
        n.email("not-an-email")
    with pytest.raises(n.Invalid):
        n.email("a@b")


@pytest.mark.parametrize("a,b", [
    ("杭州某某科技有限公司", "杭州某某科技 有限公司"),
    ("杭州某某科技有限公司", "杭州某某科技有限责任公司"),
    ("杭州某某科技股份有限公司", "杭州某某科技"),
    ("杭州某某科技集团有限公司", "杭州某某科技"),
    ("ＡＢＣ科技有限公司", "abc科技"),
    ("Acme Co., Ltd.", "ACME"),
    ("Acme, Inc.", "acme llc"),
    ("Acme Limited", "acme"),
])
def test_company_names_fold_to_one_key(a, b):
    assert n.company(a) == n.company(b)


def test_different_companies_stay_different():
    assert n.company("杭州甲科技有限公司") != n.company("杭州乙科技有限公司")
    assert n.company_key("甲科技", "杭州") != n.company_key("甲科技", "宁波")
    assert n.company_key("甲科技", "杭州市") == n.company_key("甲科技有限公司", "杭州")


def test_masks():
    assert n.mask_phone("+8613800138000") == "138****8000"
    assert n.mask_email("li.lei@example.com") == "l***@example.com"
    assert n.mask_phone(None) is None


PHONES = ["13800138000", "+86 138 0013 8000", "8613912345678", "010-12345678", "0571-87654321", "+1 650 253 0000",
          "+44 20 7946 0958", "+39 06 6982 1234", "+39 333 123 4567", "+81 3-1234-5678", "+49 30 123456",
          "+852 2123 4567", "+886 2 2345 6789", "+61 2 9374 4000", "+7 495 123-45-67", "+33 1 23 45 67 89",
          "+1 (242) 357-1234", "+353 1 234 5678", "+380 44 123 4567", "400-810-8888"]


@pytest.mark.parametrize("raw", PHONES)
def test_the_mask_of_a_number_just_normalised_is_the_mask_of_its_parse(raw):
    """`phone` remembers the national number of what it normalised, and `mask_phone` uses it: the
    mask must be the one parsing the E.164 text gives (fails if the remembered value differs)."""
    try:
        e164 = n.phone(raw)
    except n.Invalid:
        pytest.skip("not a valid number here")
    remembered = n.mask_phone(e164)
    n._NATIONAL.clear()
    assert remembered == n.mask_phone(e164)
    assert e164 not in n._NATIONAL


def test_the_remembered_numbers_are_bounded():
    n._NATIONAL.clear()
    for k in range(n._NATIONAL_MAX + 10):
        n.phone(f"139{k:08d}")
    assert 0 < len(n._NATIONAL) <= n._NATIONAL_MAX
    assert n.mask_phone("+8613900000001") == "139****0001"
