"""Domain taxonomy and the expert roster: who knows what, speaks what, works when."""
import re
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from core.formatting import rounded
from experts.availability import covers_domain

# A loose BCP 47 shape (language, then subtags of letters/digits): enough to catch "english" or "en_US".
LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")

validate_domain_path = RegexValidator(
    r"^[\w.-]+(/[\w.-]+)*$",
    "Use slash-separated segments of letters, digits, '.', '_' or '-', e.g. 'medical/radiology'.",
)


def validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"{value!r} is not an IANA time zone (e.g. 'Europe/Berlin').") from exc


def validate_languages(value: object) -> None:
    if not isinstance(value, list):
        raise ValidationError('Give a list of BCP 47 codes, e.g. ["en", "pt-BR"].')
    bad = [tag for tag in value if not isinstance(tag, str) or not LANGUAGE_TAG.match(tag)]
    if bad:
        raise ValidationError(f"Not BCP 47 language tags: {', '.join(map(repr, bad))} (e.g. 'en', 'pt-BR').")


class Domain(models.Model):
    """A node of the expertise taxonomy; `path` is slash-separated from the root, e.g. `medical/radiology`."""

    path = models.CharField(max_length=255, unique=True, validators=[validate_domain_path])
    name = models.CharField(max_length=255)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")

    class Meta:
        ordering = ("path",)

    def __str__(self) -> str:
        return self.path

    def clean(self) -> None:
        # The path is what routing matches on, so it must agree with the tree the admin shows.
        parent_path = self.path.rpartition("/")[0]
        if self.parent is None and parent_path:
            raise ValidationError({"parent": f"A domain at {self.path!r} needs the parent {parent_path!r}."})
        if self.parent is not None and self.parent.path != parent_path:
            expected = repr(parent_path) if parent_path else "none"
            raise ValidationError(
                {"parent": f"Parent {self.parent.path!r} does not match the path {self.path!r} (expected {expected})."}
            )

    @property
    def depth(self) -> int:
        return self.path.count("/")

    def covers(self, other_path: str) -> bool:
        """Expertise in this domain covers itself and every sub-domain below it."""
        return covers_domain(self.path, other_path)


class Role(models.TextChoices):
    CROWD = "crowd", "Crowd annotator"
    EXPERT = "expert", "Expert"
    REVIEWER = "reviewer", "Reviewer"


class Expert(models.Model):
    """A person on the roster (crowd annotators included: role says which)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="expert")
    display_name = models.CharField(max_length=200)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    languages = models.JSONField(
        default=list, blank=True, validators=[validate_languages], help_text='BCP 47 codes, e.g. ["en", "pt-BR"].'
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.EXPERT)
    capacity = models.PositiveIntegerField(default=5, help_text="Most open assignments at once.")
    active = models.BooleanField(default=True)
    email_notifications = models.BooleanField(
        default=True,
        help_text="Email offers of work. An SLA breach paged to this person as on-call is emailed even when off.",
    )
    # Bumped by every claim (work.claims.assignment_claim_next): the sequence number that seeds the
    # claim's gold-check draw, kept here so the draw costs no count over the person's history.
    claims_made = models.PositiveBigIntegerField(default=0, editable=False)

    class Meta:
        # The admin and the docs call these people the roster: crowd annotators and reviewers as well as experts.
        verbose_name = "roster member"
        verbose_name_plural = "roster members"
        ordering = ("display_name",)
        indexes = [models.Index(fields=("role", "active"))]

    def __str__(self) -> str:
        return self.display_name


class Expertise(models.Model):
    expert = models.ForeignKey(Expert, on_delete=models.CASCADE, related_name="expertise")
    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="expertise")
    proficiency = models.PositiveSmallIntegerField(default=3, help_text="1 (novice) to 5 (authority).")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=("expert", "domain"), name="expertise_unique_expert_domain"),
            models.CheckConstraint(condition=models.Q(proficiency__gte=1, proficiency__lte=5),
                name="expertise_proficiency_1_5"),
        ]

    def __str__(self) -> str:
        return f"{self.expert} · {self.domain} ({self.proficiency})"


class Weekday(models.IntegerChoices):
    MONDAY = 0
    TUESDAY = 1
    WEDNESDAY = 2
    THURSDAY = 3
    FRIDAY = 4
    SATURDAY = 5
    SUNDAY = 6


class Shift(models.Model):
    """A weekly shift in the expert's local time; an end at or before the start means it crosses midnight."""

    expert = models.ForeignKey(Expert, on_delete=models.CASCADE, related_name="shifts")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    start = models.TimeField()
    end = models.TimeField()

    class Meta:
        ordering = ("expert", "weekday", "start")

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.start:%H:%M}-{self.end:%H:%M}"


class TimeOff(models.Model):
    """Whole days off in the expert's local calendar, both ends included."""

    expert = models.ForeignKey(Expert, on_delete=models.CASCADE, related_name="time_off")
    start_date = models.DateField()
    end_date = models.DateField()
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ("start_date",)
        constraints = [
            models.CheckConstraint(condition=models.Q(end_date__gte=models.F("start_date")),
                name="timeoff_end_after_start"),
        ]

    def __str__(self) -> str:
        return f"{self.start_date} – {self.end_date}"


class OnCallRotation(models.Model):
    """Who covers a domain when SLAs break: members take turns, each for `period_days`, from `starts_on`."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="on_call_rotations")
    name = models.CharField(max_length=200)
    period_days = models.PositiveIntegerField(default=7)
    starts_on = models.DateField(help_text="Turns change at 00:00 UTC every period_days from this day.")

    class Meta:
        ordering = ("domain", "name")
        constraints = [
            models.CheckConstraint(condition=models.Q(period_days__gte=1), name="oncall_period_days_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.domain})"


class OnCallMember(models.Model):
    rotation = models.ForeignKey(OnCallRotation, on_delete=models.CASCADE, related_name="members")
    expert = models.ForeignKey(Expert, on_delete=models.CASCADE, related_name="on_call_memberships")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("rotation", "position")
        constraints = [models.UniqueConstraint(fields=("rotation", "expert"), name="oncall_unique_member")]

    def __str__(self) -> str:
        return f"{self.position}: {self.expert}"


class ExpertAccuracy(models.Model):
    """Measured accuracy of one person in one domain (null domain: over all domains); refreshed by a job."""

    expert = models.ForeignKey(Expert, on_delete=models.CASCADE, related_name="accuracy")
    domain = models.ForeignKey(Domain, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    gold_correct = models.PositiveIntegerField(default=0)
    gold_total = models.PositiveIntegerField(default=0)
    agreement_correct = models.PositiveIntegerField(default=0)
    agreement_total = models.PositiveIntegerField(default=0)
    accuracy = models.FloatField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "expert accuracy"
        constraints = [
            models.UniqueConstraint(fields=("expert", "domain"), name="accuracy_unique_expert_domain"),
            models.UniqueConstraint(fields=("expert",), condition=models.Q(domain__isnull=True),
                name="accuracy_unique_expert_overall"),
            models.CheckConstraint(
                condition=models.Q(gold_correct__lte=models.F("gold_total")),
                name="accuracy_gold_correct_le_total",
            ),
            models.CheckConstraint(
                condition=models.Q(agreement_correct__lte=models.F("agreement_total")),
                name="accuracy_agreement_correct_le_total",
            ),
            models.CheckConstraint(
                condition=models.Q(accuracy__isnull=True) | models.Q(accuracy__gte=0, accuracy__lte=1),
                name="accuracy_0_1",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.expert} · {self.domain or 'all'}: {rounded(self.accuracy)}"
