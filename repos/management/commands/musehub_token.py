"""manage.py musehub_token create|list|revoke: API tokens for a user."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from repos.models import ApiToken
from repos.services.tokens import issue_token, revoke_tokens, token_state


class Command(BaseCommand):
    help = "Create, list or revoke API tokens (Authorization: Bearer <token>) for a user."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a token and print it once.")
        create.add_argument("username")
        create.add_argument("--name", default="", help="A label to recognise the token by.")
        create.add_argument("--expires-days", type=int, default=None, help="Expire after this many days.")
        create.add_argument("--create-user", action="store_true", help="Create the user if it does not exist.")
        listing = sub.add_parser("list", help="List a user's tokens (never their clear text).")
        listing.add_argument("username")
        revoke = sub.add_parser("revoke", help="Revoke a token by its prefix, or all of a user's tokens.")
        revoke.add_argument("username")
        revoke.add_argument("prefix", nargs="?", default=None, help="The token's first characters (see list).")

    def _user(self, username: str, create: bool = False):
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None and create:
            user = User.objects.create_user(username=username)
        if user is None:
            raise CommandError(f"No user named {username!r}; add --create-user or run createsuperuser.")
        return user

    def handle(self, *args, action: str, username: str, **options):
        if action == "create":
            user = self._user(username, options["create_user"])
            days = options["expires_days"]
            if days is not None and days <= 0:
                raise CommandError("--expires-days must be a positive number of days.")
            expires = timezone.now() + dt.timedelta(days=days) if days else None
            _, clear = issue_token(user, name=options["name"], expires_at=expires)
            self.stdout.write(clear)
            return
        user = self._user(username)
        tokens = ApiToken.objects.filter(user=user)
        if action == "list":
            for token in tokens:
                state = token_state(token)
                until = token.expires_at.isoformat() if token.expires_at else "never"
                self.stdout.write(f"{token.prefix}…\t{state}\t{token.name or '-'}\texpires {until}")
            return
        prefix = options["prefix"]
        count = revoke_tokens(tokens, prefix=prefix)
        if prefix and count == 0:
            raise CommandError(f"{username} has no active token starting with {prefix!r}.")
        self.stdout.write(f"Revoked {count} token(s) of {username}.")
