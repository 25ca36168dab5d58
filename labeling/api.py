"""REST endpoints: projects, item ingest and listing, streamed export. Thin: parse, call a service or
selector, render. Everything but reading projects is for staff only (items carry gold labels and annotators'
work); who may do what is core.access's answer."""
from __future__ import annotations

import csv
import io
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, permissions, status
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core import access
from core.http import MULTIPART_SLACK_BYTES
from core.replicas import replica_alias
from labeling import formats, memberships, selectors, services
from labeling.api_support import ErrorsSerializer, StrictCursorPagination, field_errors
from labeling.filters import ItemFilter
from labeling.models import Item, Project, ProjectMembership
from labeling.parsers import StorableJSONParser, UnstorableBody
from labeling.serializers import (
    IngestErrorSerializer,
    IngestResultSerializer,
    IngestRowSerializer,
    IngestUploadSerializer,
    ItemSerializer,
    ProjectCreateSerializer,
    ProjectMemberSerializer,
    ProjectSerializer,
)
from labeling.validation import RowError

_DETECT_HEAD_BYTES = 4096
_DATA_KEYS = {"text": "text", "image": "image", "record": "record"}


class IsStaffOrReadOnly(permissions.BasePermission):
    """Reading for everyone signed in (each sees the projects they are members of), writing for staff."""

    def has_permission(self, request: Request, view: Any) -> bool:
        rule = access.SIGNED_IN if request.method in permissions.SAFE_METHODS else access.ADMINISTER
        return rule.allows(access.principal_of(request))


def _readable_projects(request: Request):
    """Every project for staff; the projects they are members of for everyone else."""
    principal = access.principal_of(request)
    projects = selectors.project_list()
    return projects if principal.role == access.Role.STAFF else projects.filter(pk__in=principal.projects)


class ItemCursorPagination(StrictCursorPagination):
    ordering = "id"
    page_size = 100


def _errors_response(errors: list[RowError], error_count: int | None = None) -> Response:
    return Response(services.IngestValidationError(errors, error_count).to_dict(), status=status.HTTP_400_BAD_REQUEST)


def _project(slug: str) -> Project:
    return get_object_or_404(Project, slug=slug)


