import pytest

from app.services import mailboxes
from app.services.errors import LimitExceeded


def test_contract_limit_refuses_the_account_past_the_allowance(app, make):
    c = make.customer("contract", {"Business Mail 100 MB": 1})
    make.mailbox(c)
    with pytest.raises(LimitExceeded) as err:
        make.mailbox(c)
    assert "Business Mail 100 MB" in err.value.message
    assert (err.value.used, err.value.allowance) == (1, 1)
    page = mailboxes.search_mailboxes(make.SYSTEM, c.id)
    assert page.total == 1
