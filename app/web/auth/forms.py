from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from app.services import users
from app.services.errors import ValidationError


class LoginForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=128)])


def password_change(actor, user, form, keep_session_id: int | None = None) -> None:
    """The confirmation box is the form's own check; the passwords are the service's."""
    new = form.get("new_password", "")
    if new != form.get("confirm_password", ""):
        raise ValidationError.one("confirm_password", _("Le due password nuove non coincidono."))
    users.change_password(actor, user, form.get("current_password", ""), new, keep_session_id)
