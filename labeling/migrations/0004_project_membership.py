"""Project membership, and the default for data from before it: everyone who could reach a project then
(everyone on the roster, every stakeholder, every non-staff API token holder) becomes a member of every
existing project, so nothing changes on upgrade. New projects and new people start with no membership."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


STAKEHOLDER_GROUP = "stakeholders"  # core.access.STAKEHOLDER_GROUP as it was at this migration


def members_of_every_project(apps, schema_editor):
    Project = apps.get_model("labeling", "Project")
    Membership = apps.get_model("labeling", "ProjectMembership")
    Expert = apps.get_model("experts", "Expert")
    Token = apps.get_model("authtoken", "Token")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    user_ids = set(Expert.objects.values_list("user_id", flat=True))
    user_ids |= set(User.objects.filter(groups__name=STAKEHOLDER_GROUP).values_list("id", flat=True))
    user_ids |= set(Token.objects.filter(user__is_staff=False).values_list("user_id", flat=True))
    rows = [
        Membership(project_id=project_id, user_id=user_id)
        for project_id in Project.objects.values_list("id", flat=True)
        for user_id in sorted(user_ids)
    ]
    Membership.objects.bulk_create(rows, batch_size=1000)


class Migration(migrations.Migration):

    dependencies = [
        ('labeling', '0003_auditevent_moved_to_core'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("experts", "0004_email_notifications_help"),
        ("authtoken", "0001_initial"),
        ("auth", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name='ProjectMembership',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('added_at', models.DateTimeField(auto_now_add=True)),
                ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to='labeling.project')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='project_memberships', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ('project', 'user'),
                'indexes': [models.Index(fields=['user', 'project'], name='labeling_pr_user_id_d14648_idx')],
                'constraints': [models.UniqueConstraint(fields=('project', 'user'), name='membership_unique_project_user')],
            },
        ),
        migrations.RunPython(members_of_every_project, migrations.RunPython.noop),
    ]
