"""bench/scale.py's fill: items added to the scale project in bulk between its measured steps, by
INSERT ... SELECT on the database server (no Python per row), shaped like what routing and the work loop
write (see CATEGORIES and bench/scale.py's docstring). Imported by bench/scale.py after django.setup()."""
from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, transaction

from labeling.models import Project
from labeling.services import domains_ensure
from routing.policies import policy_for_project

CLASSES = ["cat", "dog", "bird"]
DOMAINS = ("scale/a", "scale/b", "scale/b/deep", "scale/c")
FILL_CHUNK = 500_000


def reserve(cursor: Any, table: str, n: int) -> int:
    """The first of n consecutive ids taken from `table`'s sequence."""
    if n == 0:
        return 0
    cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), nextval(pg_get_serial_sequence(%s, 'id')) "
                   "+ %s - 1)", [table, table, n])
    return cursor.fetchone()[0] - n + 1


def templates(project: Project) -> dict[str, dict[str, str]]:
    """inputs/posterior/reasons/signals of one real ingest decision per outcome (accept, crowd)."""
    out = {}
    for outcome in ("accept", "crowd"):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT d.inputs::text, d.posterior::text, d.reasons::text, d.signals::text "
                "FROM routing_routingdecision d JOIN labeling_item i ON i.id = d.item_id "
                "WHERE i.project_id = %s AND d.outcome = %s ORDER BY d.id LIMIT 1", [project.pk, outcome])
            row = cursor.fetchone()
        if row is None:
            raise SystemExit(f"no {outcome} decision to copy: run the first (small) step on the real path first")
        out[outcome] = dict(zip(("inputs", "posterior", "reasons", "signals"), row))
    return out


# Per-item shape by category: (share in 1000, status, final_source, crowd labels, expert label, decisions,
# open crowd slot, open expert slot).
CATEGORIES = (
    ("auto", 550, "labeled", "model", 0, 0, 1, 0, 0),
    ("consensus", 350, "labeled", "consensus", 2, 0, 3, 0, 0),
    ("queued", 30, "in_crowd_review", "", 0, 0, 1, 1, 0),
    ("expert", 50, "labeled", "expert", 2, 1, 4, 0, 0),
    ("escalated", 20, "escalated", "", 2, 0, 3, 0, 1),
)


def _category_sql() -> str:
    """A SQL CASE giving each fill index g its category number, from a hash of g (seeded, stable)."""
    parts, upper = [], 0
    for number, (_, share, *_rest) in enumerate(CATEGORIES):
        upper += share
        parts.append(f"WHEN h < {upper} THEN {number}")
    return "CASE " + " ".join(parts) + " END"


def fill(project: Project, n: int, start_index: int, total_target: int, t0: dt.datetime, *, days: int,
         say: Callable[[str], None]) -> None:
    """Add n filled items (fill indexes start_index..start_index+n-1) in chunks, one transaction each."""
    tpl = templates(project)
    domain_ids = domains_ensure(DOMAINS)
    crowd = list(get_user_model().objects.filter(username__startswith="scale-crowd-").order_by("username")
                 .values_list("id", flat=True))
    experts = list(get_user_model().objects.filter(username__startswith="scale-expert-").order_by("username")
                   .values_list("id", flat=True))
    version_id = policy_for_project(project).live_version_id
    span = days * 86400.0 / max(total_target, 1)
    done = 0
    while done < n:
        k = min(FILL_CHUNK, n - done)
        g0 = start_index + done
        t = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
            cursor.execute("SET LOCAL work_mem = '256MB'")
            # The rows are built consistent (ids reserved, every reference inside the chunk or to existing
            # rows); checking each foreign key at commit cost as much as writing the rows. Superuser only.
            cursor.execute("SET LOCAL session_replication_role = replica")
            times: dict[str, float] = {}
            _fill_chunk(_Timed(cursor, times), project.pk, version_id, g0, k, span, t0, tpl, domain_ids, crowd, experts)
        done += k
        say(f"  filled {done:,}/{n:,} items ({k / (time.perf_counter() - t):,.0f} items/s this chunk; "
            + ", ".join(f"{name.split()[-1]} {v:.1f}s" for name, v in times.items() if v > 0.5) + ")")


class _Timed:
    """A cursor whose execute adds each statement's seconds to `times` (the fill prints where time goes)."""

    def __init__(self, cursor: Any, times: dict[str, float]) -> None:
        self.cursor, self.times = cursor, times

    def execute(self, sql: str, params: Any = None) -> None:
        t = time.perf_counter()
        self.cursor.execute(sql, params)
        key = " ".join(sql.split()[:3])
        self.times[key] = self.times.get(key, 0.0) + time.perf_counter() - t

    def fetchone(self) -> Any:
        return self.cursor.fetchone()