class ProjectListCreateView(generics.ListAPIView):
    permission_classes = (IsStaffOrReadOnly,)
    serializer_class = ProjectSerializer
    pagination_class = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no requester
            return Project.objects.none()
        return _readable_projects(self.request)

    @extend_schema(
        summary="Create a project (staff only)",
        request=ProjectCreateSerializer,
        responses={201: ProjectSerializer, 400: OpenApiResponse(description="Invalid fields, e.g. duplicate classes."),
                   403: OpenApiResponse(description="Not staff.")},
        examples=[OpenApiExample("Pets", request_only=True, value={
            "name": "Pets", "slug": "pets", "classes": ["cat", "dog", {"name": "other", "hotkey": "o"}],
            "instructions": "Label the animal the text is about.", "decision_factors": ["sarcasm"],
        })],
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = ProjectCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            project = services.project_create(**serializer.validated_data, actor=request.user)
        except DjangoValidationError as exc:
            detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
            return Response({"errors": field_errors(detail)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="List projects (staff: all; everyone else: the projects they are members of)")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


@extend_schema(
    summary="A project with its classes",
    responses={200: ProjectSerializer, 403: OpenApiResponse(description="Not a member of the project.")},
)
class ProjectDetailView(generics.RetrieveAPIView):
    serializer_class = ProjectSerializer
    lookup_field = "slug"

    def get_queryset(self):
        return selectors.project_list()

    def get_object(self) -> Project:
        project = super().get_object()
        access.require(self.request, access.PROJECT_READ, project_id=project.pk)
        return project


def _member_row(membership: ProjectMembership) -> dict[str, Any]:
    return {"username": membership.user.get_username(), "added_at": membership.added_at.isoformat()}


class ProjectMembersView(APIView):
    """The people on a project (staff only): annotators claim, stakeholders and pipelines read, only in
    projects they are members of."""

    permission_classes = (access.Allows(access.ADMINISTER),)

    @extend_schema(summary="List a project's members", responses={200: ProjectMemberSerializer(many=True)})
    def get(self, request: Request, slug: str) -> Response:
        return Response([_member_row(m) for m in memberships.project_members(project=_project(slug))])

    @extend_schema(
        summary="Put a person on a project",
        request=ProjectMemberSerializer,
        responses={201: ProjectMemberSerializer,
                   200: OpenApiResponse(ProjectMemberSerializer, description="Already a member: nothing changed."),
                   400: OpenApiResponse(description='{"errors": [{"field": "username", "message": ...}]}')},
    )
    def post(self, request: Request, slug: str) -> Response:
        project = _project(slug)
        username = request.data.get("username") if isinstance(request.data, dict) else None
        if not isinstance(username, str) or not username.strip():
            return Response({"errors": [{"field": "username", "message": "required: the username to add"}]}, status=400)
        user = get_user_model().objects.filter(username=username.strip()).first()
        if user is None:
            return Response({"errors": [{"field": "username", "message": f"no user {username.strip()!r}"}]}, status=400)
        membership, created = memberships.membership_add(project=project, user=user, actor=request.user)
        return Response(_member_row(membership), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ProjectMemberView(APIView):
    permission_classes = (access.Allows(access.ADMINISTER),)

    @extend_schema(
        summary="Take a person off a project", responses={204: None, 404: OpenApiResponse(description="Not a member.")}
    )
    def delete(self, request: Request, slug: str, username: str) -> Response:
        project = _project(slug)
        user = get_user_model().objects.filter(username=username).first()
        if user is None or not memberships.membership_remove(project=project, user=user, actor=request.user):
            return Response({"detail": f"{username!r} is not a member of {project.slug!r}."}, status=404)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ItemListIngestView(generics.ListAPIView):
    permission_classes = (permissions.IsAdminUser,)
    serializer_class = ItemSerializer
    pagination_class = ItemCursorPagination
    filterset_class = ItemFilter
    parser_classes = (StorableJSONParser, MultiPartParser)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no project
            return Item.objects.none()
        project = _project(self.kwargs["slug"])
        return selectors.item_with_details(selectors.item_list(project=project))

    @extend_schema(summary="List items (cursor-paginated, filterable)")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Push items with predictions",
        description=(
            "A JSON array of item rows (at most INGEST_MAX_ROWS, default 10,000), or a file as multipart field "
            "`file`: JSONL, CSV (columns external_id, text or data, metadata/predictions/annotations as JSON, "
            "domain, language, gold) or a JSON array such as a Label Studio export. Idempotent by external_id. "
            "Any invalid row rejects the whole batch with a 400 listing every error; nothing is written."
        ),
        request={"application/json": IngestRowSerializer(many=True), "multipart/form-data": IngestUploadSerializer},
        responses={
            201: OpenApiResponse(IngestResultSerializer, description="Some items were created."),
            200: OpenApiResponse(IngestResultSerializer, description="Only existing items were touched."),
            400: OpenApiResponse(IngestErrorSerializer, description="Rejected batch: every error with row and field."),
        },
        examples=[
            OpenApiExample("Rows", request_only=True, media_type="application/json", value=[{
                "external_id": "a-1", "data": {"text": "purrs a lot"}, "domain": "pets/cats", "language": "en",
                "predictions": [{"model_version": "clf-3", "probabilities": {"cat": 0.7, "dog": 0.3}}],
            }]),
            OpenApiExample("Rejected", response_only=True, status_codes=["400"], value={
                "errors": [{"row": 3, "field": "predictions[0].probabilities",
                            "message": "probabilities sum to 0.9, not 1 (tolerance 1e-06)"}],
                "error_count": 1,
            }),
        ],
    )
    def post(self, request: Request, slug: str) -> Response:
        project = _project(slug)
        rows, errors = self._rows(request)
        if errors:
            return _errors_response(errors)
        try:
            result = services.items_ingest(project=project, rows=rows, actor=request.user,
                                           source="upload" if "file" in request.FILES else "api")
        except services.IngestValidationError as exc:
            return Response(exc.to_dict(), status=status.HTTP_400_BAD_REQUEST)
        body = {
            "created": result.created,
            "updated": result.updated,
            "predictions_added": result.predictions_added,
            "annotations_added": result.annotations_added,
            "items": len(result.item_ids),
        }
        return Response(body, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)

    def _rows(self, request: Request) -> tuple[list[Any], list[RowError]]:
        max_bytes, max_rows = settings.INGEST_MAX_BYTES, settings.INGEST_MAX_ROWS
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        multipart = request.content_type.startswith("multipart/")
        if length > max_bytes + (MULTIPART_SLACK_BYTES if multipart else 0):
            return [], [RowError(None, "file" if multipart else "(body)",
                                 f"request of {length} bytes is over the limit of {max_bytes} bytes")]
        try:
            payload = request.data
        except UnstorableBody as exc:
            return [], [RowError(exc.row, exc.field, str(exc.errors[0]["message"]))]
        except ParseError as exc:
            return [], [RowError(None, "(body)", str(exc.detail))]
        if multipart:
            upload = request.FILES.get("file")
            if upload is None and isinstance(request.data.get("file"), str):
                # Sent as a text part (curl -F 'file=<rows.jsonl'), not as a file: the same rows.
                upload = SimpleUploadedFile("file", request.data["file"].encode(), content_type="")
            if upload is None:
                return [], [RowError(None, "file", "required: send the rows as multipart field 'file'")]
            if upload.size > max_bytes:
                return [], [RowError(None, "file",
                    f"file of {upload.size} bytes is over the limit of {max_bytes} bytes")]
            return self._rows_from_file(upload, max_rows)
        if not isinstance(payload, list):
            return [], [RowError(None, "(body)", "expected a JSON array of item rows")]
        if len(payload) > max_rows:
            return [], [RowError(None, "(body)", f"{len(payload)} rows is over the limit of {max_rows} rows a request; "
                                                 "split the batch or use manage.py import_items")]
        return payload, []

    @staticmethod
    def _rows_from_file(upload: Any, max_rows: int) -> tuple[list[Any], list[RowError]]:
        head = upload.read(_DETECT_HEAD_BYTES)
        upload.seek(0)
        fmt = formats.detect_format(
            name=upload.name or "", content_type=upload.content_type or "", head=head.decode("utf-8", "ignore"),
        )
        text = io.TextIOWrapper(upload.file, encoding="utf-8-sig", newline="")
        rows: list[Any] = []
        try:
            for row in formats.read_rows(text, fmt):
                rows.append(row)
                if len(rows) > max_rows:
                    return [], [RowError(None, "file", f"more than {max_rows} rows; split the file or use "
                                                       "manage.py import_items")]
        except UnicodeDecodeError as exc:
            return [], [RowError(None, "file", f"not UTF-8 text: {exc.reason} at byte {exc.start}")]
        except (formats.FormatError, csv.Error) as exc:
            return [], [RowError(None, "file", f"cannot read as {fmt}: {exc}")]
        finally:
            text.detach()
        return rows, []


@extend_schema(summary="One item with predictions, annotations and gold")
class ItemDetailView(generics.RetrieveAPIView):
    permission_classes = (permissions.IsAdminUser,)
    serializer_class = ItemSerializer
    lookup_field = "external_id"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Item.objects.none()
        return selectors.item_with_details(selectors.item_list(project=_project(self.kwargs["slug"])))


class ExportView(APIView):
    permission_classes = (permissions.IsAdminUser,)

    def perform_content_negotiation(self, request: Request, force: bool = False):
        # `format` names the export format here, not a DRF renderer; errors are always JSON.
        return JSONRenderer(), JSONRenderer.media_type

    @extend_schema(
        summary="Export items (streamed)",
        parameters=[
            OpenApiParameter("format", str, enum=list(formats.EXPORT_FORMATS), default="jsonl",
                             description="jsonl: one item per line; csv: nested parts as JSON cells; label-studio: a "
                                         "JSON array of Label Studio tasks (imports back here too)."),
            OpenApiParameter("subset", str, enum=list(selectors.SUBSETS), required=False,
                             description="escalated: items with an expert annotation or status escalated; "
                                         "disagreements: items whose annotations carry more than one label."),
        ],
        responses={
            (200, "application/x-ndjson"): OpenApiTypes.STR,
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/json"): OpenApiResponse(
                {"type": "array", "items": {"type": "object"}}, description="label-studio: an array of tasks."
            ),
            400: OpenApiResponse(ErrorsSerializer, description="Unknown format or subset."),
        },
    )
    def get(self, request: Request, slug: str) -> Any:
        project = _project(slug)
        fmt = request.query_params.get("format", "jsonl")
        subset = request.query_params.get("subset") or None
        if fmt not in formats.EXPORT_FORMATS:
            raise ValidationError({"format": [f"expected one of {', '.join(formats.EXPORT_FORMATS)}"]})
        if subset is not None and subset not in selectors.SUBSETS:
            raise ValidationError({"subset": [f"expected one of {', '.join(selectors.SUBSETS)}"]})
        # The rows are read while the response streams, after this method returns: the alias goes with them.
        rows = selectors.item_export_rows(project=project, subset=subset, using=replica_alias())
        chunks = formats.write_rows(rows, fmt, data_key=_DATA_KEYS.get(project.data_type, "text"))
        response = StreamingHttpResponse(formats.encoded_blocks(chunks), content_type=formats.CONTENT_TYPES[fmt])
        name = f"{project.slug}{'-' + subset if subset else ''}.{formats.EXTENSIONS[fmt]}"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
