import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.data import catalog
from app.extensions import db


class ServiceClass(db.Model):
    """One of the 32 classes of service; rows are made by the first migration."""

    __tablename__ = "service_classes"
    __table_args__ = (sa.UniqueConstraint("type", "quota_mb", name="uq_service_classes_type_quota"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(32))
    quota_mb: Mapped[int]

    @property
    def name(self) -> str:
        return catalog.class_name(self.type, self.quota_mb)

    @property
    def type_name(self) -> str:
        return catalog.type_name(self.type)

    @property
    def features(self) -> tuple[str, ...]:
        return catalog.type_features(self.type)

    def __repr__(self) -> str:
        return f"<ServiceClass {self.name}>"
