"""The default price list: hundredths of a point per day for each class of service.

AN EXAMPLE, not a commercial offer: the migration 0011_billing loads a frozen copy
of it (valid from 2020-01-01) so that a new installation charges something sensible;
staff set the real prices (`billing.set_price`), effective from a date.
1 EUR = 80 points, so 100 centipoints (1 point) a day is 0,0125 EUR a day.
The price grows with the type (features) and the size.
"""

from __future__ import annotations

# Sizes in MB, in the catalogue's order (app/data/catalog.py SIZES_MB).
SIZES_MB = (100, 200, 500, 1000, 2000, 5000, 10000, 25000)

# Centipoints per day: Business Mail 100 MB is 1 point a day, Professional Suite 25.000 MB 30.
CENTIPOINTS_PER_DAY: dict[str, tuple[int, ...]] = {
    "business_mail": (100, 120, 150, 200, 280, 400, 550, 800),
    "business_mail_plus": (130, 150, 190, 250, 350, 500, 700, 1000),
    "standard_suite": (250, 290, 350, 450, 600, 850, 1150, 1700),
    "professional_suite": (500, 560, 650, 800, 1050, 1500, 2000, 3000),
}


def default_prices() -> dict[tuple[str, int], int]:
    """{(type, quota_mb): centipoints per day}."""
    return {
        (type_code, size): price
        for type_code, prices in CENTIPOINTS_PER_DAY.items()
        for size, price in zip(SIZES_MB, prices, strict=True)
    }