def _fill_chunk(cursor, project_id, version_id, g0, k, span, t0, tpl, domain_ids, crowd, experts) -> None:
    cats = CATEGORIES

    def column(i: int, kind: str) -> str:
        return f"(ARRAY{[c[i] for c in cats]}::{kind}[])[c + 1]"

    # One row per new item: its fill index g, category c, label and time, and the offsets of its
    # annotations, decisions and slots among the chunk's (their ids: a reserved range plus the offset).
    cursor.execute(
        f"""CREATE TEMP TABLE fill_facts ON COMMIT DROP AS
        SELECT *, sum(crowd_n + expert_n) OVER w - (crowd_n + expert_n) AS a_off,
                  sum(decision_n) OVER w - decision_n AS d_off,
                  sum(crowd_n + expert_n + queued_n + expert_open_n) OVER w
                      - (crowd_n + expert_n + queued_n + expert_open_n) AS s_off
        FROM (SELECT g, c, {column(2, 'text')} AS status, {column(3, 'text')} AS source,
                     {column(4, 'int')} AS crowd_n, {column(5, 'int')} AS expert_n,
                     {column(6, 'int')} AS decision_n, {column(7, 'int')} AS queued_n,
                     {column(8, 'int')} AS expert_open_n,
                     (%s::text[])[(g %% 3) + 1] AS label, (%s::text[])[((g + 1) %% 3) + 1] AS second,
                     (%s::text[])[((g + 2) %% 3) + 1] AS third,
                     (%s::bigint[])[(g %% {len(domain_ids)}) + 1] AS domain_id,
                     %s::timestamptz + make_interval(secs => g * %s) AS created_at
              FROM (SELECT g, mod(abs(hashint8(g)), 1000) AS h
                    FROM generate_series(%s::bigint, %s::bigint) g) s,
                   LATERAL (SELECT {_category_sql()} AS c) cc) facts
        WINDOW w AS (ORDER BY g)""",
        [CLASSES, CLASSES, CLASSES, [domain_ids[d] for d in DOMAINS], t0, span, g0, g0 + k - 1],
    )
    cursor.execute("SELECT sum(crowd_n + expert_n), sum(decision_n), "
                   "sum(crowd_n + expert_n + queued_n + expert_open_n) FROM fill_facts")
    n_ann, n_dec, n_slot = (int(x) for x in cursor.fetchone())
    item0 = reserve(cursor, "labeling_item", k)
    ann0 = reserve(cursor, "labeling_annotation", n_ann)
    dec0 = reserve(cursor, "routing_routingdecision", n_dec)
    slot0 = reserve(cursor, "routing_assignment", n_slot)
    ids = {"item0": item0 - g0, "ann0": ann0, "dec0": dec0, "slot0": slot0, "project": project_id}
    # Items and their predictions (the top class is the final label's; confident on auto items).
    cursor.execute(
        """INSERT INTO labeling_item (id, project_id, external_id, data, metadata, domain_id, language, status,
               final_label, final_source, final_confidence, created_at, updated_at, labeled_at)
           SELECT %(item0)s + g, %(project)s, 'fill-' || lpad(g::text, 9, '0'),
                  json_build_object('text', 'scale item ' || g), '{}', domain_id, 'en', status,
                  CASE WHEN source = '' THEN '' ELSE label END, source,
                  CASE source WHEN 'model' THEN 0.97 WHEN '' THEN NULL ELSE 0.93 END, created_at,
                  created_at + make_interval(hours => decision_n - 1),
                  CASE WHEN source = '' THEN NULL ELSE created_at + make_interval(hours => decision_n - 1) END
           FROM fill_facts""",
        ids,
    )
    cursor.execute(
        """INSERT INTO labeling_prediction (item_id, model_name, model_version, probabilities, created_at)
           SELECT %(item0)s + g, '', 'scale-1',
                  json_build_object(label, p, second, round((1 - p) * 0.6, 6), third, round((1 - p) * 0.4, 6)),
                  created_at
           FROM fill_facts, LATERAL (SELECT CASE WHEN c = 0 THEN 0.97 ELSE 0.62 END AS p) pp""",
        ids,
    )
    annotator = f"""CASE WHEN j < crowd_n THEN (%(crowd)s::bigint[])[((g * 7 + j * 13) %% {len(crowd)}) + 1]
                         ELSE (%(experts)s::bigint[])[(g %% {len(experts)}) + 1] END"""
    submitted = "created_at + make_interval(mins => 30 + 60 * j)"
    # Annotations: crowd labels j = 0, 1 an hour apart; the expert's after them.
    cursor.execute(
        f"""INSERT INTO labeling_annotation (id, item_id, annotator_id, label, rationale, factors, confidence, unsure,
               time_spent_ms, started_at, submitted_at, role)
           SELECT %(ann0)s + a_off + j, %(item0)s + g, {annotator}, label, '', '[]', NULL, false,
                  20000 + (g %% 9000), NULL, {submitted}, CASE WHEN j < crowd_n THEN 'crowd' ELSE 'expert' END
           FROM fill_facts, generate_series(0, crowd_n + expert_n - 1) j WHERE crowd_n + expert_n > 0""",
        {**ids, "crowd": crowd, "experts": experts},
    )
    # Decisions: ingest (accept or crowd), then one per label submitted (the last accepts or escalates). The
    # copied JSON is parsed once (t), not once a row.
    cursor.execute(
        """INSERT INTO routing_routingdecision (id, item_id, policy_version_id, stage, inputs, inputs_digest, outcome,
               final_label, final_source, confidence, posterior, reasons, signals, labels_requested,
               expert_ranking, created_at, actor_id)
           SELECT %(dec0)s + d_off + j, %(item0)s + g, %(version)s, CASE WHEN j = 0 THEN 'ingest' ELSE 'annotation' END,
                  CASE WHEN c = 0 THEN t.a_inputs ELSE t.c_inputs END,
                  md5(g::text || '/' || j) || md5(j || '/' || g::text), o.outcome,
                  CASE WHEN o.outcome = 'accept' THEN label ELSE '' END,
                  CASE WHEN o.outcome = 'accept' THEN source ELSE '' END,
                  CASE WHEN o.outcome = 'accept' THEN 0.93 ELSE NULL END,
                  CASE WHEN c = 0 THEN t.a_posterior ELSE t.c_posterior END,
                  CASE WHEN c = 0 THEN t.a_reasons ELSE t.c_reasons END,
                  CASE WHEN c = 0 THEN t.a_signals ELSE t.c_signals END,
                  CASE WHEN o.outcome = 'crowd' THEN 1 ELSE 0 END,
                  t.empty, created_at + make_interval(mins => 60 * j), NULL
           FROM (SELECT %(a_inputs)s::jsonb AS a_inputs, %(c_inputs)s::jsonb AS c_inputs,
                        %(a_posterior)s::jsonb AS a_posterior, %(c_posterior)s::jsonb AS c_posterior,
                        %(a_reasons)s::jsonb AS a_reasons, %(c_reasons)s::jsonb AS c_reasons,
                        %(a_signals)s::jsonb AS a_signals, %(c_signals)s::jsonb AS c_signals,
                        '{}'::jsonb AS empty OFFSET 0) t,
                fill_facts, generate_series(0, decision_n - 1) j,
                LATERAL (SELECT CASE WHEN c = 0 THEN 'accept'
                                     WHEN j = decision_n - 1 AND source <> '' THEN 'accept'
                                     WHEN j = decision_n - 1 AND c = 4 THEN 'expert'
                                     WHEN c = 3 AND j = 2 THEN 'expert'
                                     ELSE 'crowd' END AS outcome) o""",
        {**ids, "version": version_id, **{f"{o[0]}_{part}": tpl[o][part] for o in ("accept", "crowd")
                                          for part in ("inputs", "posterior", "reasons", "signals")}},
    )
    # Slots: one completed per label given (crowd, then expert) with its annotation, then the open one: a
    # crowd slot in the crowd's queue, or an expert slot in the experts' queue.
    done = "j < crowd_n + expert_n"
    cursor.execute(
        f"""INSERT INTO routing_assignment (id, item_id, project_id, assignee_id, kind, status, lease_expires_at,
               due_at, decision_id, annotation_id, decline_reason, created_at, claimed_at, completed_at)
           SELECT %(slot0)s + s_off + j, %(item0)s + g, %(project)s, CASE WHEN {done} THEN {annotator} END,
                  CASE WHEN j < crowd_n OR (NOT {done} AND queued_n = 1) THEN 'crowd' ELSE 'expert' END,
                  CASE WHEN {done} THEN 'completed' ELSE 'offered' END, NULL,
                  CASE WHEN {done} THEN created_at + interval '24 hours'
                       ELSE now() + make_interval(secs => 3600 + (g %% 80000)) END,
                  %(dec0)s + d_off + LEAST(j, decision_n - 1), CASE WHEN {done} THEN %(ann0)s + a_off + j END, '',
                  created_at, CASE WHEN {done} THEN {submitted} - interval '5 minutes' END,
                  CASE WHEN {done} THEN {submitted} END
           FROM fill_facts, generate_series(0, crowd_n + expert_n + queued_n + expert_open_n - 1) j
           WHERE crowd_n + expert_n + queued_n + expert_open_n > 0""",
        {**ids, "crowd": crowd, "experts": experts},
    )
