"""Choose a policy's thresholds on history; optionally store them as a draft version (docs/pilot.md)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling.models import Project
from pilot import calibration
from pilot.management.commands.simulate import add_data_arguments, check_fraction, load_data, load_policy, write_json
from routing import policies


class Command(BaseCommand):
    help = (
        "Search an escalation policy's thresholds on a calibration split of the gold items for a target "
        "accuracy (cheapest) or a labels-per-item budget (most accurate), and report the choice on the "
        "held-out split. --save-draft stores it as a draft version for an admin to review and publish."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_data_arguments(parser)
        goal = parser.add_mutually_exclusive_group(required=True)
        goal.add_argument("--target-accuracy", type=float, metavar="A")
        goal.add_argument("--budget", type=float, metavar="LABELS_PER_ITEM")
        parser.add_argument("--held-out", type=float, default=0.5, metavar="SHARE", help="share of gold held out")
        parser.add_argument("--out", type=Path, help="write the JSON result here instead of stdout")
        parser.add_argument("--save-draft", metavar="SLUG", help="store the chosen policy as a draft of this project")

    def handle(self, *args, **options) -> None:
        project = None
        if options["save_draft"]:
            # Checked before the (slow) search so a typo fails at once.
            project = Project.objects.filter(slug=options["save_draft"]).first()
            if project is None:
                raise CommandError(f"--save-draft: no project with slug {options['save_draft']!r}")
        data = load_data(options)
        base = load_policy(options)
        try:
            result = calibration.calibrate(
                data,
                base,
                target_accuracy=options["target_accuracy"],
                budget=options["budget"],
                seed=options["seed"],
                gold_checks=check_fraction(options["gold_checks"]),
                shuffle_judgments=options["shuffle_judgments"],
                held_out_share=options["held_out"],
            )
        except ValueError as error:
            raise CommandError(str(error)) from error
        document = result.to_dict()
        if project is not None:
            goal = (
                f"target accuracy {result.target_accuracy}"
                if result.target_accuracy is not None
                else f"budget {result.budget} labels/item"
            )
            note = (
                f"manage.py calibrate ({goal}, seed {options['seed']}, {options['judgments'].name}): held-out accuracy "
                f"{result.held_out['accuracy']:.4f} at {result.held_out['labels_per_item']:.2f} labels/item"
                f"{'' if result.met else '; the goal was NOT met on the calibration split'}"
            )
            draft = policies.policy_draft_save(
                policy=policies.policy_for_project(project), config=result.policy, author=None, change_note=note
            )
            document["draft"] = {"project": project.slug, "version": draft.number}
            self.stderr.write(f"saved draft v{draft.number} of {project.slug}'s policy (not published)")
        write_json(self, document, options["out"])
        chosen = document["chosen"]
        held = result.held_out
        self.stderr.write(
            f"{'met' if result.met else 'NOT met'}: posterior >= {chosen['consensus_min_posterior']}, overlap "
            f"{chosen['crowd_overlap']}, top probability >= {chosen['auto_accept_min_top_probability']}; held-out "
            f"accuracy {held['accuracy']:.4f}, {held['labels_per_item']:.2f} labels/item, "
            f"cost {held['cost_per_item']:.2f}/item"
        )
