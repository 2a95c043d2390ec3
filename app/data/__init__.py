"""Data the panel ships with: the catalogue of classes of service (catalog.py) and lists read once
from files here (public_mail_providers.txt). Rules that use them live in app/services/."""
