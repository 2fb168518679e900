"""The forms of the web pages: they check shapes; the services check everything else."""

from __future__ import annotations

from django import forms

from repos.models import Role, Visibility
from repos.services.proposals import MergeStrategy


class ProposalForm(forms.Form):
    title = forms.CharField(max_length=300)
    body = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 8}))
    from_branch = forms.ChoiceField(label="Merge branch")
    to_branch = forms.ChoiceField(label="into")

    def __init__(self, *args, branches: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        choices = [(name, name) for name in branches]
        self.fields["from_branch"].choices = choices
        self.fields["to_branch"].choices = choices


class ProposalEditForm(forms.Form):
    title = forms.CharField(max_length=300)
    body = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 8}))


class MergeForm(forms.Form):
    strategy = forms.ChoiceField(choices=MergeStrategy.choices, initial=MergeStrategy.MERGE)


class RepoSettingsForm(forms.Form):
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)
    visibility = forms.ChoiceField(choices=Visibility.choices)
    default_branch = forms.ChoiceField(required=False)

    def __init__(self, *args, branches: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["default_branch"].choices = [(name, name) for name in branches]


class CollaboratorForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices)


class DeleteRepoForm(forms.Form):
    confirm = forms.CharField(label="Type the repository's full name to confirm", max_length=300)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, required=False)
    expires_days = forms.IntegerField(required=False, min_value=1, max_value=3650, label="Expires after (days)")
    # Asked for when the last sign-in (or the last time it was asked) is older than MUSEHUB_SUDO_SECONDS.
    password = forms.CharField(required=False, strip=False, widget=forms.PasswordInput, label="Your password")
