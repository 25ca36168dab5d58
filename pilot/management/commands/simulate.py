"""Replay historical judgments through an escalation policy and compare it with the baselines (docs/pilot.md)."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling.models import Project
from pilot import curves, readers, simulation
from routing.engine.policy import DEFAULT_POLICY, policy_errors
from routing.engine.types import PolicyConfig
from routing.selectors import live_versions


def add_data_arguments(parser: CommandParser) -> None:
    """The inputs `simulate` and `calibrate` share."""
    parser.add_argument("--judgments", type=Path, required=True, help="CSV item,worker,label")
    parser.add_argument("--gold", type=Path, required=True, help="CSV item,label")
    parser.add_argument("--predictions", type=Path, help="CSV item,<class>,<class>... of probabilities")
    parser.add_argument("--workers", type=Path, help="CSV worker,role[,cost]; role crowd or expert")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--policy", type=Path, help="JSON of a policy's fields (PolicyConfig.to_dict())")
    source.add_argument("--project", metavar="SLUG", help="use this project's live policy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--gold-checks",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="share of gold items used as known checks while replaying (not scored)",
    )
    parser.add_argument("--shuffle-judgments", action="store_true", help="shuffle each item's judgments (seeded)")


def load_data(options: dict) -> readers.PilotData:
    for name in ("judgments", "gold", "predictions", "workers"):
        path = options.get(name)
        if path is not None and not path.is_file():
            raise CommandError(f"--{name}: {path} is not a file")
    try:
        return readers.load_pilot_data(
            judgments=options["judgments"],
            gold=options["gold"],
            predictions=options.get("predictions"),
            workers=options.get("workers"),
        )
    except readers.PilotDataError as error:
        raise CommandError(str(error)) from error


def load_policy(options: dict) -> PolicyConfig:
    """--policy FILE, else --project SLUG's live version, else the default policy."""
    if options.get("policy") is not None:
        path: Path = options["policy"]
        try:
            config = PolicyConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except OSError as error:
            raise CommandError(f"--policy: cannot read {path}: {error}") from error
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise CommandError(f"--policy {path}: not a policy ({error})") from error
    elif options.get("project"):
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project with slug {options['project']!r}")
        version = live_versions(project_ids=[project.pk]).get(project.pk)
        # A project that never routed has no policy yet; routing would start it on the default.
        config = PolicyConfig.from_dict(version.config) if version is not None else DEFAULT_POLICY
    else:
        config = DEFAULT_POLICY
    errors = policy_errors(config)
    if errors:
        raise CommandError("invalid policy: " + "; ".join(errors))
    return config


def check_fraction(value: float) -> float:
    if not 0.0 <= value < 1.0:
        raise CommandError(f"--gold-checks must be in [0, 1), got {value}")
    return value


def write_json(command: BaseCommand, document: dict, out: Path | None) -> None:
    text = json.dumps(document, indent=2, sort_keys=False, allow_nan=False)
    if out is None:
        command.stdout.write(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        command.stderr.write(f"wrote {out}")


class Command(BaseCommand):
    help = (
        "Replay historical judgments through an escalation policy (the same code live routing runs) and "
        "report its accuracy and cost next to majority vote, Dawid-Skene and the model alone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_data_arguments(parser)
        parser.add_argument("--out", type=Path, help="write the JSON report here instead of stdout")
        parser.add_argument("--curve", action="store_true", help="sweep the main thresholds; print a table")
        parser.add_argument(
            "--plot", type=Path, metavar="FILE.html", help="write the sweep as a chart (implies --curve)"
        )

    def handle(self, *args, **options) -> None:
        data = load_data(options)
        policy = load_policy(options)
        setup = simulation.prepare(
            data,
            seed=options["seed"],
            gold_checks=check_fraction(options["gold_checks"]),
            shuffle_judgments=options["shuffle_judgments"],
        )
        if not setup.scored_gold:
            raise CommandError("no gold item is left to score (check --gold and --gold-checks)")
        report = simulation.run_pilot(setup, policy)
        document = report.to_dict()
        want_curve = options["curve"] or options["plot"] is not None
        if want_curve:
            rows = curves.curve(setup, policy)
            mv_rows = simulation.majority_vote_curve(setup.history, setup.scored_gold)
            document["curve"] = rows
            document["majority_vote_curve"] = mv_rows
        write_json(self, document, options["out"])
        if want_curve:
            with_predictions = bool(setup.history.predictions)
            self.stdout.write(curves.curve_table(rows, mv_rows, with_predictions))
            if options["plot"] is not None:
                html = curves.curve_html(
                    rows,
                    mv_rows,
                    report,
                    title=f"Pilot: {options['judgments'].parent.name}/{options['judgments'].name}",
                )
                options["plot"].write_text(html, encoding="utf-8")
                self.stderr.write(f"wrote {options['plot']}")
